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
from django.db.models import Q
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
