"""Forgetting a customer: nothing they did feeds a recommendation from that moment."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage

from recommendations import model_cache, services
from recommendations.models import ForgottenUser, Impression, ModelVersion
from shop.models import Interaction
from shop.services.customers import user_forget
from shop.services.interactions import interaction_record
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def train(algorithm="item_knn", params=None):
    version = services.model_version_create(algorithm=algorithm, params=params or {"k": 20})
    return services.model_train(version_id=version.pk)


def test_forgetting_retires_models_that_learned_from_them(
    store, trained, monkeypatch, django_capture_on_commit_callbacks
):
    from shop.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)  # the queued retraining runs right here
    victim = store.customers[0]
    victim_id = victim.pk
    services.recommend_for_user(user=victim)
    other = store.customers[1]
    assert services.recommend_for_user(user=other).model_version_id == trained.pk
    artifact = trained.artifact.name
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        user_forget(user=victim)
    trained.refresh_from_db()
    assert trained.tainted_at is not None and not trained.is_active and not trained.artifact
    assert "forgotten customer" in trained.activation_note
    record = ForgottenUser.objects.get(user_id=victim_id)
    assert record.had_interactions and record.retired_versions == [trained.pk]
    retrain = record.retrain_version
    assert retrain.status == "queued" and retrain.trigger == "privacy" and retrain.algorithm == "item_knn"
    assert not Impression.objects.filter(user_id=victim_id).exists()
    # from this moment no list comes from the retired model
    rec = services.recommend_for_user(user=other)
    assert rec.model_version_id is None and not rec.strategy.startswith("model:")
    with pytest.raises(services.TrainingError, match="forgotten customer"):
        services.model_version_activate(version=trained)
    # after commit: the artifact goes, and the retraining (without the victim) runs and serves
    for callback in callbacks:
        callback()
    assert not default_storage.exists(artifact)
    fresh = ModelVersion.objects.get(pk=retrain.pk)
    assert fresh.status == "succeeded" and fresh.is_active, fresh.error
    assert fresh.n_users == len(store.customers) - 1
    assert services.recommend_for_user(user=other).model_version_id == fresh.pk


def test_an_older_clean_model_comes_back(store, trained):
    newcomer = UserFactory()
    later = store.products[0]
    # a second model trained after the newcomer's first event
    interaction_record(product=later, kind=Interaction.Kind.PURCHASE, user=newcomer)
    ModelVersion.objects.filter(pk=trained.pk).update(is_active=False)
    second = train()
    assert second.is_active
    user_forget(user=newcomer)
    second.refresh_from_db()
    trained.refresh_from_db()
    assert second.tainted_at is not None
    assert trained.tainted_at is None and trained.is_active
    assert "re-activated" in trained.activation_note
    assert services.recommend_for_user(user=store.customers[3]).model_version_id == trained.pk


def test_a_run_in_flight_when_they_are_forgotten_is_not_activated(store):
    version = services.model_version_create(algorithm="item_knn", params={"k": 20})
    victim = store.customers[2]

    def forget_midway(percent, stage):
        if "fitting" in stage and User_exists(victim.pk):
            user_forget(user=victim)

    version = services.model_train(version_id=version.pk, progress=forget_midway)
    assert version.status == "succeeded"
    assert version.tainted_at is not None and not version.is_active
    assert "forgotten while it trained" in version.activation_note


def User_exists(pk):  # noqa: N802 - reads like a predicate in the test above
    from shop.models import User

    return User.objects.filter(pk=pk).exists()


def test_trending_forgets_their_events_at_once(store, settings):
    """Three fans make a new product trend (the minimum support); one of them forgotten,
    it stops trending at once, though trending is cached for an hour."""
    settings.AFFINITY_TRENDING_TTL = 3600
    settings.AFFINITY_TRENDING_MIN_SUPPORT = 3
    hype = ProductFactory(category=store.categories[0])
    fans = [UserFactory() for _ in range(3)]
    for fan in fans:
        for _ in range(20):
            interaction_record(product=hype, kind=Interaction.Kind.PURCHASE, user=fan)
    assert hype in [p.product for p in services.trending_products(n=60).picks]
    user_forget(user=fans[0])
    assert hype not in [p.product for p in services.trending_products(n=60).picks]


def test_a_customer_without_events_retires_nothing(store, trained):
    quiet = UserFactory()
    quiet_id = quiet.pk
    epoch = model_cache.epoch_read()
    user_forget(user=quiet)
    trained.refresh_from_db()
    assert trained.is_active and trained.tainted_at is None
    record = ForgottenUser.objects.get(user_id=quiet_id)
    assert not record.had_interactions and record.retired_versions == []
    assert model_cache.epoch_read() == epoch + 1
