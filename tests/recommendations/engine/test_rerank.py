"""Popularity-calibrated re-ranking (engine.rerank) and the popularity-bias figures of
offline evaluation: groups, the greedy choice, and that re-ranking moves long-tail
share, popularity lift, coverage and NDCG in the stated directions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommendations.engine import algorithm_build
from recommendations.engine.errors import EngineError
from recommendations.engine.evaluation import evaluate, popularity_bias
from recommendations.engine.rerank import (
    HEAD,
    MID,
    TAIL,
    group_mix,
    js_divergence,
    popularity_calibrated,
    popularity_groups,
    rerank_lists,
)


def test_groups_split_the_interactions_20_60_20():
    # 10 items; total 100: item 0 alone holds 40% (head), the tail starts where 80% is reached
    pop = np.array([40, 20, 15, 10, 5, 4, 3, 2, 1, 0])
    groups = popularity_groups(pop)
    assert groups.tolist() == [HEAD, MID, MID, MID, TAIL, TAIL, TAIL, TAIL, TAIL, TAIL]
    # the order of the input does not matter
    perm = np.random.default_rng(0).permutation(10)
    assert popularity_groups(pop[perm]).tolist() == groups[perm].tolist()
    assert popularity_groups(np.zeros(4)).tolist() == [TAIL] * 4
    with pytest.raises(EngineError, match="non-negative"):
        popularity_groups(np.array([1.0, -1.0]))
    with pytest.raises(EngineError, match="head_share"):
        popularity_groups(pop, head_share=0.6, tail_share=0.5)


def test_weight_zero_changes_nothing_and_bad_input_is_named():
    groups = np.array([HEAD, HEAD, MID, TAIL, TAIL])
    assert popularity_calibrated(groups, weight=0, n=3).tolist() == [0, 1, 2]
    assert popularity_calibrated(groups, weight=0.0, n=10).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(EngineError, match="weight"):
        popularity_calibrated(groups, weight=1.5, n=3)
    with pytest.raises(EngineError, match="weight"):
        popularity_calibrated(groups, weight=True, n=3)
    with pytest.raises(EngineError, match="n must"):
        popularity_calibrated(groups, weight=0.5, n=-1)
    with pytest.raises(EngineError, match="groups"):
        popularity_calibrated(np.array([0, 3]), weight=0.5, n=1)
    with pytest.raises(EngineError, match="target"):
        popularity_calibrated(groups, weight=0.5, n=1, target=np.array([1.0, 0.0]))
    with pytest.raises(EngineError, match="scores"):
        popularity_calibrated(groups, weight=0.5, n=1, scores=np.array([1.0]))


def test_calibration_brings_the_list_towards_the_target_mix():
    # ten head candidates ranked first, then ten tail ones; a shopper whose history is half tail
    groups = np.array([HEAD] * 10 + [TAIL] * 10)
    scores = np.linspace(1.0, 0.5, 20)
    target = group_mix(np.array([HEAD, TAIL, TAIL, HEAD]))
    assert target.tolist() == [0.5, 0.0, 0.5]
    shares = []
    for weight in (0.0, 0.2, 0.5, 0.9, 1.0):
        order = popularity_calibrated(groups, weight=weight, n=10, scores=scores, target=target)
        assert len(set(order.tolist())) == 10
        shares.append(float(np.mean(groups[order] == TAIL)))
    assert shares[0] == 0.0
    assert shares == sorted(shares) and 0 < shares[2] < shares[3] < shares[4] == pytest.approx(0.5)
    # the most relevant candidate stays first when it already fits
    assert popularity_calibrated(groups, weight=0.5, n=10, scores=scores, target=target)[0] == 0
    # padding (-inf) comes last
    padded = np.array([1.0, -np.inf, 0.5])
    assert popularity_calibrated(np.array([HEAD, TAIL, HEAD]), weight=1.0, n=3, scores=padded)[-1] == 1


def test_js_divergence_bounds():
    p = np.array([0.5, 0.0, 0.5])
    assert js_divergence(p, p[None, :])[0] == pytest.approx(0.0)
    assert js_divergence(np.array([1.0, 0, 0]), np.array([[0, 0, 1.0]]))[0] == pytest.approx(1.0)


def test_batched_reranking_equals_one_list_at_a_time():
    rng = np.random.default_rng(3)
    groups_all = popularity_groups(rng.pareto(1.1, 300) + 0.01)
    ids = np.array([rng.choice(300, 40, replace=False) for _ in range(25)])
    scores = -np.sort(-rng.random((25, 40)), axis=1)
    ids[3, 30:] = -1
    scores[3, 30:] = -np.inf
    targets = rng.dirichlet(np.ones(3), 25)
    for weight in (0.0, 0.3, 0.8):
        batched = rerank_lists(ids, scores, groups_all, weight=weight, n=10, targets=targets)
        for row in range(25):
            real = ids[row] >= 0
            one = popularity_calibrated(
                groups_all[ids[row][real]], weight=weight, n=10, scores=scores[row][real], target=targets[row]
            )
            assert batched[row].tolist() == ids[row][real][one].tolist()


def _biased_store(seed: int = 0):
    """Users with tastes over a long-tailed catalogue: 70% of each user's items come
    from one of 8 clusters, 30% from the store's bestsellers, both by a power law of
    popularity; two items per user are held out."""
    rng = np.random.default_rng(seed)
    n_users, n_items, clusters, history = 400, 400, 8, 10
    per = n_items // clusters
    local = 1.0 / np.arange(1, per + 1) ** 1.1
    local /= local.sum()
    overall = 1.0 / np.arange(1, n_items + 1) ** 1.1
    overall /= overall.sum()
    rows, cols, test_rows, test_cols = [], [], [], []
    for u in range(n_users):
        items: set[int] = set()
        while len(items) < history + 2:
            if rng.random() < 0.3:
                items.add(int(rng.choice(n_items, p=overall)))
            else:
                items.add(int((u % clusters) * per + rng.choice(per, p=local)))
        chosen = list(items)
        rng.shuffle(chosen)
        rows += [u] * history
        cols += chosen[:history]
        test_rows += [u] * 2
        test_cols += chosen[history:]
    train = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    test = sp.csr_matrix((np.ones(len(test_rows), np.float32), (test_rows, test_cols)), shape=(n_users, n_items))
    return train, test


def test_reranking_moves_the_figures_in_the_stated_direction():
    train, test = _biased_store()
    model = algorithm_build("ease", lam=100.0).fit(train)
    result = evaluate(model, train, test, k=10, rerank_weights=(0.25, 0.5, 0.9))
    assert {"long_tail_share", "popularity_lift", "coverage", "novelty"} <= set(result)
    assert result["popularity_lift"] > 0.3  # the model recommends far more popular items than users chose
    weights = (0.25, 0.5, 0.9)
    tail = [result["long_tail_share"]] + [result[f"rerank@{w}:long_tail_share"] for w in weights]
    lift = [result["popularity_lift"]] + [result[f"rerank@{w}:popularity_lift"] for w in weights]
    coverage = [result["coverage"]] + [result[f"rerank@{w}:coverage"] for w in weights]
    novelty = [result["novelty"]] + [result[f"rerank@{w}:novelty"] for w in weights]
    ndcg = [result["ndcg"]] + [result[f"rerank@{w}:ndcg"] for w in weights]
    assert tail == sorted(tail) and tail[-1] > 3 * tail[0]  # more long tail with more weight
    assert lift == sorted(lift, reverse=True) and lift[-1] < 0.7 * lift[0]  # less popularity bias
    assert coverage == sorted(coverage) and novelty[-1] > novelty[0]
    assert ndcg[-1] < ndcg[0]  # paid for with accuracy ...
    assert min(ndcg[1], ndcg[2]) > 0.9 * ndcg[0]  # ... a small loss at moderate weights


def test_popularity_bias_figures_on_a_worked_example():
    pop = np.array([0.9, 0.5, 0.05, 0.05])  # groups: 0 head, 1 mid, 2-3 tail
    history = sp.csr_matrix(np.array([[0, 0, 1, 1], [1, 0, 0, 0]], dtype=np.float32))
    recommended = np.array([[0, 1], [2, -1]])
    figures = popularity_bias(recommended, history, pop)
    assert figures["long_tail_share"] == pytest.approx(1 / 3)
    # row 0: ARP 0.7 vs history 0.05 -> 13; row 1: 0.05 vs 0.9 -> -0.944...
    assert figures["popularity_lift"] == pytest.approx(((0.7 / 0.05 - 1) + (0.05 / 0.9 - 1)) / 2)
    with pytest.raises(EngineError, match="rows"):
        popularity_bias(recommended[:1], history, pop)
