"""Orders attributed to the campaign emails whose click came last before them
(last touch, within each campaign's attribution window)."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Exists, F, Max, OuterRef, Sum
from django.utils import timezone

from shop.models import Order, OrderLine

from .models import Campaign, Conversion, TrackingEvent

logger = logging.getLogger(__name__)


def order_revenue(order_ids: Iterable[int]) -> dict[int, Decimal]:
    """Revenue of each order from its lines (quantity x unit price)."""
    rows = (
        OrderLine.objects.filter(order_id__in=list(order_ids))
        .values("order_id")
        .annotate(revenue=Sum(F("quantity") * F("unit_price")))
        .values_list("order_id", "revenue")
    )
    return {order_id: Decimal(revenue or 0).quantize(Decimal("0.01")) for order_id, revenue in rows}


def conversions_attribute(*, now: datetime | None = None) -> int:
    """Attribute orders to emails: an order placed within a campaign's attribution
    window after a click in one of its emails goes to that email; with several
    clicks, to the last click before the order (last touch). Each order at most once
    (a database constraint). Incremental and idempotent; returns how many were added."""
    now = now or timezone.now()
    max_window = Campaign.objects.filter(deliveries__clicked_at__isnull=False).aggregate(
        m=Max("attribution_window_days")
    )["m"]
    if not max_window:
        return 0
    since = now - timedelta(days=max_window)
    clicks = list(
        TrackingEvent.objects.filter(
            kind=TrackingEvent.Kind.CLICK, occurred_at__gte=since, delivery__user__isnull=False
        ).values_list("delivery_id", "delivery__user_id", "occurred_at", "delivery__campaign__attribution_window_days")
    )
    if not clicks:
        return 0
    by_user: dict[int, list[tuple[datetime, int, int]]] = defaultdict(list)
    for delivery_id, user_id, at, window in clicks:
        by_user[user_id].append((at, delivery_id, window))
    for lst in by_user.values():
        lst.sort()
    first_click = min(c[2] for c in clicks)
    orders = list(
        Order.objects.exclude(status=Order.Status.CANCELLED)
        .filter(user_id__in=list(by_user), placed_at__gte=first_click)
        .filter(~Exists(Conversion.objects.filter(order=OuterRef("pk"))))
        .values_list("pk", "user_id", "placed_at")
    )
    matches = []
    for order_id, user_id, placed_at in orders:
        best = None
        for at, delivery_id, window in by_user[user_id]:
            if at <= placed_at <= at + timedelta(days=window):
                best = (at, delivery_id)  # sorted by time: the last one wins
        if best:
            matches.append((order_id, placed_at, *best))
    if not matches:
        return 0
    revenue = order_revenue(m[0] for m in matches)
    rows = [
        Conversion(
            delivery_id=delivery_id,
            order_id=order_id,
            revenue=revenue.get(order_id, Decimal("0")),
            clicked_at=clicked_at,
            ordered_at=placed_at,
            attributed_at=now,
        )
        for order_id, placed_at, clicked_at, delivery_id in matches
    ]
    with transaction.atomic():
        before = Conversion.objects.count()
        Conversion.objects.bulk_create(rows, ignore_conflicts=True)
        added = Conversion.objects.count() - before
    if added:
        logger.info("attributed %d order(s) to campaign emails", added)
    return added
