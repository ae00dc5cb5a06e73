"""Writes of the campaigns app: campaign lifecycle, audiences, triggered flows,
tracking, unsubscribes and suppressions, attribution. Sending itself (claim, check,
render, send, mark) is in `campaigns.sending`.

Functions are named ``<entity>_<action>`` and take keyword-only arguments. Tasks are
enqueued with ``transaction.on_commit`` so a worker never sees uncommitted rows.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, Max, OuterRef, Q, Sum
from django.db.models.functions import Lower
from django.utils import timezone

from shop import services as shop_services
from shop.models import Cart, CartItem, ConsentChange, Interaction, Order, OrderLine, Product, User

from . import conf
from .models import (
    Campaign,
    Conversion,
    Delivery,
    EmailTemplate,
    Segment,
    Suppression,
    TrackingEvent,
    Variant,
)
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
    def for_campaign(cls, campaign: Campaign) -> "Assigner":
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


# --- creating and changing campaigns -----------------------------------------------------------
def campaign_create(
    *,
    name: str,
    template: EmailTemplate,
    segment: Segment | None = None,
    kind: str = Campaign.Kind.ONE_OFF,
    strategy: str = "auto",
    n_products: int = 6,
    exclude_purchased: bool = True,
    exclude_category_ids: Sequence[int] = (),
    exclude_recently_sent_days: int = 0,
    scheduled_at: datetime | None = None,
    trigger_delay_hours: int = 0,
    inactive_days: int | None = None,
    holdout_percent: int = 0,
    seed: int | None = None,
    attribution_window_days: int = 5,
    max_error_rate: float = 0.2,
    from_email: str = "",
    variants: Sequence[dict] = (),
    created_by: User | None = None,
) -> Campaign:
    """Create a draft campaign with its variants (default: one variant "A").
    Raises ``ValidationError`` naming every bad field."""
    if scheduled_at is not None and timezone.is_naive(scheduled_at):
        raise ValidationError({"scheduled_at": "needs a timezone"})
    campaign = Campaign(
        name=name,
        template=template,
        segment=segment,
        kind=kind,
        strategy=strategy or "auto",
        n_products=n_products,
        exclude_purchased=exclude_purchased,
        exclude_recently_sent_days=exclude_recently_sent_days,
        scheduled_at=scheduled_at,
        trigger_delay_hours=trigger_delay_hours,
        inactive_days=inactive_days,
        holdout_percent=holdout_percent,
        attribution_window_days=attribution_window_days,
        max_error_rate=max_error_rate,
        from_email=from_email,
        created_by=created_by,
    )
    if seed is not None:
        campaign.seed = seed
    campaign.full_clean()
    arms = [
        Variant(
            name=v.get("name") or chr(ord("A") + i),
            weight=v.get("weight", 1),
            subject=v.get("subject", ""),
            strategy=v.get("strategy", ""),
        )
        for i, v in enumerate(variants)
    ]
    errors = {}
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        errors["variants"] = ["variant names must differ"]
    for i, arm in enumerate(arms):
        try:
            arm.full_clean(exclude=["campaign"])
        except ValidationError as exc:
            errors[f"variants[{i}]"] = [f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        campaign.save()
        if exclude_category_ids:
            campaign.exclude_categories.set(exclude_category_ids)
        for arm in arms or [Variant(name="A")]:
            arm.campaign = campaign
            arm.save()
    return campaign


def variants_ensure(*, campaign: Campaign) -> None:
    if not campaign.variants.exists():
        Variant.objects.get_or_create(campaign=campaign, name="A")


def _enqueue(task, *args, countdown: float | None = None) -> None:
    def send():
        if countdown:
            task.apply_async(args=args, countdown=countdown)
        else:
            task.delay(*args)

    transaction.on_commit(send)


def campaign_schedule(*, campaign: Campaign, at: datetime | None = None) -> Campaign:
    """Queue a draft (or paused-before-start) campaign to go at ``at`` (None: now).
    A triggered campaign starts listening for its events from then on."""
    from . import tasks

    now = timezone.now()
    if at is not None and timezone.is_naive(at):
        raise ValidationError({"scheduled_at": "needs a timezone"})
    at = at or now
    allowed = (Status.DRAFT, Status.SCHEDULED)
    with transaction.atomic():
        updated = Campaign.objects.filter(pk=campaign.pk, status__in=allowed).update(
            status=Status.SCHEDULED, scheduled_at=at, status_note=""
        )
        if not updated:
            campaign.refresh_from_db(fields=["status"])
            raise CampaignStateError(f"a {campaign.get_status_display().lower()} campaign cannot be scheduled")
        variants_ensure(campaign=campaign)
        if at <= now:
            _enqueue(tasks.campaign_launch_task, campaign.pk)
    campaign.refresh_from_db()
    logger.info("campaign %s scheduled for %s", campaign.pk, at.isoformat())
    return campaign


def campaign_pause(*, campaign: Campaign, reason: str = "Paused by staff") -> Campaign:
    updated = Campaign.objects.filter(pk=campaign.pk, status__in=(Status.RUNNING, Status.SCHEDULED)).update(
        status=Status.PAUSED, status_note=reason[:500]
    )
    campaign.refresh_from_db()
    if not updated:
        raise CampaignStateError(f"a {campaign.get_status_display().lower()} campaign cannot be paused")
    logger.warning("campaign %s paused: %s", campaign.pk, reason)
    return campaign


def campaign_resume(*, campaign: Campaign) -> Campaign:
    """Resume a paused campaign where it stopped (nobody gets an email twice)."""
    from . import tasks

    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if campaign.status != Status.PAUSED:
            raise CampaignStateError(f"a {campaign.get_status_display().lower()} campaign cannot be resumed")
        started = campaign.started_at is not None
        campaign.status = Status.RUNNING if started else Status.SCHEDULED
        campaign.status_note = "Resumed"
        # A paused campaign's error count starts afresh: whatever made it pause is fixed.
        campaign.error_count = 0
        campaign.save(update_fields=["status", "status_note", "error_count", "updated_at"])
        if not started:
            if campaign.scheduled_at is None or campaign.scheduled_at <= timezone.now():
                _enqueue(tasks.campaign_launch_task, campaign.pk)
        elif campaign.kind == Campaign.Kind.ONE_OFF and campaign.audience_built_at is None:
            _enqueue(tasks.campaign_launch_task, campaign.pk)
        else:
            deliveries_fan_out(campaign_id=campaign.pk)
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


# --- audience ------------------------------------------------------------------------------
def _not_suppressed() -> Exists:
    return ~Exists(Suppression.objects.filter(email=Lower(OuterRef("email"))))


def audience_queryset(*, campaign: Campaign):
    """Who a one-off campaign is built for: the segment, with consent, not suppressed.
    (Consent, suppression and the frequency cap are checked again when each email goes.)"""
    return segment_queryset(campaign.segment).filter(marketing_consent=True, is_active=True).filter(_not_suppressed())


def campaign_launch(*, campaign_id: int, chunk_size: int = 5000) -> int:
    """Start a due one-off campaign: build its audience (one `Delivery` per customer,
    holdout and variant assigned) and fan the sending out to workers. Safe to run
    twice or after a crash: rows exist at most once (unique constraint) and only one
    launcher moves the campaign from scheduled to running. Returns the audience size."""
    now = timezone.now()
    with transaction.atomic():
        moved = (
            Campaign.objects.filter(pk=campaign_id, status=Status.SCHEDULED)
            .filter(Q(scheduled_at__isnull=True) | Q(scheduled_at__lte=now))
            .update(status=Status.RUNNING, started_at=now, heartbeat_at=now, status_note="")
        )
        campaign = Campaign.objects.select_related("segment").get(pk=campaign_id)
    if not moved and not (campaign.status == Status.RUNNING and campaign.audience_built_at is None):
        return campaign.audience_size  # not due, already launched, paused or finished
    if campaign.is_triggered:
        logger.info("triggered campaign %s is listening for events", campaign.pk)
        Campaign.objects.filter(pk=campaign.pk).update(audience_built_at=now)
        return 0
    variants_ensure(campaign=campaign)
    assigner = Assigner.for_campaign(campaign)
    try:
        users = audience_queryset(campaign=campaign).order_by("pk").values_list("pk", "email")
    except RuleError as exc:  # e.g. a category named by the segment was deleted since
        campaign_pause(campaign=campaign, reason=f"the segment's rules are invalid: {exc}")
        return 0
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
        deliveries_fan_out(campaign_id=campaign.pk)
    logger.info("campaign %s launched: audience %d", campaign.pk, size)
    return size


def deliveries_fan_out(*, campaign_id: int, chunk_size: int | None = None) -> int:
    """Enqueue one send task per chunk of open deliveries (after commit). Returns the
    number of tasks. Tasks claim rows safely, so an extra task is harmless."""
    from . import tasks

    chunk_size = chunk_size or conf.get("SEND_CHUNK_SIZE")
    ids = list(
        Delivery.objects.filter(campaign_id=campaign_id, status__in=Delivery.OPEN_STATUSES)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    ranges = [(ids[i], ids[min(i + chunk_size, len(ids)) - 1]) for i in range(0, len(ids), chunk_size)]
    for lo, hi in ranges:
        _enqueue(tasks.deliveries_send_task, campaign_id, lo, hi)
    Campaign.objects.filter(pk=campaign_id).update(heartbeat_at=timezone.now())
    return len(ranges)


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


# --- triggered flows ---------------------------------------------------------------------------
@dataclass(frozen=True)
class TriggerEvent:
    user_id: int
    key: str
    context: dict


def _trigger_window(campaign: Campaign, now: datetime) -> tuple[datetime, datetime]:
    """Events happened in [start, end]: after the campaign started listening (and
    within the look-back), and at least the campaign's delay ago."""
    end = now - timedelta(hours=campaign.trigger_delay_hours)
    start = max(campaign.started_at or now, end - timedelta(days=conf.get("TRIGGER_LOOKBACK_DAYS")))
    return start, end


