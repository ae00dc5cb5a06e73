"""evaluation.py: metrics against values computed by hand, and the three splits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recommendations.engine import EngineError, algorithm_build
from recommendations.engine.evaluation import (
    catalogue_coverage,
    evaluate,
    hit_rate_at_k,
    intra_list_diversity,
    leave_last_n_out,
    map_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    random_stratified_split,
    recall_at_k,
    temporal_split,
)

RECOMMENDED = np.array(
    [
        [1, 2, 3, 4],  # hits at ranks 2 and 4 of relevant {2, 4, 9}
        [5, -1, -1, -1],  # one recommendation, the only relevant item
        [6, 7, 8, 9],  # no relevant items: left out of averages
        [7, 8, 9, 10],  # misses
    ]
)
RELEVANT = [{2, 4, 9}, {5}, set(), {1}]


def as_csr(relevant: list[set[int]], width: int = 12) -> sp.csr_matrix:
    rows = [r for r, items in enumerate(relevant) for _ in items]
    cols = [c for items in relevant for c in sorted(items)]
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(relevant), width))


@pytest.mark.parametrize("relevant", [RELEVANT, as_csr(RELEVANT)], ids=["sets", "csr"])
def test_metrics_by_hand(relevant) -> None:
    dcg = 1 / math.log(3) + 1 / math.log(5)
    ideal = 1 / math.log(2) + 1 / math.log(3) + 1 / math.log(4)
    per_row = {
        ndcg_at_k: [dcg / ideal, 1.0, 0.0],
        precision_at_k: [2 / 4, 1 / 4, 0.0],
        recall_at_k: [2 / 3, 1.0, 0.0],
        map_at_k: [(1 / 2 + 2 / 4) / 3, 1.0, 0.0],
        hit_rate_at_k: [1.0, 1.0, 0.0],
    }
    for metric, expected in per_row.items():
        assert metric(RECOMMENDED, relevant, 4) == pytest.approx(np.mean(expected)), metric
        values = metric(RECOMMENDED, relevant, 4, average=False)
        assert np.isnan(values[2])
        np.testing.assert_allclose(values[[0, 1, 3]], expected)


def test_k_cuts_the_list() -> None:
    assert precision_at_k(RECOMMENDED[:1], RELEVANT[:1], 1) == 0.0
    assert precision_at_k(RECOMMENDED[:1], RELEVANT[:1], 2) == 0.5
    assert ndcg_at_k(RECOMMENDED[:1], RELEVANT[:1], 2) == pytest.approx(
        (1 / math.log(3)) / (1 / math.log(2) + 1 / math.log(3))
    )
    # k longer than the lists: missing slots are misses
    assert precision_at_k(RECOMMENDED[1:2], RELEVANT[1:2], 10) == pytest.approx(0.1)


def test_a_repeated_item_counts_once() -> None:
    assert precision_at_k(np.array([[2, 2, 3]]), [{2}], 3) == pytest.approx(1 / 3)
    assert ndcg_at_k(np.array([[2, 2]]), [{2, 3}], 2) == pytest.approx(1.0 / (1.0 + math.log(2) / math.log(3)))


def test_metric_input_errors() -> None:
    with pytest.raises(EngineError, match="k must be a positive integer"):
        ndcg_at_k(RECOMMENDED, RELEVANT, 0)
    with pytest.raises(EngineError, match="rows"):
        ndcg_at_k(RECOMMENDED, RELEVANT[:2], 4)
    assert math.isnan(ndcg_at_k(RECOMMENDED[2:3], RELEVANT[2:3], 4))


def test_beyond_accuracy_by_hand() -> None:
    assert catalogue_coverage(np.array([[0, 1], [1, 2], [-1, -1]]), 4) == 0.75
    popularity = np.array([0.5, 0.25, 1.0, 0.0])
    # items 0, 1, 3 -> 1, 2 and (0 is floored to the least popular 0.25) 2 bits
    assert novelty(np.array([[0, 1], [3, -1]]), popularity) == pytest.approx(5 / 3)
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    expected = (1.0 + 2 * (1 - 1 / math.sqrt(2))) / 3
    assert intra_list_diversity(np.array([[0, 1, 2], [0, -1, -1]]), vectors) == pytest.approx(expected)
    assert intra_list_diversity(np.array([[0, 0]]), vectors) == pytest.approx(0.0)


# --------------------------------------------------------------------------- splits
def test_temporal_split() -> None:
    users = np.array([1, 1, 2, 2, 3, 1, 2])
    items = np.array([10, 11, 10, 12, 13, 10, 14])
    times = np.array([1.0, 2.0, 3.0, 4.0, 9.0, 6.0, 7.0])
    split = temporal_split(users, items, times, cutoff=5.0)
    assert split.train.tolist() == [True, True, True, True, False, False, False]
    # user 3 and item 14 are unknown in train; user 1 / item 10 is known
    assert split.test.tolist() == [False, False, False, False, False, True, False]
    new_only = temporal_split(users, items, times, cutoff=5.0, new_pairs_only=True)
    assert not new_only.test.any()  # (1, 10) was already bought before the cutoff
    everything = temporal_split(users, items, times, cutoff=5.0, known_only=False)
    assert everything.test.tolist() == [False] * 4 + [True] * 3


@pytest.mark.parametrize("spread", [1, 10**9])  # dense ids (an offset) and ids far apart (np.unique)
def test_temporal_split_on_random_events_matches_the_definition(spread) -> None:
    """Integer keys give the masks the definition gives (sets of users, items, pairs)."""
    rng = np.random.default_rng(7)
    users = rng.integers(0, 300, 5000) * spread
    items = rng.integers(0, 200, 5000)
    times = rng.random(5000)
    for cutoff in (0.5, 0.9, 2.0):
        train = times < cutoff
        train_users, train_items = set(users[train].tolist()), set(items[train].tolist())
        train_pairs = set(zip(users[train].tolist(), items[train].tolist(), strict=True))
        for known_only in (True, False):
            for new_pairs_only in (True, False):
                want = [
                    not t
                    and (not known_only or (u in train_users and i in train_items))
                    and (not new_pairs_only or (u, i) not in train_pairs)
                    for u, i, t in zip(users.tolist(), items.tolist(), train.tolist(), strict=True)
                ]
                split = temporal_split(
                    users, items, times, cutoff=cutoff, known_only=known_only, new_pairs_only=new_pairs_only
                )
                assert split.train.tolist() == train.tolist()
                assert split.test.tolist() == want
    assert split.test.sum() == 0  # nothing after the newest event


def test_leave_last_n_out() -> None:
    users = np.array([7, 7, 7, 8, 9, 9])
    items = np.arange(6)
    times = np.array([3.0, 1.0, 2.0, 5.0, 4.0, 4.0])
    split = leave_last_n_out(users, items, times, n=1)
    # user 7: the event at t=3; user 8 has one event (kept in train); user 9: a tie,
    # broken by position (the later row)
    assert split.test.tolist() == [True, False, False, False, False, True]
    two = leave_last_n_out(users, items, times, n=2)
    assert two.test.tolist() == [True, False, True, False, False, False]
    assert np.all(split.train ^ split.test)


def test_random_stratified_split() -> None:
    rng = np.random.default_rng(5)
    users = np.repeat(np.arange(50), rng.integers(1, 20, 50))
    split = random_stratified_split(users, test_fraction=0.25, seed=3)
    again = random_stratified_split(users, test_fraction=0.25, seed=3)
    other = random_stratified_split(users, test_fraction=0.25, seed=4)
    np.testing.assert_array_equal(split.test, again.test)
    assert not np.array_equal(split.test, other.test)
    for user in range(50):
        count = int((users == user).sum())
        in_test = int(split.test[users == user].sum())
        if count == 1:
            assert in_test == 0
        else:
            assert in_test == max(1, min(round(0.25 * count), count - 1))
    with pytest.raises(EngineError, match="test_fraction"):
        random_stratified_split(users, test_fraction=1.5)


# --------------------------------------------------------------------------- evaluate
def test_evaluate_averages_over_users_with_test_items() -> None:
    train = sp.csr_matrix(np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1]], np.float32))
    test = sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]], np.float32))
    model = algorithm_build("popularity").fit(train)  # ranks 0, then 1 and 3, then 2
    result = evaluate(model, train, test, k=2)
    # user 0 (has 0): [1, 3] -> hit at rank 1; user 2 (has 3): [0, 1] -> hit at rank 1
    assert result["users"] == 2
    assert result["ndcg"] == pytest.approx(1.0)
    assert result["precision"] == pytest.approx(0.5)
    assert result["recall"] == pytest.approx(1.0)
    assert result["hit_rate"] == pytest.approx(1.0)
    assert 0 < result["coverage"] <= 1 and result["novelty"] > 0
    with pytest.raises(EngineError, match="no user has a test item"):
        evaluate(model, train, sp.csr_matrix(train.shape, dtype=np.float32))
