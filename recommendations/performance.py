"""How the recommendation lists perform on the store: the admin's performance
dashboard (``admin_performance``) and the start page's share of revenue.

Everything comes from what was recorded when a list was shown and used:

* a **list shown** is an ``Impression`` (its placement, strategy, rules, model version);
* a **click** is an ``Interaction`` of kind click carrying the list's id
  (``rec_list_id``), an **add to cart** one of kind add-to-cart carrying it;
* an **order** is an ``OrderLine`` carrying the list's id (cancelled orders left out);
  its amount (unit price x quantity) is the list's **attributed revenue**.

Rates are per list shown, as in the A/B experiment report: click-through = lists
with at least one click / lists shown; add-to-cart = lists with a product put in the
cart from them / lists shown; conversion = lists with an attributed order line /
lists shown. Days are the site's calendar days of the list being shown; a click or
an order counts for the day its list was shown.

**Coverage**: distinct products shown / active products in the catalogue.
**Novelty**: mean self-information of the products shown, ``-log2 p`` with ``p``
the share of shoppers who ever interacted with the product (smoothed:
``(n + 1) / (N + 1)``): higher = less obvious picks.

One pass over the window's lists (``MAX_LISTS`` most recent at most; the report says
when it stopped there) plus one query each for clicks, orders, the catalogue size,
the popularity of the products shown, and labels.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Count, DecimalField, ExpressionWrapper, F, Sum
from django.utils import timezone

from shop.models import Interaction, Order, OrderLine, Product

from .charts import PALETTE, empty_spec
from .models import DEFAULT_SLOT, Impression, MerchandisingRule, ModelVersion, Placement
from .placements import DEFAULT_PLACEMENTS

MAX_LISTS = 500_000
"""Lists read per report at most (the most recent first)."""

DIMENSIONS = {
    "placement": "Placement",
    "strategy": "Strategy",
    "rule": "Merchandising rule",
    "model": "Model version",
}
NO_RULE = "no rule"
NO_MODEL = "no model (fallbacks)"
CENT = Decimal("0.01")


@dataclass
class Funnel:
    """Lists shown and what came of them."""

    lists: int = 0
    items: int = 0
    clicks: int = 0
    clicked: int = 0  # lists with at least one click
    carted: int = 0  # lists with an add to cart
    ordered: int = 0  # lists with an attributed order line
    revenue: Decimal = Decimal("0")

    def add(self, other: Funnel) -> None:
        self.lists += other.lists
        self.items += other.items
        self.clicks += other.clicks
        self.clicked += other.clicked
        self.carted += other.carted
        self.ordered += other.ordered
        self.revenue += other.revenue

    @staticmethod
    def _rate(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    @property
    def ctr(self) -> float | None:
        return self._rate(self.clicked, self.lists)

    @property
    def add_to_cart_rate(self) -> float | None:
        return self._rate(self.carted, self.lists)

    @property
    def conversion(self) -> float | None:
        return self._rate(self.ordered, self.lists)


@dataclass
class ModelDay:
    day: date
    version_id: int
    label: str
    ndcg: float | None
    ctr: float | None
    lists: int
    active: bool


@dataclass
class Report:
    since: datetime
    until: datetime
    days: list[date]
    total: Funnel
    by: dict[str, dict[str, Funnel]]  # dimension -> key -> funnel over the window
    daily: dict[str, dict[str, dict[date, Funnel]]]  # dimension -> key -> day -> funnel
    catalogue: int
    distinct_shown: int
    coverage: float | None
    novelty: float | None
    coverage_by: dict[str, float]  # placement -> coverage
    model_days: list[ModelDay] = field(default_factory=list)
    truncated: bool = False


def _family(strategy: str) -> str:
    """ "model:als#12" -> "model: als"; fallbacks and trending as they are."""
    if strategy.startswith("model:"):
        return "model: " + strategy[len("model:") :].split("#")[0]
    return strategy or "unknown"


def _list_outcomes(since: datetime) -> tuple[Counter, set, dict]:
    """Clicks per list, lists with an add to cart, revenue per list (since ``since``)."""
    clicks: Counter = Counter()
    carted: set = set()
    for list_id, kind in Interaction.objects.filter(
        rec_list_id__isnull=False,
        occurred_at__gte=since,
        kind__in=[Interaction.Kind.CLICK, Interaction.Kind.ADD_TO_CART],
    ).values_list("rec_list_id", "kind"):
        if kind == Interaction.Kind.CLICK:
            clicks[list_id] += 1
        else:
            carted.add(list_id)
    revenue: dict = defaultdict(Decimal)
    amount = ExpressionWrapper(F("unit_price") * F("quantity"), output_field=DecimalField())
    for list_id, value in (
        OrderLine.objects.filter(rec_list_id__isnull=False, order__placed_at__gte=since)
        .exclude(order__status=Order.Status.CANCELLED)
        .values("rec_list_id")
        .order_by()
        .annotate(list_revenue=Sum(amount))
        .values_list("rec_list_id", "list_revenue")
    ):
        revenue[list_id] += Decimal(value or 0)
    return clicks, carted, revenue


def performance_report(*, days: int = 30, until: datetime | None = None) -> Report:
    """The dashboard's figures for the ``days`` before ``until`` (default: now)."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 366:
        raise ValueError(f"days must be a whole number from 1 to 366, got {days!r}")
    until = until or timezone.now()
    since = until - timedelta(days=days)
    clicks, carted, revenue = _list_outcomes(since)
    first_day, last_day = timezone.localdate(since), timezone.localdate(until)
    all_days = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]

    total = Funnel()
    by: dict[str, dict[str, Funnel]] = {d: defaultdict(Funnel) for d in DIMENSIONS}
    daily: dict[str, dict[str, dict[date, Funnel]]] = {d: defaultdict(lambda: defaultdict(Funnel)) for d in DIMENSIONS}
    shown: Counter = Counter()
    shown_by_placement: dict[str, set] = defaultdict(set)
    version_ids: set[int] = set()
    rule_ids_seen: set[int] = set()
    rows = (
        Impression.objects.filter(created_at__gte=since, created_at__lt=until)
        .order_by("-created_at")
        .values_list(
            "id", "created_at", "context", "placement", "strategy", "model_version_id", "rule_ids", "product_ids"
        )
    )
    read = 0
    truncated = False
    for list_id, created_at, context, placement, strategy, version_id, rule_ids, product_ids in rows.iterator(
        chunk_size=5000
    ):
        if read >= MAX_LISTS:
            truncated = True
            break
        read += 1
        day = timezone.localdate(created_at)
        products = product_ids or []
        n_clicks = clicks.get(list_id, 0)
        one = Funnel(
            lists=1,
            items=len(products),
            clicks=n_clicks,
            clicked=int(n_clicks > 0),
            carted=int(list_id in carted),
            ordered=int(list_id in revenue),
            revenue=revenue.get(list_id, Decimal("0")),
        )
        total.add(one)
        rules = [int(r) for r in (rule_ids or []) if isinstance(r, int) or str(r).isdigit()]
        rule_ids_seen.update(rules)
        if version_id is not None:
            version_ids.add(version_id)
        keys = {
            "placement": [placement or f"{context} (no placement)"],
            "strategy": [_family(strategy)],
            "rule": [f"rule #{r}" for r in rules] or [NO_RULE],
            "model": [f"#{version_id}" if version_id is not None else NO_MODEL],
        }
        for dimension, names in keys.items():
            for name in names:
                by[dimension][name].add(one)
                daily[dimension][name][day].add(one)
        shown.update(products)
        shown_by_placement[keys["placement"][0]].update(products)
    # labels: model versions, rules
    versions = {v.pk: v for v in ModelVersion.objects.filter(pk__in=version_ids)}
    rule_names = dict(MerchandisingRule.objects.filter(pk__in=rule_ids_seen).values_list("pk", "name"))
    # the default placements' names also when their rows are missing (as serving does)
    placement_names = {key: name for key, name, *_ in DEFAULT_PLACEMENTS}
    placement_names |= dict(Placement.objects.values_list("key", "name"))
    relabel = {
        "model": {f"#{pk}": v.label for pk, v in versions.items()},
        "rule": {f"rule #{pk}": f"{name} (#{pk})" for pk, name in rule_names.items()},
        "placement": {key: f"{name} ({key})" for key, name in placement_names.items()},
    }
    for dimension, label_of in relabel.items():
        by[dimension] = {label_of.get(k, k): f for k, f in by[dimension].items()}
        daily[dimension] = {label_of.get(k, k): d for k, d in daily[dimension].items()}
    # coverage and novelty
    catalogue = Product.objects.filter(is_active=True).count()
    coverage = len(shown) / catalogue if catalogue and shown else None
    coverage_by = {
        relabel["placement"].get(k, k): len(v) / catalogue for k, v in shown_by_placement.items() if catalogue
    }
    novelty = _novelty(shown)
    report = Report(
        since=since,
        until=until,
        days=all_days,
        total=total,
        by={d: dict(v) for d, v in by.items()},
        daily={d: {k: dict(days_) for k, days_ in v.items()} for d, v in daily.items()},
        catalogue=catalogue,
        distinct_shown=len(shown),
        coverage=coverage,
        novelty=novelty,
        coverage_by=coverage_by,
        truncated=truncated,
    )
    report.model_days = _model_days(report, versions)
    return report