def trigger_events(*, campaign: Campaign, now: datetime | None = None) -> list[TriggerEvent]:
    """The events that are due for ``campaign`` now (handled ones included: the
    unique constraint drops them when rows are created)."""
    now = now or timezone.now()
    start, end = _trigger_window(campaign, now)
    kind = campaign.kind
    K = Campaign.Kind
    if kind == K.ABANDONED_CART:
        later_order = Order.objects.filter(user=OuterRef("user"), placed_at__gte=OuterRef("updated_at"))
        carts = (
            Cart.objects.filter(user__isnull=False, updated_at__gte=start, updated_at__lte=end)
            .filter(Exists(CartItem.objects.filter(cart=OuterRef("pk"))))
            .filter(~Exists(later_order))
            .values_list("pk", "user_id", "updated_at")
        )
        carts = list(carts)
        items: dict[int, list[int]] = defaultdict(list)
        for cart_id, product_id in CartItem.objects.filter(cart_id__in=[c[0] for c in carts]).values_list(
            "cart_id", "product_id"
        ):
            items[cart_id].append(product_id)
        return [
            TriggerEvent(
                user_id=u, key=f"cart:{c}:{int(t.timestamp())}", context={"cart_id": c, "product_ids": items[c]}
            )
            for c, u, t in carts
        ]
    if kind == K.WELCOME:
        users = User.objects.filter(date_joined__gte=start, date_joined__lte=end).values_list("pk", flat=True)
        return [TriggerEvent(user_id=u, key="welcome", context={}) for u in users]
    if kind == K.POST_PURCHASE:
        orders = list(
            Order.objects.exclude(status=Order.Status.CANCELLED)
            .filter(user__isnull=False, placed_at__gte=start, placed_at__lte=end)
            .values_list("pk", "user_id", "number", "total", "currency")
        )
        lines: dict[int, list[int]] = defaultdict(list)
        for order_id, product_id in OrderLine.objects.filter(order_id__in=[o[0] for o in orders]).values_list(
            "order_id", "product_id"
        ):
            lines[order_id].append(product_id)
        return [
            TriggerEvent(
                user_id=u,
                key=f"order:{o}",
                context={
                    "order_id": o,
                    "order_number": str(n),
                    "order_total": str(total),
                    "currency": currency,
                    "product_ids": lines[o],
                },
            )
            for o, u, n, total, currency in orders
        ]
    if kind == K.WIN_BACK:
        # The customer became inactive (last order + N days) within the window; once per last order.
        days = timedelta(days=campaign.inactive_days or 0)
        last = (
            Order.objects.exclude(status=Order.Status.CANCELLED)
            .filter(user__isnull=False)
            .values("user_id")
            .annotate(last=Max("placed_at"))
            .filter(last__gte=start - days, last__lte=end - days)
        )
        rows = list(last.values_list("user_id", "last"))
        return [
            TriggerEvent(user_id=u, key=f"winback:{int(t.timestamp())}", context={"last_order_at": t.isoformat()})
            for u, t in rows
        ]
    return []


