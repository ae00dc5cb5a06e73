"""What the campaigns app stores: segments, email templates, campaigns and their
variants, one `Delivery` per recipient (the send state, never sent twice), tracking
events, attributed conversions, suppressions, and the embedded outbox.

Rules that must always hold are database constraints: one delivery per campaign,
customer and trigger event; one suppression per address; one attribution per order;
shares and counts within their ranges. Checks that need other modules (segment
rules, template syntax, recommendation strategies) are made by the services that
create and change these rows, and by the admin forms through them
(`campaigns.services`): the models import nothing of the app.
"""

from __future__ import annotations

import secrets
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone


def _random_seed() -> int:
    return secrets.randbelow(2**31 - 1) + 1


def _default_rules() -> dict:
    return {"all": [{"rule": "consent", "value": True}]}


class Segment(models.Model):
    """A set of customers described by a rule tree (see `campaigns.segments`)."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    rules = models.JSONField(
        default=_default_rules,
        help_text='A rule tree: {"all": [...]}, {"any": [...]}, {"not": {...}} or a rule such as '
        '{"rule": "bought_category", "category": "home-decor", "days": 90}.',
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("export_audience", "Can export a segment as a custom-audience file")]

    def __str__(self) -> str:
        return self.name


class EmailTemplate(models.Model):
    """Subject, HTML and plain-text bodies in Django's template language, rendered
    with a safe context (plain values only; see `campaigns.rendering`)."""

    name = models.CharField(max_length=200, unique=True)
    subject = models.CharField(max_length=255)
    html_body = models.TextField("HTML body")
    text_body = models.TextField("plain-text body")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Campaign(models.Model):
    class Kind(models.TextChoices):
        ONE_OFF = "one_off", "One-off"
        ABANDONED_CART = "abandoned_cart", "Abandoned cart"
        WELCOME = "welcome", "Welcome"
        WIN_BACK = "win_back", "Win-back"
        POST_PURCHASE = "post_purchase", "Post-purchase cross-sell"
        BROWSE_ABANDONMENT = "browse_abandonment", "Browse abandonment"
        BACK_IN_STOCK = "back_in_stock", "Back in stock"
        PRICE_DROP = "price_drop", "Price drop"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    FINAL_STATUSES = (Status.COMPLETED, Status.CANCELLED)

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.ONE_OFF)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DRAFT, db_index=True)
    status_note = models.CharField(max_length=500, blank=True, help_text="Why the campaign last changed state.")
    segment = models.ForeignKey(
        Segment,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="campaigns",
        help_text="Who receives it. Required for one-off campaigns; optional filter for triggered ones.",
    )
    template = models.ForeignKey(EmailTemplate, on_delete=models.PROTECT, related_name="campaigns")
    from_email = models.CharField(max_length=255, blank=True, help_text="Blank: DEFAULT_FROM_EMAIL.")
    # Recommendation strategy
    strategy = models.CharField(
        max_length=40,
        default="auto",
        help_text='"auto" (the active model with fallbacks), an algorithm name ("ease", "als", ...), '
        '"trending" or "interests".',
    )
    n_products = models.PositiveSmallIntegerField(default=6, validators=[MinValueValidator(1), MaxValueValidator(24)])
    exclude_purchased = models.BooleanField(default=True, help_text="Never recommend what the customer bought.")
    exclude_categories = models.ManyToManyField("shop.Category", blank=True, related_name="+")
    exclude_recently_sent_days = models.PositiveSmallIntegerField(
        default=0, help_text="Do not repeat products emailed to the customer in the last N days (0: off)."
    )
    # Timing
    scheduled_at = models.DateTimeField(null=True, blank=True, help_text="One-off: when to send (blank: now).")
    trigger_delay_hours = models.PositiveIntegerField(
        default=0,
        help_text="Triggered: hours after the event (cart idle, sign-up, order) before the email goes.",
    )
    inactive_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Win-back: days without an order before a customer is won back."
    )
    price_drop_min_percent = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(99)],
        help_text="Price drop: the smallest drop, in percent of the old price, that sends the email (0: any drop).",
    )
    # Measurement
    holdout_percent = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(90)],
        help_text="Share of the audience (deterministic, seeded) that is withheld to measure uplift.",
    )
    seed = models.PositiveIntegerField(default=_random_seed, help_text="Seeds holdout and variant assignment.")
    attribution_window_days = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(90)]
    )
    # Safety
    max_error_rate = models.FloatField(
        default=0.2,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Pause the campaign when this share of send attempts fails (after 20 attempts).",
    )
    # Progress (counters maintained by the senders; reports count deliveries)
    audience_size = models.PositiveIntegerField(default=0)
    sent_count = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    audience_built_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last time a sender made progress (stale senders are replaced)."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="one_off") | Q(segment__isnull=False), name="campaign_one_off_has_segment"
            ),
            models.CheckConstraint(
                condition=~Q(kind="win_back") | Q(inactive_days__gte=1), name="campaign_win_back_has_days"
            ),
            models.CheckConstraint(condition=Q(holdout_percent__lte=90), name="campaign_holdout_le_90"),
            models.CheckConstraint(
                condition=Q(n_products__gte=1) & Q(n_products__lte=24), name="campaign_n_products_1_24"
            ),
            models.CheckConstraint(
                condition=Q(max_error_rate__gte=0) & Q(max_error_rate__lte=1), name="campaign_error_rate_0_1"
            ),
            models.CheckConstraint(
                condition=Q(attribution_window_days__gte=1), name="campaign_attribution_window_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_triggered(self) -> bool:
        return self.kind != self.Kind.ONE_OFF


class Variant(models.Model):
    """An arm of an A/B test within a campaign: its own subject and/or strategy."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="variants")
    name = models.CharField(max_length=32)
    weight = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    subject = models.CharField(max_length=255, blank=True, help_text="Blank: the template's subject.")
    strategy = models.CharField(max_length=40, blank=True, help_text="Blank: the campaign's strategy.")

    class Meta:
        ordering = ["campaign", "name"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "name"], name="variant_unique_name"),
            models.CheckConstraint(condition=Q(weight__gte=1), name="variant_weight_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} / {self.name}"


class Delivery(models.Model):
    """One email of a campaign to one customer (per trigger event): the send state.

    ``pending`` -> ``sending`` (claimed under a lease, Message-ID fixed) -> ``sent``;
    or ``skipped`` (no consent, suppressed, frequency cap... checked at send time),
    ``failed`` (permanent error or out of retries), ``withheld`` (holdout: eligible
    at send time, deliberately not sent).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        WITHHELD = "withheld", "Withheld (holdout)"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"

    class SkipReason(models.TextChoices):
        NO_CONSENT = "no_consent", "No marketing consent"
        SUPPRESSED = "suppressed", "Suppressed address"
        FREQUENCY_CAP = "frequency_cap", "Frequency cap reached"
        NO_PRODUCTS = "no_products", "Nothing to recommend"
        INACTIVE = "inactive", "Customer inactive or forgotten"
        CANCELLED = "cancelled", "Campaign cancelled"

    OPEN_STATUSES = (Status.PENDING, Status.SENDING)

    # No index of their own: the composite indexes below start with these columns, and
    # every index costs a write when a row changes state.
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    # Variants cannot be deleted once a campaign has started (admin); deleting a
    # campaign takes its variants and deliveries with it.
    variant = models.ForeignKey(Variant, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    # A forgotten customer's deliveries stay (reports) without the person.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
        db_index=False,
    )
    trigger_key = models.CharField(
        max_length=100,
        blank=True,
        default="",
        help_text='The triggering event ("cart:12:1718000000", "order:77"); blank for one-off campaigns.',
    )
    is_holdout = models.BooleanField(default=False)
    email = models.EmailField(blank=True, help_text="Address the email went to (snapshot).")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    skip_reason = models.CharField(max_length=16, choices=SkipReason.choices, blank=True)
    products = models.JSONField(default=list, blank=True, help_text="Snapshot of the recommended products.")
    strategy = models.CharField(max_length=80, blank=True)
    context = models.JSONField(default=dict, blank=True, help_text="Trigger data (cart or order id).")
    message_id = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_owner = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    recovered = models.BooleanField(
        default=False, help_text="Reclaimed from a sender that died holding it (resent with the same Message-ID)."
    )
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True, help_text="When it was sent or withheld.")
    sent_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    open_count = models.PositiveIntegerField(default=0)
    clicked_at = models.DateTimeField(null=True, blank=True)
    click_count = models.PositiveIntegerField(default=0)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "user", "trigger_key"], name="delivery_once_per_campaign_user_trigger"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "sending", "sent", "withheld", "skipped", "failed"]),
                name="delivery_status_known",
            ),
            models.CheckConstraint(
                condition=~Q(status="sent") | (Q(sent_at__isnull=False) & ~Q(message_id="")),
                name="delivery_sent_has_time_and_message_id",
            ),
            models.CheckConstraint(
                condition=~Q(status="sending") | (Q(lease_owner__isnull=False) & Q(lease_expires_at__isnull=False)),
                name="delivery_sending_has_lease",
            ),
            models.CheckConstraint(
                condition=Q(is_holdout=False) | ~Q(status="sent"), name="delivery_holdout_never_sent"
            ),
        ]
        indexes = [
            # The senders' work queue: only open rows are indexed.
            models.Index(
                fields=["campaign", "id"],
                name="delivery_open_work",
                condition=Q(status__in=["pending", "sending"]),
            ),
            models.Index(fields=["user", "sent_at"], name="delivery_user_sent"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} -> {self.email or self.user_id} ({self.status})"


class TrackingEvent(models.Model):
    class Kind(models.TextChoices):
        OPEN = "open", "Open"
        CLICK = "click", "Click"
        UNSUBSCRIBE = "unsubscribe", "Unsubscribe"
        BOUNCE = "bounce", "Bounce"
        COMPLAINT = "complaint", "Complaint"

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    product = models.ForeignKey("shop.Product", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    detail = models.CharField(max_length=500, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["delivery", "kind"], name="tracking_delivery_kind"),
            models.Index(fields=["kind", "occurred_at"], name="tracking_kind_time"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of delivery {self.delivery_id}"


class Conversion(models.Model):
    """An order attributed to the email whose click came last before it, within the
    campaign's attribution window. One order is attributed at most once."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="conversions")
    order = models.OneToOneField("shop.Order", on_delete=models.CASCADE, related_name="+")
    revenue = models.DecimalField(max_digits=14, decimal_places=2)
    clicked_at = models.DateTimeField()
    ordered_at = models.DateTimeField()
    attributed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-ordered_at"]
        constraints = [
            models.CheckConstraint(condition=Q(revenue__gte=Decimal("0")), name="conversion_revenue_non_negative"),
            models.CheckConstraint(
                condition=Q(ordered_at__gte=models.F("clicked_at")), name="conversion_order_after_click"
            ),
        ]

    def __str__(self) -> str:
        return f"Order {self.order_id} <- delivery {self.delivery_id}"


class Suppression(models.Model):
    """An address that must not receive marketing email, whatever its consent says."""

    class Reason(models.TextChoices):
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained (spam report)"
        MANUAL = "manual", "Manual"

    email = models.EmailField(unique=True, help_text="Stored lower-case.")
    reason = models.CharField(max_length=12, choices=Reason.choices)
    delivery = models.ForeignKey(Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(email=models.functions.Lower("email")), name="suppression_email_lower"),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.reason})"


class ProductChange(models.Model):
    """A change of a product that can trigger emails (back in stock, price drop), and
    when the product went out of stock (the back-in-stock audience viewed it since).
    Written by `campaigns.receivers` in the transaction of the store's change."""

    class Kind(models.TextChoices):
        OUT_OF_STOCK = "out_of_stock", "Out of stock"
        BACK_IN_STOCK = "back_in_stock", "Back in stock"
        PRICE_DROP = "price_drop", "Price drop"

    product = models.ForeignKey("shop.Product", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    price_before = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    price_after = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["out_of_stock", "back_in_stock", "price_drop"]), name="product_change_kind_known"
            ),
            models.CheckConstraint(
                condition=~Q(kind="price_drop") | Q(price_after__lt=models.F("price_before")),
                name="product_change_price_drop_is_lower",
            ),
        ]
        indexes = [
            models.Index(fields=["kind", "occurred_at"], name="product_change_kind_time"),
            models.Index(fields=["product", "kind", "occurred_at"], name="product_change_product"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of product {self.product_id}"


class OutboxMessage(models.Model):
    """An email "sent" by the embedded outbox backend: stored, readable in admin."""

    message_id = models.CharField(max_length=255, db_index=True)
    from_email = models.CharField(max_length=255)
    to = models.JSONField(default=list)
    cc = models.JSONField(default=list, blank=True)
    bcc = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=998)
    headers = models.JSONField(default=dict, blank=True)
    text = models.TextField(blank=True)
    html = models.TextField(blank=True)
    sent_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-sent_at", "-id"]

    def __str__(self) -> str:
        return f"{self.subject} -> {', '.join(self.to)}"


# --- social: shared links and tagged visits (`campaigns.social`) -------------------------------
class ShareVisit(models.Model):
    """A visit through a link a customer shared (the link carries their signed id).
    The visitor is known once they log in or sign up in that session; ``signed_up``:
    their account was created after this visit."""

    sharer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="share_visits")
    channel = models.CharField(max_length=40, blank=True, help_text="Where it was shared: facebook, email, copy...")
    product = models.ForeignKey("shop.Product", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    path = models.CharField(max_length=500)
    session_key = models.CharField(max_length=40, blank=True)
    visitor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    signed_up = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["sharer", "created_at"], name="sharevisit_sharer_time"),
            models.Index(fields=["visitor", "created_at"], name="sharevisit_visitor_time"),
        ]

    def __str__(self) -> str:
        return f"Visit {self.pk} shared by {self.sharer_id}"


