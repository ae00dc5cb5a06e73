"""Reads of the recommendations app: the fast training read, shoppers' live
histories, trending, and what admin and the API list.

``interaction_events_read`` streams interactions straight into numpy arrays: on
PostgreSQL with ``COPY ... TO STDOUT (FORMAT BINARY)`` (fixed-width records parsed
with a numpy structured dtype, chunk by chunk — no Python object per row), on
other databases with a raw cursor's ``fetchmany`` batches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db import connection
from django.db.models import Max, Q, QuerySet

from shop.models import Category, Interaction, Product

from . import conf
from .artifacts import kind_weights_parse
from .engine.matrix import InteractionMatrix, matrix_build
from .models import ModelVersion

logger = logging.getLogger(__name__)

Progress = Callable[[float], None]


# --- the training read ------------------------------------------------------------
@dataclass
class Events:
    """Parallel arrays of interactions (customers only), times in unix seconds."""

    users: np.ndarray  # int64
    items: np.ndarray  # int64
    kinds: np.ndarray  # int16
    values: np.ndarray  # float64
    times: np.ndarray  # float64
    read_seconds: float = 0.0

    def __len__(self) -> int:
        return int(self.users.size)

    @property
    def rows_per_second(self) -> float:
        return len(self) / self.read_seconds if self.read_seconds > 0 else float("inf")

    @classmethod
    def empty(cls) -> Events:
        return cls(
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, np.int16),
            np.zeros(0, np.float64),
            np.zeros(0, np.float64),
        )

    def select(self, mask: np.ndarray) -> Events:
        return Events(self.users[mask], self.items[mask], self.kinds[mask], self.values[mask], self.times[mask])


_PG_RECORD = np.dtype(
    [
        ("nfields", ">i2"),
        ("l_user", ">i4"),
        ("user", ">i8"),
        ("l_item", ">i4"),
        ("item", ">i8"),
        ("l_kind", ">i4"),
        ("kind", ">i2"),
        ("l_value", ">i4"),
        ("value", ">f8"),
        ("l_time", ">i4"),
        ("time", ">f8"),
    ]
)
_PG_HEADER = 19  # "PGCOPY\n\377\r\n\0" + flags (4) + header extension length (4)
COPY_CHUNK_BYTES = 1 << 23  # parse the stream into numpy arrays every 8 MB


def _where(since: datetime | None, until: datetime | None, kinds: Sequence[int]) -> tuple[str, list]:
    clauses = ["user_id IS NOT NULL"]
    params: list = []
    if kinds:
        clauses.append(f"kind IN ({', '.join(str(int(k)) for k in kinds)})")
    if since is not None:
        clauses.append("occurred_at >= %s")
        params.append(since)
    if until is not None:
        clauses.append("occurred_at <= %s")
        params.append(until)
    return " AND ".join(clauses), params


def _read_postgresql(where: str, params: list, progress: Progress | None) -> list[np.ndarray]:
    from psycopg import sql

    table = Interaction._meta.db_table
    query_text = (
        f"COPY (SELECT user_id, product_id, kind, value, EXTRACT(EPOCH FROM occurred_at)::float8 "
        f'FROM "{table}" WHERE {where.replace("%s", "{}")}) TO STDOUT (FORMAT BINARY)'
    )
    statement = sql.SQL(query_text).format(*[sql.Literal(p) for p in params])
    chunks: list[np.ndarray] = []
    pending = bytearray()
    header_seen = False
    rows = 0
    size = _PG_RECORD.itemsize
    connection.ensure_connection()
    with connection.connection.cursor() as cursor, cursor.copy(statement) as copy:
        for block in copy:
            pending += block
            if not header_seen:
                if len(pending) < _PG_HEADER:
                    continue
                if bytes(pending[:11]) != b"PGCOPY\n\xff\r\n\x00":
                    raise RuntimeError("unexpected COPY BINARY signature from PostgreSQL")
                ext = int.from_bytes(pending[15:19], "big")
                del pending[: _PG_HEADER + ext]
                header_seen = True
            if len(pending) >= COPY_CHUNK_BYTES:
                whole = len(pending) // size
                records = np.frombuffer(pending, dtype=_PG_RECORD, count=whole)
                chunks.append(_columns(records))
                del records  # release the buffer before resizing it
                del pending[: whole * size]
                rows += whole
                # no progress callback here: it may write to the database, and this
                # connection is busy streaming the COPY until the loop ends
    # the rest, minus the 2-byte trailer (-1)
    if len(pending) >= 2 and bytes(pending[-2:]) == b"\xff\xff":
        del pending[-2:]
    if len(pending) % size:
        raise RuntimeError(f"COPY BINARY stream ended mid-record ({len(pending)} bytes left)")
    if pending:
        chunks.append(_columns(np.frombuffer(pending, dtype=_PG_RECORD)))
    return chunks


def _columns(records: np.ndarray) -> np.ndarray:
    if records.size and (records["nfields"] != 5).any():
        raise RuntimeError("unexpected field count in COPY BINARY stream")
    if records.size and (records["l_user"] != 8).any():  # a NULL would be length -1
        raise RuntimeError("unexpected NULL user in COPY BINARY stream")
    out = np.empty(
        records.size, dtype=[("user", "<i8"), ("item", "<i8"), ("kind", "<i2"), ("value", "<f8"), ("time", "<f8")]
    )
    for name in ("user", "item", "kind", "value", "time"):
        out[name] = records[name]
    return out


def _read_cursor(where: str, params: list, progress: Progress | None, batch: int = 50_000) -> list[np.ndarray]:
    table = Interaction._meta.db_table
    if connection.vendor == "sqlite":
        # whole seconds + the stored ".ffffff" fraction: exact to the microsecond
        epoch = "(CAST(strftime('%%s', occurred_at) AS REAL) + CAST(substr(occurred_at, 20) AS REAL))"
    elif connection.vendor == "mysql":
        epoch = "UNIX_TIMESTAMP(occurred_at)"
    else:  # pragma: no cover - other backends use the ORM path below
        return _read_orm(where, params)
    chunks: list[np.ndarray] = []
    dtype = [("user", "<i8"), ("item", "<i8"), ("kind", "<i2"), ("value", "<f8"), ("time", "<f8")]
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT user_id, product_id, kind, value, {epoch} FROM "{table}" WHERE {where}', params)
        while rows := cursor.fetchmany(batch):
            chunks.append(np.array(rows, dtype=dtype))
    return chunks


def _read_orm(where: str, params: list) -> list[np.ndarray]:  # pragma: no cover
    raise NotImplementedError(f"no fast interaction read for database vendor {connection.vendor!r}")


def interaction_events_read(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    kinds: Sequence[int] = (),
    progress: Progress | None = None,
) -> Events:
    """All customers' interactions in ``[since, until]`` (of ``kinds``; all if empty)."""
    tic = time.perf_counter()
    where, params = _where(since, until, kinds)
    if connection.vendor == "postgresql":
        chunks = _read_postgresql(where, params, progress)
    else:
        chunks = _read_cursor(where, params, progress)
    if not chunks:
        events = Events.empty()
    else:
        data = np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
        events = Events(
            users=np.ascontiguousarray(data["user"]),
            items=np.ascontiguousarray(data["item"]),
            kinds=np.ascontiguousarray(data["kind"]),
            values=np.ascontiguousarray(data["value"]),
            times=np.ascontiguousarray(data["time"]),
        )
    events.read_seconds = time.perf_counter() - tic
    if progress:
        progress(1.0)
    logger.info("read %d interactions in %.2fs (%.0f rows/s)", len(events), events.read_seconds, events.rows_per_second)
    return events


