"""Shopper events: the only writer of `Interaction` rows.

One event (`interaction_record`), a validated batch (`interactions_bulk_record`, the
API's bulk ingestion) and trusted rows of importers and seeders
(`interactions_bulk_insert`, `interactions_bulk_copy`).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

import psycopg
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from shop.bulk import INTERACTION_COPY_FIELDS, INTERACTION_KEYED_FIELDS, rows_bulk_insert
from shop.event_time import occurred_at_problem
from shop.models import Interaction, Product, User
from shop.signals import interactions_recorded

from .errors import RowError, ValidationFailed

KIND_BY_NAME = {label.replace(" ", "_"): value for value, label in Interaction.Kind.choices}
SOURCE_BY_NAME = {label: value for value, label in Interaction.Source.choices}


@dataclass
class InteractionIn:
    """One event to record, before validation.

    The product is named by primary key (``product_id``) or by ``product_sku``; the
    actor by ``user_id``, by ``user_external_id`` (the customer's id in another system)
    or, for an anonymous visitor, by ``session_key`` alone. The references are resolved
    in bulk when the events are validated.
    """

    product_id: int | None
    kind: int
    user_id: int | None = None
    session_key: str = ""
    value: float = 1.0
    occurred_at: datetime | None = None
    source: int = Interaction.Source.API
    event_id: str | None = None
    delivery_id: int | None = None
    rec_list_id: uuid.UUID | None = None
    product_sku: str | None = None
    user_external_id: str | None = None


@dataclass
class BulkResult:
    created: int = 0
    duplicates: int = 0
    errors: list[RowError] = field(default_factory=list)


_MAX_ID = 2**63 - 1  # bigint primary keys
_KINDS = frozenset(Interaction.Kind.values)  # (the enums' .values builds a new list at each access)
_SOURCES = frozenset(Interaction.Source.values)


def max_future() -> timedelta:
    """How far after "now" an event may be dated (``INTERACTION_MAX_FUTURE_SECONDS``)."""
    return timedelta(seconds=settings.INTERACTION_MAX_FUTURE_SECONDS)


def _is_id(value) -> bool:
    return type(value) is int and 1 <= value <= _MAX_ID


def _check_event(index: int, ev: InteractionIn, now: datetime, future: timedelta) -> list[RowError]:
    errors: list[RowError] = []
    if ev.product_id is None and not ev.product_sku:
        errors.append(RowError(index, "product", "either product_id or product_sku is required", "required"))
    elif ev.product_id is not None and ev.product_sku:
        errors.append(RowError(index, "product", "give product_id or product_sku, not both", "ambiguous"))
    elif ev.product_id is not None and not _is_id(ev.product_id):
        errors.append(RowError(index, "product", f"not a product id: {ev.product_id!r}", "invalid"))
    elif ev.product_sku is not None and len(ev.product_sku) > 64:
        errors.append(RowError(index, "product", "a SKU has at most 64 characters", "max_length"))
    if ev.user_id is not None and ev.user_external_id:
        errors.append(RowError(index, "user", "give user_id or user_external_id, not both", "ambiguous"))
    elif ev.user_id is None and not ev.user_external_id and not ev.session_key:
        errors.append(RowError(index, "user", "either a user or a session_key is required", "no_actor"))
    elif ev.user_id is not None and not _is_id(ev.user_id):
        errors.append(RowError(index, "user", f"not a user id: {ev.user_id!r}", "invalid"))
    elif ev.user_external_id is not None and len(ev.user_external_id) > 64:
        errors.append(RowError(index, "user", "an external id has at most 64 characters", "max_length"))
    if len(ev.session_key) > 64:
        errors.append(RowError(index, "session_key", "at most 64 characters", "max_length"))
    if ev.kind not in _KINDS:
        errors.append(
            RowError(index, "kind", f"unknown kind {ev.kind!r}; one of {sorted(KIND_BY_NAME)}", "invalid_choice")
        )
    if ev.source not in _SOURCES:
        errors.append(RowError(index, "source", f"unknown source {ev.source!r}", "invalid_choice"))
    try:
        value = float(ev.value)
    except (TypeError, ValueError):
        errors.append(RowError(index, "value", f"not a number: {ev.value!r}", "invalid"))
    else:
        if not math.isfinite(value):
            errors.append(RowError(index, "value", "must be a finite number", "invalid"))
        elif ev.kind == Interaction.Kind.RATING and not 0 <= value <= 5:
            errors.append(RowError(index, "value", "a rating is between 0 and 5", "out_of_range"))
        elif value < 0:
            errors.append(RowError(index, "value", "must not be negative", "out_of_range"))
    if ev.occurred_at is not None:
        if timezone.is_naive(ev.occurred_at):
            errors.append(RowError(index, "occurred_at", "needs a timezone", "naive_datetime"))
        elif problem := occurred_at_problem(ev.occurred_at, now=now, max_future=future):
            errors.append(RowError(index, "occurred_at", problem[1], problem[0]))
    if ev.event_id is not None and not (1 <= len(ev.event_id) <= 64):
        errors.append(RowError(index, "event_id", "1 to 64 characters", "max_length"))
    if ev.delivery_id is not None and not _is_id(ev.delivery_id):
        errors.append(RowError(index, "delivery_id", f"not a delivery id: {ev.delivery_id!r}", "invalid"))
    return errors


def _pg_cursor():
    """A cursor of Django's connection that binds parameters on the server, in binary.

    Django's PostgreSQL backend binds on the client by default: every array parameter
    becomes a quoted SQL literal, about 5x the CPU of psycopg's binary encoding for a
    1,000-event batch. Wrapped by Django as usual (query logging and counting, error
    translation), in the same connection and transaction."""
    connection.ensure_connection()
    # Django's own wrapping of a raw cursor (no public name for it).
    return connection._prepare_cursor(psycopg.Cursor(connection.connection))  # type: ignore[attr-defined]


def _pairs_by_id_or_key(model, key: str, ids: set[int], keys: set[str]) -> list[tuple[int, str | None]]:
    """``(pk, key)`` of the rows whose primary key is in ``ids`` or whose ``key`` field
    is in ``keys``, in one query (none when both are empty). On PostgreSQL the sets go
    as two array parameters (``= ANY(...)``) rather than a placeholder per value: a
    batch of 1,000 events is a short statement to send, parse and plan."""
    if not ids and not keys:
        return []
    if connection_is_postgres():
        qn = connection.ops.quote_name
        table, pk, column = qn(model._meta.db_table), qn(model._meta.pk.column), qn(model._meta.get_field(key).column)
        with _pg_cursor() as cursor:
            cursor.execute(
                f"SELECT {pk}, {column} FROM {table} WHERE {pk} = ANY(%b::bigint[]) OR {column} = ANY(%b::varchar[])",
                [list(ids), list(keys)],
            )
            return cursor.fetchall()
    where = Q(pk__in=ids) | Q(**{f"{key}__in": keys})
    return list(model.objects.filter(where).values_list("pk", key))


def _events_resolve(events: Sequence[InteractionIn]) -> tuple[list[RowError], list[tuple[int | None, int | None]]]:
    """Check every event and resolve its product and user references to primary keys.

    Two queries whatever the number of events (products by id or SKU, users by id or
    external id). Returns the errors in row order and, per event, ``(product_id,
    user_id)`` (``None`` where unresolved).
    """
    now, future = timezone.now(), max_future()
    errors: list[RowError] = []
    bad: set[int] = set()
    for i, ev in enumerate(events):
        row_errors = _check_event(i, ev, now, future)
        if row_errors:
            errors.extend(row_errors)
            bad.add(i)
    ok = [ev for i, ev in enumerate(events) if i not in bad]
    product_ids = {ev.product_id for ev in ok if ev.product_id is not None}
    skus = {ev.product_sku for ev in ok if ev.product_sku}
    user_ids = {ev.user_id for ev in ok if ev.user_id is not None}
    external_ids = {ev.user_external_id for ev in ok if ev.user_external_id}
    known_products: set[int] = set()
    product_by_sku: dict[str, int] = {}
    for pk, sku in _pairs_by_id_or_key(Product, "sku", product_ids, skus):
        known_products.add(pk)
        if sku:
            product_by_sku[sku] = pk
    known_users: set[int] = set()
    user_by_external: dict[str, int] = {}
    for pk, external_id in _pairs_by_id_or_key(User, "external_id", user_ids, external_ids):
        known_users.add(pk)
        if external_id:
            user_by_external[external_id] = pk
    resolved: list[tuple[int | None, int | None]] = []
    seen: dict[str, int] = {}
    for i, ev in enumerate(events):
        if i in bad:
            resolved.append((None, None))
            continue
        if ev.product_sku:
            product_id = product_by_sku.get(ev.product_sku)
            if product_id is None:
                errors.append(RowError(i, "product", f"unknown product SKU {ev.product_sku!r}", "does_not_exist"))
        else:
            product_id = ev.product_id if ev.product_id in known_products else None
            if product_id is None:
                errors.append(RowError(i, "product", f"unknown product {ev.product_id}", "does_not_exist"))
        if ev.user_external_id:
            user_id = user_by_external.get(ev.user_external_id)
            if user_id is None:
                errors.append(
                    RowError(i, "user", f"unknown user external id {ev.user_external_id!r}", "does_not_exist")
                )
        elif ev.user_id is not None:
            user_id = ev.user_id if ev.user_id in known_users else None
            if user_id is None:
                errors.append(RowError(i, "user", f"unknown user {ev.user_id}", "does_not_exist"))
        else:
            user_id = None
        if ev.event_id:
            if ev.event_id in seen:
                errors.append(
                    RowError(i, "event_id", f"repeats row {seen[ev.event_id]}'s id in this batch", "duplicate")
                )
            seen.setdefault(ev.event_id, i)
        resolved.append((product_id, user_id))
    errors.sort(key=lambda e: e.index)
    return errors, resolved


def interactions_validate(*, events: Sequence[InteractionIn]) -> list[RowError]:
    """Every problem of every event (field checks and unknown ids), in row order."""
    return _events_resolve(events)[0]


# Column order of the PostgreSQL fast insert below.
_INSERT_COLUMNS = (
    ("user_id", "bigint"),
    ("session_key", "varchar"),
    ("product_id", "bigint"),
    ("kind", "smallint"),
    ("value", "float8"),
    ("occurred_at", "timestamptz"),
    ("source", "smallint"),
    ("event_id", "varchar"),
    ("delivery_id", "bigint"),
    ("rec_list_id", "uuid"),
    ("client_id", "bigint"),
)


def _interactions_insert_pg(columns: list[list]) -> int:
    """One ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING``:
    a single round trip whatever the batch size, no model instances, and the exact
    number of rows written (a duplicate ``event_id`` -- a retry, even a concurrent one --
    is skipped by the unique index of its namespace, not counted). No conflict target:
    the rows' ``client_id`` is NULL (the store's namespace) or an account's, and each
    namespace has its own partial unique index."""
    table = connection.ops.quote_name(Interaction._meta.db_table)
    names = ", ".join(connection.ops.quote_name(name) for name, _ in _INSERT_COLUMNS)
    arrays = ", ".join(f"%b::{sqltype}[]" for _, sqltype in _INSERT_COLUMNS)
    sql = f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) ON CONFLICT DO NOTHING"  # the partial unique constraints of event_id per client_id
    with _pg_cursor() as cursor:
        cursor.execute(sql, columns)
        return cursor.rowcount


def _recorded_announce(good: Sequence[tuple[InteractionIn, tuple[int, int | None]]]) -> None:
    """Tell listeners (triggered emails) which customers did what (`signals.interactions_recorded`)."""
    user_ids = {user_id for _, (_, user_id) in good if user_id is not None}
    if user_ids:
        interactions_recorded.send(
            sender=Interaction, user_ids=user_ids, kinds={int(ev.kind) for ev, (_, u) in good if u is not None}
        )


def interactions_bulk_record(
    *,
    events: Sequence[InteractionIn],
    partial: bool = False,
    batch_size: int = 1000,
    client: User | None = None,
) -> BulkResult:
    """Validate and store many events in one transaction.

    ``partial=False`` (default): all or nothing, a bad row raises `ValidationFailed`
    naming every bad row and nothing is written. ``partial=True``: the good rows are
    stored and the result lists the bad ones. Events whose ``event_id`` is already
    stored are skipped and counted as duplicates (a retried batch never doubles).
    ``client``: the account sending the events (the API's caller), the namespace of
    their ``event_id``s -- another client's ids never collide with them; None: the
    store's own namespace.

    Three queries for any batch on PostgreSQL: products, users, one insert.
    """
    errors, resolved = _events_resolve(events)
    if errors and not partial:
        raise ValidationFailed(errors)
    bad = {e.index for e in errors}
    now = timezone.now()
    client_id = client.pk if client is not None else None
    # a row without errors resolved its product: (product_id, user_id or None)
    good = cast(
        list[tuple[InteractionIn, tuple[int, int | None]]],
        [(ev, resolved[i]) for i, ev in enumerate(events) if i not in bad],
    )
    if not good:
        return BulkResult(created=0, duplicates=0, errors=errors)
    if connection_is_postgres():
        created = 0
        with transaction.atomic():
            for start in range(0, len(good), batch_size):
                chunk = good[start : start + batch_size]
                created += _interactions_insert_pg(
                    [
                        [user_id for _, (_, user_id) in chunk],
                        [ev.session_key or "" for ev, _ in chunk],
                        [product_id for _, (product_id, _) in chunk],
                        [int(ev.kind) for ev, _ in chunk],
                        [float(ev.value) for ev, _ in chunk],
                        [ev.occurred_at or now for ev, _ in chunk],
                        [int(ev.source) for ev, _ in chunk],
                        [ev.event_id or None for ev, _ in chunk],
                        [ev.delivery_id for ev, _ in chunk],
                        [ev.rec_list_id for ev, _ in chunk],
                        [client_id] * len(chunk),
                    ]
                )
            _recorded_announce(good)
        return BulkResult(created=created, duplicates=len(good) - created, errors=errors)
    rows = [
        Interaction(
            user_id=user_id,
            session_key=ev.session_key or "",
            product_id=product_id,
            kind=ev.kind,
            value=float(ev.value),
            occurred_at=ev.occurred_at or now,
            source=ev.source,
            event_id=ev.event_id or None,
            delivery_id=ev.delivery_id,
            rec_list_id=ev.rec_list_id,
            client_id=client_id,
        )
        for ev, (product_id, user_id) in good
    ]
    keyed = [r.event_id for r in rows if r.event_id]
    with transaction.atomic():
        known = (
            set(Interaction.objects.filter(client_id=client_id, event_id__in=keyed).values_list("event_id", flat=True))
            if keyed
            else set()
        )
        fresh = [r for r in rows if not r.event_id or r.event_id not in known]
        # ignore_conflicts covers a concurrent retry of the same batch racing us.
        Interaction.objects.bulk_create(fresh, batch_size=batch_size, ignore_conflicts=bool(keyed))
        _recorded_announce(good)
    return BulkResult(created=len(fresh), duplicates=len(rows) - len(fresh), errors=errors)


def connection_is_postgres() -> bool:
    return connection.vendor == "postgresql"


def interactions_bulk_insert(*, rows: Iterable[Interaction], batch_size: int = 5000) -> int:
    """Insert already-validated rows (importers and seeders build them from trusted,
    checked data). Runs in the caller's transaction; returns the count."""
    count = 0
    batch: list[Interaction] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= batch_size:
            Interaction.objects.bulk_create(batch, batch_size=batch_size)
            count += len(batch)
            batch.clear()
    if batch:
        Interaction.objects.bulk_create(batch, batch_size=batch_size)
        count += len(batch)
    return count


def interaction_record(
    *,
    product: Product,
    kind: int,
    user: User | None = None,
    session_key: str = "",
    value: float = 1.0,
    occurred_at: datetime | None = None,
    source: int = Interaction.Source.WEB,
    delivery_id: int | None = None,
    rec_list_id: uuid.UUID | None = None,
    event_id: str | None = None,
) -> Interaction:
    """Record one event of a shopper (a customer, or an anonymous session)."""
    if user is not None and not user.is_authenticated:
        user = None
    ev = InteractionIn(
        product_id=product.pk,
        kind=kind,
        user_id=user.pk if user else None,
        session_key=session_key or "",
        value=value,
        occurred_at=occurred_at,
        source=source,
        event_id=event_id,
        delivery_id=delivery_id,
        rec_list_id=rec_list_id,
    )
    errors = _check_event(0, ev, timezone.now(), max_future())
    if errors:
        raise ValidationFailed(errors)
    try:
        with transaction.atomic():
            return Interaction.objects.create(
                user=user,
                session_key=ev.session_key,
                product=product,
                kind=kind,
                value=float(value),
                occurred_at=occurred_at or timezone.now(),
                source=source,
                delivery_id=delivery_id,
                rec_list_id=rec_list_id,
                event_id=event_id,
            )
    except IntegrityError:
        if event_id and (existing := Interaction.objects.filter(client_id=None, event_id=event_id).first()):
            return existing  # idempotent retry
        raise


def interactions_adopt_session(*, session_key: str, user: User) -> int:
    """Give an anonymous session's events to the customer who just logged in."""
    if not session_key:
        return 0
    return Interaction.objects.filter(session_key=session_key, user__isnull=True).update(user=user)


def interactions_bulk_copy(*, rows: Iterable[tuple], using: str = "default", keyed: bool = False) -> int:
    """Store pre-validated interactions given as tuples
    ``(user_id, session_key, product_id, kind, value, occurred_at, source)`` as fast as
    the database takes them (COPY on PostgreSQL). ``session_key`` is "" for customers,
    ``occurred_at`` timezone-aware. The database's constraints (an actor, a known
    kind, ratings 0..5, existing user and product) still reject a bad row, and then
    the caller's transaction rolls back.

    ``keyed``: each tuple ends with an ``event_id`` as well, and an event whose id is
    already stored (or came earlier in ``rows``) is skipped: a re-import stores
    nothing twice. Returns the count written."""
    fields = INTERACTION_KEYED_FIELDS if keyed else INTERACTION_COPY_FIELDS
    return rows_bulk_insert(model=Interaction, fields=fields, rows=rows, using=using, skip_conflicts=keyed)
