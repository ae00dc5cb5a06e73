"""Writes of the store's domain. The only module that writes `Interaction` rows.

Functions are named ``<entity>_<action>``, take keyword-only arguments, validate at
the edge and raise typed errors (`ValidationFailed` carries every row's problem).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from .models import Cart, CartItem, Category, ConsentChange, Interaction, Order, OrderLine, Product, User
from .signals import user_forgotten

logger = logging.getLogger(__name__)


# --- errors -----------------------------------------------------------------------
@dataclass(frozen=True)
class RowError:
    """What is wrong with one input row: its index (0-based) or line, the field, why."""

    index: int
    field: str
    message: str
    code: str = "invalid"

    def as_dict(self) -> dict:
        return {"index": self.index, "field": self.field, "code": self.code, "message": self.message}


class ValidationFailed(ValueError):
    """Input was rejected; nothing was written. ``errors`` names every bad row/field."""

    def __init__(self, errors: Sequence[RowError], message: str | None = None):
        self.errors = list(errors)
        first = self.errors[0] if self.errors else None
        super().__init__(
            message
            or (
                f"{len(self.errors)} invalid row(s); first: row {first.index} {first.field}: {first.message}"
                if first
                else "invalid input"
            )
        )


class OutOfStock(ValueError):
    def __init__(self, product: Product, wanted: int):
        self.product, self.wanted = product, wanted
        super().__init__(f"Only {product.stock} of {product.sku} in stock, {wanted} wanted.")


# --- interactions -------------------------------------------------------------------
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
_FUTURE_SLACK = timedelta(minutes=5)


def _is_id(value) -> bool:
    return type(value) is int and 1 <= value <= _MAX_ID


def _check_event(index: int, ev: InteractionIn, now: datetime) -> list[RowError]:
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
        elif ev.occurred_at > now + _FUTURE_SLACK:
            errors.append(RowError(index, "occurred_at", "is in the future", "future"))
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
    import psycopg
    from django.db import connection

    connection.ensure_connection()
    return connection._prepare_cursor(psycopg.Cursor(connection.connection))


def _pairs_by_id_or_key(model, key: str, ids: set[int], keys: set[str]) -> list[tuple[int, str | None]]:
    """``(pk, key)`` of the rows whose primary key is in ``ids`` or whose ``key`` field
    is in ``keys``, in one query (none when both are empty). On PostgreSQL the sets go
    as two array parameters (``= ANY(...)``) rather than a placeholder per value: a
    batch of 1,000 events is a short statement to send, parse and plan."""
    if not ids and not keys:
        return []
    if connection_is_postgres():
        from django.db import connection

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
    now = timezone.now()
    errors: list[RowError] = []
    bad: set[int] = set()
    for i, ev in enumerate(events):
        row_errors = _check_event(i, ev, now)
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
)


def _interactions_insert_pg(columns: list[list]) -> int:
    """One ``INSERT ... SELECT FROM unnest(arrays) ON CONFLICT (event_id) DO NOTHING``:
    a single round trip whatever the batch size, no model instances, and the exact
    number of rows written (a duplicate ``event_id`` -- a retry, even a concurrent one --
    is skipped by the unique index, not counted)."""
    from django.db import connection

    table = connection.ops.quote_name(Interaction._meta.db_table)
    names = ", ".join(connection.ops.quote_name(name) for name, _ in _INSERT_COLUMNS)
    arrays = ", ".join(f"%b::{sqltype}[]" for _, sqltype in _INSERT_COLUMNS)
    sql = (
        f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT (event_id) WHERE event_id IS NOT NULL DO NOTHING"
    )  # the partial unique constraint
    with _pg_cursor() as cursor:
        cursor.execute(sql, columns)
        return cursor.rowcount


def interactions_bulk_record(
    *, events: Sequence[InteractionIn], partial: bool = False, batch_size: int = 1000
) -> BulkResult:
    """Validate and store many events in one transaction.

    ``partial=False`` (default): all or nothing, a bad row raises `ValidationFailed`
    naming every bad row and nothing is written. ``partial=True``: the good rows are
    stored and the result lists the bad ones. Events whose ``event_id`` is already
    stored are skipped and counted as duplicates (a retried batch never doubles).

    Three queries for any batch on PostgreSQL: products, users, one insert.
    """
    errors, resolved = _events_resolve(events)
    if errors and not partial:
        raise ValidationFailed(errors)
    bad = {e.index for e in errors}
    now = timezone.now()
    good = [(ev, resolved[i]) for i, ev in enumerate(events) if i not in bad]
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
                    ]
                )
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
        )
        for ev, (product_id, user_id) in good
    ]
    keyed = [r.event_id for r in rows if r.event_id]
    with transaction.atomic():
        known = (
            set(Interaction.objects.filter(event_id__in=keyed).values_list("event_id", flat=True)) if keyed else set()
        )
        fresh = [r for r in rows if not r.event_id or r.event_id not in known]
        # ignore_conflicts covers a concurrent retry of the same batch racing us.
        Interaction.objects.bulk_create(fresh, batch_size=batch_size, ignore_conflicts=bool(keyed))
    return BulkResult(created=len(fresh), duplicates=len(rows) - len(fresh), errors=errors)


def connection_is_postgres() -> bool:
    from django.db import connection

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
    errors = _check_event(0, ev, timezone.now())
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
        if event_id and (existing := Interaction.objects.filter(event_id=event_id).first()):
            return existing  # idempotent retry
        raise


def interactions_adopt_session(*, session_key: str, user: User) -> int:
    """Give an anonymous session's events to the customer who just logged in."""
    if not session_key:
        return 0
    return Interaction.objects.filter(session_key=session_key, user__isnull=True).update(user=user)


