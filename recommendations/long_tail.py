"""Long-tail re-ranking for serving: the catalogue's popularity groups and one call
that re-orders a candidate list (``engine.rerank.popularity_calibrated``).

A placement's ``long_tail_weight`` (0 = off) is the trade-off; staff choose it
seeing the active model's ``long_tail_tradeoff`` (NDCG and long-tail share at each
weight on the holdout, ``active_tradeoff``). Popularity is the number of distinct
customers and sessions per product, suspected bots and noise left out
(``noise.interactions_kept``), refreshed every 10 minutes by the beat task
"recommendations.noise_refresh" and shared through the cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db.models import Count

from . import serving_aids
from .engine.rerank import TAIL, group_mix, popularity_calibrated, popularity_groups
from .models import DEFAULT_SLOT, ModelVersion
from .noise import interactions_kept

logger = logging.getLogger(__name__)

CACHE_KEY = "affinity:rec:long_tail_groups:v1"
_memo: dict[str, Any] = {}


def _ttl() -> float:
    return float(getattr(settings, "AFFINITY_LONG_TAIL_TTL", 3600))


def groups_compute() -> tuple[np.ndarray, np.ndarray]:
    """(product ids sorted, their popularity group) for every product with events."""
    rows = (
        interactions_kept()
        .values("product_id")
        .annotate(users=Count("user_id", distinct=True), sessions=Count("session_key", distinct=True))
        .values_list("product_id", "users", "sessions")
    )
    data = np.array(list(rows), dtype=np.int64).reshape(-1, 3)
    order = np.argsort(data[:, 0])
    data = data[order]
    return data[:, 0], popularity_groups(data[:, 1] + data[:, 2]).astype(np.int64)


def groups_refresh() -> tuple[np.ndarray, np.ndarray]:
    """Compute the groups and store them in the cache for ``AFFINITY_LONG_TAIL_TTL``
    seconds (the beat task "recommendations.noise_refresh" runs it every 10 minutes,
    so serving finds them there)."""
    table = groups_compute()
    serving_aids.aid_store(
        "long_tail_groups", [table[0].tolist(), table[1].tolist()], cache_key=CACHE_KEY, ttl=int(_ttl())
    )
    _memo["groups"] = (time.monotonic(), table)
    return table


def _groups_table() -> tuple[np.ndarray, np.ndarray]:
    memo = _memo.get("groups")
    if memo is not None and time.monotonic() - memo[0] < min(_ttl(), 60.0):
        return memo[1]
    # never computed here, in a shopper's request: the cache, else its stored row, else
    # no groups yet (every product counts as tail: re-ranking changes nothing) and the
    # refresh is queued
    raw = serving_aids.aid_read("long_tail_groups", cache_key=CACHE_KEY, ttl=int(_ttl()))
    if raw is None:
        table = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    else:
        table = (np.asarray(raw[0], dtype=np.int64), np.asarray(raw[1], dtype=np.int64))
    _memo["groups"] = (time.monotonic(), table)
    return table


def product_groups(product_ids: Sequence[int]) -> np.ndarray:
    """The popularity group (0 head, 1 mid, 2 tail) of each product; a product
    nobody has touched is tail."""
    ids = np.asarray(product_ids, dtype=np.int64)
    known, groups = _groups_table()
    out = np.full(ids.size, TAIL, dtype=np.int64)
    if known.size and ids.size:
        pos = np.minimum(np.searchsorted(known, ids), known.size - 1)
        found = known[pos] == ids
        out[found] = groups[pos[found]]
    return out


def rerank_positions(
    product_ids: Sequence[int],
    *,
    weight: float,
    n: int,
    history_product_ids: Sequence[int] = (),
    scores: Sequence[float] | None = None,
) -> list[int]:
    """Positions into ``product_ids`` (a ranked candidate list, best first) of the
    ``min(n, len)`` products to show, re-ranked towards the shopper's own mix of
    popular and long-tail products (``history_product_ids``; the store's mix when
    empty). ``weight`` 0 keeps the order. ``ValueError`` (``EngineError``) names a
    bad weight or n."""
    if float(weight) == 0.0:
        return list(range(min(int(n), len(product_ids))))
    target = group_mix(product_groups(history_product_ids)) if len(history_product_ids) else None
    order = popularity_calibrated(
        product_groups(product_ids),
        weight=float(weight),
        n=int(n),
        scores=None if scores is None else np.asarray(scores, dtype=np.float64),
        target=target,
    )
    return [int(p) for p in order]


def active_tradeoff(slot: str = DEFAULT_SLOT) -> list[dict[str, float]]:
    """The active model's measured trade-off (weight, NDCG, long-tail share,
    popularity lift, coverage, novelty per weight; empty when not measured)."""
    version = ModelVersion.objects.filter(slot=slot, is_active=True).only("metrics").first()
    return list((version.metrics or {}).get("long_tail_tradeoff") or []) if version else []


def clear() -> None:
    """Forget the memoised groups (tests, after a bulk load)."""
    _memo.clear()
    try:
        cache.delete(CACHE_KEY)
    except Exception:  # noqa: BLE001
        logger.warning("cache unavailable for long-tail groups", exc_info=True)
