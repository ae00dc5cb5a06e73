"""EASE: Embarrassingly Shallow Autoencoder (Steck, 2019), closed form in numpy.

With the item Gram matrix ``G = X^T X + lam * I`` and ``P = G^-1``, the item x item
weights are ``B = -P / diag(P)`` (column-wise) with a zero diagonal; a history row
``h`` is scored ``h @ B``. The inversion is dense and cubic in the number of items,
so fitting is refused above ``max_items`` (``TooManyItemsError``). ``B`` is kept as
float32; ``top_k > 0`` keeps only the ``top_k`` largest-magnitude weights per item
row as a sparse matrix (smaller artifacts, slightly different scores).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from ._arrays import csr_from_state, csr_state
from .base import Progress, Recommender, SideData
from .errors import TooManyItemsError
from .weighting import WEIGHTING_MODES, RowWeighting

__all__ = ["EASERecommender"]

_FLOAT64_MAX_ITEMS = 8_000
"""Above this many items the Gram matrix is inverted in float32 to halve memory."""


class EASERecommender(Recommender):
    """EASE with L2 regularisation ``lam`` (see the module docstring)."""

    name = "ease"
    defaults = {
        "lam": 500.0,
        "weighting": "binary",
        "max_items": 20_000,
        "top_k": 0,
        "bm25_k1": 1.2,
        "bm25_b": 0.75,
    }

    def _check_params(self) -> None:
        p = self.params
        self._require(p["lam"] > 0, f"lam must be > 0, got {p['lam']}")
        self._require(p["max_items"] >= 1, f"max_items must be >= 1, got {p['max_items']}")
        self._require(p["top_k"] >= 0, f"top_k must be >= 0 (0 = dense), got {p['top_k']}")
        self._require(
            p["weighting"] in WEIGHTING_MODES,
            f"weighting must be one of {WEIGHTING_MODES}, got {p['weighting']!r}",
        )
        self._weighting = RowWeighting(p["weighting"], k1=p["bm25_k1"], b=p["bm25_b"])

    def _fit(self, user_items: sp.csr_matrix, side: SideData | None, progress: Progress) -> None:
        n_items = user_items.shape[1]
        if n_items > self.params["max_items"]:
            raise TooManyItemsError(
                f"ease: {n_items} items exceed max_items={self.params['max_items']} "
                f"(the dense {n_items}x{n_items} inversion would need "
                f"{n_items * n_items * 4 / 1e9:.1f} GB or more); raise max_items, "
                "or use item_knn/als for this catalogue"
            )
        weighted = self._weighting.fit(user_items).transform(user_items)
        dtype = np.float64 if n_items <= _FLOAT64_MAX_ITEMS else np.float32
        gram = (weighted.T @ weighted).astype(dtype).toarray()
        progress(0.2)
        gram[np.diag_indices(n_items)] += dtype(self.params["lam"])
        inverse = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False, assume_a="pos")
        del gram
        progress(0.8)
        inverse /= -np.diag(inverse)[None, :]
        inverse[np.diag_indices(n_items)] = 0.0
        weights = inverse.astype(np.float32, copy=False)
        if self.params["top_k"]:
            self.weights: np.ndarray | sp.csr_matrix = _keep_top_k(weights, self.params["top_k"])
        else:
            self.weights = weights

    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        weighted = self._weighting.transform(history)
        scores = weighted @ self.weights
        if sp.issparse(scores):
            scores = scores.toarray()
        return np.asarray(scores, dtype=np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        state = dict(self._weighting.state())
        if sp.issparse(self.weights):
            state.update(csr_state("weights", self.weights))
        else:
            state["weights"] = self.weights
        return state

    def _set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        self._weighting.set_state(arrays)
        if "weights" in arrays:
            self.weights = np.asarray(arrays["weights"], dtype=np.float32)
        else:
            self.weights = csr_from_state("weights", arrays)


def _keep_top_k(weights: np.ndarray, k: int) -> sp.csr_matrix:
    """The ``k`` largest-magnitude entries of each row as CSR."""
    n_rows, n_cols = weights.shape
    k = min(k, n_cols)
    part = np.argpartition(-np.abs(weights), k - 1, axis=1)[:, :k]
    values = np.take_along_axis(weights, part, axis=1)
    matrix = sp.csr_matrix(
        (values.ravel(), part.ravel(), np.arange(0, n_rows * k + 1, k)), shape=(n_rows, n_cols)
    )
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix
