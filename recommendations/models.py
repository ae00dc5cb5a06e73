"""What the recommendations app stores: trained model versions, the lists it showed
(impressions, for attribution), on-site A/B experiments, and forgotten customers.

Rules that must always hold are database constraints: one active model per slot,
only a succeeded version can be active, progress within 0..100, positive variant
weights, one variant name per experiment.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

DEFAULT_SLOT = "default"


def artifact_upload_to(instance: ModelVersion, filename: str) -> str:
    """Artifacts live under ``settings.AFFINITY_ARTIFACT_DIR`` in the default storage."""
    return f"{settings.AFFINITY_ARTIFACT_DIR.strip('/')}/{filename}"


class ModelVersion(models.Model):
    """One training run: what was trained on which data, how well it did, and its
    artifact. At most one version per slot is active (the one that serves)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        ADMIN = "admin", "Admin"
        API = "api", "API"
        COMMAND = "command", "Command"
        SCHEDULE = "schedule", "Schedule"
        PRIVACY = "privacy", "Forgotten customer"

    algorithm = models.CharField(
        max_length=40, help_text='Engine algorithm name, or "auto" until model selection has chosen one.'
    )
    requested_algorithm = models.CharField(
        max_length=40, blank=True, help_text='What was asked for ("auto" = automatic model selection).'
    )
    params = models.JSONField(default=dict, blank=True)
    protocol = models.CharField(
        max_length=20,
        blank=True,
        help_text="Holdout protocol asked for (temporal, random-per-user, leave-last-out); blank = chosen from "
        "the data's shape. The one used and why are in the metrics (protocol, protocol_reason).",
    )
    slot = models.SlugField(
        max_length=40,
        default=DEFAULT_SLOT,
        db_index=True,
        help_text='Serving slot; "default" is what shoppers see unless a strategy or experiment says otherwise.',
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0, validators=[MinValueValidator(0), MaxValueValidator(100)])
    stage = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.COMMAND)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # data window and sizes
    data_since = models.DateTimeField(null=True, blank=True, help_text="Oldest interaction used (none: all).")
    data_until = models.DateTimeField(null=True, blank=True, help_text="Newest interaction used.")
    data_read_at = models.DateTimeField(null=True, blank=True, help_text="When the interactions were read.")
    n_users = models.PositiveIntegerField(default=0)
    n_items = models.PositiveIntegerField(default=0)
    n_interactions = models.PositiveBigIntegerField(default=0)
    # results
    metrics = models.JSONField(default=dict, blank=True, help_text="Offline metrics on the temporal holdout.")
    timings = models.JSONField(default=dict, blank=True, help_text="Seconds per training stage.")
    training_seconds = models.FloatField(null=True, blank=True)
    artifact = models.FileField(upload_to=artifact_upload_to, max_length=255, blank=True)
    artifact_size = models.PositiveBigIntegerField(default=0)
    # serving
    is_active = models.BooleanField(default=False)
    activated_at = models.DateTimeField(null=True, blank=True)
    activation_note = models.CharField(max_length=255, blank=True)
    tainted_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Set when a forgotten customer's data is in this version: it never serves again.",
    )
    task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Last sign of life of a running training; a run silent for TRAIN_HEARTBEAT_TIMEOUT seconds "
        "is marked failed (its worker stopped).",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = "created_at"
        constraints = [
            models.UniqueConstraint(
                fields=["slot"], condition=Q(is_active=True), name="model_version_one_active_per_slot"
            ),
            models.CheckConstraint(
                condition=Q(is_active=False) | (Q(status="succeeded") & Q(tainted_at__isnull=True)),
                name="model_version_active_is_clean_success",
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="model_version_progress_0_100"),
            models.CheckConstraint(
                condition=Q(status__in=["queued", "running", "succeeded", "failed"]),
                name="model_version_status_known",
            ),
        ]
        indexes = [models.Index(fields=["algorithm", "status"], name="model_version_algo_status")]

    def __str__(self) -> str:
        return f"{self.algorithm}#{self.pk} ({self.slot}, {self.status})"

    @property
    def label(self) -> str:
        return f"{self.algorithm}#{self.pk}"

    @property
    def ndcg(self) -> float | None:
        value = (self.metrics or {}).get("ndcg@10")
        return float(value) if value is not None else None

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)