def _novelty(shown: Counter) -> float | None:
    """Mean self-information of the products shown, weighted by how often each was shown."""
    if not shown:
        return None
    shoppers = Interaction.objects.filter(user__isnull=False).values("user_id").distinct().count()
    popularity = dict(
        Interaction.objects.filter(product_id__in=list(shown), user__isnull=False)
        .values("product_id")
        .order_by()
        .annotate(n=Count("user_id", distinct=True))
        .values_list("product_id", "n")
    )
    total = sum(shown.values())
    bits = sum(count * -math.log2((popularity.get(pid, 0) + 1) / (shoppers + 1)) for pid, count in shown.items())
    return bits / total


def _model_days(report: Report, versions: dict[int, ModelVersion]) -> list[ModelDay]:
    """Per day and model version that served lists: its offline NDCG@10 and the online
    click-through of its lists."""
    out = []
    for pk, version in sorted(versions.items()):
        for day, funnel in sorted(report.daily["model"].get(version.label, {}).items()):
            out.append(
                ModelDay(
                    day=day,
                    version_id=pk,
                    label=version.label,
                    ndcg=version.ndcg,
                    ctr=funnel.ctr,
                    lists=funnel.lists,
                    active=version.is_active and version.slot == DEFAULT_SLOT,
                )
            )
    return out


