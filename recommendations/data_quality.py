"""The data report: what is wrong with the data the recommendations learn from,
what each problem does to them, and what to do about it.

``report_build`` runs a fixed list of checks (grouped queries, no row per event in
Python) over the whole store or one window (a training run's ``data_since`` to
``data_until``); ``manage.py data_quality`` prints it with a progress bar and the
admin page (Recommendations › Data report) draws it with charts. Every finding has
a ``severity`` (ok / info / warning / problem), the figures, ``effect`` (what it
does to recommendations) and ``action`` (what to do). Nothing is changed: the
report only reads.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from django.core.cache import cache
from django.db.models import Count, Max, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from shop.models import Interaction, Product, User
from shop.services.catalogue import PLACEHOLDER

from .charts import PALETTE, Spec, empty_spec
from .noise import REASONS, excluded_q, noise_find, noise_stored, rule_texts

Progress = Callable[[float, str], None]

COLD_ITEM_EVENTS = 5  # fewer events than this: a model has almost nothing to learn about the product
COLD_CUSTOMER_EVENTS = 3
SPIKE_FACTOR = 4.0  # a day with more than 4x the median day's events is a spike
SEVERITIES = ("ok", "info", "warning", "problem")
REPORT_CACHE_SECONDS = 600
CACHE_KEY = "affinity:rec:data_report:v1:{generation}:{window}"
GENERATION_KEY = "affinity:rec:data_report:generation"
logger = logging.getLogger(__name__)


@dataclass
class Finding:
    key: str
    title: str
    severity: str
    summary: str
    effect: str
    action: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    since: datetime | None
    until: datetime | None
    events: int
    findings: list[Finding]
    series: dict[str, Any]
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    computed_at: datetime = field(default_factory=timezone.now)

    def finding(self, key: str) -> Finding:
        return next(f for f in self.findings if f.key == key)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["since"] = self.since.isoformat() if self.since else None
        out["until"] = self.until.isoformat() if self.until else None
        out["computed_at"] = self.computed_at.isoformat()
        return out


def _generation() -> str:
    """A random token in every cached report's key: deleting ``GENERATION_KEY`` forgets
    them all (a database restored or emptied can repeat event ids)."""
    token = cache.get(GENERATION_KEY)
    if token is None:
        token = uuid.uuid4().hex
        cache.set(GENERATION_KEY, token, timeout=None)
    return str(token)


def report_cached(*, since: datetime | None = None, until: datetime | None = None, refresh: bool = False) -> Report:
    """``report_build`` for the admin page, kept in the cache for ``REPORT_CACHE_SECONDS``
    per window and newest event (``refresh`` computes it again); a cache outage computes
    it each time."""
    newest = Interaction.objects.aggregate(newest=Max("id"))["newest"] or 0  # a new event: a new report
    window = f"{since.isoformat() if since else ''}:{until.isoformat() if until else ''}:{newest}"
    key = ""
    if not refresh:
        try:
            key = CACHE_KEY.format(generation=_generation(), window=window)
            cached = cache.get(key)
            if isinstance(cached, Report):
                return cached
        except Exception:  # noqa: BLE001 - a cache outage only costs the computation
            logger.warning("cache unavailable for the data report", exc_info=True)
    report = report_build(since=since, until=until)
    try:
        key = key or CACHE_KEY.format(generation=_generation(), window=window)
        cache.set(key, report, timeout=REPORT_CACHE_SECONDS)
    except Exception:  # noqa: BLE001
        logger.warning("cache unavailable for the data report", exc_info=True)
    return report


def _pct(part: float, whole: float) -> str:
    return f"{(part / whole if whole else 0.0):.1%}"


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative ``values`` (0: all equal, near 1: one item
    holds everything); 0 for an empty or all-zero array."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = x.size
    if n == 0 or x.sum() <= 0:
        return 0.0
    index = np.arange(1, n + 1)
    return float((2.0 * (index * x).sum()) / (n * x.sum()) - (n + 1.0) / n)


def top_share(values: np.ndarray, fraction: float = 0.01) -> float:
    """Share of the total held by the top ``fraction`` of items (at least one)."""
    x = np.sort(np.asarray(values, dtype=np.float64))[::-1]
    if x.size == 0 or x.sum() <= 0:
        return 0.0
    top = max(1, int(np.ceil(fraction * x.size)))
    return float(x[:top].sum() / x.sum())


def daily_anomalies(days: list[date], counts: list[int]) -> tuple[list[date], list[date]]:
    """(gaps, spikes) of a daily series: days between the first and last with no
    event at all, and days above ``SPIKE_FACTOR`` times the median day."""
    if not days:
        return [], []
    have = dict(zip(days, counts, strict=True))
    first, last = min(days), max(days)
    gaps = [first + timedelta(d) for d in range((last - first).days + 1) if have.get(first + timedelta(d), 0) == 0]
    median = float(np.median(counts)) if counts else 0.0
    spikes = [d for d, c in sorted(have.items()) if median > 0 and c > SPIKE_FACTOR * median and c >= 20]
    return gaps, spikes


def _window(qs, since: datetime | None, until: datetime | None):
    if since is not None:
        qs = qs.filter(occurred_at__gte=since)
    if until is not None:
        qs = qs.filter(occurred_at__lte=until)
    return qs


def report_build(
    *, since: datetime | None = None, until: datetime | None = None, progress: Progress | None = None
) -> Report:
    """Every check over the events in ``[since, until]`` (all by default) and the
    catalogue as it is now."""
    clock = time.perf_counter()
    timings: dict[str, float] = {}
    steps = 9
    done = 0

    def step(name: str) -> None:
        nonlocal clock, done
        now = time.perf_counter()
        timings[name] = round(now - clock, 3)
        clock = now
        done += 1
        if progress:
            progress(done / steps, name)

    started = time.perf_counter()
    events = _window(Interaction.objects.all(), since, until)
    findings: list[Finding] = []
    series: dict[str, Any] = {}

    # 1. volume, mix of kinds, ratings ------------------------------------------------------
    kinds = dict(events.values_list("kind").annotate(n=Count("id")).values_list("kind", "n"))
    total = int(sum(kinds.values()))
    labels = dict(Interaction.Kind.choices)
    series["kinds"] = {labels.get(k, str(k)): int(n) for k, n in sorted(kinds.items())}
    ratings = dict(
        events.filter(kind=Interaction.Kind.RATING)
        .values_list("value")
        .annotate(n=Count("id"))
        .values_list("value", "n")
    )
    stars: dict[str, int] = {}
    for value, n in ratings.items():
        label = f"{round(float(value) * 2) / 2:g}"
        stars[label] = stars.get(label, 0) + int(n)
    series["ratings"] = dict(sorted(stars.items(), key=lambda kv: float(kv[0])))
    views = kinds.get(Interaction.Kind.VIEW, 0)
    strong = sum(kinds.get(k, 0) for k in (Interaction.Kind.PURCHASE, Interaction.Kind.RATING))
    if total == 0:
        findings.append(
            Finding(
                "kinds",
                "Mix of event kinds",
                "problem",
                "No events in this window.",
                "No model can learn anything: every shopper gets trending or the newest products.",
                "Import events (manage.py import_interactions) or let the store collect them.",
            )
        )
    else:
        severity = "warning" if strong / total < 0.01 or len(kinds) == 1 else "ok"
        parts = ", ".join(f"{labels.get(k, k)} {_pct(n, total)}" for k, n in sorted(kinds.items()))
        findings.append(
            Finding(
                "kinds",
                "Mix of event kinds",
                severity,
                f"{total:,} events: {parts}.",
                "Views are weak, noisy evidence; purchases and ratings are strong. A stream of almost only views "
                "teaches what people look at, not what they want.",
                "Send purchases (and cart events) too; tune the kind weights (AFFINITY_TRAIN_KIND_WEIGHTS)."
                if severity != "ok"
                else "Nothing to do.",
                {"total": total, "by_kind": series["kinds"], "views": views, "purchases_and_ratings": strong},
            )
        )
    if stars:
        n_ratings = sum(stars.values())
        top = max(stars.items(), key=lambda kv: kv[1])
        skewed = top[1] / n_ratings > 0.6
        findings.append(
            Finding(
                "ratings",
                "Rating distribution",
                "info" if skewed else "ok",
                f"{n_ratings:,} ratings; the most common is {top[0]} stars ({_pct(top[1], n_ratings)}).",
                "Ratings bunched on one value say little about preference; low ratings still count as "
                "interest in implicit models.",
                "Consider weighting ratings by value (value mode) or treating low ratings as negative feedback."
                if skewed
                else "Nothing to do.",
                {"ratings": n_ratings, "by_stars": series["ratings"]},
            )
        )
    step("kinds")

    # 2. duplicates ---------------------------------------------------------------------------
    duplicated = (
        events.values("user_id", "session_key", "product_id", "kind", "value", "occurred_at")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("n", flat=True)
    )
    copies = [int(n) for n in duplicated]
    extra = int(sum(n - 1 for n in copies))
    findings.append(
        Finding(
            "duplicates",
            "Duplicate events",
            "ok" if extra == 0 else ("problem" if total and extra / total > 0.01 else "warning"),
            f"{extra:,} extra copies of {len(copies):,} events (same actor, product, kind, value and time)"
            + (f": {_pct(extra, total)} of all events." if total else "."),
            "Each copy counts the event again: duplicated products look more popular and weigh more in "
            "the customer's profile than they should.",
            "Send an event_id with every event (the API then stores it once) and check the client that "
            "retries; importing the same file twice is already harmless."
            if extra
            else "Nothing to do.",
            {"extra_copies": extra, "duplicated_events": len(copies)},
        )
    )
    step("duplicates")

    # 3. bots and abnormal sessions ---------------------------------------------------------------
    # the whole store: the noise the beat task found (the same rules over the same events,
    # a minute on SQLite at 2M events); a window (one training run's): computed for it
    whole = since is None and until is None
    noise = (noise_stored() if whole else None) or noise_find(since=since, until=until)
    noisy_events = events.filter(excluded_q(noise)).count() if (noise.users or noise.sessions) else 0
    by_reason = noise.by_reason()
    series["noise"] = {
        key: by_reason.get(key, {}).get("customers", 0) + by_reason.get(key, {}).get("sessions", 0) for key in REASONS
    }
    actors = len(noise.users) + len(noise.sessions)
    texts = rule_texts(noise.rules)
    findings.append(
        Finding(
            "bots",
            "Likely bots and abnormal sessions",
            "ok" if actors == 0 else ("problem" if total and noisy_events / total > 0.05 else "warning"),
            f"{len(noise.users):,} customers and {len(noise.sessions):,} sessions match a noise rule, with "
            f"{noisy_events:,} events ({_pct(noisy_events, total)})."
            + ("" if noise.enabled else " The filter is OFF (AFFINITY_NOISE_FILTER): they are NOT excluded."),
            "Scrapers and stuck clients flood the matrix with views of everything: popularity and trending "
            "follow the bot, and similar-product lists link products only the bot connected.",
            "They are left out of training and trending (never deleted). Check the list; tighten or loosen "
            "the AFFINITY_NOISE_* thresholds if real shoppers are caught."
            if actors
            else "Nothing to do.",
            {
                "customers": len(noise.users),
                "sessions": len(noise.sessions),
                "events": noisy_events,
                "by_reason": by_reason,
                "rules": texts,
                "filter_enabled": noise.enabled,
                "sample_customers": sorted(noise.users)[:20],
                "sample_sessions": sorted(noise.sessions)[:20],
            },
        )
    )
    step("bots")

    # 4. events on inactive and placeholder products ------------------------------------------------
    on = events.aggregate(
        inactive=Count("id", filter=Q(product__is_active=False)),
        placeholder=Count("id", filter=Q(product__attributes__has_key=PLACEHOLDER)),
    )
    bad = int(on["inactive"]) + int(on["placeholder"])
    findings.append(
        Finding(
            "unknown_products",
            "Events on unknown, inactive or placeholder products",
            "ok" if bad == 0 else ("warning" if total and bad / total > 0.01 else "info"),
            f"{on['placeholder']:,} events on placeholder products (created for product ids the catalogue did not "
            f"know) and {on['inactive']:,} on inactive products.",
            "A model learns them but serving never shows inactive products, and a placeholder has no name, "
            "category or image: content and category fallbacks cannot use it.",
            "Import the catalogue (manage.py import_catalogue) so placeholders get their details; retire "
            "inactive products' events by letting the time decay age them out."
            if bad
            else "Nothing to do.",
            {"placeholder": int(on["placeholder"]), "inactive": int(on["inactive"])},
        )
    )
    step("unknown products")

    # 5. catalogue: missing fields, placeholders never filled ------------------------------------------
    products = Product.objects.all()
    cat = products.aggregate(
        total=Count("id"),
        active=Count("id", filter=Q(is_active=True)),
        no_description=Count("id", filter=Q(description="")),
        no_category=Count("id", filter=Q(category__isnull=True)),
        no_image=Count("id", filter=Q(image_url="")),
        no_price=Count("id", filter=Q(price__lte=0)),
        placeholders=Count("id", filter=Q(attributes__has_key=PLACEHOLDER)),
    )
    n_products = int(cat["total"])
    missing = {k: int(cat[k]) for k in ("no_description", "no_category", "no_image", "no_price")}
    series["catalogue"] = {
        "no text": missing["no_description"],
        "no category": missing["no_category"],
        "no image": missing["no_image"],
        "no price": missing["no_price"],
        "placeholder": int(cat["placeholders"]),
    }
    worst = max(missing.values()) if missing else 0
    findings.append(
        Finding(
            "catalogue",
            "Products missing text, category, image or price",
            "ok" if worst == 0 else ("warning" if n_products and worst / n_products > 0.2 else "info"),
            f"Of {n_products:,} products: {missing['no_description']:,} without a description, "
            f"{missing['no_category']:,} without a category, {missing['no_image']:,} without an image, "
            f"{missing['no_price']:,} with no price.",
            "Without text and a category a new product has no content signal (cold start falls back to "
            "trending) and category diversity cannot tell it apart; without an image or price it looks broken "
            "on a shelf.",
            "Fill them in the catalogue file and import it again (manage.py import_catalogue), or in admin."
            if worst
            else "Nothing to do.",
            {"products": n_products, "active": int(cat["active"]), **missing},
        )
    )
    placeholders = int(cat["placeholders"])
    findings.append(
        Finding(
            "placeholders",
            "Placeholders never filled in",
            "ok" if placeholders == 0 else "warning",
            f"{placeholders:,} products were created from events for ids the catalogue did not know and "
            "never got their details.",
            "They are recommended with a generated name and image, and content models skip them.",
            "Import the catalogue with their SKUs; the import fills them and drops the placeholder mark."
            if placeholders
            else "Nothing to do.",
            {"placeholders": placeholders},
        )
    )
    step("catalogue")

    # 6. gaps and spikes -----------------------------------------------------------------------------
    settled = events.settled()
    future = total - settled.count()
    daily = list(
        settled.annotate(day=TruncDate("occurred_at", tzinfo=UTC))
        .values_list("day")
        .annotate(n=Count("id"))
        .order_by("day")
        .values_list("day", "n")
    )
    days = [d for d, _ in daily if d is not None]
    counts = [int(n) for d, n in daily if d is not None]
    gaps, spikes = daily_anomalies(days, counts)
    have = dict(zip(days, counts, strict=True))
    span = [days[0] + timedelta(d) for d in range((days[-1] - days[0]).days + 1)] if days else []
    series["daily"] = {"days": [d.isoformat() for d in span], "counts": [have.get(d, 0) for d in span]}
    findings.append(
        Finding(
            "stream",
            "Gaps and spikes in the event stream",
            "ok" if not (gaps or spikes or future) else "warning",
            (f"{future:,} events dated in the future (left out of the days below); " if future else "")
            + f"{len(days):,} days with events; {len(gaps):,} days without any between the first and the last"
            + (f" (first: {gaps[0].isoformat()})" if gaps else "")
            + f"; {len(spikes):,} days above {SPIKE_FACTOR:g}x the median day"
            + (f" (first: {spikes[0].isoformat()})" if spikes else "")
            + ".",
            "A gap (tracking broken, an import missing) hides what happened then and makes the time-based "
            "holdout judge on a different season; a spike (a bot, a replayed batch, a sale) dominates "
            "trending and the time-decayed weights.",
            "Re-send the missing days' events; look at the spike's actors in the bots finding; fix the clock "
            "of the client that sends future-dated events."
            if gaps or spikes or future
            else "Nothing to do.",
            {
                "days": len(days),
                "gaps": [d.isoformat() for d in gaps[:50]],
                "gap_days": len(gaps),
                "spikes": [d.isoformat() for d in spikes[:50]],
                "spike_days": len(spikes),
                "median_per_day": float(np.median(counts)) if counts else 0.0,
                "future_events": future,
            },
        )
    )
    step("stream")

    # 7. popularity concentration, cold items --------------------------------------------------------------
    per_item = np.array(
        list(events.values_list("product_id").annotate(n=Count("id")).values_list("n", flat=True)), dtype=np.int64
    )
    active_products = int(cat["active"])
    all_items = np.concatenate([per_item, np.zeros(max(active_products - per_item.size, 0), dtype=np.int64)])
    g = gini(all_items)
    share = top_share(all_items, 0.01)
    cold_items = int((per_item < COLD_ITEM_EVENTS).sum()) + max(active_products - per_item.size, 0)
    series["popularity"] = _lorenz(all_items)
    findings.append(
        Finding(
            "popularity",
            "Popularity concentration",
            "warning" if g > 0.8 or share > 0.3 else ("info" if g > 0.6 else "ok"),
            f"Gini {g:.2f} over {all_items.size:,} products; the top 1% of products hold {share:.1%} of the events.",
            "The more concentrated, the more any model recommends the same few products to everyone "
            "(popularity bias): the long tail is rarely shown and so never gets the events it would need.",
            "Watch coverage and long-tail share per model version; give placements a long-tail weight "
            "(the re-ranking trades a little NDCG for more long-tail exposure).",
            {"gini": round(g, 4), "top_1pct_share": round(share, 4), "products": int(all_items.size)},
        )
    )
    findings.append(
        Finding(
            "cold_items",
            "Cold products",
            "ok"
            if cold_items == 0
            else ("warning" if all_items.size and cold_items / all_items.size > 0.5 else "info"),
            f"{cold_items:,} products ({_pct(cold_items, all_items.size)}) have fewer than {COLD_ITEM_EVENTS} events.",
            "Collaborative models cannot place them: they are served only through content (name, category) "
            "and new-arrival shelves.",
            "Give them text and a category (content fallback); feature them in new-arrival shelves or "
            "campaigns to collect first events."
            if cold_items
            else "Nothing to do.",
            {"cold_products": cold_items, "threshold_events": COLD_ITEM_EVENTS},
        )
    )
    step("popularity")

    # 8. cold customers ---------------------------------------------------------------------------------
    customer_counts = np.array(
        list(
            events.filter(user_id__isnull=False)
            .values_list("user_id")
            .annotate(n=Count("id"))
            .values_list("n", flat=True)
        ),
        dtype=np.int64,
    )
    customers = User.objects.filter(is_staff=False).count()
    silent = max(customers - customer_counts.size, 0)
    cold_customers = int((customer_counts < COLD_CUSTOMER_EVENTS).sum()) + silent
    findings.append(
        Finding(
            "cold_customers",
            "Cold customers",
            "ok" if cold_customers == 0 else ("warning" if customers and cold_customers / customers > 0.5 else "info"),
            f"{cold_customers:,} of {customers:,} customers ({_pct(cold_customers, customers)}) have fewer than "
            f"{COLD_CUSTOMER_EVENTS} events ({silent:,} none at all).",
            "A model knows little about them: they get popular products, or what their stated interests and "
            "the current session suggest.",
            "Ask for interests at sign-up; welcome emails with popular products; the session's clicks fold in at once."
            if cold_customers
            else "Nothing to do.",
            {"cold_customers": cold_customers, "customers": customers, "without_events": silent},
        )
    )
    step("customers")
    step("done")
    return Report(
        since=since,
        until=until,
        events=total,
        findings=findings,
        series=series,
        seconds=round(time.perf_counter() - started, 3),
        timings=timings,
    )


def _lorenz(values: np.ndarray, points: int = 50) -> dict[str, list[float]]:
    """The Lorenz curve of popularity: share of products (least popular first) vs
    share of events, at most ``points`` points."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.size == 0 or x.sum() <= 0:
        return {"products": [], "events": []}
    cum = np.concatenate([[0.0], np.cumsum(x) / x.sum()])
    at = np.unique(np.linspace(0, x.size, min(points, x.size) + 1).astype(int))
    return {"products": [round(a / x.size, 4) for a in at.tolist()], "events": [round(float(cum[a]), 4) for a in at]}


