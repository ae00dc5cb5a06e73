"""Staff actions on campaigns (admin and API): create with validation, schedule,
resume, send a test email; and the checks of segments, templates, campaigns and
variants that need more than their fields (the admin forms use them too).

What queues no task is in `campaigns.lifecycle` (pause, cancel, audience build),
`campaigns.triggers`, `campaigns.attribution`, `campaigns.suppressions` and
`campaigns.tracking`; sending (claim, check, render, send, mark) is
`campaigns.sending`. Functions are named ``<entity>_<action>`` and take
keyword-only arguments. Tasks are enqueued after commit (`campaigns.tasks`) so a
worker never sees uncommitted rows.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from email.utils import getaddresses, parseaddr

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.mail import get_connection
from django.core.validators import validate_email
from django.db import models, transaction
from django.utils import timezone

from shop.models import User

from . import tasks
from .lifecycle import CampaignStateError, variants_ensure
from .models import Campaign, EmailTemplate, Segment, Variant
from .products import strategy_error
from .rendering import RenderedEmail, message_build, message_id_make, template_errors
from .segments import RuleError, rules_validate
from .selectors import email_preview

logger = logging.getLogger(__name__)
Status = Campaign.Status


# --- checks beyond the fields --------------------------------------------------------------------
def segment_errors(*, rules, segment_id: int | None = None) -> dict[str, list[str]]:
    """What is wrong with a segment's rule tree, by field (empty: nothing)."""
    try:
        rules_validate(rules, segment_id=segment_id)
    except RuleError as exc:
        return {"rules": exc.messages}
    return {}


def from_email_error(from_email: str) -> str:
    """What is wrong with a campaign's From (blank: DEFAULT_FROM_EMAIL), or ``""``: it is
    one line (a line break would inject headers) holding one address, bare or as
    ``Name <address>``, that `validate_email` accepts."""
    if not from_email:
        return ""
    if any(unicodedata.category(c) in {"Cc", "Zl", "Zp"} for c in from_email):
        return "Must be one line: no line breaks or control characters."
    _name, address = parseaddr(from_email)
    if len(getaddresses([from_email])) != 1 or not address:
        return 'Enter one address: "shop@example.com" or "Shop name <shop@example.com>".'
    try:
        validate_email(address)
    except ValidationError:
        return f"{address!r} is not a valid email address."
    return ""


def campaign_errors(
    *,
    kind: str,
    segment_id: int | None,
    inactive_days: int | None,
    trigger_delay_hours: int,
    strategy: str,
    from_email: str = "",
) -> dict[str, str]:
    """What is wrong with a campaign's settings taken together, by field."""
    errors = {}
    sender = from_email_error(from_email)
    if sender:
        errors["from_email"] = sender
    if kind == Campaign.Kind.ONE_OFF and not segment_id:
        errors["segment"] = "A one-off campaign needs a segment."
    if kind == Campaign.Kind.WIN_BACK and not inactive_days:
        errors["inactive_days"] = "A win-back campaign needs the number of inactive days."
    if kind == Campaign.Kind.ABANDONED_CART and trigger_delay_hours < 1:
        errors["trigger_delay_hours"] = "An abandoned-cart campaign waits at least 1 hour."
    if kind == Campaign.Kind.BROWSE_ABANDONMENT and trigger_delay_hours < 1:
        errors["trigger_delay_hours"] = "A browse-abandonment campaign waits at least 1 hour after the last view."
    if strategy:
        problem = strategy_error(strategy)
        if problem:
            errors["strategy"] = problem
    return errors


def variant_errors(*, subject: str, strategy: str) -> dict[str, list[str] | str]:
    """What is wrong with an A/B variant's own subject and strategy, by field."""
    errors: dict[str, list[str] | str] = {}
    if subject:
        problems = template_errors(subject=subject)
        if problems:
            errors["subject"] = problems["subject"]
    if strategy:
        problem = strategy_error(strategy)
        if problem:
            errors["strategy"] = problem
    return errors


def _full_clean(instance: models.Model, checks: dict, *, exclude: Sequence[str] = ()) -> None:
    """``instance.full_clean()`` with ``checks`` (one of the ``*_errors`` above) where
    ``Model.clean()`` would come: field errors, then the checks, then the unique and
    constraint checks of the fields that passed; all raised together."""
    errors: dict = {}
    skip = set(exclude)
    try:
        instance.clean_fields(exclude=skip)
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    if checks:
        errors = ValidationError(checks).update_error_dict(errors)
    skip |= {name for name in errors if name != NON_FIELD_ERRORS}
    try:
        instance.validate_unique(exclude=skip)
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    skip |= {name for name in errors if name != NON_FIELD_ERRORS}
    try:
        instance.validate_constraints(exclude=skip)
    except ValidationError as exc:
        errors = exc.update_error_dict(errors)
    if errors:
        raise ValidationError(errors)


# --- creating, scheduling and resuming campaigns ------------------------------------------------
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
    price_drop_min_percent: int = 0,
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
        price_drop_min_percent=price_drop_min_percent,
        holdout_percent=holdout_percent,
        attribution_window_days=attribution_window_days,
        max_error_rate=max_error_rate,
        from_email=from_email,
        created_by=created_by,
    )
    if seed is not None:
        campaign.seed = seed
    _full_clean(
        campaign,
        campaign_errors(
            kind=campaign.kind,
            segment_id=campaign.segment_id,
            inactive_days=campaign.inactive_days,
            trigger_delay_hours=campaign.trigger_delay_hours,
            strategy=campaign.strategy,
            from_email=campaign.from_email,
        ),
    )
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
            _full_clean(arm, variant_errors(subject=arm.subject, strategy=arm.strategy), exclude=["campaign"])
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


def campaign_schedule(*, campaign: Campaign, at: datetime | None = None) -> Campaign:
    """Queue a draft (or paused-before-start) campaign to go at ``at`` (None: now).
    A triggered campaign starts listening for its events from then on."""
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
            tasks.campaign_launch_enqueue(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    logger.info("campaign %s scheduled for %s", campaign.pk, at.isoformat())
    return campaign


def campaign_resume(*, campaign: Campaign) -> Campaign:
    """Resume a paused campaign where it stopped (nobody gets an email twice)."""
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
                tasks.campaign_launch_enqueue(campaign_id=campaign.pk)
        elif campaign.kind == Campaign.Kind.ONE_OFF and campaign.audience_built_at is None:
            tasks.campaign_launch_enqueue(campaign_id=campaign.pk)
        else:
            tasks.deliveries_fan_out(campaign_id=campaign.pk)
    return campaign


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
