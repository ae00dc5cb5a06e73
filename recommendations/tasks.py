"""Background jobs of the recommendations app. Thin: take ids, call a service.

Low-level modules never import this one; ``services`` (and the signal receivers)
enqueue these tasks after commit."""

from __future__ import annotations

import logging

from celery import shared_task

from . import conf, impressions, long_tail, model_cache, noise, predictions, serving_aids, training, trending, versions
from .models import ModelVersion, PredictionRun, ServingAid

logger = logging.getLogger(__name__)


@shared_task(
    name="recommendations.model_train",
    acks_late=True,
    soft_time_limit=conf.get("TRAIN_SOFT_TIME_LIMIT"),
    time_limit=conf.get("TRAIN_TIME_LIMIT"),
)
def model_train_task(version_id: int) -> str:
    """Train a queued model version (safe to run twice: a finished one is left alone)."""
    version = training.model_train(version_id=version_id)
    return version.status if version is not None else "missing"


@shared_task(
    name="recommendations.train_scheduled",
    acks_late=True,
    soft_time_limit=conf.get("TRAIN_SOFT_TIME_LIMIT"),
    time_limit=conf.get("TRAIN_TIME_LIMIT"),
)
def train_scheduled_task(algorithm: str = "auto", params: dict | None = None, slot: str = "default") -> int:
    """The nightly run (a django-celery-beat PeriodicTask staff edit in admin)."""
    version = versions.model_version_create(
        algorithm=algorithm, params=params or {}, slot=slot, trigger=ModelVersion.Trigger.SCHEDULE
    )
    training.model_train(version_id=version.pk)
    return version.pk


@shared_task(name="recommendations.impressions_drain", ignore_result=True, soft_time_limit=120, time_limit=150)
def impressions_drain_task() -> int:
    """Move the queued impressions into the database (every few seconds, from beat)."""
    return impressions.drain()


@shared_task(name="recommendations.noise_refresh", ignore_result=True, soft_time_limit=300, time_limit=330)
def noise_refresh_task() -> int:
    """Find suspected bots and noise again for trending and serving, then the long-tail
    groups (popularity without them) for re-ranking (every 10 minutes, from beat)."""
    if serving_aids.computed_within("noise", 120):  # queued again by another process meanwhile
        logger.info("noise refresh skipped: computed less than 2 minutes ago")
        return -1
    found = noise.noise_refresh()
    long_tail.groups_refresh()
    return len(found.users) + len(found.sessions)


@shared_task(name="recommendations.trending_refresh", ignore_result=True, soft_time_limit=300, time_limit=330)
def trending_refresh_task() -> int:
    """Compute trending for the current serving epoch (queued by serving when its list
    is stale: serving never makes a shopper wait for it)."""
    epoch = model_cache.epoch_read()
    last = ServingAid.objects.filter(name="trending").values_list("payload", flat=True).first()
    if last is not None and last.get("epoch") == epoch and serving_aids.computed_within("trending", 30):
        return -1  # queued again by another process meanwhile
    return len(trending.trending_refresh(epoch=epoch))


@shared_task(name="recommendations.stale_runs_fail", ignore_result=True, soft_time_limit=60, time_limit=90)
def stale_runs_fail_task() -> list[int]:
    """Fail training runs whose worker stopped (no heartbeat in time; every minute, from beat)."""
    return versions.stale_runs_fail()


@shared_task(name="recommendations.customer_predictions", acks_late=True, soft_time_limit=3600, time_limit=3700)
def customer_predictions_task(run_id: int) -> str:
    """Compute a queued customer-prediction run (safe to run twice: a finished one is left alone)."""
    run = predictions.predictions_compute(run_id=run_id)
    return run.status if run is not None else "missing"


@shared_task(
    name="recommendations.customer_predictions_scheduled", acks_late=True, soft_time_limit=3600, time_limit=3700
)
def customer_predictions_scheduled_task(model: str = "") -> int:
    """The nightly run (a django-celery-beat PeriodicTask staff edit in admin)."""
    run = predictions.prediction_run_create(model=model or None, trigger=PredictionRun.Trigger.SCHEDULE)
    predictions.predictions_compute(run_id=run.pk)
    return run.pk
