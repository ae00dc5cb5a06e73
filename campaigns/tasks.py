"""Background jobs of the campaigns app. Thin: take ids, call one service, and are
safe to run twice (claims, unique constraints and conditional state changes make a
repeated or concurrent run harmless)."""

from __future__ import annotations

import logging

from celery import shared_task

from . import services, sending

logger = logging.getLogger(__name__)


@shared_task(name="campaigns.tick", soft_time_limit=240, time_limit=300)
def campaigns_tick_task() -> dict:
    """Every few minutes (django-celery-beat): launch due campaigns, evaluate
    triggers, pick up stalled sending, complete campaigns, attribute orders."""
    result = services.campaigns_tick()
    return result.__dict__


@shared_task(name="campaigns.launch", soft_time_limit=1800, time_limit=1900)
def campaign_launch_task(campaign_id: int) -> int:
    """Build a due campaign's audience and fan the sending out."""
    return services.campaign_launch(campaign_id=campaign_id)


@shared_task(name="campaigns.send", soft_time_limit=900, time_limit=960)
def deliveries_send_task(campaign_id: int, min_id: int, max_id: int) -> dict:
    """Send a campaign's open deliveries with ids in [min_id, max_id] over one
    connection. Rows waiting for a retry are sent by a later run of the same range."""
    stats = sending.deliveries_send_range(campaign_id=campaign_id, min_id=min_id, max_id=max_id)
    if stats.retry_in and not stats.stopped.startswith("campaign "):
        deliveries_send_task.apply_async(args=(campaign_id, min_id, max_id), countdown=stats.retry_in)
    services.campaign_complete_if_done(campaign_id=campaign_id)
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


@shared_task(name="campaigns.attribute", soft_time_limit=600, time_limit=660)
def conversions_attribute_task() -> int:
    return services.conversions_attribute()