class Impression(models.Model):
    """One recommendation list shown to a shopper. Its id travels with clicks
    (``Interaction.rec_list_id``) and orders (``OrderLine.rec_list_id``), so both are
    attributed to the strategy, model version and A/B variant that produced it.

    ``user_id`` is a plain id (not a foreign key): a list shown to a stale user object
    must not fail, and a forgotten customer's rows are deleted by the signal handler.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    user_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    session_key = models.CharField(max_length=64, blank=True)
    context = models.CharField(max_length=16)
    strategy = models.CharField(max_length=80)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="impressions"
    )
    experiment = models.ForeignKey(
        "Experiment", null=True, blank=True, on_delete=models.SET_NULL, related_name="impressions"
    )
    variant = models.CharField(max_length=40, blank=True)
    product_ids = models.JSONField(default=list)
    reason_codes = models.JSONField(default=list)
    placement = models.CharField(
        max_length=40, blank=True, default="", help_text="The placement served (its key), if any."
    )
    rule_ids = models.JSONField(
        default=list, blank=True, help_text="The merchandising rules that changed this list (ids)."
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["experiment", "variant"], name="impression_experiment_variant")]
        permissions = [
            ("view_recommendations", "Can fetch recommendations for any customer or session"),
        ]

    def __str__(self) -> str:
        return f"{self.context} list {str(self.id)[:8]} ({self.strategy})"


class Experiment(models.Model):
    """An on-site A/B test: shoppers are split between variants deterministically
    (hash of the experiment key and the user id or session key)."""

    name = models.CharField(max_length=120)
    key = models.SlugField(
        max_length=60, unique=True, help_text="Salt of the assignment hash; never change it mid-test."
    )
    context = models.CharField(
        max_length=16,
        blank=True,
        help_text='Only lists of this context ("home", "product", ...) take part; blank = every context.',
    )
    is_active = models.BooleanField(default=False)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["context"], condition=Q(is_active=True), name="experiment_one_active_per_context"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ExperimentVariant(models.Model):
    """One arm: served by a fixed model version, or by a strategy (``"auto"``,
    an algorithm name, ``"trending"``, ``"interests"``)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    name = models.SlugField(max_length=40)
    weight = models.PositiveIntegerField(default=1, help_text="Relative share of shoppers.")
    strategy = models.CharField(max_length=40, blank=True, help_text='e.g. "auto", "ease", "trending".')
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="variants"
    )

    class Meta:
        ordering = ["experiment", "id"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="experiment_variant_unique_name"),
            models.CheckConstraint(condition=Q(weight__gte=1), name="experiment_variant_weight_positive"),
            models.CheckConstraint(
                condition=~Q(strategy="") | Q(model_version__isnull=False),
                name="experiment_variant_has_strategy_or_model",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.experiment}: {self.name}"


class ForgottenUser(models.Model):
    """A customer erased with ``shop.services.user_forget`` (only the bare id is kept).
    Training runs that read data before this moment are not activated; versions that
    contained their data were retired when it was recorded."""

    user_id = models.BigIntegerField(db_index=True)
    forgotten_at = models.DateTimeField(default=timezone.now, db_index=True)
    had_interactions = models.BooleanField(
        default=False, help_text="Whether any of their events could have been read by a training run."
    )
    retired_versions = models.JSONField(default=list, blank=True, help_text="Model versions retired at that moment.")
    retrain_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The retraining queued because of it.",
    )

    class Meta:
        ordering = ["-forgotten_at"]

    def __str__(self) -> str:
        return f"user {self.user_id} forgotten at {self.forgotten_at:%Y-%m-%d %H:%M}"


class ServingAid(models.Model):
    """What serving reads but never computes in a request (``recommendations.serving_aids``):
    the suspected noise, the long-tail popularity groups, the last trending list. One row
    per aid, replaced by the task that computes it; every process reads the same rows."""

    name = models.CharField(max_length=40, primary_key=True)
    payload = models.JSONField()
    computed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.computed_at:%Y-%m-%d %H:%M})"


