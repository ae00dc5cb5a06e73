"""Reads of the recommendations app: shoppers' live histories (serving's hottest
read), co-purchases, and what admin and the API list and chart.

The training read is ``training_data.interaction_matrix_build``; trending is
``trending``; the experiment report is ``experiments.experiment_report``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from django.db import connection
from django.db.models import Count, Q, QuerySet

from shop.models import Interaction, Product, User

from . import conf
from .charts import Point
from .models import ModelVersion, ServingState

logger = logging.getLogger(__name__)


# --- live reads for serving ----------------------------------------------------------
class HistoryEvent(NamedTuple):  # a tuple: batch reads build hundreds of thousands
    product_id: int
    kind: int
    value: float
    at: float  # unix time
    category_id: int | None


def shopper_excluded_products(
    *, user_id: int | None, session_key: str = "", history: Sequence[HistoryEvent] = (), now: float
) -> set[int]:
    """Products not to recommend back (``AFFINITY_CONSUMED_KINDS`` for ever, ``AFFINITY_RECOMMEND_RECENT_EXCLUDE_DAYS`` for a while):
    kinds excluded for ever are read from the whole history (one query), windowed
    kinds from the recent ``history`` already read."""
    forever, windows = conf.exclude_kinds()
    excluded = {e.product_id for e in history if e.kind in windows and now - e.at <= windows[e.kind]}
    excluded |= {e.product_id for e in history if e.kind in forever}
    if forever and (user_id is not None or session_key):
        actor = Q(user_id=user_id) if user_id is not None else Q(session_key=session_key, user__isnull=True)
        excluded |= set(
            Interaction.objects.filter(actor, kind__in=forever).values_list("product_id", flat=True).distinct()
        )
    return excluded


@dataclass
class ShopperState:
    """What serving needs to know about a shopper, read at call time."""

    history: list[HistoryEvent]  # newest first
    bought: set[int]  # products of the kinds excluded for ever (whole history)
    interests: list[int]  # stated interest categories
    epoch: int | None = None  # the serving epoch, read in the same round trip (``with_epoch``)
    user_exists: bool | None = None  # whether the customer row exists (``with_user``)


def shopper_state(
    *,
    user_id: int | None,
    session_key: str = "",
    limit: int = 200,
    forever_kinds: Sequence[int] = (),
    with_interests: bool = True,
    with_epoch: bool = False,
    with_user: bool = False,
) -> ShopperState:
    """The recent history, the products bought (or of other kinds excluded for
    ever) and the interests of a shopper — and, ``with_epoch``, the serving epoch;
    ``with_user``, whether the customer ``user_id`` exists (so that a caller holding
    only an id needs no query of its own). One round trip on PostgreSQL (a UNION ALL
    of the reads, plain SQL: this is the hottest read of the app), one query per
    read elsewhere."""
    if user_id is None and not session_key:
        return ShopperState([], set(), [], None)
    forever = [int(k) for k in forever_kinds] if user_id is not None else []
    want_interests = with_interests and user_id is not None
    want_user = with_user and user_id is not None
    if connection.vendor == "postgresql":
        rows = _shopper_rows_postgresql(user_id, session_key, limit, forever, want_interests, with_epoch, want_user)
    else:
        rows = _shopper_rows_orm(user_id, session_key, limit, forever, want_interests, with_epoch, want_user)
    # PostgreSQL sends the times as unix seconds already (cheaper to read than timestamps)
    history = [
        HistoryEvent(p, k, v, t if isinstance(t, float) else t.timestamp(), c)
        for part, p, k, v, t, c in rows
        if part == 0
    ]
    history.sort(key=lambda e: -e.at)
    bought = {p for part, p, *_ in rows if part == 1}
    interests = [c for part, _, _, _, _, c in rows if part == 2]
    epoch = next((int(p) for part, p, *_ in rows if part == 3), 0) if with_epoch else None
    exists = any(part == 4 for part, *_ in rows) if want_user else None
    return ShopperState(history, bought, interests, epoch, exists)


def _shopper_rows_postgresql(
    user_id, session_key, limit, forever, want_interests, with_epoch, want_user
) -> list[tuple]:
    q = connection.ops.quote_name
    interaction, product = q(Interaction._meta.db_table), q(Product._meta.db_table)
    actor, params = [], []
    if user_id is not None:
        actor.append("i.user_id = %s")
        params.append(user_id)
    if session_key:
        actor.append("(i.session_key = %s AND i.user_id IS NULL)")
        params.append(session_key)
    parts = [
        f"(SELECT 0 AS part, i.product_id, i.kind, i.value, EXTRACT(EPOCH FROM i.occurred_at)::float8, "
        f"p.category_id FROM {interaction} i "
        f"JOIN {product} p ON p.id = i.product_id WHERE {' OR '.join(actor)} ORDER BY i.occurred_at DESC LIMIT %s)"
    ]
    params.append(int(limit))
    if forever:
        parts.append(
            f"(SELECT 1, product_id, kind, value, EXTRACT(EPOCH FROM occurred_at)::float8, NULL FROM {interaction} "
            f"WHERE user_id = %s AND kind IN ({', '.join(['%s'] * len(forever))}) LIMIT 5000)"
        )
        params += [user_id, *forever]
    if want_interests:
        parts.append(
            f"(SELECT 2, NULL, 0, 0.0, NULL, category_id FROM {q(User.interests.through._meta.db_table)} "
            "WHERE user_id = %s)"
        )
        params.append(user_id)
    if with_epoch:
        parts.append(f"(SELECT 3, epoch, 0, 0.0, NULL, NULL FROM {q(ServingState._meta.db_table)} WHERE id = 1)")
    if want_user:
        parts.append(f"(SELECT 4, id, 0, 0.0, NULL, NULL FROM {q(User._meta.db_table)} WHERE id = %s)")
        params.append(user_id)
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        return cursor.fetchall()


def _shopper_rows_orm(user_id, session_key, limit, forever, want_interests, with_epoch, want_user) -> list[tuple]:
    actor = Q()
    if user_id is not None:
        actor |= Q(user_id=user_id)
    if session_key:
        actor |= Q(session_key=session_key, user__isnull=True)
    rows = [
        (0, *r)
        for r in Interaction.objects.filter(actor)
        .order_by("-occurred_at")
        .values_list("product_id", "kind", "value", "occurred_at", "product__category_id")[:limit]
    ]
    if forever:
        rows += [
            (1, p, k, v, t, None)
            for p, k, v, t in Interaction.objects.filter(user_id=user_id, kind__in=forever).values_list(
                "product_id", "kind", "value", "occurred_at"
            )[:5000]
        ]
    if want_interests:
        rows += [
            (2, None, 0, 0.0, None, c)
            for c in User.interests.through.objects.filter(user_id=user_id).values_list("category_id", flat=True)
        ]
    if with_epoch:
        rows += [(3, e, 0, 0.0, None, None) for e in ServingState.objects.filter(pk=1).values_list("epoch", flat=True)]
    if want_user:
        rows += [(4, pk, 0, 0.0, None, None) for pk in User.objects.filter(pk=user_id).values_list("pk", flat=True)]
    return rows


def users_events(
    *, user_ids: Sequence[int], limit: int = 200, consumed_kinds: Sequence[int] = ()
) -> tuple[dict[int, list[HistoryEvent]], dict[int, set[int]]]:
    """`users_histories` and `users_purchased` of ``consumed_kinds`` (what each customer
    has: bought, rated...) together; on PostgreSQL from one read of their events."""
    if connection.vendor != "postgresql":
        return (
            users_histories(user_ids=user_ids, limit=limit),
            users_purchased(user_ids=user_ids, kinds=consumed_kinds),
        )
    histories: dict[int, list[HistoryEvent]] = {uid: [] for uid in user_ids}
    consumed: dict[int, set[int]] = {uid: set() for uid in user_ids}
    kinds = frozenset(int(k) for k in consumed_kinds)
    for uid, p, k, v, t, c in _users_event_rows(user_ids):
        events = histories[uid]
        if len(events) < limit:
            events.append(HistoryEvent(p, k, v, t, c))
        if k in kinds:
            consumed[uid].add(p)
    return histories, consumed


def _users_event_rows(user_ids: Sequence[int]) -> list[tuple]:
    """Every event of the customers, theirs together and newest first: plain SQL, the ids
    as one array, the times as unix seconds (a few hundred thousand rows a second)."""
    q = connection.ops.quote_name
    sql = (
        "SELECT i.user_id, i.product_id, i.kind, i.value, EXTRACT(EPOCH FROM i.occurred_at)::float8, "
        f"p.category_id FROM {q(Interaction._meta.db_table)} i "
        f"JOIN {q(Product._meta.db_table)} p ON p.id = i.product_id "
        "WHERE i.user_id = ANY(%s) ORDER BY i.user_id, i.occurred_at DESC"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(user_ids)])
        return cursor.fetchall()


def users_histories(*, user_ids: Sequence[int], limit: int = 200) -> dict[int, list[HistoryEvent]]:
    """Recent events (newest first, at most ``limit``) of many customers in one query
    (the portable read; ``users_events`` reads them with plain SQL on PostgreSQL)."""
    out: dict[int, list[HistoryEvent]] = {uid: [] for uid in user_ids}
    rows = (
        Interaction.objects.filter(user_id__in=list(user_ids))
        .values_list("user_id", "product_id", "kind", "value", "occurred_at", "product__category_id")
        .order_by("user_id", "-occurred_at")
    )
    for uid, p, k, v, t, c in rows.iterator(chunk_size=20_000):
        events = out[uid]
        if len(events) < limit:
            events.append(HistoryEvent(p, k, v, t.timestamp(), c))
    return out


def users_purchased(*, user_ids: Sequence[int], kinds: Sequence[int]) -> dict[int, set[int]]:
    """The products of ``kinds`` (consumed: bought, rated...) of many customers, in one query."""
    out: dict[int, set[int]] = {uid: set() for uid in user_ids}
    if not kinds:
        return out
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT DISTINCT user_id, product_id FROM {connection.ops.quote_name(Interaction._meta.db_table)} "
                "WHERE user_id = ANY(%s) AND kind = ANY(%s)",
                [list(user_ids), [int(k) for k in kinds]],
            )
            for uid, pid in cursor.fetchall():
                out[uid].add(pid)
        return out
    rows = (
        Interaction.objects.filter(user_id__in=list(user_ids), kind__in=list(kinds))
        .values_list("user_id", "product_id")
        .distinct()
    )
    for uid, pid in rows.iterator(chunk_size=20_000):
        out[uid].add(pid)
    return out


def co_purchased(*, product_id: int, limit: int = 50, buyers: int = 300) -> list[tuple[int, float]]:
    """Products bought by the most recent buyers of ``product_id`` ("customers who
    bought this also bought"), by how many of them bought each; bounded cost."""
    recent_buyers = (
        Interaction.objects.filter(product_id=product_id, kind=Interaction.Kind.PURCHASE, user__isnull=False)
        .order_by("-occurred_at")
        .values_list("user_id", flat=True)[:buyers]
    )
    rows = (
        Interaction.objects.filter(user_id__in=list(recent_buyers), kind=Interaction.Kind.PURCHASE)
        .exclude(product_id=product_id)
        .values("product_id")
        .annotate(n=Count("user_id", distinct=True))
        .order_by("-n", "product_id")
        .values_list("product_id", "n")[:limit]
    )
    rows = list(rows)
    top = rows[0][1] if rows else 1
    return [(pid, n / top) for pid, n in rows]


# --- admin / API reads ----------------------------------------------------------------
def model_version_list(
    *, slot: str | None = None, algorithm: str | None = None, status: str | None = None
) -> QuerySet[ModelVersion]:
    qs = ModelVersion.objects.select_related("created_by")
    if slot:
        qs = qs.filter(slot=slot)
    if algorithm:
        qs = qs.filter(algorithm=algorithm)
    if status:
        qs = qs.filter(status=status)
    return qs


def metrics_series(*, metric: str = "ndcg@10", limit: int = 200):
    """Succeeded versions' ``metric`` over time, grouped by algorithm (for the chart)."""
    rows = (
        ModelVersion.objects.filter(status=ModelVersion.Status.SUCCEEDED, finished_at__isnull=False)
        .order_by("-finished_at")
        .values_list("id", "algorithm", "slot", "finished_at", "metrics", "is_active")[:limit]
    )
    series: dict[str, list] = {}
    for pk, algorithm, slot, at, metrics, active in rows:
        value = (metrics or {}).get(metric)
        if value is None:
            continue
        series.setdefault(algorithm, []).append(
            Point(
                at=at,
                value=float(value),
                label=f"{algorithm}#{pk} ({slot}): {metric} {float(value):.4f}" + (" — active" if active else ""),
                active=active,
            )
        )
    return series