def recommendation_revenue_share(*, since: datetime, until: datetime | None = None) -> tuple[Decimal, Decimal]:
    """(revenue of orders placed in the window, the part attributed to recommendation
    lists); cancelled orders left out."""
    lines = OrderLine.objects.filter(order__placed_at__gte=since).exclude(order__status=Order.Status.CANCELLED)
    if until is not None:
        lines = lines.filter(order__placed_at__lt=until)
    amount = ExpressionWrapper(F("unit_price") * F("quantity"), output_field=DecimalField())
    total = lines.aggregate(v=Sum(amount))["v"] or Decimal("0")
    attributed = lines.filter(rec_list_id__isnull=False).aggregate(v=Sum(amount))["v"] or Decimal("0")
    return Decimal(total).quantize(CENT), Decimal(attributed).quantize(CENT)


# --- chart specs (drawn by static/admin/js/affinity-charts.js) ------------------------------------
METRICS = {
    "ctr": ("Click-through", "percent"),
    "add_to_cart_rate": ("Add-to-cart", "percent"),
    "conversion": ("Conversion", "percent"),
    "revenue": ("Attributed revenue", "number"),
}


def _value(funnel: Funnel | None, metric: str) -> float | None:
    if funnel is None or not funnel.lists:
        return None
    value = getattr(funnel, metric)
    return float(value) if value is not None else None