def triggers_evaluate(*, campaign: Campaign, now: datetime | None = None) -> int:
    """Create a delivery for every new triggering event of a running triggered
    campaign (at most once per campaign, customer and event: a database constraint)
    and fan the sending out. Returns how many new deliveries were created."""
    if campaign.status != Status.RUNNING or not campaign.is_triggered:
        return 0
    events = trigger_events(campaign=campaign, now=now)
    if not events:
        return 0
    eligible = User.objects.filter(pk__in={e.user_id for e in events}, is_active=True, marketing_consent=True)
    eligible = eligible.filter(_not_suppressed())
    if campaign.segment_id:
        eligible = eligible.filter(pk__in=segment_queryset(campaign.segment).values("pk"))
    allowed = dict(eligible.values_list("pk", "email"))
    variants_ensure(campaign=campaign)
    assigner = Assigner.for_campaign(campaign)
    now = now or timezone.now()
    events = [e for e in events if e.user_id in allowed]
    handled = set(
        Delivery.objects.filter(
            campaign=campaign, user_id__in={e.user_id for e in events}, trigger_key__in={e.key for e in events}
        ).values_list("user_id", "trigger_key")
    )
    rows = []
    for event in events:
        if (event.user_id, event.key) in handled:
            continue
        handled.add((event.user_id, event.key))
        is_holdout, variant_id = assigner.assign(event.user_id)
        rows.append(
            Delivery(
                campaign=campaign,
                user_id=event.user_id,
                trigger_key=event.key,
                email=allowed[event.user_id],
                is_holdout=is_holdout,
                variant_id=variant_id,
                context=event.context,
                next_attempt_at=now,
            )
        )
    if not rows:
        return 0
    with transaction.atomic():
        # A concurrent evaluation may have created some of them: the constraint drops those.
        Delivery.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
        Campaign.objects.filter(pk=campaign.pk).update(audience_size=F("audience_size") + len(rows))
        deliveries_fan_out(campaign_id=campaign.pk)
    created = len(rows)
    if created:
        logger.info("campaign %s: %d new triggered deliveries", campaign.pk, created)
    return created


