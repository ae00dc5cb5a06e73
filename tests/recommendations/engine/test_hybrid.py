"""hybrid.py: blending, weight tuning on validation data and the cold-start paths."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.sparse as sp

from recommendations.engine import EngineError, HybridRecommender, SideData, algorithm_build, load

from .conftest import groups_answer, groups_matrix, groups_side

EMPTY = sp.csr_matrix((1, 10), dtype=np.float32)


def hybrid(**params) -> HybridRecommender:
    params = {"cf": "ease", "cf_params": {"lam": 1.0}, **params}
    return HybridRecommender(**params)


def test_new_user_without_history_gets_trending() -> None:
    model = hybrid(w_trending=0.1).fit(groups_matrix(), groups_side())
    ids, _ = model.recommend(EMPTY, n=3)
    assert ids[0].tolist() == [5, 6, 7]  # item_recent = [0, 0, 0, 0, 1, 5, 4, 3, 2, 1]


def test_new_user_with_stated_interests() -> None:
    model = hybrid().fit(groups_matrix(), groups_side())
    ids, _ = model.recommend_interests(EMPTY, categories=[[1]], n=5)
    assert set(ids[0].tolist()) == {0, 1, 2, 3, 4}
    ids, _ = model.recommend_interests(EMPTY, texts=["a warm wool scarf"], n=5)
    assert set(ids[0].tolist()) == {0, 1, 2, 3, 4}
    scores = model.score_interests(sp.csr_matrix((2, 10), dtype=np.float32), texts=["mug", ""], categories=[[], []])
    assert scores[0, 5:].min() > scores[0, :5].max()
    np.testing.assert_allclose(scores[1], model.score(EMPTY)[0])  # nothing stated
    with pytest.raises(EngineError, match="texts has 2 entries for 1"):
        model.score_interests(EMPTY, texts=["a", "b"])


def test_session_history_of_an_anonymous_shopper_is_folded_in() -> None:
    model = hybrid().fit(groups_matrix(), groups_side())
    session = sp.csr_matrix((np.ones(1, np.float32), ([0], [8])), shape=(1, 10))
    ids, _ = model.recommend(session, n=4)
    assert set(ids[0].tolist()) == {5, 6, 7, 9}


def cold_catalogue() -> tuple[sp.csr_matrix, SideData]:
    """The groups matrix plus items 10 (group-A-like text) and 11 (group-B-like text)
    that nobody has bought yet."""
    matrix = sp.hstack([groups_matrix(), sp.csr_matrix((12, 2), dtype=np.float32)]).tocsr()
    side = groups_side()
    side = SideData(
        item_text=[*side.item_text, "red wool winter scarf new", "blue ceramic kitchen mug new"],
        item_category=np.r_[side.item_category, 1, 2],
        item_recent=np.r_[side.item_recent, 0.0, 0.0].astype(np.float32),
    )
    return matrix, side


def test_new_products_get_scores_through_content_neighbours() -> None:
    matrix, side = cold_catalogue()
    model = hybrid(w_trending=0.0, cold_discount=0.9).fit(matrix, side)
    assert model.cold_map is not None
    scores = model.score(matrix)
    group_a, group_b = slice(0, 6), slice(6, 12)
    # the new group-A product beats every group-B product for group-A shoppers, and back
    assert np.all(scores[group_a, 10] > scores[group_a, 5:10].max(axis=1))
    assert np.all(scores[group_b, 11] > scores[group_b, 0:5].max(axis=1))
    assert np.all(scores[group_a, 10] > scores[group_a, 11])
    ids, _ = model.similar_items([10], n=4)
    assert set(ids[0].tolist()) <= {0, 1, 2, 3, 4}
    # without the content bridge the new products have no collaborative score at all
    plain = algorithm_build("ease", lam=1.0).fit(matrix)
    assert np.all(plain.score(matrix)[:, 10:] == 0)
    off = hybrid(w_trending=0.0, cold_neighbours=0).fit(matrix, side)
    assert off.cold_map is None and np.all(off.score(matrix)[:, 10:] == 0)


def test_round_trip_with_every_component() -> None:
    matrix, side = cold_catalogue()
    model = hybrid(w_content=0.3).fit(matrix, side)
    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    again = load(buffer)
    np.testing.assert_array_equal(again.score(matrix), model.score(matrix))
    np.testing.assert_array_equal(
        again.score_interests(sp.csr_matrix((1, 12), dtype=np.float32), categories=[[2]]),
        model.score_interests(sp.csr_matrix((1, 12), dtype=np.float32), categories=[[2]]),
    )


def test_tune_weights_follows_the_validation_data() -> None:
    history = groups_matrix()
    model = hybrid(w_trending=0.5).fit(history, groups_side())
    # validation = each user's missing group item: collaborative filtering is right
    answers = sp.csr_matrix((np.ones(12), (np.arange(12), groups_answer())), shape=(12, 10))
    rows = model.tune_weights(history, answers, k=1)
    assert rows[0]["ndcg"] == pytest.approx(1.0)
    assert model.params["w_trending"] == rows[0]["w_trending"]
    assert model.recommend(history, n=1)[0][:, 0].tolist() == groups_answer().tolist()
    # validation = group-A shoppers then buy the trending item 5: trending must get weight
    trend = sp.csr_matrix((np.ones(6), (np.arange(6), np.full(6, 5))), shape=(12, 10))
    rows = model.tune_weights(history, trend, k=1)
    assert model.params["w_trending"] >= 1.0 and rows[0]["ndcg"] == pytest.approx(1.0)
    with pytest.raises(EngineError, match="no validation row"):
        model.tune_weights(history, sp.csr_matrix((12, 10), dtype=np.float32))


def test_fit_with_cf_reuses_the_fitted_model() -> None:
    cf = algorithm_build("ease", lam=1.0).fit(groups_matrix())
    model = hybrid().fit_with_cf(groups_matrix(), groups_side(), cf_model=cf)
    assert model.cf_model is cf
    with pytest.raises(EngineError, match="fitted 'ease'"):
        hybrid().fit_with_cf(groups_matrix(), None, cf_model=algorithm_build("ease"))


def test_hybrid_without_side_data_still_works() -> None:
    model = hybrid().fit(groups_matrix())
    assert model.content_model is None
    ids, _ = model.recommend(groups_matrix(), n=1)
    assert ids[:, 0].tolist() == groups_answer().tolist()
    with pytest.raises(EngineError, match="no content model"):
        model.score_interests(EMPTY, categories=[[1]])


def test_bad_component_parameters_fail_at_construction() -> None:
    with pytest.raises(EngineError, match="hybrid: ease: unknown parameter"):
        HybridRecommender(cf="ease", cf_params={"lambda": 3})
    with pytest.raises(EngineError, match="cf must be one of"):
        HybridRecommender(cf="hybrid")
