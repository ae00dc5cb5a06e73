"""Orders: check and take stock, price the lines, record the purchases."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from shop.models import Interaction, Order, OrderLine, Product, User
from shop.signals import ProductChange, products_changed

from .errors import OutOfStock, RowError, ValidationFailed

logger = logging.getLogger(__name__)


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
        stock_before = {pk: p.stock for pk, p in products.items()}
        for i, line in enumerate(lines):
            p = products.get(line.product.pk)
            if p is None:
                raise ValidationFailed([RowError(i, "product", f"{line.product.sku} is not for sale", "inactive")])
            if not p.has_stock_for(line.quantity):
                raise OutOfStock(p, line.quantity)
            if p.stock is not None:
                p.stock -= line.quantity
        total = sum((products[ln.product.pk].price * ln.quantity for ln in lines), Decimal("0"))
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
                product_id=ln.product.pk,
                quantity=ln.quantity,
                unit_price=products[ln.product.pk].price,
                rec_list_id=ln.rec_list_id,
            )
            for ln in lines
        )
        for ln in lines:
            if products[ln.product.pk].stock_tracked:  # untracked stock (NULL) is never taken
                Product.objects.filter(pk=ln.product.pk).update(stock=F("stock") - ln.quantity)
        Interaction.objects.bulk_create(
            Interaction(
                user=user,
                session_key="" if user else session_key,
                product_id=ln.product.pk,
                kind=Interaction.Kind.PURCHASE,
                value=float(ln.quantity),
                occurred_at=placed_at,
                source=source,
                rec_list_id=ln.rec_list_id,
            )
            for ln in lines
        )
        sold_out = [
            ProductChange(pk, p.price, p.price, stock_before[pk], p.stock)
            for pk, p in products.items()
            if p.stock == 0 and stock_before[pk] != 0
        ]
        if sold_out:  # listeners note when a product went out of stock (back-in-stock emails)
            products_changed.send(sender=Product, changes=sold_out)
    logger.info("order %s placed: %d lines, total %s", order.pk, len(lines), total)
    return order
