"""Automatic model selection: a small, bounded search judged on a validation split.

``select_model`` fits every candidate (algorithm, parameters) on the training
matrix, evaluates it on the validation matrix (same shape: held-out items of the
same users, e.g. the last weeks before the test cutoff) and picks the best by
NDCG@k. Then, unless ``hybrid=False``, it blends the best collaborative candidate
with content and trending (``HybridRecommender.tune_weights`` on the same
validation data) and keeps the hybrid if it wins. Every candidate's metrics and
training time are reported; candidates that cannot run (too many items for EASE,
no side text for content, time budget used up) are reported as skipped.

The result names the winner and its parameters; refit it on all data with
``algorithm_build(result.best_name, **result.best_params).fit(...)``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from .base import ALGORITHMS, Progress, Recommender, SideData, algorithm_build, check_user_items
from .errors import EngineError
from .evaluation import evaluate
from .hybrid import HybridRecommender

__all__ = ["COLLABORATIVE", "DEFAULT_CANDIDATES", "SelectionResult", "candidates_for", "select_model"]

DEFAULT_CANDIDATES: Mapping[str, Sequence[Mapping[str, Any]]] = {
    "popularity": [{}],
    "trending": [{}],
    "content": [{}],
    "item_knn": [{"k": 100, "weighting": "binary"}, {"k": 100, "weighting": "log"}],
    "item_knn_bm25": [{"k": 100}, {"k": 300}],
    "svd": [{"factors": 32, "weighting": "binary"}, {"factors": 64, "weighting": "binary"}],
    "als": [
        {"factors": 64, "regularization": 0.05, "weighting": "binary"},
        {"factors": 128, "regularization": 0.1, "weighting": "confidence", "confidence_alpha": 2.0},
    ],
    "bpr": [{"factors": 64}],
    "ease": [
        {"lam": 300.0, "weighting": "binary"},
        {"lam": 800.0, "weighting": "binary"},
        {"lam": 1000.0, "weighting": "confidence", "confidence_alpha": 3.0, "history_weighting": "binary"},
        {"lam": 2000.0, "weighting": "confidence", "confidence_alpha": 5.0, "history_weighting": "binary"},
    ],
}
"""A fixed grid tuned on Online Retail (bench/quality.py); ``candidates_for`` scales one to the data."""


def candidates_for(user_items: sp.spmatrix) -> dict[str, list[dict[str, Any]]]:
    """The default search for this matrix: EASE, ALS and item-kNN settings scaled to
    its size and density, cheapest first (so a time budget cuts the dearest).

    * EASE's ``lam`` is a ridge on the item-item Gram matrix, whose diagonal is each
      item's (weighted) number of users: the grid spans 0.5x to 60x the mean item
      degree, plain and with confidence weights (repeat events count more), fewer
      points when the catalogue makes each fit dear.
    * ALS: few factors with a strong ridge for small data, more factors with a
      light one for large data; plain, confidence (alpha 2 and 10) and BM25 rows.
    * item-kNN: cosine on binary/log rows with and without shrinkage, BM25 dot.
    """
    matrix = sp.csr_matrix(user_items)
    n_users, n_items = matrix.shape
    nnz = max(int(matrix.nnz), 1)
    degree = max(nnz / max(n_items, 1), 1.0)
    small = n_users * n_items <= 5_000_000 or nnz <= 200_000

    def lam(factor: float) -> float:
        return float(round(max(degree * factor, 1.0), 1))

    ease_factors = (0.5, 2.0, 6.0, 20.0, 60.0) if n_items <= 6_000 else (2.0, 10.0, 40.0)
    ease: list[dict[str, Any]] = [{"lam": lam(f), "weighting": "binary"} for f in ease_factors]
    conf = {"weighting": "confidence", "confidence_alpha": 5.0, "history_weighting": "binary"}
    ease += [{"lam": lam(f), **conf} for f in ((6.0, 20.0, 60.0) if n_items <= 6_000 else (10.0, 40.0))]
    factors = (32, 64) if small else (64, 128)
    als: list[dict[str, Any]] = [
        {"factors": factors[0], "regularization": 1.0 if small else 0.05, "weighting": "binary"},
        {"factors": factors[1], "regularization": 0.1, "weighting": "binary"},
        {"factors": factors[1], "regularization": 0.1, "weighting": "confidence", "confidence_alpha": 2.0},
        {"factors": factors[0], "regularization": 1.0, "weighting": "confidence", "confidence_alpha": 10.0},
        {"factors": factors[1], "regularization": 0.5, "weighting": "bm25"},
    ]
    return {
        "popularity": [{}],
        "trending": [{}],
        "content": [{}],
        "item_knn": [
            {"k": 50, "weighting": "binary"},
            {"k": 200, "weighting": "log"},
            {"k": 100, "weighting": "binary", "shrink": 10.0},
        ],
        "item_knn_bm25": [{"k": 100}, {"k": 300}],
        "svd": [{"factors": 32, "weighting": "binary"}, {"factors": 64 if small else 128, "weighting": "binary"}],
        "ease": ease,
        "als": als,
    }


COLLABORATIVE = ("item_knn", "item_knn_bm25", "svd", "als", "bpr", "ease")
"""Algorithms that can be the collaborative part of the hybrid."""


@dataclass
class SelectionResult:
    """What ``select_model`` found."""

    best_name: str
    best_params: dict[str, Any]
    best_metrics: dict[str, float]
    rows: list[dict[str, Any]] = field(default_factory=list)
    """One row per candidate: algorithm, params, status, metrics, train_seconds."""
    model: Recommender | None = None
    """The winner as fitted on the training matrix (not refitted on all data)."""


def _skip_reason(name: str, params: Mapping[str, Any], n_items: int, side: SideData | None) -> str | None:
    if name == "content" and (side is None or not side.has_content):
        return "the store has no product names or categories"
    if name == "ease":
        limit = params.get("max_items", ALGORITHMS["ease"].defaults["max_items"])
        if n_items > limit:
            return f"{n_items} items > max_items={limit}"
    return None


def select_model(
    train: sp.spmatrix,
    validation: sp.spmatrix,
    side: SideData | None = None,
    *,
    candidates: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    k: int = 10,
    time_budget_s: float | None = None,
    progress: Progress | None = None,
    hybrid: bool = True,
    exclude_train: bool = True,
    exclude: sp.spmatrix | None = None,
) -> SelectionResult:
    """Fit and evaluate every candidate; return the best by NDCG@k (see module doc).

    ``train`` gives the models' training data *and* the validation users'
    histories; ``validation`` holds their held-out items (same shape). When
    ``time_budget_s`` is set, candidates not started before the budget is used up
    are skipped (the search is ordered cheapest first, so something always runs).
    ``candidates`` defaults to ``candidates_for(train)``; ``exclude`` (same shape)
    is what serving never shows each user (``evaluation.evaluate``).
    """
    started = time.perf_counter()
    train = check_user_items(train, what="train")
    validation = check_user_items(validation, what="validation")
    if train.shape != validation.shape:
        raise EngineError(f"train has shape {train.shape}, validation {validation.shape}")
    if np.diff(validation.indptr).max(initial=0) == 0:
        raise EngineError("validation has no held-out items: nothing to select on")
    grid = candidates_for(train) if candidates is None else candidates
    unknown = sorted(set(grid) - set(ALGORITHMS))
    if unknown:
        raise EngineError(f"unknown algorithm(s) in candidates: {unknown}")
    plan = [(name, dict(params)) for name, options in grid.items() for params in options]
    if not plan:
        raise EngineError("no candidates to select from")
    total_steps = len(plan) + (1 if hybrid else 0)

    def report(step: float) -> None:
        if progress is not None:
            progress(min(max(step / total_steps, 0.0), 1.0))

    rows: list[dict[str, Any]] = []
    fitted: list[tuple[dict[str, Any], Recommender]] = []
    for step, (name, params) in enumerate(plan):
        report(step)
        row: dict[str, Any] = {"algorithm": name, "params": params}
        rows.append(row)
        reason = _skip_reason(name, params, train.shape[1], side)
        if reason is None and time_budget_s is not None and fitted:
            if time.perf_counter() - started > time_budget_s:
                reason = f"time budget of {time_budget_s:g}s used up"
        if reason is not None:
            row.update(status="skipped", reason=reason)
            continue
        try:
            model = algorithm_build(name, **params)
            row["params"] = model.get_params()
            tic = time.perf_counter()
            model.fit(train, side)
            row["train_seconds"] = time.perf_counter() - tic
            row.update(evaluate(model, train, validation, k=k, exclude_train=exclude_train, exclude=exclude))
        except EngineError as exc:
            row.update(status="failed", reason=str(exc))
            continue
        row["status"] = "ok"
        fitted.append((row, model))

    if not fitted:
        raise EngineError(
            "no candidate could be fitted: " + "; ".join(f"{r['algorithm']}: {r.get('reason')}" for r in rows)
        )

    if hybrid:
        report(len(plan))
        cf = [(row, model) for row, model in fitted if row["algorithm"] in COLLABORATIVE]
        if cf:
            cf_row, cf_model = max(cf, key=lambda pair: pair[0]["ndcg"])
            row = {"algorithm": "hybrid"}
            rows.append(row)
            try:
                tic = time.perf_counter()
                model = HybridRecommender(cf=cf_row["algorithm"], cf_params=cf_row["params"])
                model.fit_with_cf(train, side, cf_model=cf_model)
                rows_eval = np.flatnonzero(np.diff(validation.indptr) > 0)
                tuning = model.tune_weights(
                    train[rows_eval],
                    validation[rows_eval],
                    k=k,
                    exclude_history=exclude_train,
                    exclude=None if exclude is None else sp.csr_matrix(exclude)[rows_eval],
                )
                row["train_seconds"] = cf_row["train_seconds"] + time.perf_counter() - tic
                row["params"] = model.get_params()
                row["tuning"] = tuning[:5]
                if model.content_model is None:
                    row["reason"] = "CF + trending only: the store has no product names or categories"
                row.update(evaluate(model, train, validation, k=k, exclude_train=exclude_train, exclude=exclude))
                row["status"] = "ok"
                fitted.append((row, model))
            except EngineError as exc:
                row.update(status="failed", reason=str(exc))

    best_row, best_model = max(fitted, key=lambda pair: pair[0]["ndcg"])
    report(total_steps)
    metrics = {key: value for key, value in best_row.items() if isinstance(value, float) and key != "train_seconds"}
    return SelectionResult(
        best_name=best_row["algorithm"],
        best_params=dict(best_row["params"]),
        best_metrics=metrics,
        rows=rows,
        model=best_model,
    )
