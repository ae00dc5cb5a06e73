"""Training and activation through a REAL Celery worker process (Redis broker,
the test database), and serving in this process picking up what the worker did."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from django.db import transaction

from recommendations import services, versions
from recommendations.models import ModelVersion
from recommendations.tasks import model_train_task
from tests.conftest import ROOT, child_env, wait_for
from tests.recommendations.conftest import build_store

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def tstore(transactional_db):
    return build_store(n_customers=48)


@pytest.fixture
def worker(celery_worker_factory, settings):
    # the worker writes artifacts where this process reads them
    return celery_worker_factory(MEDIA_ROOT=settings.MEDIA_ROOT)


def finished(version_id: int):
    version = ModelVersion.objects.get(pk=version_id)
    return version if version.is_finished else None


def test_training_end_to_end_through_the_worker(tstore, worker):
    user = tstore.customers[0]
    before = services.recommend_for_user(user=user, n=4)
    assert before.model_version_id is None  # nothing trained yet: fallbacks serve
    with transaction.atomic():
        version = services.model_version_create(
            algorithm="item_knn", params={"k": 20}, trigger=ModelVersion.Trigger.API
        )
        services.model_train_enqueue(version=version)
    version = wait_for(
        lambda: finished(version.pk), timeout=120, what=f"training of version {version.pk}\n{worker.log()}"
    )
    assert version.status == "succeeded", version.error
    assert version.is_active and version.task_id and version.progress == 100
    assert version.metrics["ndcg@10"] > 0
    # this process sees the activation on its next call and loads the worker's artifact
    after = services.recommend_for_user(user=user, n=4)
    assert after.model_version_id == version.pk and after.strategy == f"model:item_knn#{version.pk}"
    assert set(p.product.category_id for p in after.picks[:3]) == {tstore.taste(user).pk}


def test_activation_in_the_worker_refreshes_serving_here(tstore, worker):
    first = services.model_train(version_id=services.model_version_create(algorithm="popularity").pk)
    assert first.is_active
    user = tstore.customers[1]
    assert services.recommend_for_user(user=user).model_version_id == first.pk  # loaded and cached here
    with transaction.atomic():  # the challenger is trained, and beats the champion, in the worker
        second = services.model_version_create(algorithm="item_knn", params={"k": 20})
        services.model_train_enqueue(version=second)
    wait_for(
        lambda: ModelVersion.objects.filter(pk=second.pk, is_active=True).exists(),
        timeout=120,
        what=f"training and activation by the worker\n{worker.log()}",
    )
    assert services.recommend_for_user(user=user).model_version_id == second.pk


def test_a_timed_out_run_fails_and_the_active_model_keeps_serving(tstore, worker):
    active = services.model_train(version_id=services.model_version_create(algorithm="item_knn", params={"k": 20}).pk)
    slow = services.model_version_create(
        algorithm="als", params={"iterations": 1000, "factors": 1024, "num_threads": 1}
    )
    model_train_task.apply_async(args=[slow.pk], soft_time_limit=3, time_limit=60)
    slow = wait_for(lambda: finished(slow.pk), timeout=90, what=f"the soft time limit\n{worker.log()}")
    assert slow.status == "failed" and "timed out" in slow.error and "soft time limit" in slow.error
    assert not slow.is_active and not slow.artifact
    active.refresh_from_db()
    assert active.is_active
    assert services.recommend_for_user(user=tstore.customers[2]).model_version_id == active.pk


SLOW_ALS = '{"iterations": 1000, "factors": 1024, "num_threads": 1}'  # minutes on any machine


def test_a_hard_killed_training_is_failed_by_the_heartbeat_sweep(tstore, settings, tmp_path):
    active = services.model_train(version_id=services.model_version_create(algorithm="item_knn", params={"k": 20}).pk)
    assert active.is_active
    log = tmp_path / "train.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "train", "--algorithm", "als", "--params", SLOW_ALS, "--skip-checks"],
            cwd=ROOT,
            env=child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        running = wait_for(
            lambda: ModelVersion.objects.filter(algorithm="als", status="running", heartbeat_at__isnull=False).first(),
            timeout=60,
            what=f"the training to run\n{log.read_text(errors='replace')}",
        )
        first_beat = running.heartbeat_at
        wait_for(  # a live run keeps beating
            lambda: ModelVersion.objects.filter(pk=running.pk, heartbeat_at__gt=first_beat).exists(),
            timeout=60,
            what=f"a second heartbeat\n{log.read_text(errors='replace')}",
        )
        assert proc.poll() is None, log.read_text(errors="replace")
        os.killpg(proc.pid, signal.SIGKILL)  # as the OOM killer or a lost node would
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    killed = ModelVersion.objects.get(pk=running.pk)
    assert killed.status == "running"  # nobody could record the death...
    settings.AFFINITY_TRAIN_HEARTBEAT_TIMEOUT = 1
    assert versions.stale_runs_fail() in ([], [killed.pk])  # maybe too early: the last beat was < 1s ago
    time.sleep(1.2)
    versions.stale_runs_fail()  # ... until the sweep sees the silence
    killed.refresh_from_db()
    assert killed.status == "failed" and killed.finished_at is not None
    assert killed.error.startswith(
        f"worker stopped: no heartbeat since {killed.heartbeat_at.isoformat(timespec='seconds')}"
    ), killed.error
    assert not killed.is_active and not killed.artifact
    active.refresh_from_db()
    assert active.is_active and active.status == "succeeded"
    assert services.recommend_for_user(user=tstore.customers[3]).model_version_id == active.pk
