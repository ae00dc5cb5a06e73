"""Hybrid: a collaborative model blended with content and trending, plus cold start.

    score = w_cf * cf' + w_content * content' + w_trending * trending + w_history * had

``had`` is 1 on the row's own (history) items: ``w_history`` is the customer's
propensity to come back to what they already looked at (positive where they do, as
with repeated views, negative where they do not, so their history stops crowding
the list). Consumed items (purchases, ratings) are excluded by serving anyway.

``cf'`` and ``content'`` are the component scores of the row divided by the row's
largest magnitude (so the weights mean the same for short and long histories);
``trending`` is recency-weighted popularity scaled to [0, 1]. The weights are
parameters; ``tune_weights`` picks them on validation data (``selection`` does
this automatically) by NDCG@k, reusing one computation of the components.

Cold start:

* **New users** with no history score ``w_trending * trending`` (trending now);
  with *stated interests* ``score_interests`` adds ``w_interests`` times the
  content similarity to a profile built from interest text / category ids.
  Anonymous *session histories* are ordinary history rows (fold-in).
* **New products** (no interactions in training, so no collaborative signal) get
  the collaborative score of their ``cold_neighbours`` most content-similar
  products with interactions (similarity-weighted mean, times ``cold_discount``),
  so they can appear next to their look-alikes. Their ``similar_items`` come from
  content similarity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._arrays import csr_from_state, csr_state, row_normalise_max, top_n
from .base import (
    ALGORITHMS,
    Progress,
    Recommender,
    SideData,
    _ProgressReporter,
    algorithm_build,
    from_arrays,
)
from .content import ContentRecommender
from .errors import EngineError
from .evaluation import ndcg_at_k
from .popularity import TrendingRecommender

__all__ = ["DEFAULT_CONTENT_GRID", "DEFAULT_HISTORY_GRID", "DEFAULT_TRENDING_GRID", "HybridRecommender"]

DEFAULT_TRENDING_GRID: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 2.0)
DEFAULT_CONTENT_GRID: tuple[float, ...] = (0.0, 0.1, 0.2, 0.4, 0.7, 1.0)
DEFAULT_HISTORY_GRID: tuple[float, ...] = (0.0, -2.0, -0.5, 0.5)

_NOT_CF = ("hybrid", "content")


class HybridRecommender(Recommender):
    """CF + content + trending blend with cold-start handling (see the module doc)."""

    name = "hybrid"
    defaults = {
        "cf": "ease",
        "cf_params": {},
        "content_params": {},
        "trending_smoothing": 0.01,
        "w_cf": 1.0,
        "w_content": 0.0,
        "w_trending": 0.1,
        "w_history": 0.0,
        "w_interests": 1.0,
        "cold_neighbours": 20,
        "cold_discount": 0.5,
        "similar_content_weight": 0.3,
    }

    def _check_params(self) -> None:
        p = self.params
        self._require(
            p["cf"] in ALGORITHMS and p["cf"] not in _NOT_CF,
            f"cf must be one of {sorted(set(ALGORITHMS) - set(_NOT_CF))}, got {p['cf']!r}",
        )
        for key in ("w_cf", "w_content", "w_trending", "w_interests", "similar_content_weight"):
            self._require_between(key, 0, 1_000_000)
        self._require_between("w_history", -1_000_000, 1_000_000)
        self._require_between("cold_neighbours", 0, 1_000)  # 0 = off
        self._require(0 <= p["cold_discount"] <= 1, "cold_discount must be in [0, 1]")
        self._require(0 <= p["trending_smoothing"] <= 1, "trending_smoothing must be in [0, 1]")
        try:  # fail now, not after fitting, on bad component parameters
            algorithm_build(p["cf"], **p["cf_params"])
            ContentRecommender(**p["content_params"])
        except EngineError as exc:
            raise EngineError(f"hybrid: {exc}") from exc
        self.content_model: ContentRecommender | None = None
        self.cold_map: sp.csr_matrix | None = None

    # ------------------------------------------------------------ fit
    def _fit(self, user_items: sp.csr_matrix, side: SideData | None, progress: Progress) -> None:
        p = self.params
        if not isinstance(progress, _ProgressReporter):
            progress = _ProgressReporter(progress)
        given = getattr(self, "_given_cf", None)
        if given is not None:
            self.cf_model = given
        else:
            self.cf_model = algorithm_build(p["cf"], **p["cf_params"])
            self.cf_model.fit(user_items, side, progress=progress.part(0.0, 0.8))
        self.trending_model = TrendingRecommender(smoothing=p["trending_smoothing"])
        self.trending_model.fit(user_items, side)
        self.content_model = None
        self.cold_map = None
        if side is not None and side.has_content:  # without side data: CF + trending only
            self.content_model = ContentRecommender(**p["content_params"])
            self.content_model.fit(user_items, side, progress=progress.part(0.8, 0.95))
            warm = np.bincount(user_items.indices, minlength=user_items.shape[1]) > 0
            if p["cold_neighbours"] and warm.any() and not warm.all():
                self.cold_map = self._cold_map(warm)
        self._prepare_cold()

    def _prepare_cold(self) -> None:
        """Cache the cold items that receive propagated scores and their columns."""
        self._cold_targets = np.zeros(0, dtype=np.int64)
        self._cold_columns: sp.csc_matrix | None = None
        if self.cold_map is not None and self.cold_map.nnz:
            self._cold_targets = np.unique(self.cold_map.indices).astype(np.int64)
            self._cold_columns = self.cold_map[:, self._cold_targets].tocsc()

    def fit_with_cf(
        self,
        user_items: sp.spmatrix,
        side: SideData | None = None,
        *,
        cf_model: Recommender,
        progress: Progress | None = None,
    ) -> HybridRecommender:
        """``fit``, reusing ``cf_model`` already fitted on the same ``user_items``.

        Saves refitting the collaborative part (model selection fits it anyway).
        ``cf_model`` must be the algorithm and parameters named by ``cf``/``cf_params``.
        """
        if cf_model.name != self.params["cf"] or not cf_model.fitted:
            raise EngineError(f"hybrid: cf_model must be a fitted {self.params['cf']!r} model")
        if cf_model.n_items != user_items.shape[1]:
            raise EngineError("hybrid: cf_model was fitted on a different number of items")
        self.params["cf_params"] = cf_model.get_params()
        self._given_cf: Recommender | None = cf_model
        try:
            return self.fit(user_items, side, progress=progress)
        finally:
            self._given_cf = None

    def _cold_map(self, warm: np.ndarray) -> sp.csr_matrix:
        """items x items: column ``i`` (a cold item) = normalised weights of its warm
        content neighbours, so ``cf @ cold_map`` gives cold items their neighbours' mean."""
        assert self.content_model is not None
        neighbours = self.content_model.neighbours(self.params["cold_neighbours"], candidates=warm)
        neighbours = sp.diags((~warm).astype(np.float32)) @ neighbours  # cold rows only
        totals = np.asarray(neighbours.sum(axis=1)).ravel()
        totals[totals == 0] = 1.0
        neighbours = sp.diags((1.0 / totals).astype(np.float32)) @ neighbours
        mapping = sp.csr_matrix(neighbours.T, dtype=np.float32)
        mapping.eliminate_zeros()
        return mapping

    # ------------------------------------------------------------ scoring
    def _cf_scores(self, history: sp.csr_matrix) -> np.ndarray:
        cf = row_normalise_max(self.cf_model._score(history))
        if self._cold_columns is not None:
            propagated = np.asarray(cf @ self._cold_columns, dtype=np.float32)
            cf[:, self._cold_targets] = np.float32(self.params["cold_discount"]) * propagated
        return cf

    def components(self, history: sp.spmatrix) -> dict[str, np.ndarray]:
        """The normalised component scores (``cf``, ``content`` if any, ``trending``)."""
        return self._components(self.check_history(history))

    def _components(self, history: sp.csr_matrix) -> dict[str, np.ndarray]:
        parts = {"cf": self._cf_scores(history)}
        if self.content_model is not None:
            parts["content"] = row_normalise_max(self.content_model._score(history))
        parts["trending"] = np.broadcast_to(self.trending_model.item_scores[None, :], (history.shape[0], self.n_items))
        parts["history"] = np.asarray((history > 0).todense(), dtype=np.float32)
        return parts

    def _blend(
        self,
        parts: Mapping[str, np.ndarray],
        w_content: float,
        w_trending: float,
        w_cf: float | None = None,
        w_history: float | None = None,
    ) -> np.ndarray:
        w_cf = self.params["w_cf"] if w_cf is None else w_cf
        w_history = self.params["w_history"] if w_history is None else w_history
        total = w_cf * parts["cf"]
        if "content" in parts and w_content:
            total = total + w_content * parts["content"]
        if w_trending:
            total = total + w_trending * parts["trending"]
        if w_history:
            total = total + np.float32(w_history) * parts["history"]
        return np.asarray(total, dtype=np.float32)

    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        p = self.params
        parts = self._components(history)
        return self._blend(parts, p["w_content"], p["w_trending"])

    def score_interests(
        self,
        history: sp.spmatrix,
        *,
        texts: Sequence[str] | None = None,
        categories: Sequence[Sequence[int]] | None = None,
    ) -> np.ndarray:
        """Scores for users with stated interests (and possibly some history).

        ``texts`` / ``categories`` are aligned with the history rows (use an empty
        history row for a brand-new user). Adds ``w_interests`` times the content
        similarity to the interest profile to the usual blend.
        """
        history = self.check_history(history)
        if self.content_model is None:
            raise EngineError("hybrid: no content model (fitted without side text/categories)")
        scores = self._score(history)
        rows = history.shape[0]
        profile = sp.csr_matrix((rows, self.content_model.item_features.shape[1]), dtype=np.float32)
        if texts is not None:
            if len(texts) != rows:
                raise EngineError(f"texts has {len(texts)} entries for {rows} history rows")
            profile = profile + self.content_model.profile_from_text(texts)
        if categories is not None:
            if len(categories) != rows:
                raise EngineError(f"categories has {len(categories)} entries for {rows} rows")
            profile = profile + self.content_model.profile_from_categories(categories)
        interest = row_normalise_max(self.content_model.score_profiles(profile))
        return scores + np.float32(self.params["w_interests"]) * interest

    def recommend_interests(
        self,
        history: sp.spmatrix,
        *,
        texts: Sequence[str] | None = None,
        categories: Sequence[Sequence[int]] | None = None,
        n: int = 10,
        exclude_history: bool = True,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``recommend`` with stated interests (see ``score_interests``)."""
        history = self.check_history(history)
        scores = self.score_interests(history, texts=texts, categories=categories)
        if exclude_history and history.nnz:
            r, c = history.nonzero()
            scores[r, c] = -np.inf
        if allowed is not None:
            scores[np.broadcast_to(~np.asarray(allowed, dtype=bool), scores.shape)] = -np.inf
        return top_n(scores, n)

    def _similar(self, items: np.ndarray) -> np.ndarray:
        sims = row_normalise_max(self.cf_model._similar(items))
        if self.content_model is not None and self.params["similar_content_weight"]:
            sims = sims + self.params["similar_content_weight"] * self.content_model._similar(items)
        return sims

    # ------------------------------------------------------------ tuning
    def tune_weights(
        self,
        history: sp.spmatrix,
        relevant: sp.spmatrix,
        *,
        k: int = 10,
        trending_grid: Sequence[float] = DEFAULT_TRENDING_GRID,
        content_grid: Sequence[float] = DEFAULT_CONTENT_GRID,
        history_grid: Sequence[float] = DEFAULT_HISTORY_GRID,
        exclude_history: bool = True,
        batch_rows: int = 1024,
        exclude: sp.spmatrix | None = None,
    ) -> list[dict[str, Any]]:
        """Grid-search ``w_trending`` x ``w_content`` x ``w_history`` (``w_cf`` = 1) by
        NDCG@k (``w_history`` only when the history is not excluded anyway).

        ``history`` rows are the validation users' training histories, ``relevant``
        their held-out items (same rows); rows without relevant items are skipped.
        Sets the best weights on this model and returns one row per grid point
        (``w_content``, ``w_trending``, ``ndcg``), best first. ``exclude`` (same
        rows) is never recommended, like ``evaluation.evaluate``'s.
        """
        history = self.check_history(history)
        relevant = sp.csr_matrix(relevant)
        if relevant.shape != history.shape:
            raise EngineError(f"relevant has shape {relevant.shape}, history {history.shape}")
        excluded = None
        if exclude is not None:
            excluded = sp.csr_matrix(exclude, dtype=np.float32)
            if excluded.shape != history.shape:
                raise EngineError(f"exclude has shape {excluded.shape}, history {history.shape}")
            relevant = sp.csr_matrix(relevant - relevant.multiply(excluded != 0))
            relevant.eliminate_zeros()
        users = np.flatnonzero(np.diff(relevant.indptr) > 0)
        if users.size == 0:
            raise EngineError("hybrid: no validation row has a relevant item")
        if self.content_model is None:
            content_grid = (0.0,)
        if exclude_history:
            history_grid = (0.0,)
        grid = [(float(c), float(t), float(h)) for h in history_grid for c in content_grid for t in trending_grid]
        totals = np.zeros(len(grid))
        for start in range(0, users.size, batch_rows):
            rows = users[start : start + batch_rows]
            block = history[rows]
            parts = self._components(block)
            seen = block.nonzero()
            barred = excluded[rows].nonzero() if excluded is not None else None
            for index, (w_content, w_trending, w_history) in enumerate(grid):
                scores = self._blend(parts, w_content, w_trending, w_cf=1.0, w_history=w_history)
                if exclude_history:
                    scores[seen] = -np.inf
                if barred is not None:
                    scores[barred] = -np.inf
                ids, _ = top_n(scores, k)
                totals[index] += np.asarray(ndcg_at_k(ids, relevant[rows], k, average=False)).sum()
        means = totals / users.size
        order = np.argsort(-means, kind="stable")
        best_content, best_trending, best_history = grid[order[0]]
        self.params.update(w_cf=1.0, w_content=best_content, w_trending=best_trending, w_history=best_history)
        return [
            {"w_content": grid[i][0], "w_trending": grid[i][1], "w_history": grid[i][2], "ndcg": float(means[i])}
            for i in order
        ]

    # ------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray]:
        state: dict[str, np.ndarray] = {}
        for prefix, model in (
            ("cf", self.cf_model),
            ("trending", self.trending_model),
            ("content", self.content_model),
        ):
            if model is not None:
                state.update({f"{prefix}__{k}": v for k, v in model.to_arrays().items()})
        if self.cold_map is not None:
            state.update(csr_state("cold_map", self.cold_map))
        return state

    def _set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        def part(prefix: str) -> dict[str, np.ndarray]:
            head = f"{prefix}__"
            return {k[len(head) :]: v for k, v in arrays.items() if k.startswith(head)}

        self.cf_model = from_arrays(part("cf"))
        trending = from_arrays(part("trending"))
        if not isinstance(trending, TrendingRecommender):
            raise EngineError("hybrid artifact: trending component has the wrong type")
        self.trending_model = trending
        content = part("content")
        self.content_model = None
        if content:
            model = from_arrays(content)
            if not isinstance(model, ContentRecommender):
                raise EngineError("hybrid artifact: content component has the wrong type")
            self.content_model = model
        self.cold_map = csr_from_state("cold_map", arrays) if "cold_map_shape" in arrays else None
        self._prepare_cold()