# --- the periodic tick -------------------------------------------------------------------------
@dataclass
class TickResult:
    launched: int = 0
    triggered: int = 0
    resumed: int = 0
    completed: int = 0
    attributed: int = 0


def campaigns_tick(*, now: datetime | None = None) -> TickResult:
    """What the scheduler runs every few minutes: launch due campaigns, evaluate
    triggers, pick up work whose senders died, complete finished campaigns, and
    attribute new orders. Each step is idempotent."""
    from . import tasks

    now = now or timezone.now()
    result = TickResult()
    for campaign_id in Campaign.objects.filter(status=Status.SCHEDULED, scheduled_at__lte=now).values_list(
        "pk", flat=True
    ):
        _enqueue(tasks.campaign_launch_task, campaign_id)
        result.launched += 1
    stale_before = now - timedelta(seconds=conf.get("STALE_SECONDS"))
    for campaign in Campaign.objects.filter(status=Status.RUNNING).select_related("segment"):
        if campaign.is_triggered:
            try:
                result.triggered += triggers_evaluate(campaign=campaign, now=now)
            except Exception:  # one broken campaign must not stop the others
                logger.exception("campaign %s: trigger evaluation failed", campaign.pk)
        if campaign.audience_built_at is None and campaign.kind == Campaign.Kind.ONE_OFF:
            if campaign.heartbeat_at is None or campaign.heartbeat_at < stale_before:
                _enqueue(tasks.campaign_launch_task, campaign.pk)  # a launcher died mid-build
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
                with transaction.atomic():
                    deliveries_fan_out(campaign_id=campaign.pk)
                result.resumed += 1
    result.attributed = conversions_attribute(now=now)
    return result


# --- tracking -----------------------------------------------------------------------------------
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
            shop_services.interaction_record(
                product=product,
                kind=Interaction.Kind.CLICK,
                user=delivery.user,
                source=Interaction.Source.EMAIL,
                delivery_id=delivery.pk,
                occurred_at=at,
            )


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


def suppression_remove(*, email: str) -> bool:
    deleted, _ = Suppression.objects.filter(email=email.strip().lower()).delete()
    return bool(deleted)


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
            shop_services.user_consent_set(user=user, consent=False, source=ConsentChange.Source.UNSUBSCRIBE, at=at)
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
                shop_services.user_consent_set(user=user, consent=False, source=ConsentChange.Source.UNSUBSCRIBE, at=at)
    return suppression


def user_forget_campaign_data(*, user_id: int) -> None:
    """Listener of ``shop.signals.user_forgotten``: deliveries keep their counts for
    the reports but lose the address and the products shown; outbox copies go."""
    from .models import OutboxMessage

    email = User.objects.filter(pk=user_id).values_list("email", flat=True).first()
    Delivery.objects.filter(user_id=user_id).update(email="", products=[], context={})
    if email:
        OutboxMessage.objects.filter(to=[email]).delete()