class ShareConversion(models.Model):
    """An order placed by a visitor who came through a shared link (the last such
    visit before the order, within SHARE_ATTRIBUTION_DAYS). One order at most once."""

    visit = models.ForeignKey(ShareVisit, on_delete=models.CASCADE, related_name="conversions")
    sharer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    order = models.OneToOneField("shop.Order", on_delete=models.CASCADE, related_name="+")
    revenue = models.DecimalField(max_digits=14, decimal_places=2)
    ordered_at = models.DateTimeField()

    class Meta:
        ordering = ["-ordered_at"]
        constraints = [
            models.CheckConstraint(condition=Q(revenue__gte=Decimal("0")), name="shareconversion_revenue_non_negative"),
        ]

    def __str__(self) -> str:
        return f"Order {self.order_id} <- shared by {self.sharer_id}"


class TaggedVisit(models.Model):
    """A visit that arrived with UTM parameters (our emails' links, shared links, ads).
    ``campaign`` is set when utm_campaign names one of ours (``...-c<id>``);
    ``utm_content`` says which link or placement it came from."""

    utm_source = models.CharField(max_length=100)
    utm_medium = models.CharField(max_length=100, blank=True)
    utm_campaign = models.CharField(max_length=100, blank=True)
    utm_content = models.CharField(max_length=100, blank=True)
    utm_term = models.CharField(max_length=100, blank=True)
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="visits")
    path = models.CharField(max_length=500)
    session_key = models.CharField(max_length=40, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["campaign", "created_at"], name="taggedvisit_campaign_time"),
            models.Index(fields=["utm_source", "utm_medium", "created_at"], name="taggedvisit_source_time"),
        ]

    def __str__(self) -> str:
        return f"{self.utm_source}/{self.utm_medium} {self.utm_campaign}"
