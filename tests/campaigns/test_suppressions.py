"""Suppressions: the email provider's bounces, complaints and unsubscribes (webhooks),
and the address checks of `suppression_add`."""

from __future__ import annotations

import pytest
from anymail.signals import AnymailTrackingEvent, tracking
from django.core.exceptions import ValidationError
from django.utils import timezone

from campaigns.models import Suppression, TrackingEvent
from campaigns.suppressions import suppression_add

from .conftest import make_campaign, make_customers, sent_delivery


def test_provider_bounces_and_complaints_become_suppressions(store, template):
    bounced, complained, unsubscribed, delivered = make_customers(4)
    campaign = make_campaign(template)
    d = sent_delivery(campaign, complained)
    for user, event_type in (
        (bounced, "bounced"),
        (complained, "complained"),
        (unsubscribed, "unsubscribed"),
        (delivered, "delivered"),
    ):
        event = AnymailTrackingEvent(
            event_type=event_type,
            recipient=user.email,
            timestamp=timezone.now(),
            metadata={"delivery_id": str(d.pk)} if user == complained else {},
            description="test",
        )
        tracking.send(sender=object, event=event, esp_name="TestESP")
    reasons = dict(Suppression.objects.values_list("email", "reason"))
    assert reasons == {bounced.email: "bounced", complained.email: "complained", unsubscribed.email: "unsubscribed"}
    assert TrackingEvent.objects.get(delivery=d).kind == "complaint"
    unsubscribed.refresh_from_db()
    assert unsubscribed.marketing_consent is False
    rejected = AnymailTrackingEvent(event_type="rejected", reject_reason="bounced", recipient="x@example.com")
    tracking.send(sender=object, event=rejected, esp_name="TestESP")
    assert Suppression.objects.filter(email="x@example.com", reason="bounced").exists()


def test_suppression_add_is_idempotent_lower_case_and_keeps_the_first_reason(db):
    first = suppression_add(email=" Someone@Example.com ", reason=Suppression.Reason.BOUNCED)
    again = suppression_add(email="someone@example.com", reason=Suppression.Reason.MANUAL)
    assert first.pk == again.pk and (again.email, again.reason) == ("someone@example.com", "bounced")
    with pytest.raises(ValidationError):
        suppression_add(email=" ", reason=Suppression.Reason.MANUAL)
    with pytest.raises(ValidationError):
        suppression_add(email="x@example.com", reason="spam-trap")
