"""Bulk writes of trusted rows for importers and seeders (the fast path).

Rows are plain tuples that the caller has already validated; the database constraints
still hold them to the rules. PostgreSQL gets them through COPY (psycopg 3
``cursor.copy``), SQLite through one prepared ``executemany`` on the raw connection.
Both run inside the caller's transaction. `tables_bulk_load` drops and rebuilds the
secondary indexes around a large load into (nearly) empty tables.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC

from django.db import connections, transaction
from django.db import models as m
from psycopg.types.json import Jsonb

from .models import Interaction

logger = logging.getLogger(__name__)

SQLITE_BULK_CACHE_KIB = 256 * 1024
INTERACTION_COPY_FIELDS = ("user_id", "session_key", "product_id", "kind", "value", "occurred_at", "source")
INTERACTION_KEYED_FIELDS = (*INTERACTION_COPY_FIELDS, "event_id")


def _sqlite_adapter(field_obj):
    """How one column's Python value becomes what Django itself would store in SQLite."""
    if isinstance(field_obj, m.DateTimeField):
        utc = UTC

        def adapt_dt(v):
            # Django stores a SQLite datetime as str() of the naive UTC value.
            if v is None:
                return None
            if v.tzinfo is not utc:
                if v.tzinfo is None or v.utcoffset() is None:
                    raise ValueError(f"naive datetime {v!r} for {field_obj.name}")
                v = v.astimezone(utc)
            return str(v)[:-6]  # drop "+00:00"

        return adapt_dt
    if isinstance(field_obj, m.DecimalField):
        return lambda v: None if v is None else str(v)
    if isinstance(field_obj, m.UUIDField):
        return lambda v: None if v is None else (v.hex if isinstance(v, uuid.UUID) else uuid.UUID(str(v)).hex)
    if isinstance(field_obj, m.BooleanField):
        return lambda v: None if v is None else int(bool(v))
    if isinstance(field_obj, m.JSONField):
        return lambda v: json.dumps(v)
    return None


def _pg_adapter(field_obj):
    if isinstance(field_obj, m.JSONField):
        return Jsonb
    if isinstance(field_obj, m.DateTimeField):

        def check_aware(v):
            if v is not None and (v.tzinfo is None or v.utcoffset() is None):
                raise ValueError(f"naive datetime {v!r} for {field_obj.name}")
            return v

        return check_aware
    return None


def rows_bulk_insert(
    *,
    model,
    fields: Sequence[str],
    rows: Iterable[Sequence],
    using: str = "default",
    skip_conflicts: bool = False,
) -> int:
    """Insert many rows of ``model`` given as tuples in the order of ``fields``
    (attribute names, e.g. ``user_id``). No model instances, no ids returned: the
    fast path for large trusted imports. Every column not named gets NULL, so name
    every NOT NULL column. ``Interaction`` rows go through `interactions_bulk_copy`.

    ``skip_conflicts``: a row that would break a unique constraint (of a row stored
    before, or of an earlier row of ``rows``) is skipped, not an error (PostgreSQL:
    COPY into a temporary table, then one ``INSERT ... SELECT ... ON CONFLICT DO
    NOTHING`` in the rows' order; SQLite: ``ON CONFLICT DO NOTHING``).
    Returns the number of rows written."""
    if model is Interaction and tuple(fields) not in (INTERACTION_COPY_FIELDS, INTERACTION_KEYED_FIELDS):
        raise ValueError("Interaction rows are written with interactions_bulk_copy")
    conn = connections[using]
    meta = model._meta
    field_objs = [meta.get_field(f) for f in fields]  # get_field knows attnames ("user_id") too
    columns = [f.column for f in field_objs]
    table = conn.ops.quote_name(meta.db_table)
    col_sql = ", ".join(conn.ops.quote_name(c) for c in columns)
    conn.ensure_connection()
    vendor = conn.vendor
    adapters = [(_pg_adapter if vendor == "postgresql" else _sqlite_adapter)(f) for f in field_objs]
    if any(adapters):
        needs = [(i, a) for i, a in enumerate(adapters) if a is not None]
        if len(needs) == 1:  # the common case (a time column): no per-row list
            ((k, one),) = needs
            rows = (
                r[:k] + (one(r[k]),) + r[k + 1 :] if type(r) is tuple else (*r[:k], one(r[k]), *r[k + 1 :])
                for r in rows
            )
        else:

            def adapt(row):
                row = list(row)
                for i, a in needs:
                    row[i] = a(row[i])
                return row

            rows = map(adapt, rows)
    with conn.wrap_database_errors:  # IntegrityError & co. as Django raises them
        if skip_conflicts:
            return _rows_write_skipping(conn, vendor, table, col_sql, len(columns), rows)
        return _rows_write(conn, model, vendor, table, col_sql, len(columns), fields, rows, using)


