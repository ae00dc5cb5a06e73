"""Periodic tasks are declared once (shop/schedule.py) and installed after migrate."""

import json

import pytest
from celery import current_app
from django.conf import settings
from django_celery_beat.models import PeriodicTask

from shop.schedule import PERIODIC_TASKS, periodic_tasks_install

pytestmark = pytest.mark.django_db


def test_every_declared_task_exists_after_migrate_and_names_a_registered_celery_task():
    current_app.loader.import_default_modules()  # the apps' tasks modules, as a worker loads them
    for entry in PERIODIC_TASKS:
        task = PeriodicTask.objects.get(name=entry.name)
        assert task.task == entry.task
        assert task.enabled == (bool(settings.REDIS_URL) or not entry.needs_redis)
        assert json.loads(task.kwargs) == entry.kwargs
        assert entry.task in current_app.tasks, f"{entry.task} is not a registered Celery task"


def test_install_keeps_what_staff_changed_and_restores_what_they_deleted():
    nightly = PeriodicTask.objects.get(task="recommendations.train_scheduled")
    nightly.enabled = False
    nightly.kwargs = json.dumps({"algorithm": "ease"})
    nightly.save()
    PeriodicTask.objects.filter(task="shop.carts_expire").delete()

    created = periodic_tasks_install()

    assert created == ["Delete abandoned anonymous carts"]
    nightly.refresh_from_db()
    assert nightly.enabled is False and json.loads(nightly.kwargs) == {"algorithm": "ease"}
    assert PeriodicTask.objects.filter(task="shop.carts_expire").count() == 1
    assert periodic_tasks_install() == []


def test_the_impressions_drain_runs_only_where_there_is_a_queue(settings):
    """Without Redis the drain has nothing to do: it is not scheduled (no worker woken every
    5 seconds to log "succeeded: 0"); with Redis it is, at the next install."""
    drain = PeriodicTask.objects.get(task="recommendations.impressions_drain")
    settings.REDIS_URL = ""
    periodic_tasks_install()
    drain.refresh_from_db()
    assert drain.enabled is False
    assert PeriodicTask.objects.get(task="campaigns.tick").enabled  # the others are left alone
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    periodic_tasks_install()
    drain.refresh_from_db()
    assert drain.enabled is True