# --- attribution --------------------------------------------------------------------------------
def order_revenue(order_ids: Iterable[int]) -> dict[int, Decimal]:
    """Revenue of each order from its lines (quantity x unit price)."""
    rows = (
        OrderLine.objects.filter(order_id__in=list(order_ids))
        .values("order_id")
        .annotate(revenue=Sum(F("quantity") * F("unit_price")))
        .values_list("order_id", "revenue")
    )
    return {order_id: Decimal(revenue or 0).quantize(Decimal("0.01")) for order_id, revenue in rows}


def conversions_attribute(*, now: datetime | None = None) -> int:
    """Attribute orders to emails: an order placed within a campaign's attribution
    window after a click in one of its emails goes to that email; with several
    clicks, to the last click before the order (last touch). Each order at most once
    (a database constraint). Incremental and idempotent; returns how many were added."""
    now = now or timezone.now()
    max_window = Campaign.objects.filter(deliveries__clicked_at__isnull=False).aggregate(
        m=Max("attribution_window_days")
    )["m"]
    if not max_window:
        return 0
    since = now - timedelta(days=max_window)
    clicks = list(
        TrackingEvent.objects.filter(
            kind=TrackingEvent.Kind.CLICK, occurred_at__gte=since, delivery__user__isnull=False
        ).values_list("delivery_id", "delivery__user_id", "occurred_at", "delivery__campaign__attribution_window_days")
    )
    if not clicks:
        return 0
    by_user: dict[int, list[tuple[datetime, int, int]]] = defaultdict(list)
    for delivery_id, user_id, at, window in clicks:
        by_user[user_id].append((at, delivery_id, window))
    for lst in by_user.values():
        lst.sort()
    first_click = min(c[2] for c in clicks)
    orders = list(
        Order.objects.exclude(status=Order.Status.CANCELLED)
        .filter(user_id__in=list(by_user), placed_at__gte=first_click)
        .filter(~Exists(Conversion.objects.filter(order=OuterRef("pk"))))
        .values_list("pk", "user_id", "placed_at")
    )
    matches = []
    for order_id, user_id, placed_at in orders:
        best = None
        for at, delivery_id, window in by_user[user_id]:
            if at <= placed_at <= at + timedelta(days=window):
                best = (at, delivery_id)  # sorted by time: the last one wins
        if best:
            matches.append((order_id, placed_at, *best))
    if not matches:
        return 0
    revenue = order_revenue(m[0] for m in matches)
    rows = [
        Conversion(
            delivery_id=delivery_id,
            order_id=order_id,
            revenue=revenue.get(order_id, Decimal("0")),
            clicked_at=clicked_at,
            ordered_at=placed_at,
            attributed_at=now,
        )
        for order_id, placed_at, clicked_at, delivery_id in matches
    ]
    with transaction.atomic():
        before = Conversion.objects.count()
        Conversion.objects.bulk_create(rows, ignore_conflicts=True)
        added = Conversion.objects.count() - before
    if added:
        logger.info("attributed %d order(s) to campaign emails", added)
    return added


# --- test sends -----------------------------------------------------------------------------------
def email_test_send(
    *,
    template: EmailTemplate,
    customer: User,
    to: str,
    campaign: Campaign | None = None,
    variant: Variant | None = None,
) -> str:
    """Send ``template`` as ``customer`` would get it (their real picks) to a staff
    address, marked [TEST]. Returns the Message-ID. Raises ``ValidationError`` when
    ``to`` is not the address of a staff account."""
    from django.core.mail import get_connection

    from .rendering import RenderedEmail, message_build, message_id_make
    from .selectors import email_preview

    to = (to or "").strip().lower()
    if not User.objects.filter(email=to, is_staff=True, is_active=True).exists():
        raise ValidationError({"to": f"test emails go only to staff accounts; {to or '(empty)'} is not one"})
    preview = email_preview(template=template, user=customer, campaign=campaign, variant=variant)
    message_id = message_id_make(0)
    rendered = RenderedEmail(subject=f"[TEST] {preview.subject}", text=preview.text, html=preview.html)
    connection = get_connection(fail_silently=False)
    message = message_build(
        to=to,
        rendered=rendered,
        message_id=message_id,
        unsubscribe_url=f"{settings.SITE_URL}/c/u/test-email/",
        from_email=campaign.from_email if campaign else "",
        connection=connection,
        extra_headers={"X-Affinity-Test": f"as {customer.email}"},
    )
    message.send()
    logger.info("test email of template %s as %s sent to %s", template.pk, customer.email, to)
    return message_id
