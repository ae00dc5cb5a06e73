"""Model versions (recommendations.versions): creation checks, champion/challenger,
staff activation, one active version per slot, pruning."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from recommendations import services, training, versions
from recommendations.models import ModelVersion

from .conftest import train

pytestmark = pytest.mark.django_db


def test_a_worse_model_does_not_replace_a_better_one(store):
    good = train("item_knn", {"k": 20})
    assert good.is_active
    worse = train("popularity")
    assert worse.status == "succeeded"
    assert worse.ndcg < good.ndcg
    worse.refresh_from_db()
    good.refresh_from_db()
    assert good.is_active and not worse.is_active
    assert worse.activation_note.startswith(f"kept item_knn#{good.pk}")
    # staff can still activate it by hand
    services.model_version_activate(version=worse)
    good.refresh_from_db()
    worse.refresh_from_db()
    assert worse.is_active and not good.is_active


def test_a_better_model_replaces_the_active_one(store):
    bad = train("popularity")
    assert bad.is_active
    better = train("item_knn", {"k": 20})
    bad.refresh_from_db()
    assert better.is_active and not bad.is_active
    assert "beats popularity#" in better.activation_note


def test_bad_algorithm_or_params_are_rejected_before_queueing(db):
    with pytest.raises(services.TrainingError, match="unknown algorithm 'deep'"):
        services.model_version_create(algorithm="deep")
    with pytest.raises(services.TrainingError, match="lam must be > 0"):
        services.model_version_create(algorithm="ease", params={"lam": -1})
    with pytest.raises(services.TrainingError, match="unknown parameter"):
        services.model_version_create(algorithm="ease", params={"lambda": 3})
    with pytest.raises(services.TrainingError, match="slot"):
        services.model_version_create(algorithm="ease", slot="not a slug!")
    assert ModelVersion.objects.count() == 0


def test_manual_activation_rules(store):
    failed = train("ease", {"max_items": 5})
    with pytest.raises(services.TrainingError, match="failed, not succeeded"):
        services.model_version_activate(version=failed)
    ok = train("item_knn", {"k": 20})
    ModelVersion.objects.filter(pk=ok.pk).update(is_active=False)
    default_storage.delete(ok.artifact.name)
    with pytest.raises(services.TrainingError, match="pruned"):
        services.model_version_activate(version=ok)


def test_one_active_version_per_slot_is_a_database_rule(store):
    a = train("item_knn", {"k": 20})
    b = train("popularity")
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=b.pk).update(is_active=True)
    other_slot = train("popularity", slot="email")
    assert other_slot.is_active and a.is_active  # one per slot
    with pytest.raises(IntegrityError), transaction.atomic():  # only a clean success can be active
        ModelVersion.objects.create(algorithm="x", status="failed", is_active=True, slot="x")


def test_old_artifacts_are_pruned(store, settings):
    settings.AFFINITY_ARTIFACT_KEEP = 2
    versions = [train("popularity") for _ in range(4)]
    names = [v.artifact.name for v in versions]
    for v in versions:
        v.refresh_from_db()
    active = [v for v in versions if v.is_active]
    assert len(active) == 1
    kept = [v for v in versions if v.artifact]
    assert len(kept) == 2 and active[0] in kept
    for v, name in zip(versions, names, strict=True):
        assert default_storage.exists(name) == bool(v.artifact)


# --- runs whose worker stopped (heartbeat) ---------------------------------------------------
def test_the_sweep_fails_only_running_versions_silent_for_longer_than_the_timeout(store, settings):
    settings.AFFINITY_TRAIN_HEARTBEAT_TIMEOUT = 60
    now = timezone.now()
    old, fresh = now - timedelta(seconds=61), now - timedelta(seconds=59)
    active = train("popularity")
    ModelVersion.objects.filter(pk=active.pk).update(heartbeat_at=old, started_at=old)

    def run(**fields) -> ModelVersion:
        return ModelVersion.objects.create(algorithm="als", **{"status": "running", "started_at": old, **fields})

    dead = run(heartbeat_at=old)
    never_beat = run(heartbeat_at=None)
    alive = run(heartbeat_at=fresh)
    just_started = run(heartbeat_at=None, started_at=fresh)
    restarting = run(heartbeat_at=old)
    queued = ModelVersion.objects.create(algorithm="als", status="queued", created_at=old)
    failed = ModelVersion.objects.create(algorithm="als", status="failed", error="boom", heartbeat_at=old)

    assert sorted(versions.stale_runs_fail(exclude=restarting.pk, now=now)) == [dead.pk, never_beat.pk]

    for gone in (dead, never_beat):
        gone.refresh_from_db()
        assert gone.status == "failed" and gone.stage == "failed" and gone.finished_at == now
        assert gone.error.startswith("worker stopped: no heartbeat since ")
    dead.refresh_from_db()
    assert old.isoformat(timespec="seconds") in dead.error
    for kept, status in ((alive, "running"), (just_started, "running"), (restarting, "running"), (queued, "queued")):
        kept.refresh_from_db()
        assert kept.status == status and not kept.error
    failed.refresh_from_db()
    active.refresh_from_db()
    assert failed.error == "boom" and active.is_active and active.status == "succeeded"
    assert versions.stale_runs_fail(now=now) == [restarting.pk]  # without exclude it is silent too


def test_a_slow_run_failed_by_the_sweep_stops_and_does_not_activate(store, settings):
    settings.AFFINITY_TRAIN_HEARTBEAT_TIMEOUT = 60
    version = services.model_version_create(algorithm="item_knn", params={"k": 20})
    swept: list[int] = []

    def progress(percent: int, stage: str) -> None:
        if percent >= 20 and not swept:  # the worker looked dead for a while: the sweep failed the run
            swept.extend(versions.stale_runs_fail(now=timezone.now() + timedelta(hours=1)))

    result = training.model_train(version_id=version.pk, progress=progress)
    assert swept == [version.pk]
    assert result.status == "failed" and result.error.startswith("worker stopped: no heartbeat since")
    assert not result.is_active and not result.artifact and result.progress < 100
    assert not ModelVersion.objects.filter(is_active=True).exists()


def test_a_run_writes_its_heartbeat_and_a_new_run_fails_dead_ones_first(store, settings):
    settings.AFFINITY_TRAIN_HEARTBEAT_TIMEOUT = 60
    old = timezone.now() - timedelta(hours=1)
    dead = ModelVersion.objects.create(algorithm="als", status="running", started_at=old, heartbeat_at=old)
    version = train("item_knn", {"k": 20})
    assert version.status == "succeeded" and version.is_active
    assert version.heartbeat_at is not None and version.heartbeat_at >= version.started_at
    dead.refresh_from_db()
    assert dead.status == "failed" and "no heartbeat" in dead.error