# --- customers ----------------------------------------------------------------------
def user_consent_set(*, user: User, consent: bool, source: str, at: datetime | None = None) -> bool:
    """Set marketing consent and record the change. Returns whether it changed."""
    at = at or timezone.now()
    if user.marketing_consent == consent and user.consent_changed_at is not None:
        return False
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(marketing_consent=consent, consent_changed_at=at)
        ConsentChange.objects.create(user=user, consent=consent, source=source, changed_at=at)
    user.marketing_consent, user.consent_changed_at = consent, at
    logger.info("consent of user %s set to %s via %s", user.pk, consent, source)
    return True


def user_register(
    *,
    email: str,
    password: str | None,
    first_name: str = "",
    last_name: str = "",
    country: str = "",
    interests: Iterable[Category] = (),
    marketing_consent: bool = False,
    external_id: str | None = None,
    consent_source: str = ConsentChange.Source.SIGNUP,
) -> User:
    """Create a customer with their interests and consent (the consent is recorded)."""
    email = User.objects.normalize_email(email).lower()
    with transaction.atomic():
        user = User.objects.create_user(
            email=email,
            password=password,
            first_name=first_name,
            last_name=last_name,
            country=country,
            external_id=external_id,
        )
        user.interests.set(list(interests))
        user_consent_set(user=user, consent=marketing_consent, source=consent_source)
    return user


def user_interests_set(*, user: User, categories: Iterable[Category]) -> None:
    user.interests.set(list(categories))


def user_forget(*, user: User) -> None:
    """Delete a customer and everything they did (GDPR erasure).

    Interactions, cart and consent history go with the account; orders stay for the
    accounts but lose the link to the person. Listeners of `user_forgotten` (the
    recommendations app) drop what they derived from the customer in the same
    transaction, so nothing they did feeds a recommendation from this moment.
    """
    with transaction.atomic():
        user_forgotten.send(sender=User, user_id=user.pk)
        Order.objects.filter(user=user).update(user=None, country="")
        Interaction.objects.filter(user=user).delete()
        user.delete()
    logger.info("user %s forgotten", user.pk)


# --- orders -------------------------------------------------------------------------
@dataclass
class OrderLineIn:
    product: Product
    quantity: int
    rec_list_id: uuid.UUID | None = None


