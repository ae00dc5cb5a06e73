"""The campaigns' periodic work (every few minutes, `campaigns.tick`): which
campaigns are due or stalled, new triggered deliveries, completion, attribution.

Triggered emails normally leave seconds after their event (`campaigns.triggers`'
real-time path); the sweep here evaluates every running triggered campaign over its
whole look-back, so that what the real-time path missed (a broker outage, a worker
that was down, an event no store action announces, win-back) still goes, once."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from . import conf
from .attribution import conversions_attribute
from .lifecycle import campaign_complete_if_done
from .models import Campaign, Delivery
from .triggers import triggers_evaluate

logger = logging.getLogger(__name__)
Status = Campaign.Status


@dataclass
class TickResult:
    launched: int = 0
    triggered: int = 0
    resumed: int = 0
    completed: int = 0
    attributed: int = 0
    # What the caller queues after commit:
    to_launch: list[int] = field(default_factory=list)  # campaign ids: a launch task each
    to_fan_out: list[int] = field(default_factory=list)  # campaign ids: their sending fanned out

    def counts(self) -> dict[str, int]:
        return {
            "launched": self.launched,
            "triggered": self.triggered,
            "resumed": self.resumed,
            "completed": self.completed,
            "attributed": self.attributed,
        }


def campaigns_tick(*, now: datetime | None = None) -> TickResult:
    """What the scheduler runs every few minutes: find due campaigns, evaluate
    triggers, find work whose senders died, complete finished campaigns, and
    attribute new orders. Each step is idempotent. The launches and fan-outs it
    decides on are queued by the caller (`campaigns.tasks.campaigns_tick_task`)."""
    now = now or timezone.now()
    result = TickResult()
    for campaign_id in Campaign.objects.filter(status=Status.SCHEDULED, scheduled_at__lte=now).values_list(
        "pk", flat=True
    ):
        result.to_launch.append(campaign_id)
        result.launched += 1
    stale_before = now - timedelta(seconds=conf.get("STALE_SECONDS"))
    for campaign in Campaign.objects.filter(status=Status.RUNNING).select_related("segment"):
        if campaign.is_triggered:
            try:
                created = triggers_evaluate(campaign=campaign, now=now)
                result.triggered += created
                if created:
                    result.to_fan_out.append(campaign.pk)
            except Exception:  # one broken campaign must not stop the others
                logger.exception("campaign %s: trigger evaluation failed", campaign.pk)
        if campaign.audience_built_at is None and campaign.kind == Campaign.Kind.ONE_OFF:
            if campaign.heartbeat_at is None or campaign.heartbeat_at < stale_before:
                result.to_launch.append(campaign.pk)  # a launcher died mid-build
            continue
        if campaign_complete_if_done(campaign_id=campaign.pk):
            result.completed += 1
            continue
        if campaign.heartbeat_at is None or campaign.heartbeat_at < stale_before:
            claimable = Delivery.objects.filter(campaign=campaign).filter(
                Q(status=Delivery.Status.PENDING, next_attempt_at__lte=now)
                | Q(status=Delivery.Status.SENDING, lease_expires_at__lt=now)
            )
            if claimable.exists():
                result.to_fan_out.append(campaign.pk)
                result.resumed += 1
    result.attributed = conversions_attribute(now=now)
    return result
