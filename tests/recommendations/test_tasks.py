"""The nightly schedule (a django-celery-beat PeriodicTask staff edit) and the tasks."""

from __future__ import annotations

import json

import pytest
from django_celery_beat.models import PeriodicTask

from recommendations.models import ModelVersion
from recommendations.tasks import model_train_task, train_scheduled_task

pytestmark = pytest.mark.django_db


def test_a_nightly_training_is_scheduled_by_default():
    task = PeriodicTask.objects.get(task="recommendations.train_scheduled")
    assert task.enabled and task.crontab is not None
    assert (task.crontab.hour, task.crontab.minute) == ("2", "30")
    assert json.loads(task.kwargs) == {"algorithm": "auto", "params": {}, "slot": "default"}
    from shop.celery import app

    assert "recommendations.train_scheduled" in app.tasks  # beat can send it to a worker


def test_the_scheduled_task_trains_a_version(store):
    version_id = train_scheduled_task.run(algorithm="item_knn", params={"k": 20})
    version = ModelVersion.objects.get(pk=version_id)
    assert version.trigger == "schedule" and version.status == "succeeded" and version.is_active


def test_the_train_task_is_idempotent(store):
    version = ModelVersion.objects.create(algorithm="popularity", requested_algorithm="popularity")
    assert model_train_task.run(version.pk) == "succeeded"
    version.refresh_from_db()
    finished_at = version.finished_at
    assert model_train_task.run(version.pk) == "succeeded"  # a redelivery does nothing
    version.refresh_from_db()
    assert version.finished_at == finished_at
    assert model_train_task.run(10**9) == "missing"