def order_place(
    *,
    lines: Sequence[OrderLineIn],
    user: User | None = None,
    session_key: str = "",
    source: int = Interaction.Source.WEB,
    placed_at: datetime | None = None,
) -> Order:
    """Place an order: check and take stock, price the lines, record purchases.

    Raises `ValidationFailed` for empty or bad lines and `OutOfStock` when a product
    has too little stock; nothing is written then.
    """
    if user is not None and not user.is_authenticated:
        user = None
    errors = [
        RowError(i, "quantity", "must be at least 1", "min_value") for i, line in enumerate(lines) if line.quantity < 1
    ]
    if not lines:
        errors.append(RowError(0, "lines", "an order needs at least one line", "required"))
    if user is None and not session_key:
        errors.append(RowError(0, "user", "either a user or a session_key is required", "required"))
    if errors:
        raise ValidationFailed(errors)
    placed_at = placed_at or timezone.now()
    with transaction.atomic():
        ids = sorted({line.product.pk for line in lines})
        products = {p.pk: p for p in Product.objects.select_for_update().filter(pk__in=ids, is_active=True)}
        for i, line in enumerate(lines):
            p = products.get(line.product.pk)
            if p is None:
                raise ValidationFailed([RowError(i, "product", f"{line.product.sku} is not for sale", "inactive")])
            if p.stock < line.quantity:
                raise OutOfStock(p, line.quantity)
            p.stock -= line.quantity
        total = sum((products[l.product.pk].price * l.quantity for l in lines), Decimal("0"))
        order = Order.objects.create(
            user=user,
            total=total,
            placed_at=placed_at,
            country=user.country if user else "",
            currency=next(iter(products.values())).currency,
        )
        OrderLine.objects.bulk_create(
            OrderLine(
                order=order,
                product_id=l.product.pk,
                quantity=l.quantity,
                unit_price=products[l.product.pk].price,
                rec_list_id=l.rec_list_id,
            )
            for l in lines
        )
        for l in lines:
            Product.objects.filter(pk=l.product.pk).update(stock=F("stock") - l.quantity)
        Interaction.objects.bulk_create(
            Interaction(
                user=user,
                session_key="" if user else session_key,
                product_id=l.product.pk,
                kind=Interaction.Kind.PURCHASE,
                value=float(l.quantity),
                occurred_at=placed_at,
                source=source,
                rec_list_id=l.rec_list_id,
            )
            for l in lines
        )
    logger.info("order %s placed: %d lines, total %s", order.pk, len(lines), total)
    return order


# --- carts ----------------------------------------------------------------------------
def cart_get_or_create(*, user: User | None = None, session_key: str = "") -> Cart:
    if user is not None and user.is_authenticated:
        return Cart.objects.get_or_create(user=user)[0]
    if not session_key:
        raise ValueError("An anonymous cart needs a session key.")
    return Cart.objects.get_or_create(session_key=session_key, user=None)[0]


def cart_add(
    *,
    cart: Cart,
    product: Product,
    quantity: int = 1,
    rec_list_id: uuid.UUID | None = None,
    source: int = Interaction.Source.WEB,
) -> CartItem:
    """Add to the cart (or raise the quantity) and record an add_to_cart event."""
    if quantity < 1:
        raise ValidationFailed([RowError(0, "quantity", "must be at least 1", "min_value")])
    if not product.is_active:
        raise ValidationFailed([RowError(0, "product", f"{product.sku} is not for sale", "inactive")])
    with transaction.atomic():
        item, created = CartItem.objects.get_or_create(
            cart=cart, product=product, defaults={"quantity": quantity, "rec_list_id": rec_list_id}
        )
        if not created:
            CartItem.objects.filter(pk=item.pk).update(quantity=F("quantity") + quantity)
            item.refresh_from_db()
        if item.quantity > product.stock:
            raise OutOfStock(product, item.quantity)
        interaction_record(
            product=product,
            kind=Interaction.Kind.ADD_TO_CART,
            user=cart.user,
            session_key="" if cart.user_id else cart.session_key or "",
            value=quantity,
            source=source,
            rec_list_id=rec_list_id,
        )
        Cart.objects.filter(pk=cart.pk).update(updated_at=timezone.now())
    return item