def interaction_matrix_build(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    kind_weights: dict | None = None,
    half_life_days: float | None = None,
    now: float | None = None,
    item_ids: np.ndarray | None = None,
    progress: Progress | None = None,
) -> InteractionMatrix:
    """The weighted users x items matrix of the customers' interactions, read from
    the database in one streaming query (see the module docstring)."""
    weights = kind_weights_parse(kind_weights)
    events = interaction_events_read(since=since, until=until, kinds=sorted(weights), progress=progress)
    return matrix_build(
        users=events.users,
        items=events.items,
        kinds=events.kinds,
        values=events.values,
        times=events.times,
        kind_weights=weights,
        half_life_days=half_life_days,
        now=now,
        item_ids=item_ids,
    )


def catalogue_side_read(*, item_ids: np.ndarray | None = None) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Products' ids, texts (name, category path, description) and category ids
    (``-1`` for none): the given ids in that order, or every active product."""
    categories = {c["id"]: c for c in Category.objects.values("id", "name", "parent_id")}

    def path(category_id: int | None) -> str:
        names, seen = [], set()
        while category_id is not None and category_id in categories and category_id not in seen:
            seen.add(category_id)
            names.append(categories[category_id]["name"])
            category_id = categories[category_id]["parent_id"]
        return " ".join(reversed(names))

    qs = Product.objects.all() if item_ids is not None else Product.objects.filter(is_active=True)
    rows = {
        pk: (name, description, category_id)
        for pk, name, description, category_id in qs.values_list("id", "name", "description", "category_id").iterator(
            chunk_size=20_000
        )
    }
    ids = np.asarray(sorted(rows) if item_ids is None else item_ids, dtype=np.int64)
    texts, cats = [], np.full(ids.size, -1, dtype=np.int64)
    for pos, pk in enumerate(ids.tolist()):
        name, description, category_id = rows.get(pk, ("", "", None))
        texts.append(f"{name} {path(category_id)} {description[:500]}".strip())
        if category_id is not None:
            cats[pos] = category_id
    return ids, texts, cats


def product_categories(*, item_ids: np.ndarray) -> np.ndarray:
    """Category id of each product (``-1`` for none or unknown), aligned with ``item_ids``."""
    ids = np.asarray(item_ids, dtype=np.int64)
    pairs = np.array(
        [
            (pk, c if c is not None else -1)
            for pk, c in Product.objects.values_list("id", "category_id").iterator(chunk_size=50_000)
        ],
        dtype=np.int64,
    ).reshape(-1, 2)
    out = np.full(ids.size, -1, dtype=np.int64)
    if pairs.size and ids.size:
        order = np.argsort(pairs[:, 0])
        known, cats = pairs[order, 0], pairs[order, 1]
        pos = np.minimum(np.searchsorted(known, ids), known.size - 1)
        found = known[pos] == ids
        out[found] = cats[pos[found]]
    return out


# --- live reads for serving ----------------------------------------------------------
@dataclass(frozen=True)
class HistoryEvent:
    product_id: int
    kind: int
    value: float
    at: float  # unix time
    category_id: int | None


def shopper_excluded_products(
    *, user_id: int | None, session_key: str = "", history: Sequence[HistoryEvent] = (), now: float
) -> set[int]:
    """Products not to recommend back (``AFFINITY_RECOMMEND_EXCLUDE_KINDS``):
    kinds excluded for ever are read from the whole history (one query), windowed
    kinds from the recent ``history`` already read."""
    rules: dict = conf.get("RECOMMEND_EXCLUDE_KINDS") or {}
    forever = sorted(int(k) for k, days in rules.items() if days is None)
    windows = {int(k): float(days) * 86400 for k, days in rules.items() if days is not None}
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
    from shop.models import User

    from .models import ServingState

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
    from shop.models import User

    from .models import ServingState

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


def users_histories(*, user_ids: Sequence[int], limit: int = 200) -> dict[int, list[HistoryEvent]]:
    """Recent events (newest first, at most ``limit``) of many customers in one query."""
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
    out: dict[int, set[int]] = {uid: set() for uid in user_ids}
    if not kinds:
        return out
    rows = (
        Interaction.objects.filter(user_id__in=list(user_ids), kind__in=list(kinds))
        .values_list("user_id", "product_id")
        .distinct()
    )
    for uid, pid in rows.iterator(chunk_size=20_000):
        out[uid].add(pid)
    return out


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
    from django.db.models import Case, FloatField, Sum, Value, When

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


def co_purchased(*, product_id: int, limit: int = 50, buyers: int = 300) -> list[tuple[int, float]]:
    """Products bought by the most recent buyers of ``product_id`` ("customers who
    bought this also bought"), by how many of them bought each; bounded cost."""
    from django.db.models import Count

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


def category_descendants(*, category_id: int) -> set[int]:
    children: dict[int | None, list[int]] = {}
    for pk, parent in Category.objects.values_list("id", "parent_id"):
        children.setdefault(parent, []).append(pk)
    out, todo = set(), [category_id]
    while todo:
        node = todo.pop()
        if node in out:
            continue
        out.add(node)
        todo.extend(children.get(node, []))
    return out


def products_servable(*, ids: Iterable[int], category_ids: set[int] | None = None) -> dict[int, Product]:
    """The given products that may be shown (active, in stock unless configured
    otherwise, in the categories if given), with their category, in one query."""
    qs = Product.objects.select_related("category").filter(pk__in=list(ids), is_active=True)
    if conf.get("RECOMMEND_EXCLUDE_OUT_OF_STOCK"):
        qs = qs.filter(stock__gt=0)
    if category_ids is not None:
        qs = qs.filter(category_id__in=category_ids)
    return {p.pk: p for p in qs}


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


# --- experiments -------------------------------------------------------------------------
@dataclass(frozen=True)
class Rate:
    successes: int
    trials: int
    value: float | None
    low: float | None
    high: float | None


def rate_wilson(successes: int, trials: int, *, confidence: float = 0.95) -> Rate:
    """A proportion with its Wilson score interval (scipy.stats.binomtest)."""
    if trials <= 0:
        return Rate(successes, trials, None, None, None)
    from scipy.stats import binomtest

    ci = binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return Rate(successes, trials, successes / trials, float(ci.low), float(ci.high))


def two_proportion_p(a: Rate, b: Rate) -> float | None:
    """Two-sided p-value that two proportions differ (pooled z-test); None if undefined."""
    if a.trials == 0 or b.trials == 0:
        return None
    from scipy.stats import norm

    pooled = (a.successes + b.successes) / (a.trials + b.trials)
    se = (pooled * (1 - pooled) * (1 / a.trials + 1 / b.trials)) ** 0.5
    if se == 0:
        return None
    z = (a.successes / a.trials - b.successes / b.trials) / se
    return float(2 * norm.sf(abs(z)))


@dataclass
class VariantReport:
    name: str
    served_by: str
    weight: int
    lists: int
    ctr: Rate
    conversion: Rate
    revenue: float
    ctr_p_vs_control: float | None = None
    conversion_p_vs_control: float | None = None
    offline: dict | None = None
    offline_version: str = ""

    @property
    def offline_ndcg(self) -> float | None:
        return (self.offline or {}).get("ndcg@10")

    @property
    def offline_precision(self) -> float | None:
        return (self.offline or {}).get("precision@10")

    @property
    def offline_recall(self) -> float | None:
        return (self.offline or {}).get("recall@10")


def experiment_report(*, experiment) -> list[VariantReport]:
    """Per variant: lists shown, click-through (lists with at least one click, Wilson
    95% CI), conversion (lists with an attributed order line), attributed revenue,
    p-values against the first variant (control), and the offline metrics of the
    model version serving it. A constant number of queries."""
    from django.db.models import Count, DecimalField, ExpressionWrapper, F, Sum

    from shop.models import OrderLine

    from .models import Impression

    lists_qs = Impression.objects.filter(experiment=experiment)
    shown = dict(lists_qs.values("variant").annotate(n=Count("id")).values_list("variant", "n"))
    clicked_ids = Interaction.objects.filter(kind=Interaction.Kind.CLICK, rec_list_id__isnull=False).values(
        "rec_list_id"
    )
    clicked = dict(
        lists_qs.filter(id__in=clicked_ids).values("variant").annotate(n=Count("id")).values_list("variant", "n")
    )
    ordered_ids = OrderLine.objects.filter(rec_list_id__isnull=False).values("rec_list_id")
    converted = dict(
        lists_qs.filter(id__in=ordered_ids).values("variant").annotate(n=Count("id")).values_list("variant", "n")
    )
    revenue_by_list = (
        OrderLine.objects.filter(rec_list_id__in=lists_qs.values("id"))
        .values("rec_list_id")
        .annotate(amount=Sum(ExpressionWrapper(F("unit_price") * F("quantity"), output_field=DecimalField())))
    )
    variant_of = dict(lists_qs.filter(id__in=ordered_ids).values_list("id", "variant"))
    revenue: dict[str, float] = {}
    for row in revenue_by_list:
        name = variant_of.get(row["rec_list_id"])
        if name is not None:
            revenue[name] = revenue.get(name, 0.0) + float(row["amount"] or 0)
    from . import serving, state

    snap = state.snapshot()
    out: list[VariantReport] = []
    for v in experiment.variants.select_related("model_version").all():
        n = shown.get(v.name, 0)
        version = v.model_version
        if version is None:
            try:
                info = serving._version_for(snap, serving.strategy_check(v.strategy or "auto"))
            except ValueError:
                info = None
            version = ModelVersion.objects.filter(pk=info.id).first() if info else None
        out.append(
            VariantReport(
                name=v.name,
                served_by=(
                    version.label
                    if v.model_version
                    else f"{v.strategy or 'auto'}" + (f" → {version.label}" if version else "")
                ),
                weight=v.weight,
                lists=n,
                ctr=rate_wilson(clicked.get(v.name, 0), n),
                conversion=rate_wilson(converted.get(v.name, 0), n),
                revenue=round(revenue.get(v.name, 0.0), 2),
                offline={
                    k: val
                    for k, val in (version.metrics or {}).items()
                    if k in ("ndcg@10", "precision@10", "recall@10", "map@10")
                }
                if version
                else None,
                offline_version=version.label if version else "",
            )
        )
    if out:
        control = out[0]
        for r in out[1:]:
            r.ctr_p_vs_control = two_proportion_p(r.ctr, control.ctr)
            r.conversion_p_vs_control = two_proportion_p(r.conversion, control.conversion)
    return out


def metrics_series(*, metric: str = "ndcg@10", limit: int = 200):
    """Succeeded versions' ``metric`` over time, grouped by algorithm (for the chart)."""
    from .charts import Point

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