def _sqlite_executemany(cur, sql: str, rows: Iterable[Sequence], batch_size: int = 10_000) -> int:
    """Run the prepared ``sql`` over ``rows`` in batches; returns how many rows were fed."""
    count = 0
    batch: list = []
    for row in rows:
        batch.append(row)
        if len(batch) >= batch_size:
            cur.executemany(sql, batch)
            count += len(batch)
            batch.clear()
    if batch:
        cur.executemany(sql, batch)
        count += len(batch)
    return count


def _rows_write_skipping(conn, vendor, table, col_sql, width, rows) -> int:
    """`_rows_write` where a unique conflict skips the row; returns the rows written."""
    if vendor == "postgresql":
        stage = conn.ops.quote_name(f"bulk_stage_{uuid.uuid4().hex[:12]}")
        with conn.connection.cursor() as cur:
            cur.execute(f"CREATE TEMPORARY TABLE {stage} ON COMMIT DROP AS SELECT {col_sql} FROM {table} WITH NO DATA")
            with cur.copy(f"COPY {stage} ({col_sql}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(f"INSERT INTO {table} ({col_sql}) SELECT {col_sql} FROM {stage} ON CONFLICT DO NOTHING")
            written = cur.rowcount
            cur.execute(f"DROP TABLE {stage}")
        return written
    if vendor == "sqlite":
        raw = conn.connection
        before = raw.total_changes
        sql = f"INSERT INTO {table} ({col_sql}) VALUES ({', '.join('?' * width)}) ON CONFLICT DO NOTHING"
        cur = raw.cursor()
        try:
            _sqlite_executemany(cur, sql, rows)
        finally:
            cur.close()
        return raw.total_changes - before
    raise NotImplementedError(f"skip_conflicts is not supported on {vendor}")


def _rows_write(conn, model, vendor, table, col_sql, width, fields, rows, using) -> int:
    count = 0
    if vendor == "postgresql":
        raw = conn.connection
        with raw.cursor() as cur:
            with cur.copy(f"COPY {table} ({col_sql}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
        return count
    if vendor == "sqlite":
        sql = f"INSERT INTO {table} ({col_sql}) VALUES ({', '.join('?' * width)})"
        cur = conn.connection.cursor()
        # A bigger page cache for this connection (the default is 2 MB): inserting
        # millions of rows updates every index of the table, and misses dominate.
        if cur.execute("PRAGMA cache_size").fetchone()[0] > -SQLITE_BULK_CACHE_KIB:
            cur.execute(f"PRAGMA cache_size = -{SQLITE_BULK_CACHE_KIB}")
        try:
            return _sqlite_executemany(cur, sql, rows)
        finally:
            cur.close()
    objs = (model(**dict(zip(fields, row))) for row in rows)  # other backends: the ORM
    created = 0
    batch_objs: list = []
    for obj in objs:
        batch_objs.append(obj)
        if len(batch_objs) >= 2000:
            model.objects.using(using).bulk_create(batch_objs)
            created += len(batch_objs)
            batch_objs.clear()
    if batch_objs:
        model.objects.using(using).bulk_create(batch_objs)
        created += len(batch_objs)
    return created


def _table_rows_upto(conn, table: str, limit: int) -> int:
    """How many rows ``table`` holds, counting no further than ``limit`` + 1 (exact up
    to there, and cheap however big the table is; planner statistics can be stale)."""
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM (SELECT 1 FROM {conn.ops.quote_name(table)} LIMIT %s) AS t", [limit + 1])
        return int(cur.fetchone()[0])


@contextmanager
def tables_bulk_load(*, models: Sequence, expected_rows: int, using: str = "default") -> Iterator[bool]:
    """Make a large load into (nearly) empty tables fast: drop the secondary indexes
    (and, on PostgreSQL, the foreign keys) of ``models``' tables, let the caller
    insert, then rebuild them exactly as they were (their definitions are read from
    the database catalogue) and re-validate the foreign keys.

    Only when ``expected_rows`` is at least 100,000 and larger than what the tables
    hold (an initial import or seed); otherwise it does nothing. Must run inside one
    transaction (``transaction.atomic``): the drop, the load and the rebuild commit
    together or not at all. While it runs, the tables are locked for other writers
    (and on PostgreSQL for readers too). Yields whether the fast path is on."""
    conn = connections[using]
    if not conn.in_atomic_block:
        raise RuntimeError("tables_bulk_load must run inside transaction.atomic()")
    tables = [m._meta.db_table for m in models]
    if expected_rows < 100_000 or conn.vendor not in {"postgresql", "sqlite"}:
        yield False
        return
    existing = sum(_table_rows_upto(conn, t, expected_rows) for t in tables)
    if existing > expected_rows:
        yield False
        return
    recreate: list[str] = []
    with conn.cursor() as cur:
        if conn.vendor == "postgresql":
            # Check the deferred foreign keys of rows written earlier in this transaction
            # now: PostgreSQL refuses to alter a table with pending trigger events.
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cur.execute("SET CONSTRAINTS ALL DEFERRED")
        for table in tables:
            if conn.vendor == "postgresql":
                cur.execute(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = %s::regclass AND contype = 'f'",
                    [table],
                )
                for name, definition in cur.fetchall():
                    recreate.append(
                        f"ALTER TABLE {conn.ops.quote_name(table)} ADD CONSTRAINT "
                        f"{conn.ops.quote_name(name)} {definition}"
                    )
                    cur.execute(f"ALTER TABLE {conn.ops.quote_name(table)} DROP CONSTRAINT {conn.ops.quote_name(name)}")
                cur.execute(
                    "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x "
                    "JOIN pg_class i ON i.oid = x.indexrelid "
                    "WHERE x.indrelid = %s::regclass AND NOT x.indisunique AND NOT x.indisprimary "
                    "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
                    [table],
                )
                for name, definition in cur.fetchall():
                    recreate.insert(0, definition)  # indexes before the foreign keys that use them
                    cur.execute(f"DROP INDEX {conn.ops.quote_name(name)}")
            else:
                cur.execute(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s "
                    "AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE%%'",
                    [table],
                )
                for name, definition in cur.fetchall():
                    recreate.append(definition)
                    cur.execute(f"DROP INDEX {conn.ops.quote_name(name)}")
    logger.info("bulk load into %s: %d indexes/constraints deferred", ", ".join(tables), len(recreate))
    try:
        yield True
    except BaseException:
        transaction.set_rollback(True, using=using)  # the dropped indexes come back with the rollback
        raise
    with conn.cursor() as cur:
        if conn.vendor == "postgresql":
            cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
        else:
            cur.execute("PRAGMA threads = 2")  # helper threads for the index sorts
        for statement in recreate:
            cur.execute(statement)
        if conn.vendor == "postgresql":
            for table in tables:
                cur.execute(f"ANALYZE {conn.ops.quote_name(table)}")
