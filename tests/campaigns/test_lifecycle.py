"""A campaign's life without the task queue: the audience build, pausing and
cancelling, completion."""

from __future__ import annotations

from campaigns import lifecycle, services
from campaigns.models import Campaign, Delivery, Segment, Suppression
from campaigns.suppressions import suppression_add

from .conftest import make_campaign, make_customers, make_segment


def test_the_audience_is_built_once_with_consent_and_without_suppressed_addresses(store, template):
    customers = make_customers(3)
    make_customers(1, prefix="nc", marketing_consent=False)
    suppression_add(email=customers[0].email, reason=Suppression.Reason.MANUAL)
    campaign = make_campaign(template)
    services.campaign_schedule(campaign=campaign)
    assert lifecycle.campaign_launch(campaign_id=campaign.pk) == lifecycle.Launch(size=2, fan_out=True)
    assert lifecycle.campaign_launch(campaign_id=campaign.pk) == lifecycle.Launch(size=2), "built once"
    assert set(Delivery.objects.values_list("email", flat=True)) == {c.email for c in customers[1:]}
    assert len(lifecycle.send_ranges(campaign_id=campaign.pk, chunk_size=1)) == 2


def test_a_segment_that_became_invalid_pauses_the_launch(store, template):
    make_customers(2)
    segment = make_segment({"rule": "bought_category", "category": "kitchen"}, name="kitchen buyers")
    campaign = make_campaign(template, segment=segment)
    Segment.objects.filter(pk=segment.pk).update(rules={"rule": "bought_category", "category": "gone"})
    services.campaign_schedule(campaign=campaign)
    assert lifecycle.campaign_launch(campaign_id=campaign.pk) == lifecycle.Launch(size=0, fan_out=False)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED and "unknown category 'gone'" in campaign.status_note
    assert not Delivery.objects.exists()
