"""The tasks queue what the work they run leads to, after commit."""

from __future__ import annotations

from campaigns import services, tasks
from campaigns.models import Delivery

from .conftest import make_campaign, make_customers


def test_the_launch_task_builds_the_audience_then_queues_one_send_task_per_chunk(
    store, template, settings, django_capture_on_commit_callbacks
):
    settings.CAMPAIGNS_SEND_CHUNK_SIZE = 2
    make_customers(5)
    campaign = make_campaign(template)
    services.campaign_schedule(campaign=campaign)
    with django_capture_on_commit_callbacks() as callbacks:
        assert tasks.campaign_launch_task(campaign.pk) == 5
    assert Delivery.objects.filter(campaign=campaign).count() == 5
    assert len(callbacks) == 3  # ids in chunks of 2: [1, 2], [3, 4], [5]
    with django_capture_on_commit_callbacks() as callbacks:
        assert tasks.campaign_launch_task(campaign.pk) == 5
    assert callbacks == [], "a launched campaign is not fanned out again"
