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
def test_loaded_factor_models_score_like_the_engine(store, algorithm, params):
    version = services.model_train(version_id=services.model_version_create(algorithm=algorithm, params=params).pk)
    assert version.status == "succeeded", version.error
    loaded = artifact_read(name=version.artifact.name, version_id=version.pk)
    with default_storage_open(version.artifact.name) as handle:
        plain = engine_base.load(handle)  # the engine's own loader
    dense = np.random.default_rng(0).random((6, loaded.model.n_items)) > 0.8
    dense[3] = False  # an empty history
    dense[4:] = False
    dense[4, 5] = dense[5, 0] = True  # one-item histories (ALS: a closed form)
    rows = sp.csr_matrix(dense, dtype=np.float32)
    rows.data[rows.indptr[4] :] = 3.0  # of weight 3 (confidence other than 1)
    np.testing.assert_allclose(loaded.model.score(rows), plain.score(rows), rtol=1e-4, atol=1e-5)
    assert loaded.item_ids.size == loaded.model.n_items == plain.n_items
    if algorithm == "als":  # explanations fold the anchors, then score only the candidates' columns
        columns = np.array([3, 0, 7])
        np.testing.assert_allclose(
            loaded.model.user_vectors(rows) @ loaded.model.item_vectors(columns).T,
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