def cart_remove(*, cart: Cart, product: Product, source: int = Interaction.Source.WEB) -> bool:
    with transaction.atomic():
        deleted, _ = CartItem.objects.filter(cart=cart, product=product).delete()
        if deleted:
            interaction_record(
                product=product,
                kind=Interaction.Kind.REMOVE_FROM_CART,
                user=cart.user,
                session_key="" if cart.user_id else cart.session_key or "",
                source=source,
            )
    return bool(deleted)


def cart_merge(*, session_key: str, user: User) -> Cart:
    """On login: move the anonymous session's cart into the customer's cart."""
    with transaction.atomic():
        cart = cart_get_or_create(user=user)
        anon = Cart.objects.filter(session_key=session_key, user__isnull=True).first() if session_key else None
        if anon is not None:
            for item in anon.items.all():
                existing = CartItem.objects.filter(cart=cart, product=item.product_id).first()
                if existing:
                    CartItem.objects.filter(pk=existing.pk).update(quantity=F("quantity") + item.quantity)
                else:
                    CartItem.objects.create(
                        cart=cart, product_id=item.product_id, quantity=item.quantity, rec_list_id=item.rec_list_id
                    )
            anon.delete()
        interactions_adopt_session(session_key=session_key, user=user)
    return cart


def cart_checkout(*, cart: Cart, source: int = Interaction.Source.WEB) -> Order:
    """Turn a cart into an order and empty it."""
    items = list(cart.items.select_related("product"))
    with transaction.atomic():
        order = order_place(
            lines=[OrderLineIn(product=i.product, quantity=i.quantity, rec_list_id=i.rec_list_id) for i in items],
            user=cart.user,
            session_key=cart.session_key or "",
            source=source,
        )
        cart.items.all().delete()
    return order


def carts_expire(*, days: int = 30) -> int:
    """Delete anonymous carts not touched for ``days`` days; returns how many."""
    if days < 1:
        raise ValueError("days must be at least 1")
    cutoff = timezone.now() - timedelta(days=days)
    _, per_model = Cart.objects.filter(user__isnull=True, updated_at__lt=cutoff).delete()
    return per_model.get(Cart._meta.label, 0)  # carts, not counting their cascaded items


# =====================================================================================
# --- bulk writes for importers and seeders (fast path) ------------------------------
# Owned by the data-import work (import_online_retail, import_interactions,
# seed_synthetic). Rows are plain tuples that the caller has already validated; the
# database constraints still hold them to the rules. PostgreSQL gets them through
# COPY (psycopg 3 ``cursor.copy``), SQLite through one prepared ``executemany`` on
# the raw connection. Both run inside the caller's transaction.
# =====================================================================================
SQLITE_BULK_CACHE_KIB = 256 * 1024
INTERACTION_COPY_FIELDS = ("user_id", "session_key", "product_id", "kind", "value", "occurred_at", "source")


def _sqlite_adapter(field_obj):
    """How one column's Python value becomes what Django itself would store in SQLite."""
    from django.db import models as m

    if isinstance(field_obj, m.DateTimeField):
        from datetime import timezone as dt_timezone

        utc = dt_timezone.utc

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
        import json

        return lambda v: json.dumps(v)
    return None


def _pg_adapter(field_obj):
    from django.db import models as m

    if isinstance(field_obj, m.JSONField):
        from psycopg.types.json import Jsonb

        return Jsonb
    if isinstance(field_obj, m.DateTimeField):

        def check_aware(v):
            if v is not None and (v.tzinfo is None or v.utcoffset() is None):
                raise ValueError(f"naive datetime {v!r} for {field_obj.name}")
            return v

        return check_aware
    return None