class ServingState(models.Model):
    """A single row whose ``epoch`` changes whenever what may be served changes
    (activation, retirement, experiments, a forgotten customer). Serving processes
    compare it to refresh their in-memory caches."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    epoch = models.PositiveBigIntegerField(default=1)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(id=1), name="serving_state_singleton")]

    def __str__(self) -> str:
        return f"serving state, epoch {self.epoch}"


class Placement(models.Model):
    """A named place where a recommendation list is shown (the home page's "for you",
    a product page's "also bought", an email...): what produces it (``strategy``), how
    many products, what fills in when it is short (``fallbacks``), the long-tail
    re-ranking weight. Rules apply to a placement through ``MerchandisingRule.placements``
    (a rule with no placement applies everywhere). Served by ``placements.serve``."""

    class Strategy(models.TextChoices):
        PERSONAL = "personal", "Personal (the shopper's history)"
        SIMILAR = "similar", "Similar items (content)"
        ALSO_BOUGHT = "also_bought", "Also bought (co-behaviour)"
        TRENDING = "trending", "Trending"
        NEW_ARRIVALS = "new_arrivals", "New arrivals"
        NEIGHBOURS = "neighbours", "Shoppers like you (customer neighbours)"

    key = models.SlugField(max_length=40, unique=True, help_text='How code and the API name it, e.g. "home".')
    name = models.CharField(max_length=120, help_text="Shown to staff (and as the shelf's title on the store).")
    strategy = models.CharField(max_length=20, choices=Strategy.choices, default=Strategy.PERSONAL)
    size = models.PositiveSmallIntegerField(
        default=8, validators=[MinValueValidator(1), MaxValueValidator(100)], help_text="Products in the list."
    )
    fallbacks = models.JSONField(
        default=list,
        blank=True,
        help_text='Strategies tried in order while the list is short, e.g. ["also_bought", "trending"].',
    )
    long_tail_weight = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="0 = off; up to 1: how strongly less popular products are favoured (popularity calibration).",
    )
    is_active = models.BooleanField(default=True, help_text="An inactive placement shows nothing.")
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(condition=Q(size__gte=1) & Q(size__lte=100), name="placement_size_1_100"),
            models.CheckConstraint(
                condition=Q(long_tail_weight__gte=0) & Q(long_tail_weight__lte=1), name="placement_long_tail_0_1"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"


class MerchandisingRule(models.Model):
    """A merchandiser's rule, live between ``starts_at`` and ``ends_at``: boost or bury
    the products matching ``condition`` by ``weight``, show only them (include) or never
    (exclude), or pin ``product`` at ``position``. ``condition`` is a condition tree in
    the rule language of ``recommendations.rules`` (validated there on save)."""

    class Action(models.TextChoices):
        BOOST = "boost", "Boost"
        BURY = "bury", "Bury"
        INCLUDE = "include", "Include only"
        EXCLUDE = "exclude", "Exclude"
        PIN = "pin", "Pin a product"

    name = models.CharField(max_length=120)
    action = models.CharField(max_length=10, choices=Action.choices)
    condition = models.JSONField(
        default=dict,
        blank=True,
        help_text='Which products: e.g. {"category": [3]}, {"price": {"max": 10}}, {"new_days": 30}, '
        '{"stock": {"min": 50}}, {"attribute": {"key": "colour", "in": ["red"]}}, {"all": [...]}, '
        '{"any": [...]}, {"not": {...}}. Not used by pins.',
    )
    weight = models.FloatField(
        default=0.2,
        validators=[MinValueValidator(0.0), MaxValueValidator(10.0)],
        help_text="Boost/bury: 1.0 moves a product past the whole list; 0.1 about a tenth of it.",
    )
    product = models.ForeignKey(
        "shop.Product",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Pin: the product.",
    )
    position = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1)], help_text="Pin: its position, 1 = first."
    )
    placements = models.ManyToManyField(
        Placement, blank=True, related_name="rules", help_text="Where it applies; none = every list."
    )
    starts_at = models.DateTimeField(null=True, blank=True, help_text="Empty: from now.")
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Empty: until switched off.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(action__in=["boost", "bury", "include", "exclude", "pin"]), name="rule_action_known"
            ),
            models.CheckConstraint(
                condition=~Q(action="pin") | (Q(product__isnull=False) & Q(position__gte=1)),
                name="rule_pin_has_product_and_position",
            ),
            models.CheckConstraint(
                condition=Q(starts_at__isnull=True) | Q(ends_at__isnull=True) | Q(ends_at__gt=F("starts_at")),
                name="rule_window_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()}: {self.name}"


class PredictionRun(models.Model):
    """One computation of the customer predictions (``recommendations.predictions``):
    the fitted models, what they were fitted on, and the progress while it runs. The
    predictions themselves live on ``shop.CustomerPrediction``."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual"
        SCHEDULE = "schedule", "Schedule"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    progress = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])
    stage = models.CharField(max_length=200, blank=True, help_text="What the run is doing (or did last).")
    transactions_model = models.CharField(
        max_length=16, default="mbgnbd", help_text="bgnbd or mbgnbd: the model of the purchase rhythm."
    )
    source = models.CharField(max_length=16, blank=True, help_text="orders, or purchase events when no orders.")
    data_end = models.DateTimeField(null=True, blank=True, help_text="The end of the history used (now).")
    params = models.JSONField(default=dict, blank=True, help_text="Fitted parameters and log-likelihoods.")
    customers = models.PositiveIntegerField(default=0, help_text="Customers with a prediction.")
    repeat_customers = models.PositiveIntegerField(default=0, help_text="Of them, with a repeat purchase.")
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "customer prediction run"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(progress__lte=100), name="prediction_run_progress_0_100"),
        ]

    def __str__(self) -> str:
        return f"Customer predictions #{self.pk} ({self.status})"
