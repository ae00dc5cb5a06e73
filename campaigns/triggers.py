"""Triggered flows: the events that start an email (a cart left alone, a sign-up, an
order, a customer gone quiet) and one delivery per campaign, customer and event."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, F, Max, OuterRef
from django.utils import timezone

from shop.models import Cart, CartItem, Order, OrderLine, User

from . import conf
from .lifecycle import Assigner, not_suppressed, variants_ensure
from .models import Campaign, Delivery
from .segments import segment_queryset

logger = logging.getLogger(__name__)
Status = Campaign.Status


@dataclass(frozen=True)
class TriggerEvent:
    user_id: int
    key: str
    context: dict


def _trigger_window(campaign: Campaign, now: datetime) -> tuple[datetime, datetime]:
    """Events happened in [start, end]: after the campaign started listening (and
    within the look-back), and at least the campaign's delay ago."""
    end = now - timedelta(hours=campaign.trigger_delay_hours)
    start = max(campaign.started_at or now, end - timedelta(days=conf.get("TRIGGER_LOOKBACK_DAYS")))
    return start, end


def trigger_events(*, campaign: Campaign, now: datetime | None = None) -> list[TriggerEvent]:
    """The events that are due for ``campaign`` now (handled ones included: the
    unique constraint drops them when rows are created)."""
    now = now or timezone.now()
    start, end = _trigger_window(campaign, now)
    kind = campaign.kind
    kinds = Campaign.Kind
    if kind == kinds.ABANDONED_CART:
        later_order = Order.objects.filter(user=OuterRef("user"), placed_at__gte=OuterRef("updated_at"))
        carts = (
            Cart.objects.filter(user__isnull=False, updated_at__gte=start, updated_at__lte=end)
            .filter(Exists(CartItem.objects.filter(cart=OuterRef("pk"))))
            .filter(~Exists(later_order))
            .values_list("pk", "user_id", "updated_at")
        )
        carts = list(carts)
        items: dict[int, list[int]] = defaultdict(list)
        for cart_id, product_id in CartItem.objects.filter(cart_id__in=[c[0] for c in carts]).values_list(
            "cart_id", "product_id"
        ):
            items[cart_id].append(product_id)
        return [
            TriggerEvent(
                user_id=u, key=f"cart:{c}:{int(t.timestamp())}", context={"cart_id": c, "product_ids": items[c]}
            )
            for c, u, t in carts
        ]
    if kind == kinds.WELCOME:
        users = User.objects.filter(date_joined__gte=start, date_joined__lte=end).values_list("pk", flat=True)
        return [TriggerEvent(user_id=u, key="welcome", context={}) for u in users]
    if kind == kinds.POST_PURCHASE:
        orders = list(
            Order.objects.exclude(status=Order.Status.CANCELLED)
            .filter(user__isnull=False, placed_at__gte=start, placed_at__lte=end)
            .values_list("pk", "user_id", "number", "total", "currency")
        )
        lines: dict[int, list[int]] = defaultdict(list)
        for order_id, product_id in OrderLine.objects.filter(order_id__in=[o[0] for o in orders]).values_list(
            "order_id", "product_id"
        ):
            lines[order_id].append(product_id)
        return [
            TriggerEvent(
                user_id=u,
                key=f"order:{o}",
                context={
                    "order_id": o,
                    "order_number": str(n),
                    "order_total": str(total),
                    "currency": currency,
                    "product_ids": lines[o],
                },
            )
            for o, u, n, total, currency in orders
        ]
    if kind == kinds.WIN_BACK:
        # The customer became inactive (last order + N days) within the window; once per last order.
        days = timedelta(days=campaign.inactive_days or 0)
        last = (
            Order.objects.exclude(status=Order.Status.CANCELLED)
            .filter(user__isnull=False)
            .values("user_id")
            .annotate(last=Max("placed_at"))
            .filter(last__gte=start - days, last__lte=end - days)
        )
        rows = list(last.values_list("user_id", "last"))
        return [
            TriggerEvent(user_id=u, key=f"winback:{int(t.timestamp())}", context={"last_order_at": t.isoformat()})
            for u, t in rows
        ]
    return []


def triggers_evaluate(*, campaign: Campaign, now: datetime | None = None) -> int:
    """Create a delivery for every new triggering event of a running triggered
    campaign (at most once per campaign, customer and event: a database constraint).
    Returns how many new deliveries were created; the caller fans the sending out
    when there are any (`campaigns.tasks.campaigns_tick_task`)."""
    if campaign.status != Status.RUNNING or not campaign.is_triggered:
        return 0
    events = trigger_events(campaign=campaign, now=now)
    if not events:
        return 0
    eligible = User.objects.filter(pk__in={e.user_id for e in events}, is_active=True, marketing_consent=True)
    eligible = eligible.filter(not_suppressed())
    if campaign.segment_id:
        eligible = eligible.filter(pk__in=segment_queryset(campaign.segment).values("pk"))
    allowed = dict(eligible.values_list("pk", "email"))
    variants_ensure(campaign=campaign)
    assigner = Assigner.for_campaign(campaign)
    now = now or timezone.now()
    events = [e for e in events if e.user_id in allowed]
    handled = set(
        Delivery.objects.filter(
            campaign=campaign, user_id__in={e.user_id for e in events}, trigger_key__in={e.key for e in events}
        ).values_list("user_id", "trigger_key")
    )
    rows = []
    for event in events:
        if (event.user_id, event.key) in handled:
            continue
        handled.add((event.user_id, event.key))
        is_holdout, variant_id = assigner.assign(event.user_id)
        rows.append(
            Delivery(
                campaign=campaign,
                user_id=event.user_id,
                trigger_key=event.key,
                email=allowed[event.user_id],
                is_holdout=is_holdout,
                variant_id=variant_id,
                context=event.context,
                next_attempt_at=now,
            )
        )
    if not rows:
        return 0
    with transaction.atomic():
        # A concurrent evaluation may have created some of them: the constraint drops those.
        Delivery.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
        Campaign.objects.filter(pk=campaign.pk).update(audience_size=F("audience_size") + len(rows))
    created = len(rows)
    if created:
        logger.info("campaign %s: %d new triggered deliveries", campaign.pk, created)
    return created
