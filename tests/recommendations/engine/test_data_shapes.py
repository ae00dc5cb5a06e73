"""Every shape of a store's data (issue 12): no side data at all, categories missing,
explicit ratings, one day of events; the protocols that fit them and the exclusions
offline evaluation shares with serving."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommendations.engine import (
    EngineError,
    HybridRecommender,
    SideData,
    algorithm_build,
    candidates_for,
    select_model,
)
from recommendations.engine.evaluation import (
    PROTOCOLS,
    consumed_mask,
    evaluate,
    protocol_choose,
    protocol_split,
)

from .conftest import groups_answer, groups_matrix

DAY = 86_400.0


def test_content_with_no_category_and_no_text_is_an_error_not_a_crash() -> None:
    matrix = groups_matrix()
    empty = SideData(item_text=[""] * 10, item_category=np.full(10, -1))
    assert not empty.has_content
    with pytest.raises(EngineError, match="needs side data"):
        algorithm_build("content").fit(matrix, empty)


def test_content_with_text_but_no_category_fits() -> None:
    matrix = groups_matrix()
    side = SideData(
        item_text=[f"red mug {i}" if i < 5 else f"blue lamp {i}" for i in range(10)], item_category=np.full(10, -1)
    )
    model = algorithm_build("content").fit(matrix, side)
    assert model.score_categories([[3]]).shape == (1, 10)  # an unknown category: no crash, no signal
    ids, _ = model.recommend(matrix, n=1)
    np.testing.assert_array_equal(ids[:, 0], groups_answer())


def test_hybrid_without_side_content_blends_cf_and_trending() -> None:
    matrix = groups_matrix()
    model = HybridRecommender(cf="ease", cf_params={"lam": 1.0}).fit(
        matrix, SideData(item_text=[""] * 10, item_category=np.full(10, -1))
    )
    assert model.content_model is None
    ids, _ = model.recommend(matrix, n=1)
    np.testing.assert_array_equal(ids[:, 0], groups_answer())


def test_selection_skips_content_with_a_reason_when_the_store_has_no_side_data() -> None:
    matrix = groups_matrix()
    valid = sp.csr_matrix((np.ones(12, np.float32), (np.arange(12), groups_answer())), shape=(12, 10))
    side = SideData(item_text=["Product"] * 0 + [""] * 10, item_category=np.full(10, -1))
    result = select_model(matrix, valid, side, candidates={"content": [{}], "ease": [{"lam": 1.0}]})
    rows = {row["algorithm"]: row for row in result.rows}
    assert rows["content"]["status"] == "skipped"
    assert "no product names or categories" in rows["content"]["reason"]
    assert rows["hybrid"]["status"] == "ok" and "trending only" in rows["hybrid"]["reason"]


def test_hybrid_learns_to_push_history_down_when_customers_do_not_come_back() -> None:
    matrix = groups_matrix()
    model = HybridRecommender(cf="svd", cf_params={"factors": 2}).fit(matrix)  # scores history highest
    relevant = sp.csr_matrix((np.ones(12, np.float32), (np.arange(12), groups_answer())), shape=(12, 10))
    tuning = model.tune_weights(matrix, relevant, k=1, exclude_history=False)
    assert model.params["w_history"] < 0 and tuning[0]["ndcg"] == 1.0
    ids, _ = model.recommend(matrix, n=1, exclude_history=False)
    np.testing.assert_array_equal(ids[:, 0], groups_answer())


def test_candidates_scale_to_the_data() -> None:
    small = candidates_for(groups_matrix())
    assert {"ease", "als", "item_knn", "item_knn_bm25"} <= set(small)
    lams = [p["lam"] for p in small["ease"]]
    assert min(lams) < 5 < max(lams) and len(small["ease"]) >= 6
    assert any(p.get("weighting") == "bm25" for p in small["als"])
    rng = np.random.default_rng(0)
    big = sp.random(2000, 8000, density=0.002, format="csr", random_state=rng, dtype=np.float32)
    big_grid = candidates_for(big)
    assert len(big_grid["ease"]) < len(small["ease"])  # EASE fits cost n_items^3
    assert max(p["lam"] for p in big_grid["ease"]) > 10 * min(p["lam"] for p in big_grid["ease"])


# --------------------------------------------------------------------------- protocols
def events(n_users: int = 40, per_user: int = 6, *, kind: int = 5, span_days: float = 100.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user)
    items = rng.integers(0, 30, users.size)
    kinds = np.full(users.size, kind, dtype=np.int16)
    times = rng.uniform(0, span_days * DAY, users.size) + 1e9
    return users, items, kinds, times


def test_explicit_ratings_get_a_random_per_user_split() -> None:
    users, items, kinds, times = events(kind=6)
    choice = protocol_choose(users, kinds, times, cutoff=float(np.quantile(times, 0.9)), items=items)
    assert choice.name == "random-per-user" and "ratings" in choice.reason


def test_purchases_get_a_temporal_split() -> None:
    users, items, kinds, times = events(kind=5)
    choice = protocol_choose(users, kinds, times, cutoff=float(np.quantile(times, 0.9)), items=items)
    assert choice.name == "temporal"


@pytest.mark.parametrize("case", ["one day", "few after the cutoff"])
def test_temporal_falls_back_when_time_cannot_separate_train_and_test(case) -> None:
    if case == "one day":
        users, items, kinds, times = events(span_days=0.5)
        cutoff = float(np.quantile(times, 0.9))
    else:
        users, items, kinds, times = events()
        cutoff = float(np.sort(times)[-2])  # one event after it
    choice = protocol_choose(users, kinds, times, cutoff=cutoff, items=items)
    assert choice.name == "random-per-user"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_protocol_split_holds_out_whole_pairs_of_known_items(protocol) -> None:
    users, items, _, times = events(per_user=10)
    users = np.concatenate([users, users[:50]])  # repeated pairs
    items = np.concatenate([items, items[:50]])
    times = np.concatenate([times, times[:50] + DAY])
    split = protocol_split(protocol, users, items, times, cutoff=float(np.quantile(times, 0.8)), seed=1)
    assert split.test.any() and not (split.train & split.test).any()
    train_pairs = set(zip(users[split.train].tolist(), items[split.train].tolist()))
    test_pairs = set(zip(users[split.test].tolist(), items[split.test].tolist()))
    assert not train_pairs & test_pairs
    assert set(items[split.test].tolist()) <= set(items[split.train].tolist())
    if protocol == "random-per-user":
        assert np.unique(users[split.test]).size > 30  # every customer contributes


def test_protocol_split_rejects_an_unknown_protocol() -> None:
    with pytest.raises(EngineError, match="unknown protocol"):
        protocol_split("future", np.zeros(2), np.zeros(2), np.zeros(2))


def test_evaluate_excludes_consumed_items_from_candidates_and_relevant_set() -> None:
    matrix = groups_matrix()
    model = algorithm_build("popularity").fit(matrix)
    relevant = sp.csr_matrix((np.ones(12, np.float32), (np.arange(12), groups_answer())), shape=(12, 10))
    relevant = relevant + sp.csr_matrix((np.ones(12, np.float32), (np.arange(12), np.zeros(12, int))), shape=(12, 10))
    consumed = sp.csr_matrix((np.ones(12, np.float32), (np.arange(12), np.zeros(12, int))), shape=(12, 10))
    plain = evaluate(model, matrix, relevant, k=10, exclude_train=False, beyond_accuracy=False)
    served = evaluate(model, matrix, relevant, k=10, exclude_train=False, exclude=consumed, beyond_accuracy=False)
    assert served["recall"] == 1.0 or served["recall"] > plain["recall"] - 1e-9
    assert served["users"] <= plain["users"]
    assert consumed_mask(np.array([1, 5, 6, 3]), [5, 6]).tolist() == [False, True, True, False]
