"""Model versions (recommendations.versions): creation checks, champion/challenger,
staff activation, one active version per slot, pruning."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction

from recommendations import services
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
