"""What training reads from the database: the interactions and the catalogue.

``interaction_matrix_build`` streams interactions straight into numpy arrays: on
PostgreSQL with ``COPY ... TO STDOUT (FORMAT BINARY)`` (fixed-width records parsed
with a numpy structured dtype, chunk by chunk — no Python object per row), on
SQLite with a raw cursor's ``fetchmany`` batches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.utils import timezone
from psycopg import sql

from shop.importers import interactions_file as ifile
from shop.models import Category, Interaction, Product
from shop.services.catalogue import PLACEHOLDER

from .engine.matrix import InteractionMatrix, matrix_build

logger = logging.getLogger(__name__)

Progress = Callable[[float], None]


# --- the interactions ------------------------------------------------------------
@dataclass
class Events:
    """Parallel arrays of interactions (customers only), times in unix seconds: the
    interaction matrix in coordinate form, before weighting."""

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

    def matrix(self, **options) -> InteractionMatrix:
        """The weighted users x items matrix of these events (``engine.matrix_build``
        options: ``kind_weights``, ``half_life_days``, ``now``, ``item_ids``...)."""
        return matrix_build(
            users=self.users, items=self.items, kinds=self.kinds, values=self.values, times=self.times, **options
        )


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
        # whole seconds (of the text without its fraction: strftime rounds a fraction
        # near 1 up to the next second) + the stored ".ffffff" fraction: exact to the microsecond
        epoch = "(CAST(strftime('%%s', substr(occurred_at, 1, 19)) AS REAL) + CAST(substr(occurred_at, 20) AS REAL))"
    elif connection.vendor == "mysql":
        epoch = "UNIX_TIMESTAMP(occurred_at)"
    else:  # pragma: no cover - PostgreSQL has its own path; nothing else is supported
        raise NotImplementedError(f"no fast interaction read for database vendor {connection.vendor!r}")
    chunks: list[np.ndarray] = []
    dtype = [("user", "<i8"), ("item", "<i8"), ("kind", "<i2"), ("value", "<f8"), ("time", "<f8")]
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT user_id, product_id, kind, value, {epoch} FROM "{table}" WHERE {where}', params)
        while rows := cursor.fetchmany(batch):
            chunks.append(np.array(rows, dtype=dtype))
    return chunks


def interaction_matrix_build(
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    kinds: Sequence[int] = (),
    progress: Progress | None = None,
) -> Events:
    """The training read: all customers' interactions in ``[since, until]`` (of
    ``kinds``; all if empty) as the interaction matrix in coordinate form, in one
    streaming query (see the module docstring); ``Events.matrix`` weights it."""
    tic = time.perf_counter()
    # Never past "now" plus the clients' clock skew (as Interaction.objects.settled()): a
    # row dated later, written around the edge, would be the freshest history in the
    # time decay and move the temporal holdout's cut.
    settled = timezone.now() + timedelta(seconds=settings.INTERACTION_MAX_FUTURE_SECONDS)
    until = settled if until is None else min(until, settled)
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


def events_from_file(
    *,
    path: str | Path,
    delimiter: str | None = None,
    mapping: str = "",
    default_kind: str = "purchase",
    timestamp_unit: str = "s",
) -> tuple[Events, list[str]]:
    """An interactions file (``manage.py import_interactions``'s format and ``--map``)
    read into ``Events`` without touching the database: customers and products get
    small integer ids by their external id. Returns the events and the problems of
    the rows left out (line: reason)."""
    path = Path(path)
    if not path.is_file():
        raise ifile.FileProblem(f"{path} does not exist or is not a file")
    kind = ifile.kind_parse(default_kind)
    if kind is None:
        raise ifile.FileProblem(f"default kind {default_kind!r} is not one of {', '.join(ifile.KINDS)}")
    reader = ifile.FileReader(path, ifile.delimiter_for(path, delimiter), ifile.parse_mapping(mapping))
    stamp = ifile.TimestampParser(ZoneInfo(settings.TIME_ZONE), timestamp_unit)
    rows = reader.rows()
    next(rows)
    users: list[str] = []
    items: list[str] = []
    kinds: list[int] = []
    values: list[float] = []
    times: list[float] = []
    problems: list[str] = []
    for line, raw in rows:
        event = ifile.parse_event(raw, reader.columns, stamp, kind, 1.0)
        if isinstance(event, list):
            problems.append(f"line {line}: {'; '.join(event)}")
            continue
        users.append(event.user)
        items.append(event.item)
        kinds.append(event.kind)
        values.append(event.value)
        times.append(event.occurred_at.timestamp())
    user_index = np.unique(np.asarray(users, dtype=str), return_inverse=True)[1] if users else np.zeros(0)
    item_index = np.unique(np.asarray(items, dtype=str), return_inverse=True)[1] if items else np.zeros(0)
    events = Events(
        users=np.asarray(user_index, dtype=np.int64).ravel(),
        items=np.asarray(item_index, dtype=np.int64).ravel(),
        kinds=np.asarray(kinds, dtype=np.int16),
        values=np.asarray(values, dtype=np.float64),
        times=np.asarray(times, dtype=np.float64),
    )
    return events, problems


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
    placeholder = ExpressionWrapper(Q(attributes__has_key=PLACEHOLDER), output_field=BooleanField())
    rows = {
        # a placeholder's name ("Product <sku>", made by an events import for an unknown
        # product) says nothing about the product: no text, so content models are skipped
        pk: ("" if is_placeholder else name, description, category_id)
        for pk, is_placeholder, name, description, category_id in qs.annotate(is_placeholder=placeholder)
        .values_list("id", "is_placeholder", "name", "description", "category_id")
        .iterator(chunk_size=20_000)
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
