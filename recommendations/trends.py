"""The live trends board's analytics (admin › Trends), distinct from the store's
trending shelf (``trending``):

* `trends_board`: products and categories rising NOW against their own baseline --
  the count of the recent window against the window before it, scaled by how much
  the whole store did in each, with a velocity and a significance (z-score of a
  conditional binomial test; ``engine.trends``). Windows end at the newest event, so
  a store whose data stops (the demo data ends in 2011) still has a board.
* `new_products`: active products with (almost) no history yet.
* `likely_buyers` / `likely_buyers_many`: the customers most likely to want a product
  -- the active model's item-to-customer direction (item vector . customer vectors)
  when the model knows the product, otherwise content similarity between the
  product and what each customer interacted with (``engine.audience``): the answer to
  the new-product problem. Results are cached for ``AFFINITY_AUDIENCE_CACHE_SECONDS``
  (default 600; 0: not cached) under a
  key holding the serving epoch and the newest event, so a new model or new events
  compute afresh.

Suspected bots and noise (``noise``) are left out of both.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Q
from django.utils import timezone

from shop.models import Category, Interaction, Product, User

from . import model_cache
from .artifacts import LoadedModel
from .engine.audience import content_affinity, item_affinity, top_rows
from .engine.base import SideData
from .engine.content import ContentRecommender
from .engine.matrix import DEFAULT_KIND_WEIGHTS
from .engine.trends import rising_order, rising_stats
from .models import DEFAULT_SLOT
from .noise import events_exclude, interactions_kept, noise_cached
from .training_data import Events, catalogue_side_read, interaction_matrix_build

logger = logging.getLogger(__name__)

SIGNALS: dict[str, tuple[int, ...]] = {
    "activity": (
        Interaction.Kind.VIEW,
        Interaction.Kind.CLICK,
        Interaction.Kind.ADD_TO_CART,
        Interaction.Kind.WISHLIST,
        Interaction.Kind.PURCHASE,
        Interaction.Kind.RATING,
    ),
    "purchases": (Interaction.Kind.PURCHASE,),
}
WINDOW_HOURS = (24, 72, 168, 336, 672)  # the recent windows the board offers
MAX_BASELINE_DAYS = 365
MAX_AUDIENCE = 20000
AUDIENCE_CACHE_SECONDS = 600  # default of the setting AFFINITY_AUDIENCE_CACHE_SECONDS (0: no cache)
SERIES_BUCKETS = 24  # the chart: the last 4 recent windows in 24 buckets


class TrendsError(ValueError):
    """Bad parameters for the board or an audience (the message names what)."""


# --- the rising board ------------------------------------------------------------------
@dataclass(frozen=True)
class TrendRow:
    id: int
    name: str
    recent: int  # events in the recent window
    baseline: int  # events in the baseline window
    expected: float  # the baseline scaled to the recent window
    velocity: float  # smoothed recent / expected
    z: float  # significance (z-score)
    p_value: float
    category: str = ""
    sku: str = ""


@dataclass(frozen=True)
class TrendsBoard:
    signal: str
    window_hours: int
    baseline_days: int
    newest: datetime | None  # the newest event counted: the windows end here
    recent_start: datetime | None
    baseline_start: datetime | None
    recent_total: int
    baseline_total: int
    products: list[TrendRow]
    categories: list[TrendRow]
    series: dict = field(default_factory=dict)  # the chart: bucket edges and per-product counts

    def as_dict(self) -> dict:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "signal": self.signal,
            "window_hours": self.window_hours,
            "baseline_days": self.baseline_days,
            "newest": iso(self.newest),
            "recent_start": iso(self.recent_start),
            "baseline_start": iso(self.baseline_start),
            "recent_total": self.recent_total,
            "baseline_total": self.baseline_total,
            "products": [asdict(r) for r in self.products],
            "categories": [asdict(r) for r in self.categories],
            "series": self.series,
        }


def board_params_check(*, signal: str, window_hours: int, baseline_days: int, size: int) -> None:
    """Raise `TrendsError` naming a bad parameter."""
    if signal not in SIGNALS:
        raise TrendsError(f"signal: must be one of {', '.join(SIGNALS)}, not {signal!r}")
    if window_hours not in WINDOW_HOURS:
        raise TrendsError(f"window: must be one of {', '.join(map(str, WINDOW_HOURS))} hours, not {window_hours!r}")
    if not 1 <= baseline_days <= MAX_BASELINE_DAYS:
        raise TrendsError(f"baseline: must be between 1 and {MAX_BASELINE_DAYS} days, not {baseline_days!r}")
    if not 1 <= size <= 100:
        raise TrendsError(f"size: must be between 1 and 100, not {size!r}")


def _rows(keys: list, recent: np.ndarray, baseline: np.ndarray, totals: tuple[int, int], **limits) -> list[tuple]:
    """(key, recent, baseline, expected, velocity, z, p) of the rising keys, best first."""
    if not keys or totals[1] == 0 or totals[0] == 0:
        return []
    result = rising_stats(recent, baseline, recent_exposure=float(totals[0]), baseline_exposure=float(totals[1]))
    order = rising_order(result, recent, **limits)
    return [
        (
            keys[i],
            int(recent[i]),
            int(baseline[i]),
            float(result.expected[i]),
            float(result.velocity[i]),
            float(result.z[i]),
            float(result.p_value[i]),
        )
        for i in order
    ]


def trends_board(
    *,
    signal: str = "activity",
    window_hours: int = 168,
    baseline_days: int = 56,
    size: int = 15,
    min_recent: int = 3,
    min_z: float = 1.645,
) -> TrendsBoard:
    """Products and categories rising in the last ``window_hours`` before the newest
    event against the ``baseline_days`` before that (module docstring): at least
    ``min_recent`` events, a velocity above 1 and a z-score of at least ``min_z``
    (1.645: one-sided 5 %), most significant first. Raises `TrendsError`."""
    board_params_check(signal=signal, window_hours=window_hours, baseline_days=baseline_days, size=size)
    kinds = SIGNALS[signal]
    events = interactions_kept(Interaction.objects.filter(kind__in=kinds))
    newest = events.settled().aggregate(newest=Max("occurred_at"))["newest"]
    if newest is None:
        return TrendsBoard(signal, window_hours, baseline_days, None, None, None, 0, 0, [], [])
    recent_start = newest - timedelta(hours=window_hours)
    baseline_start = recent_start - timedelta(days=baseline_days)
    counted = list(
        events.filter(occurred_at__gt=baseline_start, occurred_at__lte=newest)
        .values("product_id")
        .annotate(recent=Count("id", filter=Q(occurred_at__gt=recent_start)), total=Count("id"))
        .values_list("product_id", "product__category_id", "recent", "total")
    )
    ids = [r[0] for r in counted]
    recent = np.fromiter((r[2] for r in counted), np.float64, len(counted))
    baseline = np.fromiter((r[3] - r[2] for r in counted), np.float64, len(counted))
    totals = (int(recent.sum()), int(baseline.sum()))
    limits = {"min_recent": min_recent, "min_velocity": 1.0, "min_z": min_z}
    product_rows = _rows(ids, recent, baseline, totals, **limits)[:size]

    by_category: dict[int, list[float]] = {}
    for (_pid, cid, _r, _t), x, b in zip(counted, recent, baseline, strict=True):
        if cid is not None:
            pair = by_category.setdefault(cid, [0.0, 0.0])
            pair[0] += x
            pair[1] += b
    cat_ids = sorted(by_category)
    category_rows = _rows(
        cat_ids,
        np.asarray([by_category[c][0] for c in cat_ids], np.float64),
        np.asarray([by_category[c][1] for c in cat_ids], np.float64),
        totals,
        **limits,
    )[:size]

    info: dict[int, tuple[str, str, str]] = {
        pk: (name, sku, category or "")
        for pk, name, sku, category in Product.objects.filter(pk__in=[r[0] for r in product_rows]).values_list(
            "id", "name", "sku", "category__name"
        )
    }
    products = []
    for key, x, b, expected, velocity, z, p in product_rows:
        name, sku, category = info.get(key, (f"#{key}", "", ""))
        products.append(TrendRow(key, name, x, b, expected, velocity, z, p, category=category, sku=sku))
    cat_names = dict(Category.objects.filter(pk__in=[r[0] for r in category_rows]).values_list("id", "name"))
    categories = [
        TrendRow(key, cat_names.get(key, f"#{key}"), x, b, expected, velocity, z, p)
        for key, x, b, expected, velocity, z, p in category_rows
    ]
    series = _series(events, [r.id for r in products[:5]], {r.id: r.name for r in products}, newest, window_hours)
    return TrendsBoard(
        signal,
        window_hours,
        baseline_days,
        newest,
        recent_start,
        baseline_start,
        totals[0],
        totals[1],
        products,
        categories,
        series,
    )


def _series(events, product_ids: list[int], names: dict[int, str], newest: datetime, window_hours: int) -> dict:
    """Events per bucket over the last four recent windows, for the chart of the top
    rising products: ``{"edges": [iso...], "lines": [{"id", "name", "counts"}]}``."""
    start = newest - timedelta(hours=4 * window_hours)
    edges = np.linspace(start.timestamp(), newest.timestamp(), SERIES_BUCKETS + 1)
    lines = []
    if product_ids:
        stamps: dict[int, list[float]] = {pid: [] for pid in product_ids}
        for pid, at in events.filter(
            product_id__in=product_ids, occurred_at__gt=start, occurred_at__lte=newest
        ).values_list("product_id", "occurred_at"):
            stamps[pid].append(at.timestamp())
        for pid in product_ids:
            counts, _ = np.histogram(np.asarray(stamps[pid], np.float64), bins=edges)
            lines.append({"id": pid, "name": names.get(pid, f"#{pid}"), "counts": [int(c) for c in counts]})
    tz = timezone.get_current_timezone()
    return {
        "edges": [datetime.fromtimestamp(float(e), tz).isoformat() for e in edges[1:]],
        "lines": lines,
    }


# --- new products ------------------------------------------------------------------------
@dataclass(frozen=True)
class NewProduct:
    id: int
    sku: str
    name: str
    category: str
    created_at: datetime
    events: int


def new_products(*, size: int = 10, max_events: int = 3, scan: int = 500) -> list[NewProduct]:
    """The newest active products with at most ``max_events`` interactions (no real
    history yet), newest first; looks at the ``scan`` newest active products."""
    candidates = list(
        Product.objects.filter(is_active=True)
        .order_by("-created_at", "-pk")
        .values("id", "sku", "name", "category__name", "created_at")[:scan]
    )
    counts = dict(
        Interaction.objects.filter(product_id__in=[c["id"] for c in candidates])
        .values("product_id")
        .annotate(n=Count("id"))
        .values_list("product_id", "n")
    )
    out = []
    for c in candidates:
        n = int(counts.get(c["id"], 0))
        if n <= max_events:
            out.append(NewProduct(c["id"], c["sku"], c["name"], c["category__name"] or "", c["created_at"], n))
            if len(out) >= size:
                break
    return out


# --- likely buyers ------------------------------------------------------------------------
@dataclass(frozen=True)
class LikelyBuyers:
    product_id: int
    method: str  # "model" (the active model's direction), "content" (similar content), "none"
    model: str  # the model's label, or "content"
    user_ids: list[int]
    scores: list[float]


_content_lock = threading.Lock()
_content_memo: dict[tuple, tuple[np.ndarray, ContentRecommender]] = {}


def _catalogue_signature() -> tuple:
    row = Product.objects.aggregate(n=Count("id"), changed=Max("updated_at"))
    return (int(row["n"]), row["changed"].timestamp() if row["changed"] else 0.0)


def _content_model(signature: tuple) -> tuple[np.ndarray, ContentRecommender] | None:
    """A content model over the whole catalogue (every product, active or not, so a
    product just added is in it), fitted once per catalogue change in this process."""
    with _content_lock:
        hit = _content_memo.get(signature)
        if hit is not None:
            return hit
    ids = np.asarray(sorted(Product.objects.values_list("id", flat=True)), dtype=np.int64)
    if ids.size == 0:
        return None
    ids, texts, cats = catalogue_side_read(item_ids=ids)
    side = SideData(item_text=texts, item_category=cats)
    if not side.has_content:
        return None
    model = ContentRecommender()
    model.fit(np.zeros((0, ids.size), np.float32), side)
    with _content_lock:
        _content_memo.clear()
        _content_memo[signature] = (ids, model)
    return ids, model


def _active_model() -> LoadedModel | None:
    info = model_cache.snapshot().active.get(DEFAULT_SLOT)
    return model_cache.model_get(info) if info is not None else None


def audience_size_check(size) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_AUDIENCE:
        raise TrendsError(f"size: must be a whole number between 1 and {MAX_AUDIENCE}, not {size!r}")
    return size


def likely_buyers_many(*, product_ids: Sequence[int], size: int) -> dict[int, LikelyBuyers]:
    """The ``size`` customers most likely to want each product (module docstring), best
    first: active customers who have not bought it, with a positive score. One read
    of the events for all the products. Raises `TrendsError` for unknown products."""
    audience_size_check(size)
    wanted = list(dict.fromkeys(int(p) for p in product_ids))
    known = set(Product.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    unknown = [p for p in wanted if p not in known]
    if unknown:
        raise TrendsError(f"product: unknown product id(s) {', '.join(map(str, unknown[:10]))}")
    newest = Interaction.objects.aggregate(newest=Max("occurred_at"))["newest"]
    loaded = _active_model()
    signature = _catalogue_signature()
    epoch = model_cache.snapshot().epoch
    stamp = newest.timestamp() if newest else 0.0
    ttl = int(getattr(settings, "AFFINITY_AUDIENCE_CACHE_SECONDS", AUDIENCE_CACHE_SECONDS))
    keys = {pid: f"affinity:rec:likely:{pid}:{size}:{epoch}:{stamp}:{signature[0]}:{signature[1]}" for pid in wanted}
    out: dict[int, LikelyBuyers] = {}
    cached = {}
    try:
        if ttl > 0:
            cached = cache.get_many(list(keys.values()))
    except Exception:  # noqa: BLE001 - a cache outage computes afresh
        logger.warning("cache unavailable for likely buyers", exc_info=True)
    for pid, key in keys.items():
        if key in cached:
            out[pid] = LikelyBuyers(**cached[key])
    missing = [p for p in wanted if p not in out]
    if not missing:
        return out
    events, _dropped = events_exclude(interaction_matrix_build(), noise_cached())
    inactive = np.asarray(sorted(User.objects.filter(is_active=False).values_list("pk", flat=True)), np.int64)
    columns = loaded.columns(missing) if loaded is not None and loaded.is_cf else np.full(len(missing), -1, np.int64)
    in_model = [(pid, int(col)) for pid, col in zip(missing, columns.tolist(), strict=True) if col >= 0]
    computed = _by_model(in_model, loaded, events, inactive, size, newest) if in_model and loaded is not None else {}
    unknown = [pid for pid in missing if pid not in computed]
    content = _content_model(signature) if unknown else None
    for pid in unknown:
        computed[pid] = _by_content(pid, content, events, inactive, size)
    for pid, result in computed.items():
        out[pid] = result
        try:
            if ttl > 0:
                cache.set(keys[pid], asdict(result), timeout=ttl)
        except Exception:  # noqa: BLE001
            logger.warning("cache unavailable for likely buyers", exc_info=True)
    return out


def likely_buyers(*, product_id: int, size: int) -> LikelyBuyers:
    """`likely_buyers_many` for one product."""
    return likely_buyers_many(product_ids=[product_id], size=size)[int(product_id)]


def _allowed(user_ids: np.ndarray, events: Events, product_id: int, inactive: np.ndarray) -> np.ndarray:
    bought = events.users[(events.items == product_id) & (events.kinds == Interaction.Kind.PURCHASE)]
    return ~np.isin(user_ids, bought) & ~np.isin(user_ids, inactive)


def _by_model(
    products: list[tuple[int, int]],
    loaded: LoadedModel,
    events: Events,
    inactive: np.ndarray,
    size: int,
    newest: datetime | None,
) -> dict[int, LikelyBuyers]:
    """The active model's score of each (product, column) for every customer (item .
    user vectors; the customers folded in once for all the products)."""
    kept = events.select(np.isin(events.kinds, list(loaded.meta.kind_weights)))
    matrix = kept.matrix(
        kind_weights=loaded.meta.kind_weights,
        half_life_days=loaded.meta.half_life_days,
        now=newest.timestamp() if newest else None,
        item_ids=loaded.item_ids,
    )
    scores = item_affinity(loaded.model, matrix.user_items, np.asarray([c for _, c in products], np.int64))
    out = {}
    for j, (pid, _column) in enumerate(products):
        rows, top = top_rows(scores[:, j], size, allowed=_allowed(matrix.user_ids, events, pid, inactive))
        out[pid] = LikelyBuyers(pid, "model", loaded.label, matrix.user_ids[rows].tolist(), top.tolist())
    return out


def _by_content(
    pid: int,
    content: tuple[np.ndarray, ContentRecommender] | None,
    events: Events,
    inactive: np.ndarray,
    size: int,
) -> LikelyBuyers:
    """Cosine between the product's content and each customer's history's content."""
    if content is None:
        return LikelyBuyers(pid, "none", "", [], [])
    ids, model = content
    column = int(np.searchsorted(ids, pid))
    if column >= ids.size or ids[column] != pid:
        return LikelyBuyers(pid, "none", "", [], [])
    kept = events.select(np.isin(events.kinds, list(DEFAULT_KIND_WEIGHTS)))
    matrix = kept.matrix(kind_weights=DEFAULT_KIND_WEIGHTS, item_ids=ids)
    scores = content_affinity(matrix.user_items, model.item_features, model.item_features[column])
    rows, top = top_rows(scores, size, allowed=_allowed(matrix.user_ids, events, pid, inactive))
    return LikelyBuyers(pid, "content", "content", matrix.user_ids[rows].tolist(), top.tolist())


def likely_buyer_ids(*, product_id: int, size: int) -> list[int]:
    """The ids of `likely_buyers` (what the segment rule ``likely_buyers`` selects)."""
    return likely_buyers(product_id=product_id, size=size).user_ids