def daily_spec(report: Report, dimension: str, metric: str, *, top: int = 8) -> dict:
    """One line per key of ``dimension`` (its ``top`` most shown) of ``metric`` per day."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown dimension {dimension!r}; use one of {sorted(DIMENSIONS)}")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {sorted(METRICS)}")
    title, fmt = METRICS[metric]
    title = f"{title} by {DIMENSIONS[dimension].lower()}, per day"
    keys = sorted(report.by[dimension], key=lambda k: -report.by[dimension][k].lists)[:top]
    if not keys:
        return empty_spec(title, "No recommendation lists were shown in this period.")
    labels = [d.isoformat() for d in report.days]
    datasets = []
    for index, key in enumerate(keys):
        colour = PALETTE[index % len(PALETTE)]
        per_day = report.daily[dimension].get(key, {})
        values = [_value(per_day.get(d), metric) for d in report.days]
        datasets.append(
            {
                "label": key,
                "data": values,
                "tooltips": [
                    f"{key}: "
                    + ("no lists" if v is None else (f"{v:.1%}" if fmt == "percent" else f"{v:,.2f}"))
                    + (f" ({per_day[d].lists} lists)" if d in per_day else "")
                    for d, v in zip(report.days, values, strict=True)
                ],
                "borderColor": colour,
                "backgroundColor": colour,
                "spanGaps": True,
                "tension": 0,
                "pointRadius": 3,
            }
        )
    return {
        "type": "line",
        "title": title,
        "height": 260,
        "labels": labels,
        "datasets": datasets,
        "x": {"title": "Day the list was shown"},
        "y": {"title": METRICS[metric][0], "format": fmt, "min": 0, **({"max": 1} if fmt == "percent" else {})},
    }


def model_spec(report: Report) -> dict:
    """Offline NDCG@10 of each model version next to the online click-through of its
    lists, per day."""
    title = "Model versions: offline NDCG@10 vs online click-through"
    if not report.model_days:
        return empty_spec(title, "No list served by a model in this period.")
    labels = [d.isoformat() for d in report.days]
    datasets = []
    for index, label in enumerate(sorted({m.label for m in report.model_days})):
        colour = PALETTE[index % len(PALETTE)]
        rows = {m.day: m for m in report.model_days if m.label == label}
        active = any(m.active for m in rows.values())
        name = f"{label}{' (active)' if active else ''}"
        ctr = [rows[d].ctr if d in rows else None for d in report.days]
        ndcg = [rows[d].ndcg if d in rows else None for d in report.days]
        datasets.append(
            {
                "label": f"{name} online click-through",
                "data": ctr,
                "tooltips": [
                    f"{name}: click-through {v:.1%} ({rows[d].lists} lists)" if v is not None else ""
                    for d, v in zip(report.days, ctr, strict=True)
                ],
                "borderColor": colour,
                "backgroundColor": colour,
                "spanGaps": True,
                "pointRadius": 3,
            }
        )
        datasets.append(
            {
                "label": f"{name} offline NDCG@10",
                "data": ndcg,
                "tooltips": [f"{name}: offline NDCG@10 {v:.4f}" if v is not None else "" for v in ndcg],
                "borderColor": colour,
                "backgroundColor": colour,
                "borderDash": [6, 4],
                "spanGaps": True,
                "pointRadius": 0,
            }
        )
    return {
        "type": "line",
        "title": title,
        "height": 280,
        "labels": labels,
        "datasets": datasets,
        "x": {"title": "Day"},
        "y": {"title": "NDCG@10 (dashed) / click-through", "format": "percent", "min": 0, "max": 1},
        "note": "Dashed: the version's offline NDCG@10 on its holdout; solid: the click-through of the lists it served.",
    }


def table(report: Report, dimension: str) -> list[dict]:
    """Rows of the dimension's table, most shown first."""
    rows: list[dict] = []
    for key, f in sorted(report.by[dimension].items(), key=lambda kv: (-kv[1].lists, kv[0])):
        rates: dict[str, float | None] = {
            "ctr": f.ctr,
            "add_to_cart": f.add_to_cart_rate,
            "conversion": f.conversion,
            "coverage": report.coverage_by.get(key) if dimension == "placement" else None,
        }
        percents = {f"{name}_percent": 100 * v if v is not None else None for name, v in rates.items()}
        rows.append(
            {"key": key, "lists": f.lists, "clicks": f.clicks, "revenue": f.revenue.quantize(CENT), **rates, **percents}
        )
    return rows
