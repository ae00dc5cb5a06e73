"""Artifacts: what serving loads is what training saved, scored the same way."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommendations import services
from recommendations.artifacts import artifact_read
from recommendations.engine import base as engine_base

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "algorithm,params",
    [("als", {"factors": 8, "iterations": 5}), ("hybrid", {"cf": "als", "cf_params": {"factors": 8, "iterations": 5}})],
)
def test_loaded_als_scores_like_the_engine(store, algorithm, params):
    version = services.model_train(version_id=services.model_version_create(algorithm=algorithm, params=params).pk)
    assert version.status == "succeeded", version.error
    loaded = artifact_read(name=version.artifact.name, version_id=version.pk)
    with default_storage_open(version.artifact.name) as handle:
        plain = engine_base.load(handle)  # the engine's own loader, no serving speed-up
    dense = np.random.default_rng(0).random((6, loaded.model.n_items)) > 0.8
    dense[3] = False  # an empty history
    dense[4:] = False
    dense[4, 5] = dense[5, 0] = True  # one-item histories (a closed form in serving)
    rows = sp.csr_matrix(dense, dtype=np.float32)
    rows.data[rows.indptr[4] :] = 3.0  # of weight 3 (confidence other than 1)
    np.testing.assert_allclose(loaded.model.score(rows), plain.score(rows), rtol=1e-4, atol=1e-5)
    assert loaded.item_ids.size == loaded.model.n_items == plain.n_items
    if algorithm == "als":  # explanations fold the anchors, then score only the candidates' columns
        columns = np.array([3, 0, 7])
        np.testing.assert_allclose(
            loaded.model.user_vectors(rows) @ loaded.model.item_factors[columns].T,
            plain.score(rows)[:, columns],
            rtol=1e-4,
            atol=1e-5,
        )


def default_storage_open(name):
    from django.core.files.storage import default_storage

    return default_storage.open(name, "rb")


def test_a_damaged_artifact_does_not_break_serving(store, trained):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    default_storage.delete(trained.artifact.name)
    default_storage.save(trained.artifact.name, ContentFile(b"not a zip file"))
    rec = services.recommend_for_user(user=store.customers[0], n=4)
    assert len(rec.picks) == 4 and rec.model_version_id is None  # fallbacks serve


def test_early_stopping_top_k_equals_scoring_every_item():
    """``top_columns`` (ALS serving: items by decreasing norm, stop when no item left
    can beat the k-th best) picks exactly what scoring the whole catalogue picks —
    with exclusions, an allowed mask, and fewer allowed items than asked for."""
    from recommendations.artifacts import _als_gram_cached
    from recommendations.engine._arrays import top_n

    rng = np.random.default_rng(3)
    n_users, n_items = 1500, 30_000  # several blocks of the scan
    popularity = rng.zipf(1.6, n_items).astype(np.float64)
    popularity /= popularity.sum()
    rows = np.repeat(np.arange(n_users), 25)
    cols = rng.choice(n_items, rows.size, p=popularity)
    matrix = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n_users, n_items))
    matrix.sum_duplicates()
    model = engine_base.algorithm_build("als", factors=16, iterations=4, random_state=1).fit(matrix)
    _als_gram_cached(model)
    few = np.zeros(n_items, bool)
    few[rng.choice(n_items, 25, replace=False)] = True
    masks = [None, rng.random(n_items) < 0.2, few]
    for user in range(60):
        history = (
            matrix[user]
            if user % 3
            else sp.csr_matrix(  # also brand-new histories of rare items
                (np.ones(3, np.float32), (np.zeros(3, int), rng.choice(n_items, 3))), shape=(1, n_items)
            )
        )
        exclude = rng.choice(n_items, 50, replace=False)
        for allowed in masks:
            scores = model.score(history)[0]
            scores[exclude] = -np.inf
            if allowed is not None:
                scores[~allowed] = -np.inf
            want_ids, want_scores = top_n(scores[None, :], 40)
            valid = want_ids[0] >= 0
            # small first blocks: many chances to stop, each one checked
            got_ids, got_scores = model.top_columns(history, 40, exclude=exclude, allowed=allowed, block=64)
            np.testing.assert_allclose(got_scores, want_scores[0][valid], rtol=1e-5, atol=1e-7)
            # the same items, but for ties at the cut-off (either may make the list)
            above = want_scores[0][valid] > want_scores[0][valid][-1] + 1e-6
            np.testing.assert_array_equal(got_ids[above], want_ids[0][valid][above])
            assert not set(got_ids.tolist()) & set(exclude.tolist())
            if allowed is not None:
                assert allowed[got_ids].all()
            if allowed is few:  # fewer allowed than asked for: all of them, less the excluded
                assert got_ids.size == int(few.sum()) - int(few[exclude].sum())


def test_one_history_row_equals_the_engines_rows(store):
    """``LoadedModel.history_row`` (the per-request path) builds what the engine's
    ``history_rows`` builds: same weights, duplicates summed, negatives clipped."""
    from recommendations.engine.matrix import event_weights

    version = services.model_train(version_id=services.model_version_create(algorithm="item_knn", params={"k": 10}).pk)
    loaded = artifact_read(name=version.artifact.name, version_id=version.pk)
    rng = np.random.default_rng(5)
    ids = loaded.item_ids
    kinds_known = np.array(sorted(loaded.meta.kind_weights))
    now = 1.8e9
    for size in (1, 5, 40):
        products = np.concatenate([rng.choice(ids, size), [10**9]])  # and one product the model never saw
        kinds = rng.choice(np.append(kinds_known, 99), products.size)  # and a kind without a weight
        values = rng.integers(1, 4, products.size).astype(np.float64)
        times = now - rng.integers(0, 90 * 86400, products.size).astype(np.float64)
        one = loaded.history_row(products, kinds, values, times, now=now)
        known = np.isin(kinds, kinds_known)
        weights = event_weights(
            kinds=kinds[known],
            values=values[known],
            times=times[known],
            kind_weights=loaded.meta.kind_weights,
            half_life_days=loaded.meta.half_life_days,
            now=now,
        )
        engine_row = loaded.items.history_rows([(products[known], weights)])
        np.testing.assert_array_equal(one.indices, engine_row.indices)
        np.testing.assert_allclose(one.toarray(), engine_row.toarray(), rtol=1e-6)
