"""Matrix factorisation through ``implicit``: ALS (Hu, Koren & Volinsky 2008) and BPR.

Both are fitted by ``implicit``'s CPU implementations with BLAS limited to one
thread (``threads.blas_single_thread``); only the item factors are kept.

Fold-in (scoring a history row for any user, known or not):

* **ALS** solves the same weighted least squares ``implicit`` solves for a user,
  against the stored item factors ``Y``::

      x = (Y^T Y + Y^T (C - I) Y + reg * I)^-1  Y^T C p

  with confidences ``C = alpha * weighting(h)`` on the history items (``p = 1``
  there) and 1 elsewhere (``p = 0``) — exactly one ALS user step, so a training
  user's folded-in factors match the trained ones up to ALS convergence.
* **BPR** has no closed form for a user step (and a least-squares step against
  BPR's item factors ranks poorly). Its fold-in encodes a history as the weighted
  mean of *item embeddings in user space* — item ``i``'s embedding is the mean of
  the trained factors of the users who bought it — rescaled to the median norm of
  the trained user factors (the scale the item biases were learnt with); scores
  are ``Y x + item_bias`` (an empty history is ranked by the item biases alone).
  One sparse-dense product per row; on real data it ranks at least as well as
  the trained factors of the same users.

Serving (``Recommender.top_k``): ALS scans the items by decreasing factor norm,
block by block, and stops as soon as no item left can beat the k-th best (a score
``u.y`` is at most ``|u| |y|``): the exact top k, reading a few percent of the
catalogue. ``top_k_batch`` runs the same scan for a block of rows at once (the
first block of items for every row, then only the rows that can still improve).
The Gram matrix, its inverse and the norm order are computed once per fitted or
loaded model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import scipy.sparse as sp

from .base import Progress, Recommender, SideData
from .errors import EngineError
from .threads import blas_single_thread
from .weighting import WEIGHTING_DEFAULTS, weighting_from_params

__all__ = ["ALSRecommender", "BPRRecommender", "least_squares_fold_in"]

MAX_FACTORS = 1024
"""Upper bound of ``factors`` (ALS, BPR): beyond it a fit costs far more than it gains."""
MAX_ITERATIONS = 1000
"""Upper bound of ``iterations`` (ALS converges in tens, BPR in hundreds)."""


def least_squares_fold_in(
    history: sp.csr_matrix,
    item_factors: np.ndarray,
    regularization: float,
    gram: np.ndarray | None = None,
    gram_inv: np.ndarray | None = None,
) -> np.ndarray:
    """User factors for confidence rows ``history`` (implicit-ALS user step).

    ``history`` holds confidences ``c > 0`` of the positive items; every other item
    has confidence 1 and preference 0. ``gram`` may pass a precomputed
    ``Y^T Y + regularization * I`` (float64) and ``gram_inv`` its inverse: rows of
    one item (explanations' anchors) then take the closed form
    ``u = c G^-1 y / (1 + (c - 1) y^T G^-1 y)`` (Sherman-Morrison), all at once.
    Returns float32 (rows, factors); an empty row gives zeros.
    """
    y = np.asarray(item_factors, dtype=np.float64)  # no copy when already float64
    n_factors = y.shape[1]
    if gram is None:
        gram = y.T @ y + regularization * np.eye(n_factors)
    out = np.zeros((history.shape[0], n_factors), dtype=np.float64)
    indptr, indices, data = history.indptr, history.indices, history.data
    lengths = np.diff(indptr)
    solve = np.flatnonzero(lengths > 0)
    if gram_inv is not None:
        single = np.flatnonzero(lengths == 1)
        if single.size:
            yu = y[indices[indptr[single]]]
            c = data[indptr[single]].astype(np.float64)
            z = yu @ gram_inv
            out[single] = z * (c / (1.0 + (c - 1.0) * np.einsum("ij,ij->i", z, yu)))[:, None]
        solve = np.flatnonzero(lengths > 1)
    for row in solve.tolist():
        start, stop = indptr[row], indptr[row + 1]
        cols = indices[start:stop]
        confidence = data[start:stop].astype(np.float64)
        yu = y[cols]
        a = gram + (yu.T * (confidence - 1.0)) @ yu
        b = yu.T @ confidence
        out[row] = np.linalg.solve(a, b)
    return out.astype(np.float32)


def _cosine_rows(vectors: np.ndarray, items: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1)
    norms[norms == 0] = 1.0
    unit = vectors / norms[:, None]
    return (unit[items] @ unit.T).astype(np.float32)


class _ImplicitBase(Recommender):
    """Shared weighting + progress plumbing for the ``implicit`` models."""

    def _check_common(self) -> None:
        p = self.params
        self._require_between("factors", 1, MAX_FACTORS)
        self._require_between("iterations", 1, MAX_ITERATIONS)
        self._require_between("regularization", 0, 1_000_000)
        self._require_between("num_threads", 0, 1024)  # 0 = all cores
        self._weighting = weighting_from_params(p)

    def _callback(self, progress: Progress) -> Callable[..., None]:
        iterations = self.params["iterations"]

        def callback(iteration: int, *_: object) -> None:  # ALS: 3 args, BPR: 4
            progress((iteration + 1) / iterations)

        return callback


class ALSRecommender(_ImplicitBase):
    """Implicit-feedback ALS (``implicit.cpu.als.AlternatingLeastSquares``)."""

    name = "als"
    defaults = {
        "factors": 64,
        "regularization": 0.05,
        "alpha": 1.0,
        "iterations": 15,
        "weighting": "none",
        "use_cg": True,
        "random_state": 0,
        "num_threads": 0,
        **WEIGHTING_DEFAULTS,
    }

    def _check_params(self) -> None:
        self._check_common()
        self._require(self.params["alpha"] > 0, f"alpha must be > 0, got {self.params['alpha']}")
        self._require_between("alpha", 0, 1_000_000)

    def _confidence(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        weighted = self._weighting.transform(rows)
        weighted.data *= np.float32(self.params["alpha"])
        return weighted

    def _fit(self, user_items: sp.csr_matrix, side: SideData | None, progress: Progress) -> None:
        from implicit.cpu.als import AlternatingLeastSquares  # noqa: PLC0415 - loaded only to fit

        self._weighting.fit(user_items)
        confidence = self._confidence(user_items)
        p = self.params
        with blas_single_thread():
            model = AlternatingLeastSquares(
                factors=p["factors"],
                regularization=p["regularization"],
                alpha=1.0,  # already applied in _confidence (same path as fold-in)
                iterations=p["iterations"],
                use_cg=p["use_cg"],
                random_state=p["random_state"],
                num_threads=p["num_threads"],
                calculate_training_loss=False,
            )
            model.fit(confidence, show_progress=False, callback=self._callback(progress))
        self._set_item_factors(model.item_factors)
        self.user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        """Trained factors of the training rows (kept in memory only, not saved)."""

    def _set_item_factors(self, factors: np.ndarray) -> None:
        self.item_factors = np.ascontiguousarray(factors, dtype=np.float32)
        self._item_factors64 = self.item_factors.astype(np.float64)
        self._solver: tuple[np.ndarray, np.ndarray] | None = None
        self._scan: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def _gram(self) -> tuple[np.ndarray, np.ndarray]:
        """``G = Y^T Y + reg * I`` (float64) and its inverse, once per fitted/loaded
        model: recomputing them (items x factors^2) would dominate scoring one shopper."""
        if self._solver is None:
            y = self._item_factors64
            gram = y.T @ y + self.params["regularization"] * np.eye(y.shape[1])
            self._solver = (gram, np.linalg.inv(gram))
        return self._solver

    def fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """One exact ALS user step per validated history row (module docstring)."""
        gram, gram_inv = self._gram()
        return least_squares_fold_in(
            self._confidence(history), self._item_factors64, self.params["regularization"], gram, gram_inv
        )

    def item_vectors(self, columns: np.ndarray | list[int]) -> np.ndarray:
        return self.item_factors[np.asarray(columns, dtype=np.int64)]

    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        return self.fold_in(history) @ self.item_factors.T

    def _norm_order(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Items by decreasing factor norm: (columns, their norms, their factors
        transposed and contiguous in that order, position of each column)."""
        if self._scan is None:
            norms = np.linalg.norm(self.item_factors, axis=1)
            by_norm = np.argsort(-norms, kind="stable")
            position = np.empty_like(by_norm)
            position[by_norm] = np.arange(by_norm.size)
            self._scan = (
                by_norm,
                norms[by_norm].astype(np.float64),
                np.ascontiguousarray(self.item_factors[by_norm].T),
                position,
            )
        return self._scan

    def top_k(
        self,
        history: sp.spmatrix,
        k: int,
        *,
        exclude: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        block: int = 4096,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The same top ``k`` as scoring every item (equal scores at the cut-off
        aside), from an exact early-stopping scan: items by decreasing norm, block
        by block, stopping as soon as no item left can beat the k-th best (a score
        ``u.y`` is at most ``|u| |y|``). Usually a few percent of the catalogue is
        read: serving is bound by memory bandwidth, not arithmetic."""
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
            raise EngineError(f"k must be a non-negative integer, got {k!r}")
        matrix = self.check_history(history)
        if matrix.shape[0] != 1:
            raise EngineError(f"top_k takes one history row, got {matrix.shape[0]}")
        if allowed is not None:
            allowed = self._check_allowed(allowed)
        best_cols, best_scores = np.zeros(0, np.int64), np.zeros(0, np.float32)
        if k == 0:
            return best_cols, best_scores
        by_norm, norms_sorted, factors_sorted_t, position = self._norm_order()
        u = self.fold_in(matrix)[0]
        bound = float(np.linalg.norm(u))
        n = by_norm.size
        drop = (
            np.zeros(0, np.int64)
            if exclude is None or not len(exclude)
            else np.sort(position[np.asarray(exclude, dtype=np.int64)])
        )
        start = 0
        while start < n:
            stop = min(n, start + block)
            scores = u @ factors_sorted_t[:, start:stop]
            cut = drop[(drop >= start) & (drop < stop)] - start
            scores[cut] = -np.inf
            cols = by_norm[start:stop]
            if allowed is not None:
                scores[~allowed[cols]] = -np.inf
            if scores.size > k:
                keep = np.argpartition(-scores, k - 1)[:k]
                cols, scores = cols[keep], scores[keep]
            cols, scores = np.concatenate([best_cols, cols]), np.concatenate([best_scores, scores])
            valid = scores > -np.inf
            cols, scores = cols[valid], scores[valid]
            if scores.size > k:
                keep = np.argpartition(-scores, k - 1)[:k]
                cols, scores = cols[keep], scores[keep]
            best_cols, best_scores = cols, scores
            start, block = stop, block * 2
            limit = bound * norms_sorted[start] * (1 + 1e-5) if start < n else np.inf
            if best_scores.size == k and float(best_scores.min()) > limit:
                break
        order = np.lexsort((best_cols, -best_scores))  # best first, ties by column
        return best_cols[order], best_scores[order]

    def _top_k_batch(
        self,
        history: sp.csr_matrix,
        k: int,
        exclude: sp.csr_matrix | None,
        allowed: np.ndarray | None,
        block: int = 1024,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The exact early-stopping scan of ``top_k`` for many rows at once: the first
        ``block`` items by decreasing norm are scored for every row, each row's k-th
        best is its threshold, and each following block (twice as wide as the one
        before) is scored only for the rows whose ``|u| * (largest norm left)`` can
        still beat it; the scan stops when no row can."""
        rows = history.shape[0]
        ids = np.full((rows, k), -1, dtype=np.int64)
        out = np.full((rows, k), -np.inf, dtype=np.float32)
        if k == 0 or rows == 0:
            return ids, out
        by_norm, norms_sorted, factors_sorted_t, position = self._norm_order()
        n = by_norm.size
        users = self.fold_in(history)
        bounds = np.linalg.norm(users.astype(np.float64), axis=1) * (1 + 1e-5)  # float32 rounding
        if exclude is not None and exclude.nnz:
            ex_pos = position[exclude.indices]
            ex_rows = np.repeat(np.arange(rows), np.diff(exclude.indptr))
            by_pos = np.argsort(ex_pos, kind="stable")
            ex_pos, ex_rows = ex_pos[by_pos], ex_rows[by_pos]
        else:
            ex_pos = ex_rows = np.zeros(0, dtype=np.int64)
        allowed_sorted = allowed[by_norm] if allowed is not None else None
        best = out.copy()  # each row's k best so far (unordered), -inf: none yet
        best_pos = np.zeros((rows, k), dtype=np.int64)  # their positions in the norm order
        kth = np.full(rows, -np.inf)  # each row's k-th best so far
        local = np.full(rows, -1, dtype=np.int64)
        start = 0
        while start < n:
            # rows whose k-th best may still be beaten by an item at or after `start`
            active = np.flatnonzero(~(kth > bounds * norms_sorted[start]))
            if active.size == 0:
                break
            stop = min(n, start + block)
            scores = users[active] @ factors_sorted_t[:, start:stop]
            lo, hi = np.searchsorted(ex_pos, [start, stop])
            if hi > lo:
                local[active] = np.arange(active.size)
                r = local[ex_rows[lo:hi]]
                hit = r >= 0
                scores[r[hit], ex_pos[lo:hi][hit] - start] = -np.inf
                local[active] = -1
            if allowed_sorted is not None:
                scores[:, ~allowed_sorted[start:stop]] = -np.inf
            if stop - start > k:
                part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
                scores = np.take_along_axis(scores, part, axis=1)
                positions = part + start
            else:
                positions = np.broadcast_to(np.arange(start, stop), scores.shape)
            if start == 0 and scores.shape[1] == k:  # the first block: nothing to merge with
                kept = scores
                best[active], best_pos[active] = scores, positions
            else:
                merged = np.concatenate([best[active], scores], axis=1)
                merged_pos = np.concatenate([best_pos[active], positions], axis=1)
                part = np.argpartition(-merged, k - 1, axis=1)[:, :k]
                kept = np.take_along_axis(merged, part, axis=1)
                best[active] = kept
                best_pos[active] = np.take_along_axis(merged_pos, part, axis=1)
            kth[active] = kept.min(axis=1)
            start, block = stop, block * 2
        valid = best > -np.inf  # -inf and NaN: nothing listed
        cols = np.where(valid, by_norm[best_pos], -1)
        order = np.lexsort((cols, -best), axis=1)  # best first, ties by column
        cols = np.take_along_axis(cols, order, axis=1)
        best = np.take_along_axis(best, order, axis=1)
        valid = best > -np.inf
        ids[valid] = cols[valid]
        out[valid] = best[valid]
        return ids, out

    def _similar(self, items: np.ndarray) -> np.ndarray:
        return _cosine_rows(self.item_factors, items)

    def _state(self) -> dict[str, np.ndarray]:
        return {"item_factors": self.item_factors, **self._weighting.state()}

    def _set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        self._set_item_factors(arrays["item_factors"])
        self._weighting.set_state(arrays)


class BPRRecommender(_ImplicitBase):
    """Bayesian Personalised Ranking (``implicit.cpu.bpr``), item-embedding fold-in."""

    name = "bpr"
    defaults = {
        "factors": 64,
        "learning_rate": 0.01,
        "regularization": 0.001,
        "iterations": 200,
        "weighting": "binary",
        "verify_negative_samples": True,
        "random_state": 0,
        "num_threads": 0,
        **WEIGHTING_DEFAULTS,
    }

    def _check_params(self) -> None:
        self._check_common()
        p = self.params
        self._require(p["learning_rate"] > 0, "learning_rate must be > 0")
        self._require_between("learning_rate", 0, 10)

    def _fit(self, user_items: sp.csr_matrix, side: SideData | None, progress: Progress) -> None:
        from implicit.cpu.bpr import BayesianPersonalizedRanking  # noqa: PLC0415 - loaded only to fit

        weighted = self._weighting.fit(user_items).transform(user_items)
        p = self.params
        with blas_single_thread():
            model = BayesianPersonalizedRanking(
                factors=p["factors"],
                learning_rate=p["learning_rate"],
                regularization=p["regularization"],
                iterations=p["iterations"],
                verify_negative_samples=p["verify_negative_samples"],
                random_state=p["random_state"],
                num_threads=p["num_threads"],
            )
            model.fit(weighted, show_progress=False, callback=self._callback(progress))
        factors = np.asarray(model.item_factors, dtype=np.float32)
        # implicit appends an item-bias column (users carry a constant 1 there)
        self.item_factors = np.ascontiguousarray(factors[:, :-1])
        self.item_bias = np.ascontiguousarray(factors[:, -1])
        self.user_factors = np.ascontiguousarray(model.user_factors[:, :-1], dtype=np.float32)
        """Trained factors of the training rows (kept in memory only, not saved)."""
        active = np.diff(weighted.indptr) > 0
        norms = np.linalg.norm(self.user_factors[active], axis=1)
        self.user_norm = np.float32(np.median(norms) if norms.size else 1.0)
        buyers = np.asarray(weighted.sum(axis=0), dtype=np.float64).ravel()
        embedding = np.asarray(weighted.T @ self.user_factors, dtype=np.float64)
        embedding /= np.maximum(buyers, 1e-12)[:, None]
        self.item_embedding = embedding.astype(np.float32)

    def _user_factors(self, weighted: sp.csr_matrix) -> np.ndarray:
        users = np.asarray(weighted @ self.item_embedding, dtype=np.float64)
        norms = np.linalg.norm(users, axis=1, keepdims=True)
        scale = np.where(norms > 0, self.user_norm / np.maximum(norms, 1e-12), 0.0)
        return (users * scale).astype(np.float32)

    def fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """Folded-in user factors with a constant 1 appended (the item-bias column
        of ``item_vectors``), for validated history rows."""
        users = self._user_factors(self._weighting.transform(history))
        return np.hstack([users, np.ones((users.shape[0], 1), np.float32)])

    def item_vectors(self, columns: np.ndarray | list[int]) -> np.ndarray:
        cols = np.asarray(columns, dtype=np.int64)
        return np.hstack([self.item_factors[cols], self.item_bias[cols, None]])

    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        users = self._user_factors(self._weighting.transform(history))
        # an empty history keeps x = 0 and is ranked by the learnt item biases
        return users @ self.item_factors.T + self.item_bias[None, :]

    def _similar(self, items: np.ndarray) -> np.ndarray:
        return _cosine_rows(self.item_factors, items)

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "item_factors": self.item_factors,
            "item_bias": self.item_bias,
            "item_embedding": self.item_embedding,
            "user_norm": np.asarray(self.user_norm, dtype=np.float32),
            **self._weighting.state(),
        }

    def _set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.item_factors = np.asarray(arrays["item_factors"], dtype=np.float32)
        self.item_bias = np.asarray(arrays["item_bias"], dtype=np.float32)
        self.item_embedding = np.asarray(arrays["item_embedding"], dtype=np.float32)
        self.user_norm = np.float32(arrays["user_norm"])
        self._weighting.set_state(arrays)
