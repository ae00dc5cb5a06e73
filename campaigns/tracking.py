"""What recipients do with an email: opens and clicks (the tracking pixel and
links, `campaigns.views`). A click on a product is also an `Interaction` of the
store (source email), written through the store's service. Unsubscribes and
provider events are in `campaigns.suppressions`."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from shop.models import Interaction, Product
from shop.services.interactions import interaction_record

from .models import Delivery, TrackingEvent


def delivery_open_record(*, delivery: Delivery, at: datetime | None = None) -> None:
    at = at or timezone.now()
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(open_count=F("open_count") + 1)
        Delivery.objects.filter(pk=delivery.pk, opened_at__isnull=True).update(opened_at=at)
        TrackingEvent.objects.create(delivery=delivery, kind=TrackingEvent.Kind.OPEN, occurred_at=at)


def delivery_click_record(
    *, delivery: Delivery, product: Product | None = None, path: str = "", at: datetime | None = None
) -> None:
    """A click in an email: tracking event, the delivery's counters, and (for a
    product) an Interaction (kind click, source email) through the store's service.
    A click also counts as an open (images are often blocked)."""
    at = at or timezone.now()
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(click_count=F("click_count") + 1)
        Delivery.objects.filter(pk=delivery.pk, clicked_at__isnull=True).update(clicked_at=at)
        Delivery.objects.filter(pk=delivery.pk, opened_at__isnull=True).update(opened_at=at)
        TrackingEvent.objects.create(
            delivery=delivery, kind=TrackingEvent.Kind.CLICK, product=product, detail=path[:500], occurred_at=at
        )
        if product is not None and delivery.user_id is not None:
            interaction_record(
                product=product,
                kind=Interaction.Kind.CLICK,
                user=delivery.user,
                source=Interaction.Source.EMAIL,
                delivery_id=delivery.pk,
                occurred_at=at,
            )