def _bars(title: str, data: dict[str, int], *, axis: str, empty: str, colour: str = PALETTE[0]) -> Spec:
    if not any(data.values()):
        return empty_spec(title, empty)
    total = sum(data.values()) or 1
    return {
        "type": "bar",
        "title": title,
        "indexAxis": "y",
        "height": 110 + 34 * len(data),
        "labels": list(data),
        "datasets": [
            {
                "label": axis,
                "data": list(data.values()),
                "tooltips": [f"{k}: {v:,} ({v / total:.1%})" for k, v in data.items()],
                "valueLabels": [f"{v:,}" for v in data.values()],
                "backgroundColor": colour,
            }
        ],
        "x": {"title": axis, "format": "count", "min": 0, "grace": "12%"},
    }


def report_charts(report: Report) -> dict[str, Spec]:
    """Chart specs (``recommendations/charts.py`` format, drawn by
    ``static/admin/js/affinity-charts.js``) of a report: pure data."""
    s = report.series
    daily = s.get("daily") or {"days": [], "counts": []}
    stream = report.finding("stream").figures
    gaps, spikes = set(stream.get("gaps", [])), set(stream.get("spikes", []))
    charts: dict[str, dict[str, Any]] = {
        "kinds": _bars("Events by kind", s.get("kinds", {}), axis="events", empty="No events."),
        "ratings": _bars("Ratings by stars", s.get("ratings", {}), axis="ratings", empty="No ratings."),
        "noise": _bars(
            "Actors matched by each noise rule",
            {k.replace("_", " "): v for k, v in s.get("noise", {}).items()},
            axis="customers and sessions",
            empty="No actor matches a noise rule.",
            colour=PALETTE[1],
        ),
        "catalogue": _bars(
            "Products missing details", s.get("catalogue", {}), axis="products", empty="No products.", colour=PALETTE[3]
        ),
    }
    if daily["days"]:
        charts["daily"] = {
            "type": "bar",
            "title": "Events per day (red: spikes; gaps: days with no bar)",
            "height": 260,
            "labels": daily["days"],
            "datasets": [
                {
                    "label": "events",
                    "data": daily["counts"],
                    "tooltips": [f"{d}: {c:,} events" for d, c in zip(daily["days"], daily["counts"], strict=True)],
                    "backgroundColor": [PALETTE[1] if d in spikes else PALETTE[0] for d in daily["days"]],
                }
            ],
            "y": {"title": "events", "format": "count", "min": 0},
            "note": f"{len(gaps)} day(s) without events, {len(spikes)} spike day(s).",
        }
    else:
        charts["daily"] = empty_spec("Events per day", "No events.")
    lorenz = s.get("popularity") or {"products": [], "events": []}
    if lorenz["products"]:
        charts["popularity"] = {
            "type": "line",
            "title": "Popularity concentration (Lorenz curve)",
            "height": 280,
            "datasets": [
                {
                    "label": "share of events",
                    "data": [{"x": x, "y": y} for x, y in zip(lorenz["products"], lorenz["events"], strict=True)],
                    "tooltips": [
                        f"the least popular {x:.0%} of products hold {y:.1%} of events"
                        for x, y in zip(lorenz["products"], lorenz["events"], strict=True)
                    ],
                    "borderColor": PALETTE[0],
                    "backgroundColor": PALETTE[0],
                    "pointRadius": 0,
                    "tension": 0,
                },
                {
                    "label": "perfect equality",
                    "data": [{"x": 0, "y": 0}, {"x": 1, "y": 1}],
                    "tooltips": ["", ""],
                    "borderColor": "#999",
                    "backgroundColor": "#999",
                    "borderDash": [4, 4],
                    "pointRadius": 0,
                },
            ],
            "x": {
                "type": "linear",
                "title": "share of products (least popular first)",
                "format": "percent",
                "min": 0,
                "max": 1,
            },
            "y": {"title": "share of events", "format": "percent", "min": 0, "max": 1},
            "note": report.finding("popularity").summary,
        }
    else:
        charts["popularity"] = empty_spec("Popularity concentration", "No events.")
    return charts
