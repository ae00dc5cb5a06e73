"""Trending: the most popular products of the last days, weighted by kind, shared
by every serving path (and every fallback).

``trending_compute`` reads it from the database; ``trending_items`` serves it,
memoised in the process per serving epoch for ``AFFINITY_TRENDING_TTL`` seconds and
shared between processes through the cache under a key with the epoch in it (a new
epoch -- an activation, a forgotten customer -- starts a new key, so a forgotten
customer's events leave trending at once).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta

from django.core.cache import cache
from django.db.models import Case, FloatField, Max, Sum, Value, When

from shop.models import Interaction

from . import conf
from .artifacts import kind_weights_parse
from .model_cache import Snapshot

logger = logging.getLogger(__name__)

TRENDING_CACHE_KEY = "affinity:rec:trending:{epoch}"


@dataclass(frozen=True)
class TrendingItem:
    product_id: int
    category_id: int | None
    score: float


def trending_compute(*, days: int | None = None, size: int | None = None) -> list[TrendingItem]:
    """Most popular products of the ``days`` before the newest interaction,
    weighted by kind (purchases count more than views), best first."""
    days = int(days or conf.get("TRENDING_DAYS"))
    size = int(size or conf.get("TRENDING_SIZE"))
    newest = Interaction.objects.aggregate(newest=Max("occurred_at"))["newest"]
    if newest is None:
        return []
    weights = {k: w for k, w in kind_weights_parse(conf.get("TRAIN_KIND_WEIGHTS")).items() if w > 0}
    weight = Case(
        *[When(kind=k, then=Value(float(w))) for k, w in weights.items()], default=Value(0.0), output_field=FloatField()
    )
    rows = (
        Interaction.objects.filter(occurred_at__gte=newest - timedelta(days=days), kind__in=list(weights))
        .values("product_id", "product__category_id")
        .annotate(score=Sum(weight))
        .order_by("-score", "product_id")
        .values_list("product_id", "product__category_id", "score")[:size]
    )
    items = [TrendingItem(p, c, float(s)) for p, c, s in rows]
    top = items[0].score if items else 1.0
    return [TrendingItem(i.product_id, i.category_id, i.score / top) for i in items]


def trending_items(snap: Snapshot) -> list[TrendingItem]:
    """Trending products for a serving snapshot (see the module docstring)."""
    ttl = float(conf.get("TRENDING_TTL"))
    memo = snap.memo.get("trending")
    if memo is not None and time.monotonic() - memo[0] < ttl:
        return memo[1]
    key = TRENDING_CACHE_KEY.format(epoch=snap.epoch)
    items = None
    try:
        raw = cache.get(key)
        if raw is not None:
            items = [TrendingItem(p, c, s) for p, c, s in raw]
    except Exception:  # noqa: BLE001 - a cache outage must not break serving
        logger.warning("cache unavailable for trending", exc_info=True)
    if items is None:
        items = trending_compute()
        try:
            cache.set(key, [(i.product_id, i.category_id, i.score) for i in items], timeout=max(int(ttl), 1))
        except Exception:  # noqa: BLE001
            logger.warning("cache unavailable for trending", exc_info=True)
    snap.memo["trending"] = (time.monotonic(), items)
    return items
