"""Background jobs of the campaigns app. Thin: take ids, call one function of the
app, queue the work it leads to (after commit), and are safe to run twice (claims,
unique constraints and conditional state changes make a repeated or concurrent run
harmless).

This module imports only the modules that queue nothing (`lifecycle`, `tick`,
`attribution`, `sending`); the services that queue work import it.
"""

from __future__ import annotations

import logging
from functools import partial

from celery import shared_task
from django.db import transaction

from . import lifecycle, sending, tick

logger = logging.getLogger(__name__)


def _after_commit(task, *args) -> None:
    """Queue ``task`` once the current transaction commits (at once without one)."""
    transaction.on_commit(partial(task.delay, *args))


def campaign_launch_enqueue(*, campaign_id: int) -> None:
    _after_commit(campaign_launch_task, campaign_id)


def deliveries_fan_out(*, campaign_id: int, chunk_size: int | None = None) -> int:
    """Queue one send task per chunk of the campaign's open deliveries (after commit).
    Returns the number of tasks."""
    ranges = lifecycle.send_ranges(campaign_id=campaign_id, chunk_size=chunk_size)
    for lo, hi in ranges:
        _after_commit(deliveries_send_task, campaign_id, lo, hi)
    return len(ranges)


@shared_task(name="campaigns.tick", soft_time_limit=240, time_limit=300)
def campaigns_tick_task() -> dict:
    """Every few minutes (django-celery-beat): launch due campaigns, evaluate
    triggers, pick up stalled sending, complete campaigns, attribute orders."""
    result = tick.campaigns_tick()
    for campaign_id in result.to_launch:
        campaign_launch_enqueue(campaign_id=campaign_id)
    for campaign_id in result.to_fan_out:
        deliveries_fan_out(campaign_id=campaign_id)
    return result.counts()


@shared_task(name="campaigns.launch", soft_time_limit=1800, time_limit=1900)
def campaign_launch_task(campaign_id: int) -> int:
    """Build a due campaign's audience and fan the sending out."""
    launch = lifecycle.campaign_launch(campaign_id=campaign_id)
    if launch.fan_out:
        deliveries_fan_out(campaign_id=campaign_id)
    return launch.size


@shared_task(name="campaigns.send", soft_time_limit=900, time_limit=960)
def deliveries_send_task(campaign_id: int, min_id: int, max_id: int) -> dict:
    """Send a campaign's open deliveries with ids in [min_id, max_id] over one
    connection. Rows waiting for a retry are sent by a later run of the same range."""
    stats = sending.deliveries_send_range(campaign_id=campaign_id, min_id=min_id, max_id=max_id)
    if stats.retry_in and not stats.stopped.startswith("campaign "):
        deliveries_send_task.apply_async(args=(campaign_id, min_id, max_id), countdown=stats.retry_in)
    lifecycle.campaign_complete_if_done(campaign_id=campaign_id)
    logger.info(
        "campaign %s [%s..%s]: sent %d, withheld %d, skipped %d, failed %d, retry %d%s",
        campaign_id,
        min_id,
        max_id,
        stats.sent,
        stats.withheld,
        stats.skipped,
        stats.failed,
        stats.retried,
        f" ({stats.stopped})" if stats.stopped else "",
    )
    return {
        "sent": stats.sent,
        "withheld": stats.withheld,
        "skipped": stats.skipped,
        "failed": stats.failed,
        "retried": stats.retried,
        "stopped": stats.stopped,
    }
