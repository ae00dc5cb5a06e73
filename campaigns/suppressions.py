"""Addresses that must not receive marketing email: suppressions, one-click
unsubscribes (RFC 8058) and the email provider's bounces, complaints and
unsubscribes (django-anymail tracking events). The sender suppresses an address a
mail server refused for good (`campaigns.sending`)."""

from __future__ import annotations

import logging
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from shop.models import ConsentChange, User
from shop.services.customers import user_consent_set

from .models import Delivery, Suppression, TrackingEvent

logger = logging.getLogger(__name__)


def suppression_add(*, email: str, reason: str, delivery: Delivery | None = None, note: str = "") -> Suppression:
    """Suppress an address (idempotent; the first reason is kept)."""
    email = email.strip().lower()
    if not email:
        raise ValidationError({"email": "is required"})
    if reason not in Suppression.Reason.values:
        raise ValidationError({"reason": f"unknown reason {reason!r}; one of {', '.join(Suppression.Reason.values)}"})
    try:
        with transaction.atomic():
            suppression, created = Suppression.objects.get_or_create(
                email=email, defaults={"reason": reason, "delivery": delivery, "note": note[:500]}
            )
    except IntegrityError:  # a concurrent writer won the race
        suppression, created = Suppression.objects.get(email=email), False
    if created:
        logger.info("suppressed %s (%s)", email, reason)
    return suppression


def delivery_unsubscribe(*, delivery: Delivery, at: datetime | None = None) -> bool:
    """One-click unsubscribe from an email (RFC 8058): the address is suppressed and
    the customer's marketing consent withdrawn, at once. Idempotent; returns whether
    this call changed anything."""
    at = at or timezone.now()
    with transaction.atomic():
        changed = bool(Delivery.objects.filter(pk=delivery.pk, unsubscribed_at__isnull=True).update(unsubscribed_at=at))
        email = delivery.email or (delivery.user.email if delivery.user_id else "")
        if email:
            suppression_add(
                email=email,
                reason=Suppression.Reason.UNSUBSCRIBED,
                delivery=delivery,
                note=f"one-click unsubscribe, campaign {delivery.campaign_id}",
            )
        user = User.objects.filter(pk=delivery.user_id).first() if delivery.user_id else None
        if user is not None and user.marketing_consent:
            user_consent_set(user=user, consent=False, source=ConsentChange.Source.UNSUBSCRIBE, at=at)
            changed = True
        if changed:
            TrackingEvent.objects.create(delivery=delivery, kind=TrackingEvent.Kind.UNSUBSCRIBE, occurred_at=at)
    return changed


ESP_SUPPRESSIONS = {
    "bounced": Suppression.Reason.BOUNCED,
    "complained": Suppression.Reason.COMPLAINED,
    "unsubscribed": Suppression.Reason.UNSUBSCRIBED,
}
_ESP_EVENT_KINDS = {
    Suppression.Reason.BOUNCED: TrackingEvent.Kind.BOUNCE,
    Suppression.Reason.COMPLAINED: TrackingEvent.Kind.COMPLAINT,
    Suppression.Reason.UNSUBSCRIBED: TrackingEvent.Kind.UNSUBSCRIBE,
}


def esp_event_record(
    *,
    event_type: str,
    recipient: str | None,
    metadata: dict | None = None,
    reject_reason: str | None = None,
    description: str = "",
    esp_name: str = "",
    at: datetime | None = None,
) -> Suppression | None:
    """A tracking event from the email provider (django-anymail's normalised event):
    bounces and complaints suppress the address; an unsubscribe also withdraws consent.
    Other events (delivered, opened...) are ignored: opens and clicks are tracked by
    our own links. Returns the suppression, if any."""
    reason = ESP_SUPPRESSIONS.get(event_type)
    if event_type == "rejected" and reject_reason in ("bounced", "invalid"):
        reason = Suppression.Reason.BOUNCED
    if reason is None or not recipient:
        return None
    at = at or timezone.now()
    delivery = None
    delivery_id = (metadata or {}).get("delivery_id")
    if delivery_id and str(delivery_id).isdigit():
        delivery = Delivery.objects.filter(pk=int(delivery_id)).select_related("user").first()
    note = f"{esp_name or 'ESP'} {event_type}: {description}".strip()[:500]
    with transaction.atomic():
        suppression = suppression_add(email=recipient, reason=reason, delivery=delivery, note=note)
        if delivery is not None:
            TrackingEvent.objects.create(delivery=delivery, kind=_ESP_EVENT_KINDS[reason], detail=note, occurred_at=at)
        if reason == Suppression.Reason.UNSUBSCRIBED:
            if delivery is not None:
                Delivery.objects.filter(pk=delivery.pk, unsubscribed_at__isnull=True).update(unsubscribed_at=at)
            user = User.objects.filter(email=recipient.strip().lower()).first()
            if user is not None and user.marketing_consent:
                user_consent_set(user=user, consent=False, source=ConsentChange.Source.UNSUBSCRIBE, at=at)
    return suppression
