"""Training in this process: the database read, metrics, artifacts, activation rules."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from recommendations import selectors, services
from recommendations.artifacts import artifact_read
from recommendations.models import ModelVersion
from shop import services as shop_services
from shop.models import Interaction
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def train(algorithm: str, params: dict | None = None, slot: str = "default") -> ModelVersion:
    version = services.model_version_create(algorithm=algorithm, params=params or {}, slot=slot)
    return services.model_train(version_id=version.pk)


# --- the database read ------------------------------------------------------------------------
def test_events_read_matches_the_orm_exactly(store):
    anonymous = store.products[0]
    shop_services.interaction_record(product=anonymous, kind=Interaction.Kind.VIEW, session_key="anon")  # not read
    events = selectors.interaction_events_read()
    expected = sorted(
        (u, p, k, v, t.timestamp())
        for u, p, k, v, t in Interaction.objects.filter(user__isnull=False).values_list(
            "user_id", "product_id", "kind", "value", "occurred_at"
        )
    )
    got = sorted(
        zip(
            events.users.tolist(),
            events.items.tolist(),
            events.kinds.tolist(),
            events.values.tolist(),
            events.times.tolist(),
            strict=True,
        )
    )
    assert [row[:4] for row in got] == [row[:4] for row in expected]
    np.testing.assert_allclose([row[4] for row in got], [row[4] for row in expected], rtol=0, atol=1e-5)
    assert events.users.dtype == np.int64 and events.times.dtype == np.float64


def test_events_read_in_small_chunks_with_a_progress_callback_that_queries(store, monkeypatch):
    """The stream is parsed chunk by chunk; a progress callback that touches the
    database (the training's does) must not deadlock the connection streaming it."""
    monkeypatch.setattr(selectors, "COPY_CHUNK_BYTES", 512)
    seen = []
    events = selectors.interaction_events_read(progress=lambda f: seen.append((f, ModelVersion.objects.count())))
    assert len(events) == Interaction.objects.filter(user__isnull=False).count()
    assert seen and seen[-1][0] == 1.0


def test_events_read_window_and_kinds(store):
    since = timezone.now() - timedelta(days=10)
    events = selectors.interaction_events_read(since=since, kinds=[Interaction.Kind.PURCHASE])
    expected = Interaction.objects.filter(user__isnull=False, occurred_at__gte=since, kind=Interaction.Kind.PURCHASE)
    assert len(events) == expected.count() > 0
    assert set(events.kinds.tolist()) == {Interaction.Kind.PURCHASE}
    assert events.times.min() >= since.timestamp() - 1e-3


def test_interaction_matrix_build(store):
    matrix = selectors.interaction_matrix_build()
    assert matrix.n_users == len(store.customers)
    user = store.customers[0]
    row = matrix.user_rows([user.pk])
    touched = set(
        Interaction.objects.filter(user=user)
        .exclude(kind=Interaction.Kind.REMOVE_FROM_CART)
        .values_list("product_id", flat=True)
    )
    assert set(matrix.item_ids[row.indices].tolist()) == touched
    assert (row.data > 0).all()


def test_events_read_of_an_empty_table(db):
    events = selectors.interaction_events_read()
    assert len(events) == 0


# --- a training run ------------------------------------------------------------------------------
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


def test_training_twice_is_harmless(store):
    version = train("item_knn", {"k": 20})
    again = services.model_train(version_id=version.pk)
    assert again.status == "succeeded" and again.artifact.name == version.artifact.name
    assert services.model_train(version_id=10**9) is None


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
    shop_services.interaction_record(product=new_product, kind=Interaction.Kind.VIEW, user=newcomer)
    shop_services.interaction_record(
        product=store.by_category[store.categories[0].pk][0], kind=Interaction.Kind.VIEW, user=newcomer
    )
    rec = services.recommend_for_user(user=newcomer, n=4)
    assert rec.strategy.startswith("model:")
    assert len(rec.picks) == 4


def test_holdout_split_matches_the_engines_temporal_split(store):
    from recommendations.engine.evaluation import temporal_split
    from recommendations.training import holdout_split

    events = selectors.interaction_events_read()
    for cutoff in (np.quantile(events.times, 0.5), np.quantile(events.times, 0.9), events.times.max() + 1):
        ours = holdout_split(events, cutoff=float(cutoff))
        engine = temporal_split(
            events.users, events.items, events.times, cutoff=float(cutoff), known_only=True, new_pairs_only=True
        )
        assert (ours.train == engine.train).all() and (ours.test == engine.test).all()
    assert ours.test.sum() == 0  # nothing after the newest event
    sparse = selectors.Events(events.users * 10**9, events.items, events.kinds, events.values, events.times)
    cutoff = float(np.quantile(events.times, 0.8))
    ours = holdout_split(sparse, cutoff=cutoff)  # ids far apart: the np.unique path
    engine = temporal_split(
        sparse.users, sparse.items, sparse.times, cutoff=cutoff, known_only=True, new_pairs_only=True
    )
    assert (ours.test == engine.test).all() and ours.test.any()


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
