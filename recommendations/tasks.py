"""Background jobs of the recommendations app. Thin: take ids, call a service.

Low-level modules never import this one; ``services`` (and the signal receivers)
enqueue these tasks after commit."""

from __future__ import annotations

import logging

from celery import shared_task

from . import conf, impressions, training, versions
from .models import ModelVersion

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


@shared_task(name="recommendations.stale_runs_fail", ignore_result=True, soft_time_limit=60, time_limit=90)
def stale_runs_fail_task() -> list[int]:
    """Fail training runs whose worker stopped (no heartbeat in time; every minute, from beat)."""
    return versions.stale_runs_fail()
