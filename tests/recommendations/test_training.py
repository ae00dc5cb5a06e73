"""Training in this process (recommendations.training): metrics, artifacts, failures,
the bounded holdout evaluation."""

from __future__ import annotations

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from recommendations import services
from recommendations.artifacts import artifact_read
from shop.models import Interaction
from shop.services.interactions import interaction_record
from tests.factories import ProductFactory, UserFactory

from .conftest import train

pytestmark = pytest.mark.django_db


def test_train_records_metrics_sizes_artifact_and_activates(store):
    progress = []
    version = services.model_version_create(algorithm="ease", params={"lam": 50.0})
    version = services.model_train(version_id=version.pk, progress=lambda p, s: progress.append((p, s)))
    assert version.status == "succeeded", version.error
    assert version.progress == 100 and version.is_active and version.activated_at is not None
    assert "no active model" in version.activation_note
    assert version.n_users == len(store.customers) and version.n_items == len(store.products)
    assert version.n_interactions == Interaction.objects.filter(user__isnull=False).count()
    for metric in ("ndcg@10", "precision@10", "recall@10", "map@10"):
        assert 0 < version.metrics[metric] <= 1
    assert set(version.timings) >= {"read", "prepare", "evaluate", "fit", "artifact", "total"}
    assert version.data_since < version.data_until <= timezone.now()
    assert version.artifact.name.startswith("models/v") and default_storage.exists(version.artifact.name)
    assert version.params["lam"] == 50.0
    percents = [p for p, _ in progress]
    assert percents == sorted(percents) and percents[-1] == 100
    assert any("fitting ease" in s for _, s in progress)
    loaded = artifact_read(name=version.artifact.name, version_id=version.pk)
    assert loaded.algorithm == "ease" and loaded.item_ids.size == len(store.products)


def test_auto_selects_an_algorithm_and_reports_candidates(store):
    version = services.model_version_create(
        algorithm="auto",
        params={"candidates": {"popularity": [{}], "item_knn": [{"k": 20}], "ease": [{"lam": 50.0}]}},
    )
    version = services.model_train(version_id=version.pk)
    assert version.status == "succeeded", version.error
    assert version.requested_algorithm == "auto"
    assert version.algorithm in {"popularity", "item_knn", "ease", "hybrid"}
    tried = {row["algorithm"] for row in version.metrics["selection"]}
    assert {"popularity", "item_knn", "ease"} <= tried
    assert version.ndcg is not None


def test_a_failed_run_changes_nothing(store):
    good = train("item_knn", {"k": 20})
    failing = train("ease", {"max_items": 5})  # TooManyItemsError at fit time
    assert failing.status == "failed"
    assert "max_items" in failing.error
    assert not failing.is_active and not failing.artifact
    good.refresh_from_db()
    assert good.is_active
    assert services.recommend_for_user(user=store.customers[0]).model_version_id == good.pk


def test_no_interactions_fails_with_a_clear_error(db):
    ProductFactory()
    failed = train("item_knn")
    assert failed.status == "failed" and "no customer interactions" in failed.error


def test_training_twice_is_harmless(store):
    version = train("item_knn", {"k": 20})
    again = services.model_train(version_id=version.pk)
    assert again.status == "succeeded" and again.artifact.name == version.artifact.name
    assert services.model_train(version_id=10**9) is None


def test_serving_uses_the_new_model_after_activation_in_the_same_process(store):
    first = train("popularity")
    user = store.customers[0]
    assert services.recommend_for_user(user=user).model_version_id == first.pk
    second = train("item_knn", {"k": 20})
    assert second.is_active
    assert services.recommend_for_user(user=user).model_version_id == second.pk


def test_new_products_and_customers_after_training_are_served(store, trained):
    new_product = ProductFactory(category=store.categories[0])
    newcomer = UserFactory()
    interaction_record(product=new_product, kind=Interaction.Kind.VIEW, user=newcomer)
    interaction_record(product=store.by_category[store.categories[0].pk][0], kind=Interaction.Kind.VIEW, user=newcomer)
    rec = services.recommend_for_user(user=newcomer, n=4)
    assert rec.strategy.startswith("model:")
    assert len(rec.picks) == 4


def test_the_holdout_evaluation_is_bounded_on_big_stores(store, settings):
    settings.AFFINITY_TRAIN_EVAL_MAX_USERS = 6
    settings.AFFINITY_TRAIN_EVAL_MIN_INTERACTIONS = 120
    settings.AFFINITY_TRAIN_EVAL_FRACTION = 0.0
    version = train("item_knn", {"k": 20})
    assert version.status == "succeeded", version.error
    assert version.metrics["eval_users"] <= 6
    per_user = Interaction.objects.filter(user__isnull=False).count() / len(store.customers)
    assert version.metrics["eval_train_interactions"] <= 120 + 6 * per_user * 2
    assert version.n_interactions == Interaction.objects.filter(user__isnull=False).count()  # the final fit: all
