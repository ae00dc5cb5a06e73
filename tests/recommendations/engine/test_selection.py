"""selection.py: bounded search on a validation split, best by NDCG@10."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommendations.engine import EngineError, SideData, algorithm_build, select_model


def clustered(seed: int = 0) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """60 shoppers in 3 taste clusters of 10 items; validation = one more item of the
    shopper's cluster they had not bought."""
    rng = np.random.default_rng(seed)
    train = np.zeros((60, 30), np.float32)
    valid = np.zeros((60, 30), np.float32)
    for user in range(60):
        cluster = user % 3
        items = rng.permutation(10)[:7] + 10 * cluster
        train[user, items[:6]] = 1.0
        train[user, rng.integers(0, 30)] = 1.0  # noise
        if train[user, items[6]] == 0:
            valid[user, items[6]] = 1.0
    return sp.csr_matrix(train), sp.csr_matrix(valid)


CANDIDATES = {
    "popularity": [{}],
    "content": [{}],
    "item_knn": [{"k": 5}],
    "ease": [{"lam": 1.0}, {"lam": 50.0}, {"lam": 10.0, "max_items": 10}],
}


def test_selects_a_personalised_model_and_reports_every_candidate() -> None:
    train, valid = clustered()
    seen: list[float] = []
    result = select_model(train, valid, None, candidates=CANDIDATES, progress=seen.append)
    by_status = {}
    for row in result.rows:
        by_status.setdefault(row["status"], []).append(row["algorithm"])
    assert by_status["skipped"] == ["content", "ease"]  # no side text; 30 items > 10
    assert sorted(by_status["ok"]) == ["ease", "ease", "hybrid", "item_knn", "popularity"]
    ok = [row for row in result.rows if row["status"] == "ok"]
    assert all(row["train_seconds"] >= 0 and 0 <= row["ndcg"] <= 1 for row in ok)
    assert all({"precision", "recall", "map", "coverage"} <= set(row) for row in ok)
    best = max(ok, key=lambda row: row["ndcg"])
    assert result.best_name == best["algorithm"] != "popularity"
    assert result.best_metrics["ndcg"] == best["ndcg"]
    popularity = next(row for row in ok if row["algorithm"] == "popularity")
    assert best["ndcg"] > 2 * popularity["ndcg"]
    assert seen[-1] == 1.0 and seen == sorted(seen)
    # the winner can be rebuilt and refitted from its name and parameters
    algorithm_build(result.best_name, **result.best_params).fit(train)
    assert result.model is not None and result.model.fitted


def test_the_hybrid_blends_the_best_collaborative_candidate() -> None:
    train, valid = clustered(1)
    side = SideData(item_recent=np.arange(30, dtype=np.float32))
    result = select_model(train, valid, side, candidates={"ease": [{"lam": 1.0}, {"lam": 50.0}]})
    ease_rows = [row for row in result.rows if row["algorithm"] == "ease"]
    hybrid_row = next(row for row in result.rows if row["algorithm"] == "hybrid")
    best_ease = max(ease_rows, key=lambda row: row["ndcg"])
    assert hybrid_row["params"]["cf_params"]["lam"] == best_ease["params"]["lam"]
    assert hybrid_row["tuning"][0]["ndcg"] >= best_ease["ndcg"] - 1e-9
    no_hybrid = select_model(train, valid, side, candidates={"ease": [{"lam": 1.0}]}, hybrid=False)
    assert [row["algorithm"] for row in no_hybrid.rows] == ["ease"]


def test_time_budget_skips_what_is_left() -> None:
    train, valid = clustered()
    result = select_model(train, valid, candidates=CANDIDATES, time_budget_s=0.0, hybrid=False)
    statuses = [(row["algorithm"], row["status"]) for row in result.rows]
    assert statuses[0] == ("popularity", "ok")
    assert all(status == "skipped" for _, status in statuses[1:])
    assert "time budget" in result.rows[2]["reason"]


def test_bad_inputs() -> None:
    train, valid = clustered()
    with pytest.raises(EngineError, match="shape"):
        select_model(train, valid[:, :10])
    with pytest.raises(EngineError, match="no held-out items"):
        select_model(train, sp.csr_matrix(train.shape, dtype=np.float32))
    with pytest.raises(EngineError, match=r"unknown algorithm\(s\) in candidates: \['slim'\]"):
        select_model(train, valid, candidates={"slim": [{}]})
    result = select_model(train, valid, candidates={"ease": [{"lam": -1.0}], "popularity": [{}]})
    failed = result.rows[0]
    assert failed["status"] == "failed" and "lam must be > 0" in failed["reason"]
