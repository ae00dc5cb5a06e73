"""Periodic tasks are declared once (shop/schedule.py) and installed after migrate."""

import json

import pytest
from celery import current_app
from django_celery_beat.models import PeriodicTask

from shop.schedule import PERIODIC_TASKS, periodic_tasks_install

pytestmark = pytest.mark.django_db


def test_every_declared_task_exists_after_migrate_and_names_a_registered_celery_task():
    current_app.loader.import_default_modules()  # the apps' tasks modules, as a worker loads them
    for entry in PERIODIC_TASKS:
        task = PeriodicTask.objects.get(name=entry.name)
        assert task.task == entry.task
        assert task.enabled
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
