"""Every periodic task of Affinity, declared in one place.

Celery beat runs with django-celery-beat's database scheduler, so staff can change
times, arguments or switch an entry off in Admin -> Periodic tasks. The entries below
are what a new database starts with: ``periodic_tasks_install`` (run after every
``migrate``) creates the ones that are missing by name and never touches one that
exists, so an edit made in admin survives upgrades. Tasks are named by their Celery
name (a string): the project package imports no app for this.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks


@dataclass(frozen=True)
class PeriodicEntry:
    name: str
    task: str
    description: str
    every_seconds: int | None = None  # an interval schedule ...
    crontab: dict[str, str] | None = None  # ... or a crontab (minute, hour, ...)
    kwargs: dict[str, Any] = field(default_factory=dict)
    # Work only Redis gives: enabled exactly when REDIS_URL is set, at every install (so a
    # store run without Redis does not wake a worker every few seconds to do nothing).
    needs_redis: bool = False


PERIODIC_TASKS: tuple[PeriodicEntry, ...] = (
    PeriodicEntry(
        name="Train recommendation models nightly",
        task="recommendations.train_scheduled",
        crontab={"minute": "30", "hour": "2"},
        kwargs={"algorithm": "auto", "params": {}, "slot": "default"},
        description="Trains a new model version every night at 02:30; it replaces the active one only if it "
        "scores a better NDCG@10 on the temporal holdout. Edit the time or the kwargs here.",
    ),
    PeriodicEntry(
        name="Write queued recommendation impressions",
        task="recommendations.impressions_drain",
        every_seconds=5,
        description="Moves the recommendation lists shown (queued in Redis by the web processes) into the "
        "database in batches. Enabled only when REDIS_URL is set: without Redis, lists are written directly.",
        needs_redis=True,
    ),
    PeriodicEntry(
        name="Find suspected bots and noise",
        task="recommendations.noise_refresh",
        every_seconds=600,
        description="Every 10 minutes: applies the AFFINITY_NOISE_* rules to the events and stores who is left "
        "out of trending (training applies them itself), then the products' popularity groups that placements' "
        "long-tail re-ranking uses (in the cache and in the database: serving only reads them). "
        "Nothing is deleted.",
    ),
    PeriodicEntry(
        name="Fail training runs whose worker stopped",
        task="recommendations.stale_runs_fail",
        every_seconds=60,
        description="Every minute: a training run with no heartbeat for AFFINITY_TRAIN_HEARTBEAT_TIMEOUT seconds "
        "(its worker was killed) is marked failed; the active model keeps serving.",
    ),
    PeriodicEntry(
        name="campaigns: launch due campaigns, evaluate triggers, attribute orders",
        task="campaigns.tick",
        every_seconds=120,
        description="Every 2 minutes: launch scheduled campaigns, evaluate triggered flows, "
        "pick up stalled sending, complete campaigns, attribute orders to email clicks.",
    ),
    PeriodicEntry(
        name="Delete abandoned anonymous carts",
        task="shop.carts_expire",
        crontab={"minute": "15", "hour": "3"},
        kwargs={"days": 30},
        description="Every night at 03:15: deletes anonymous carts untouched for 30 days (customers' carts are kept).",
    ),
    PeriodicEntry(
        name="Predict customers' activity and value nightly",
        task="recommendations.customer_predictions_scheduled",
        crontab={"minute": "45", "hour": "3"},
        kwargs={"model": ""},
        description="Every night at 03:45: refits BG/NBD + Gamma-Gamma on the order history and stores each "
        "customer's probability of being active, expected purchases (90 days) and predicted value. "
        "kwargs model: 'mbgnbd' or 'bgnbd' ('' = AFFINITY_PREDICTION_MODEL).",
    ),
)


def _schedule_for(entry: PeriodicEntry) -> dict[str, Any]:
    if entry.crontab is not None:
        fields = {"minute": "*", "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"}
        fields.update(entry.crontab)
        crontab, _ = CrontabSchedule.objects.get_or_create(**fields, timezone=settings.TIME_ZONE)
        return {"crontab": crontab}
    if entry.every_seconds is None:
        raise ValueError(f"periodic task {entry.name!r} has neither an interval nor a crontab")
    every, period = entry.every_seconds, IntervalSchedule.SECONDS
    if every % 60 == 0:
        every, period = every // 60, IntervalSchedule.MINUTES
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
    return {"interval": interval}


@transaction.atomic
def periodic_tasks_install(*, entries: tuple[PeriodicEntry, ...] = PERIODIC_TASKS) -> list[str]:
    """Create the declared periodic tasks that do not exist yet; return their names.
    An entry that ``needs_redis`` is switched on or off to match ``REDIS_URL``."""
    existing = set(PeriodicTask.objects.filter(name__in=[e.name for e in entries]).values_list("name", flat=True))
    redis = bool(settings.REDIS_URL)
    created = []
    for entry in entries:
        if entry.name in existing:
            if entry.needs_redis:
                if PeriodicTask.objects.filter(name=entry.name).exclude(enabled=redis).update(enabled=redis):
                    PeriodicTasks.update_changed()  # a running beat re-reads its schedule
            continue
        PeriodicTask.objects.create(
            name=entry.name,
            task=entry.task,
            kwargs=json.dumps(entry.kwargs),
            description=entry.description,
            enabled=redis or not entry.needs_redis,
            **_schedule_for(entry),
        )
        created.append(entry.name)
    return created