def rows_bulk_insert(*, model, fields: Sequence[str], rows: Iterable[Sequence], using: str = "default") -> int:
    """Insert many rows of ``model`` given as tuples in the order of ``fields``
    (attribute names, e.g. ``user_id``). No model instances, no ids returned: the
    fast path for large trusted imports. Every column not named gets NULL, so name
    every NOT NULL column. ``Interaction`` rows go through `interactions_bulk_copy`.
    Returns the number of rows written."""
    from django.db import connections

    if model is Interaction and tuple(fields) != INTERACTION_COPY_FIELDS:
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
        return _rows_write(conn, model, vendor, table, col_sql, len(columns), fields, rows, using)


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
            batch: list = []
            for row in rows:
                batch.append(row)
                if len(batch) >= 10_000:
                    cur.executemany(sql, batch)
                    count += len(batch)
                    batch.clear()
            if batch:
                cur.executemany(sql, batch)
                count += len(batch)
        finally:
            cur.close()
        return count
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


def interactions_bulk_copy(*, rows: Iterable[tuple], using: str = "default") -> int:
    """Store pre-validated interactions given as tuples
    ``(user_id, session_key, product_id, kind, value, occurred_at, source)`` as fast as
    the database takes them (COPY on PostgreSQL). ``session_key`` is "" for customers,
    ``occurred_at`` timezone-aware. The database's constraints (an actor, a known
    kind, ratings 0..5, existing user and product) still reject a bad row, and then
    the caller's transaction rolls back. Returns the count."""
    return rows_bulk_insert(model=Interaction, fields=INTERACTION_COPY_FIELDS, rows=rows, using=using)


# =====================================================================================
# --- storefront: account and cart edits of the shopper pages ------------------------
# Owned by the storefront work (shop/views.py). Same rules as above: keyword-only,
# validated, events recorded through `interaction_record`.
# =====================================================================================
def user_preferences_update(
    *,
    user: User,
    marketing_consent: bool,
    interests: Iterable[Category],
    source: str = ConsentChange.Source.PREFERENCES,
) -> bool:
    """Save a customer's email preferences and interests in one transaction.

    A consent change is recorded as evidence (`ConsentChange` with ``source``); an
    unchanged consent records nothing. Returns whether the consent changed.
    """
    with transaction.atomic():
        changed = user_consent_set(user=user, consent=marketing_consent, source=source)
        user_interests_set(user=user, categories=interests)
    return changed


def cart_quantity_set(
    *, cart: Cart, product: Product, quantity: int, source: int = Interaction.Source.WEB
) -> CartItem | None:
    """Set the quantity of a product already in the cart; 0 removes it.

    The change is recorded as an add_to_cart (more) or remove_from_cart (fewer) event
    whose value is the difference. Raises `ValidationFailed` when the product is not in
    the cart or the quantity is negative, `OutOfStock` when there is too little stock;
    nothing is written then.
    """
    if quantity < 0:
        raise ValidationFailed([RowError(0, "quantity", "must not be negative", "min_value")])
    if quantity == 0:
        cart_remove(cart=cart, product=product, source=source)
        return None
    with transaction.atomic():
        item = CartItem.objects.select_for_update().filter(cart=cart, product=product).first()
        if item is None:
            raise ValidationFailed([RowError(0, "product", f"{product.sku} is not in the cart", "not_in_cart")])
        delta = quantity - item.quantity
        if delta == 0:
            return item
        if delta > 0 and quantity > product.stock:
            raise OutOfStock(product, quantity)
        CartItem.objects.filter(pk=item.pk).update(quantity=quantity)
        item.quantity = quantity
        interaction_record(
            product=product,
            kind=Interaction.Kind.ADD_TO_CART if delta > 0 else Interaction.Kind.REMOVE_FROM_CART,
            user=cart.user,
            session_key="" if cart.user_id else cart.session_key or "",
            value=abs(delta),
            source=source,
            rec_list_id=item.rec_list_id if delta > 0 else None,
        )
        Cart.objects.filter(pk=cart.pk).update(updated_at=timezone.now())
    return item


# =====================================================================================
# --- API: customers synced from another system, profile edits -----------------------
# Owned by the REST API work (shop/api.py). ``None`` means "leave as it is".
# =====================================================================================
def _email_taken(email: str, *, exclude_pk: int | None = None) -> bool:
    qs = User.objects.filter(email=email)
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    return qs.exists()


