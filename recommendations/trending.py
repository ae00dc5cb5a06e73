"""Trending: the products most shoppers turned to lately, weighted by kind, shared by
every serving path (and every fallback).

Robust by construction (``trending_compute``):

* **Relative to the data, not the wall clock.** The window is the ``TRENDING_DAYS``
  before the newest event -- and, when those days hold fewer than
  ``TRENDING_MIN_WINDOW_EVENTS`` events (a handful of fresh events after a long
  silence), the ``TRENDING_DAYS`` before the ``TRENDING_MIN_WINDOW_EVENTS``-th newest
  event and everything since. A store whose history ends in December 2011 still shows
  December 2011's trend, and a dozen fresh test events do not become "this week" on
  their own.
* **Shoppers, not events.** A product's score counts each shopper once per kind
  (kind weights: a purchase counts more than a view), so one shopper replaying a
  view a hundred times is one view.
* **Minimum support.** A product trends only when at least ``TRENDING_MIN_SUPPORT``
  distinct shoppers acted on it in the window. The others come after every trending
  one, flagged ``supported=False``: a "Trending now" list leaves them out, filler
  ("Popular now") may use them in a store too small to have a trend.
* **Smoothing.** The score is shrunk by ``s / (s + TRENDING_SMOOTHING)`` (``s``: its
  shoppers), so a product few shoppers touched cannot outrank one many shoppers
  did with the same average interest.
* **Noise left out.** The events of suspected bots and test accounts
  (``noise.interactions_kept``) never count.

``trending_items`` serves it, memoised in the process per serving epoch for
``AFFINITY_TRENDING_TTL`` seconds and shared between processes through the cache
under a key with the epoch in it. Computing it reads the whole window (seconds on a
store with millions of events), so a shopper's request never waits for it once it
has been computed: a new epoch (an activation, a forgotten customer) or an expired
list serves the last list at once and queues "recommendations.trending_refresh",
which replaces it within seconds (a forgotten customer's events leave trending then).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.core.cache import cache
from django.db.models import Count, Max, Q

from shop.models import Interaction

from . import conf, noise, serving_aids
from .artifacts import kind_weights_parse
from .model_cache import Snapshot

logger = logging.getLogger(__name__)

TRENDING_CACHE_KEY = "affinity:rec:trending:v2:{epoch}"  # v2: items carry `supported`
LAST_TRENDING_KEY = "affinity:rec:trending:last:v1"  # the last list computed, whatever its epoch
TRENDING_TASK = serving_aids.TRENDING_TASK


@dataclass(frozen=True)
class TrendingItem:
    product_id: int
    category_id: int | None
    score: float
    supported: bool = True  # enough shoppers (TRENDING_MIN_SUPPORT) to be called trending


@dataclass(frozen=True)
class TrendingWindow:
    """The window trending was computed over (for staff: the data report, tests)."""

    start: object  # datetime | None
    end: object
    events: int
    extended: bool


def trending_window(*, days: int | None = None) -> TrendingWindow | None:
    """The trending window: the ``days`` before the newest counted event, or, when they
    hold fewer than ``TRENDING_MIN_WINDOW_EVENTS`` events, the ``days`` before the
    ``TRENDING_MIN_WINDOW_EVENTS``-th newest event and everything since (None: no events)."""
    days = int(days or conf.get("TRENDING_DAYS"))
    weights = _weights()
    # settled(): a row dated after "now" (written around the edge) must not move the window
    events = noise.interactions_kept(Interaction.objects.settled().filter(kind__in=list(weights)))
    newest = events.aggregate(newest=Max("occurred_at"))["newest"]
    if newest is None:
        return None
    start = newest - timedelta(days=days)
    minimum = int(conf.get("TRENDING_MIN_WINDOW_EVENTS"))
    count = events.filter(occurred_at__gte=start).count()
    if count >= minimum:
        return TrendingWindow(start, newest, count, False)
    # too few events in the days before the newest one (a handful after a long silence):
    # the days before the `minimum`-th newest event, and everything since
    older = events.order_by("-occurred_at").values_list("occurred_at", flat=True)[minimum - 1 : minimum]
    reach = next(iter(older), None)
    if reach is None:  # the whole history holds fewer events than that
        return TrendingWindow(None, newest, events.count(), True)
    start = reach - timedelta(days=days)
    return TrendingWindow(start, newest, events.filter(occurred_at__gte=start).count(), True)


def _weights() -> dict[int, float]:
    return {k: float(w) for k, w in kind_weights_parse(conf.get("TRAIN_KIND_WEIGHTS")).items() if w > 0}


def trending_compute(*, days: int | None = None, size: int | None = None) -> list[TrendingItem]:
    """The trending products, best first, scores in (0, 1] (see the module docstring)."""
    size = int(size or conf.get("TRENDING_SIZE"))
    window = trending_window(days=days)
    if window is None:
        return []
    weights = _weights()
    min_support = int(conf.get("TRENDING_MIN_SUPPORT"))
    smoothing = float(conf.get("TRENDING_SMOOTHING"))
    events = noise.interactions_kept(Interaction.objects.settled().filter(kind__in=list(weights)))
    if window.start is not None:
        events = events.filter(occurred_at__gte=window.start)
    # distinct shoppers per (product, kind): customers and anonymous sessions
    rows = (
        events.values("product_id", "product__category_id", "kind")
        .annotate(
            users=Count("user_id", distinct=True),
            sessions=Count("session_key", distinct=True, filter=Q(user_id__isnull=True) & ~Q(session_key="")),
        )
        .order_by()
        .values_list("product_id", "product__category_id", "kind", "users", "sessions")
    )
    # distinct shoppers per product, whatever they did
    support = dict(
        events.values("product_id")
        .annotate(
            n=Count("user_id", distinct=True)
            + Count("session_key", distinct=True, filter=Q(user_id__isnull=True) & ~Q(session_key=""))
        )
        .order_by()
        .values_list("product_id", "n")
    )
    raw: dict[int, float] = defaultdict(float)
    category: dict[int, int | None] = {}
    for product_id, category_id, kind, users, sessions in rows:
        raw[product_id] += weights.get(kind, 0.0) * (users + sessions)
        category[product_id] = category_id
    scored = []
    for product_id, value in raw.items():
        shoppers = support.get(product_id, 0)
        if value > 0:
            scored.append((shoppers >= min_support, value * shoppers / (shoppers + smoothing), product_id))
    scored.sort(key=lambda t: (not t[0], -t[1], t[2]))  # the supported first
    scored = scored[:size]
    # scaled by the best supported score: products under the minimum support move nothing;
    # they follow every supported product (scaled below the lowest one), in their own order
    supported = [score for ok, score, _ in scored if ok]
    others = [score for ok, score, _ in scored if not ok]
    top = max(supported, default=0.0) or max(others, default=1.0)
    floor = (min(supported) / top if supported else 1.0) / 2
    tail_top = max(others, default=1.0)
    return [
        TrendingItem(pid, category[pid], score / top if ok else floor * score / tail_top, ok)
        for ok, score, pid in scored
    ]


def _items(rows) -> list[TrendingItem]:
    return [TrendingItem(p, c, s, ok) for p, c, s, ok in rows]


def trending_refresh(*, epoch: int) -> list[TrendingItem]:
    """Compute trending for serving ``epoch`` and keep it for every process: the epoch's
    cache key, and the last list (with its epoch) as a stored serving aid. The task
    "recommendations.trending_refresh" runs it; so does a process's warm-up."""
    items = trending_compute()
    rows = [(i.product_id, i.category_id, i.score, i.supported) for i in items]
    ttl = int(conf.get("TRENDING_TTL"))
    try:
        cache.set(TRENDING_CACHE_KEY.format(epoch=epoch), rows, timeout=max(ttl, 1))
    except Exception:  # noqa: BLE001 - a cache outage must not break serving
        logger.warning("cache unavailable for trending", exc_info=True)
    serving_aids.aid_store("trending", {"epoch": epoch, "rows": rows}, cache_key=LAST_TRENDING_KEY, ttl=ttl)
    return items


