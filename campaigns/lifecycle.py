"""A campaign's life without the task queue: holdout and variant assignment, pausing
and cancelling, building a one-off campaign's audience, the id ranges its sending
is fanned out in, and completion.

Nothing here enqueues a task: the callers that queue work (`campaigns.tasks`,
`campaigns.services`) do it with what these functions return.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Lower
from django.utils import timezone

from . import conf
from .models import Campaign, Delivery, Suppression, Variant
from .segments import RuleError, segment_queryset

logger = logging.getLogger(__name__)
Status = Campaign.Status


class CampaignStateError(ValueError):
    """The campaign is not in a state that allows the action."""


# --- assignment: holdout and variants (deterministic, seeded) -------------------------------
def _unit(seed: int, salt: str, user_id: int) -> float:
    digest = hashlib.blake2b(f"{seed}:{salt}:{user_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Assigner:
    """Puts each customer in the holdout or a variant, the same way every time for a
    campaign's seed (a customer keeps their arm across triggered events)."""

    seed: int
    holdout_share: float
    variants: tuple[tuple[int, int], ...]  # (variant id, weight)

    @classmethod
    def for_campaign(cls, campaign: Campaign) -> Assigner:
        variants = tuple(campaign.variants.order_by("name").values_list("pk", "weight"))
        if not variants:
            raise CampaignStateError(f"campaign {campaign.pk} has no variant")
        return cls(seed=campaign.seed, holdout_share=campaign.holdout_percent / 100, variants=variants)

    def assign(self, user_id: int) -> tuple[bool, int | None]:
        if self.holdout_share and _unit(self.seed, "holdout", user_id) < self.holdout_share:
            return True, None
        total = sum(w for _, w in self.variants)
        point = _unit(self.seed, "variant", user_id) * total
        for variant_id, weight in self.variants:
            if point < weight:
                return False, variant_id
            point -= weight
        return False, self.variants[-1][0]


def variants_ensure(*, campaign: Campaign) -> None:
    if not campaign.variants.exists():
        Variant.objects.get_or_create(campaign=campaign, name="A")


# --- state changes that queue nothing ------------------------------------------------------------
def campaign_pause(*, campaign: Campaign, reason: str = "Paused by staff") -> Campaign:
    updated = Campaign.objects.filter(pk=campaign.pk, status__in=(Status.RUNNING, Status.SCHEDULED)).update(
        status=Status.PAUSED, status_note=reason[:500]
    )
    campaign.refresh_from_db()
    if not updated:
        raise CampaignStateError(f"a {campaign.get_status_display().lower()} campaign cannot be paused")
    logger.warning("campaign %s paused: %s", campaign.pk, reason)
    return campaign


