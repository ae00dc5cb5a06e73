"""The numerics of the live trends board (engine.trends) and of predicted audiences
(engine.audience): known answers on tiny inputs, no Django."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from recommendations.engine import ALSRecommender, ContentRecommender, ItemKNNRecommender, SideData
from recommendations.engine.audience import content_affinity, item_affinity, top_rows
from recommendations.engine.errors import EngineError
from recommendations.engine.trends import rising_order, rising_stats

from .conftest import groups_matrix


# --- rising ---------------------------------------------------------------------------------
def test_a_rising_item_is_significant_and_a_steady_one_is_not():
    # equal exposures: a steady item keeps its count, a rising one triples it
    recent = np.array([30, 30, 0])
    baseline = np.array([30, 10, 0])
    result = rising_stats(recent, baseline, recent_exposure=1000, baseline_exposure=1000)
    assert result.expected.tolist() == [30.0, 10.0, 0.0]
    assert result.velocity[1] == pytest.approx(31 / 11)
    assert abs(result.z[0]) < 0.2  # no change
    assert result.z[1] > 3  # 30 of 40 events in one of two equal windows
    assert result.z[2] == 0.0  # nothing at all: no evidence either way
    # the mid-p value by hand for the rising item: P(X > 30) + P(X = 30) / 2, X ~ Bin(40, 1/2)
    by_hand = stats.binom.sf(30, 40, 0.5) + 0.5 * stats.binom.pmf(30, 40, 0.5)
    assert result.p_value[1] == pytest.approx(by_hand)
    assert result.z[1] == pytest.approx(stats.norm.isf(by_hand))


def test_a_store_wide_surge_lifts_nothing():
    # the whole store doubled (exposure 2000 vs 1000) and so did the item: not rising
    result = rising_stats(np.array([40]), np.array([20]), recent_exposure=2000, baseline_exposure=1000)
    assert result.velocity[0] == pytest.approx(41 / 41)
    assert abs(result.z[0]) < 0.2


def test_exposure_scales_the_baseline_of_a_short_window():
    # one day of recent against 28 days of baseline: 10 a day before, 40 today
    result = rising_stats(np.array([40]), np.array([280]), recent_exposure=1, baseline_exposure=28)
    assert result.expected[0] == pytest.approx(10)
    assert result.z[0] > 5


def test_smoothing_keeps_a_tiny_count_from_looking_infinite():
    result = rising_stats(np.array([1, 12]), np.array([0, 0]), recent_exposure=1, baseline_exposure=8)
    assert result.velocity[0] == pytest.approx(2.0)
    assert result.velocity[1] == pytest.approx(13.0)
    assert result.z[1] > result.z[0]


def test_rising_order_ranks_by_significance_and_applies_the_floors():
    recent = np.array([5, 60, 30, 2, 10])
    baseline = np.array([40, 60, 10, 0, 80])  # item 4 is falling, item 1 steady
    result = rising_stats(recent, baseline, recent_exposure=1, baseline_exposure=1)
    order = rising_order(result, recent, min_recent=3, min_z=1.645)
    assert order.tolist() == [2]  # item 3 has too few events; 0, 1, 4 are not rising
    everything = rising_order(result, recent, min_recent=1, min_z=-100)
    assert everything.tolist()[:2] == [2, 3]
    assert 4 not in everything.tolist() and 0 not in everything.tolist()  # velocity <= 1 never lists


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"recent": [1, 2], "baseline": [1]}, "recent has 2 items"),
        ({"recent": [-1], "baseline": [1]}, "whole, non-negative"),
        ({"recent": [1.5], "baseline": [1]}, "whole, non-negative"),
        ({"recent": [[1]], "baseline": [1]}, "1-D"),
        ({"recent": [1], "baseline": [1], "recent_exposure": 0}, "recent_exposure"),
        ({"recent": [1], "baseline": [1], "baseline_exposure": float("nan")}, "baseline_exposure"),
        ({"recent": [1], "baseline": [1], "prior": 0}, "prior"),
    ],
)
def test_rising_stats_names_bad_input(kwargs, message):
    args = {"recent_exposure": 1.0, "baseline_exposure": 1.0, **kwargs}
    with pytest.raises(EngineError, match=message):
        rising_stats(np.asarray(args.pop("recent")), np.asarray(args.pop("baseline")), **args)


# --- audiences ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "model", [ALSRecommender(factors=4, iterations=10, random_state=1), ItemKNNRecommender(k=5)], ids=["als", "knn"]
)
def test_item_affinity_is_the_models_own_score_of_the_item(model):
    matrix = groups_matrix()
    model.fit(matrix)
    for column in (0, 7):
        expected = model.score(matrix)[:, column]
        got = item_affinity(model, matrix, column, block=5)  # several blocks
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    both = item_affinity(model, matrix, [0, 7])  # many items: the user vectors folded in once
    np.testing.assert_allclose(both, model.score(matrix)[:, [0, 7]], rtol=1e-4, atol=1e-5)
    # the item's own group comes first: users 0-5 for item 2, users 6-11 for item 7
    rows, _ = top_rows(item_affinity(model, matrix, 2), 6)
    assert set(rows.tolist()) == set(range(6))


def test_item_affinity_names_a_bad_column():
    model = ItemKNNRecommender(k=5).fit(groups_matrix())
    with pytest.raises(EngineError, match="columns"):
        item_affinity(model, groups_matrix(), 10)
    with pytest.raises(EngineError, match="columns"):
        item_affinity(model, groups_matrix(), [1.5])


def content_model() -> ContentRecommender:
    texts = [
        "copper kettle kitchen",
        "enamel kettle kitchen",
        "tea mug kitchen",
        "wool scarf winter",
        "knitted scarf winter",
        "copper whistling kettle kitchen",  # the new item: nobody has it
    ]
    side = SideData(item_text=texts, item_category=np.array([0, 0, 0, 1, 1, 0]))
    return ContentRecommender().fit(sp.csr_matrix((0, 6), dtype=np.float32), side)


def test_content_affinity_prefers_who_bought_similar_items():
    model = content_model()
    history = sp.csr_matrix(
        np.array(
            [
                [1, 1, 0, 0, 0, 0],  # kettles
                [0, 0, 1, 0, 0, 0],  # a mug (kitchen, not a kettle)
                [0, 0, 0, 1, 1, 0],  # scarves
                [0, 0, 0, 0, 0, 0],  # nothing
                [2, 0, 0, 0, -1, 0],  # a removal is no negative interest
            ],
            dtype=np.float32,
        )
    )
    scores = content_affinity(history, model.item_features, model.item_features[5])
    assert scores[0] > scores[1] > scores[2] >= 0
    assert scores[3] == 0.0
    # the evidence adds up: each history item's cosine with the target, weighted
    cosines = np.asarray((model.item_features @ model.item_features[5].T).todense()).ravel()
    assert scores[0] == pytest.approx(cosines[0] + cosines[1])
    assert scores[4] == pytest.approx(2 * cosines[0])  # the removal counts nothing, not minus


def test_content_affinity_checks_shapes():
    model = content_model()
    with pytest.raises(EngineError, match="item columns"):
        content_affinity(sp.csr_matrix((2, 3)), model.item_features, model.item_features[0])
    with pytest.raises(EngineError, match="features"):
        content_affinity(sp.csr_matrix((2, 6)), model.item_features, np.ones(3))


def test_top_rows_best_first_ties_to_the_lower_row_positive_only():
    scores = np.array([0.5, 0.9, 0.5, -1.0, 0.0, np.nan, 0.9])
    rows, top = top_rows(scores, 10)
    assert rows.tolist() == [1, 6, 0, 2]
    assert top.tolist() == [0.9, 0.9, 0.5, 0.5]
    allowed = np.array([True, False, True, True, True, True, True])
    assert top_rows(scores, 2, allowed=allowed)[0].tolist() == [6, 0]
    with pytest.raises(EngineError, match="allowed"):
        top_rows(scores, 2, allowed=np.ones(3, bool))
    with pytest.raises(EngineError, match="k must"):
        top_rows(scores, -1)