def trending_forget() -> None:
    """Drop the last list kept for serving, so the next request computes trending again
    instead of serving it (a forgotten customer's events leave trending at once)."""
    try:
        cache.delete(LAST_TRENDING_KEY)
    except Exception:  # noqa: BLE001
        logger.warning("cache unavailable for trending", exc_info=True)
    serving_aids.clear("trending")


def trending_items(snap: Snapshot) -> list[TrendingItem]:
    """Trending products for a serving snapshot (see the module docstring): the
    epoch's list; else the last list computed (an older epoch, or past its
    ``TRENDING_TTL``), served at once while the task computes the new one; computed
    here only when it never was (a new store's first request)."""
    ttl = float(conf.get("TRENDING_TTL"))
    memo = snap.memo.get("trending")
    if memo is not None and time.monotonic() - memo[0] < ttl:
        return memo[1]
    items = None
    try:
        raw = cache.get(TRENDING_CACHE_KEY.format(epoch=snap.epoch))
        if raw is not None:
            items = _items(raw)
    except Exception:  # noqa: BLE001 - a cache outage must not break serving
        logger.warning("cache unavailable for trending", exc_info=True)
    if items is None:
        last = serving_aids.aid_read("trending", cache_key=LAST_TRENDING_KEY, ttl=int(ttl), task=TRENDING_TASK)
        if last is not None:
            items = _items(last["rows"])
            serving_aids.refresh_queue(TRENDING_TASK, again_after=max(int(ttl) // 5, 10))
        else:
            items = trending_refresh(epoch=snap.epoch)
    snap.memo["trending"] = (time.monotonic(), items)
    return items