def campaign_cancel(*, campaign: Campaign) -> Campaign:
    """Stop for good: open deliveries become skipped (cancelled); sent ones stay."""
    with transaction.atomic():
        updated = (
            Campaign.objects.filter(pk=campaign.pk)
            .exclude(status__in=Campaign.FINAL_STATUSES)
            .update(status=Status.CANCELLED, finished_at=timezone.now(), status_note="Cancelled by staff")
        )
        if not updated:
            campaign.refresh_from_db(fields=["status"])
            raise CampaignStateError(f"a {campaign.get_status_display().lower()} campaign cannot be cancelled")
        # Rows a sender holds right now finish their batch; it checks the status
        # before each batch and skips the rest on its way out. Only unclaimed rows here.
        deliveries_skip_cancelled(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    logger.info("campaign %s cancelled", campaign.pk)
    return campaign


def deliveries_skip_cancelled(*, campaign_id: int) -> int:
    """A cancelled campaign's pending deliveries become skipped (cancelled)."""
    return Delivery.objects.filter(campaign_id=campaign_id, status=Delivery.Status.PENDING).update(
        status=Delivery.Status.SKIPPED, skip_reason=Delivery.SkipReason.CANCELLED
    )


def campaign_complete_if_done(*, campaign_id: int) -> bool:
    """Mark a running one-off campaign completed once no delivery is open."""
    open_rows = Delivery.objects.filter(campaign_id=OuterRef("pk"), status__in=Delivery.OPEN_STATUSES)
    done = (
        Campaign.objects.filter(
            pk=campaign_id,
            status=Status.RUNNING,
            kind=Campaign.Kind.ONE_OFF,
            audience_built_at__isnull=False,
        )
        .filter(~Exists(open_rows))
        .update(status=Status.COMPLETED, finished_at=timezone.now())
    )
    if done:
        logger.info("campaign %s completed", campaign_id)
    return bool(done)


# --- audience ------------------------------------------------------------------------------
def not_suppressed() -> Exists:
    """Customers whose address is not suppressed (a filter on ``User``)."""
    return ~Exists(  # type: ignore[return-value]  # Exists.__invert__ gives an Exists; the stubs say otherwise
        Suppression.objects.filter(email=Lower(OuterRef("email")))
    )


def audience_queryset(*, campaign: Campaign):
    """Who a one-off campaign is built for: the segment, with consent, not suppressed.
    (Consent, suppression and the frequency cap are checked again when each email goes.)"""
    return segment_queryset(campaign.segment).filter(marketing_consent=True, is_active=True).filter(not_suppressed())


@dataclass(frozen=True)
class Launch:
    """What `campaign_launch` did: the audience size, and whether the sending is to
    be fanned out now (the audience was built by this call)."""

    size: int
    fan_out: bool = False


def campaign_launch(*, campaign_id: int, chunk_size: int = 5000) -> Launch:
    """Start a due one-off campaign: build its audience (one `Delivery` per customer,
    holdout and variant assigned). Safe to run twice or after a crash: rows exist at
    most once (unique constraint) and only one launcher moves the campaign from
    scheduled to running. The caller fans the sending out when ``fan_out`` is set
    (`campaigns.tasks.campaign_launch_task`)."""
    now = timezone.now()
    with transaction.atomic():
        moved = (
            Campaign.objects.filter(pk=campaign_id, status=Status.SCHEDULED)
            .filter(Q(scheduled_at__isnull=True) | Q(scheduled_at__lte=now))
            .update(status=Status.RUNNING, started_at=now, heartbeat_at=now, status_note="")
        )
        campaign = Campaign.objects.select_related("segment").get(pk=campaign_id)
    if not moved and not (campaign.status == Status.RUNNING and campaign.audience_built_at is None):
        return Launch(size=campaign.audience_size)  # not due, already launched, paused or finished
    if campaign.is_triggered:
        logger.info("triggered campaign %s is listening for events", campaign.pk)
        Campaign.objects.filter(pk=campaign.pk).update(audience_built_at=now)
        return Launch(size=0)
    variants_ensure(campaign=campaign)
    assigner = Assigner.for_campaign(campaign)
    try:
        users = audience_queryset(campaign=campaign).order_by("pk").values_list("pk", "email")
    except RuleError as exc:  # e.g. a category named by the segment was deleted since
        campaign_pause(campaign=campaign, reason=f"the segment's rules are invalid: {exc}")
        return Launch(size=0)
    built = 0
    batch: list[Delivery] = []

    def flush():
        nonlocal built
        with transaction.atomic():
            Delivery.objects.bulk_create(batch, ignore_conflicts=True)
            built += len(batch)
            Campaign.objects.filter(pk=campaign.pk).update(audience_size=built, heartbeat_at=timezone.now())
        batch.clear()

    for user_id, email in users.iterator(chunk_size=chunk_size):
        is_holdout, variant_id = assigner.assign(user_id)
        batch.append(
            Delivery(
                campaign_id=campaign.pk,
                user_id=user_id,
                email=email,
                is_holdout=is_holdout,
                variant_id=variant_id,
                next_attempt_at=now,
            )
        )
        if len(batch) >= chunk_size:
            flush()
    if batch:
        flush()
    with transaction.atomic():
        size = Delivery.objects.filter(campaign=campaign).count()
        Campaign.objects.filter(pk=campaign.pk).update(audience_size=size, audience_built_at=timezone.now())
    logger.info("campaign %s launched: audience %d", campaign.pk, size)
    return Launch(size=size, fan_out=True)


def send_ranges(*, campaign_id: int, chunk_size: int | None = None) -> list[tuple[int, int]]:
    """The id ranges, ``chunk_size`` open deliveries each, that one send task each
    takes; marks the campaign's sending alive. Tasks claim rows safely, so an extra
    range is harmless."""
    chunk_size = chunk_size or conf.get("SEND_CHUNK_SIZE")
    ids = list(
        Delivery.objects.filter(campaign_id=campaign_id, status__in=Delivery.OPEN_STATUSES)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    ranges = [(ids[i], ids[min(i + chunk_size, len(ids)) - 1]) for i in range(0, len(ids), chunk_size)]
    Campaign.objects.filter(pk=campaign_id).update(heartbeat_at=timezone.now())
    return ranges
