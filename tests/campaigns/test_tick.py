"""The periodic tick (run through its task, which queues what the tick decides):
due campaigns launched, finished ones completed, stalled sending picked up."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from campaigns import lifecycle, sending, services, tick
from campaigns.models import Campaign
from campaigns.tasks import campaigns_tick_task

from .conftest import make_campaign, make_customers


def test_tick_launches_due_campaigns_and_completes_finished_ones(store, template, django_capture_on_commit_callbacks):
    make_customers(3)
    due = make_campaign(template, name="due")
    later = make_campaign(template, name="later", segment=due.segment)
    services.campaign_schedule(campaign=later, at=timezone.now() + timedelta(hours=1))
    Campaign.objects.filter(pk=due.pk).update(
        status=Campaign.Status.SCHEDULED, scheduled_at=timezone.now() - timedelta(minutes=1)
    )
    with django_capture_on_commit_callbacks() as callbacks:
        result = campaigns_tick_task()
    assert result["launched"] == 1 and len(callbacks) == 1  # campaigns.launch for "due" only
    lifecycle.campaign_launch(campaign_id=due.pk)
    sending.deliveries_send_range(campaign_id=due.pk, min_id=0, max_id=2**62)
    result = campaigns_tick_task()
    due.refresh_from_db()
    assert result["completed"] == 1 and due.status == Campaign.Status.COMPLETED
    later.refresh_from_db()
    assert later.status == Campaign.Status.SCHEDULED


def test_tick_picks_up_work_whose_sender_died(store, template, settings, django_capture_on_commit_callbacks):
    settings.CAMPAIGNS_SEND_LEASE_SECONDS = 30
    make_customers(3)
    campaign = make_campaign(template)
    services.campaign_schedule(campaign=campaign)
    lifecycle.campaign_launch(campaign_id=campaign.pk)
    with django_capture_on_commit_callbacks() as callbacks:
        campaigns_tick_task()
    assert callbacks == [], "a live sender's campaign is left alone"
    Campaign.objects.filter(pk=campaign.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks() as callbacks:
        result = campaigns_tick_task()
    assert result["resumed"] == 1 and len(callbacks) == 1


def test_tick_decides_and_queues_nothing_itself(store, template, django_capture_on_commit_callbacks):
    make_customers(2)
    due = make_campaign(template, name="due")
    Campaign.objects.filter(pk=due.pk).update(
        status=Campaign.Status.SCHEDULED, scheduled_at=timezone.now() - timedelta(minutes=1)
    )
    with django_capture_on_commit_callbacks() as callbacks:
        result = tick.campaigns_tick()
    assert callbacks == [] and result.to_launch == [due.pk] and result.launched == 1
