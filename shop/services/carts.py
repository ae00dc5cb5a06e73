"""Carts of customers and anonymous sessions; every change is recorded as an event."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from shop.models import Cart, CartItem, Interaction, Order, Product, User

from .errors import OutOfStock, RowError, ValidationFailed
from .interactions import interaction_record, interactions_adopt_session
from .orders import OrderLineIn, order_place


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
        if not product.has_stock_for(item.quantity):
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


# A submit of an emptied cart this soon after its checkout is a repeat of that checkout.
CHECKOUT_REPEAT_WINDOW = timedelta(minutes=30)


def cart_checkout(*, cart: Cart, source: int = Interaction.Source.WEB) -> Order:
    """Turn a cart into an order and empty it: idempotent per cart.

    The cart row is locked for the whole checkout, so concurrent submits of one cart
    run one after the other; the first places the order and records it on the cart,
    and a repeat (concurrent or later: the cart is empty now) gets that same order
    back -- one order, stock taken once. Raises `ValidationFailed` (code ``empty``)
    for an empty cart that became no order lately."""
    with transaction.atomic():
        # No join here: a waiter re-reads the locked row when the lock is released, but a
        # joined order would be read from the statement's older snapshot (missing).
        locked = Cart.objects.select_for_update().get(pk=cart.pk)
        items = list(locked.items.select_related("product").order_by("pk"))
        if not items:
            previous = locked.order
            if previous is not None and previous.placed_at >= timezone.now() - CHECKOUT_REPEAT_WINDOW:
                return previous
            raise ValidationFailed([RowError(0, "cart", "the cart is empty", "empty")])
        order = order_place(
            lines=[OrderLineIn(product=i.product, quantity=i.quantity, rec_list_id=i.rec_list_id) for i in items],
            user=locked.user,
            session_key=locked.session_key or "",
            source=source,
        )
        locked.items.all().delete()
        locked.order = order
        locked.save(update_fields=["order", "updated_at"])
    cart.order = order
    return order


def carts_expire(*, days: int = 30) -> int:
    """Delete anonymous carts not touched for ``days`` days; returns how many."""
    if days < 1:
        raise ValueError("days must be at least 1")
    cutoff = timezone.now() - timedelta(days=days)
    _, per_model = Cart.objects.filter(user__isnull=True, updated_at__lt=cutoff).delete()
    return per_model.get(Cart._meta.label, 0)  # carts, not counting their cascaded items


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
        if delta > 0 and not product.has_stock_for(quantity):
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