def user_profile_update(
    *,
    user: User,
    email: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    country: str | None = None,
    interests: Iterable[Category] | None = None,
    marketing_consent: bool | None = None,
    consent_source: str = ConsentChange.Source.API,
) -> User:
    """Change a customer's profile; a consent change is recorded with ``consent_source``.

    Raises `ValidationFailed` (field ``email``, code ``unique``) when the new email
    belongs to another account; nothing is written then.
    """
    changes: dict[str, str] = {}
    if email is not None:
        email = User.objects.normalize_email(email).lower()
        if email != user.email:
            if _email_taken(email, exclude_pk=user.pk):
                raise ValidationFailed([RowError(0, "email", "another account has this email address", "unique")])
            changes["email"] = email
    for name, value in (("first_name", first_name), ("last_name", last_name), ("country", country)):
        if value is not None and value != getattr(user, name):
            changes[name] = value
    try:
        with transaction.atomic():
            if changes:
                User.objects.filter(pk=user.pk).update(**changes)
                for name, value in changes.items():
                    setattr(user, name, value)
            if interests is not None:
                user_interests_set(user=user, categories=interests)
            if marketing_consent is not None:
                user_consent_set(user=user, consent=marketing_consent, source=consent_source)
    except IntegrityError as exc:  # a concurrent sign-up took the email
        raise ValidationFailed([RowError(0, "email", "another account has this email address", "unique")]) from exc
    return user


def customer_create(
    *,
    email: str,
    external_id: str | None = None,
    first_name: str = "",
    last_name: str = "",
    country: str = "",
    interests: Iterable[Category] = (),
    marketing_consent: bool = False,
    consent_source: str = ConsentChange.Source.API,
) -> User:
    """Create a customer account without a password (they can set one by resetting it).

    Raises `ValidationFailed` when the email or the external id is already in use.
    """
    email = User.objects.normalize_email(email).lower()
    errors = []
    if _email_taken(email):
        errors.append(RowError(0, "email", "another account has this email address", "unique"))
    if external_id and User.objects.filter(external_id=external_id).exists():
        errors.append(RowError(0, "external_id", "another account has this external id", "unique"))
    if errors:
        raise ValidationFailed(errors)
    try:
        return user_register(
            email=email,
            password=None,
            first_name=first_name,
            last_name=last_name,
            country=country,
            interests=interests,
            marketing_consent=marketing_consent,
            external_id=external_id or None,
            consent_source=consent_source,
        )
    except IntegrityError as exc:  # lost a race with a concurrent create
        raise ValidationFailed(
            [RowError(0, "email", "another account has this email or external id", "unique")]
        ) from exc


def customer_upsert(
    *,
    external_id: str,
    email: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    country: str | None = None,
    interests: Iterable[Category] | None = None,
    marketing_consent: bool | None = None,
    consent_source: str = ConsentChange.Source.API,
) -> tuple[User, bool]:
    """Create or update the customer known as ``external_id`` in another system
    (idempotent sync). Returns ``(user, created)``. Creating needs an ``email``.

    Only customer accounts are touched: an external id held by a staff account is
    refused, so that a sync can never change who administers the store.
    """
    if not external_id or len(external_id) > 64:
        raise ValidationFailed([RowError(0, "external_id", "1 to 64 characters", "invalid")])
    with transaction.atomic():
        user = User.objects.select_for_update().filter(external_id=external_id).first()
        if user is not None and (user.is_staff or user.is_superuser):
            raise ValidationFailed([RowError(0, "external_id", "belongs to a staff account", "forbidden")])
        if user is None:
            if not email:
                raise ValidationFailed([RowError(0, "email", "required to create a customer", "required_to_create")])
            return customer_create(
                email=email,
                external_id=external_id,
                first_name=first_name or "",
                last_name=last_name or "",
                country=country or "",
                interests=interests or (),
                marketing_consent=bool(marketing_consent),
                consent_source=consent_source,
            ), True
        return user_profile_update(
            user=user,
            email=email,
            first_name=first_name,
            last_name=last_name,
            country=country,
            interests=interests,
            marketing_consent=marketing_consent,
            consent_source=consent_source,
        ), False


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
    from django.db import connections

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
