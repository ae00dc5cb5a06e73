"""EASE: Embarrassingly Shallow Autoencoder (Steck, 2019), closed form in numpy.

With the item Gram matrix ``G = X^T X + lam * I`` and ``P = G^-1``, the item x item
weights are ``B = -P / diag(P)`` (column-wise) with a zero diagonal; a history row
``h`` is scored ``h @ B``. The inversion is dense and cubic in the number of items,
so fitting is refused above ``max_items`` (``TooManyItemsError``). ``B`` is kept as
float32; ``top_k > 0`` keeps only the ``top_k`` largest-magnitude weights per item
row as a sparse matrix (smaller artifacts, slightly different scores).

``weighting`` transforms the training rows that form the Gram matrix;
``history_weighting`` (default ``"same"``) the history rows at scoring time. On
purchase data a recency-weighted Gram (``weighting="confidence"`` on a
time-decayed matrix) with every history item counting once
(``history_weighting="binary"``) works well: item relations follow recent
co-purchases, the shopper's whole history seeds them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from ._arrays import csr_from_state, csr_state
from .base import Progress, Recommender, SideData
from .errors import EngineError, TooManyItemsError
from .weighting import WEIGHTING_DEFAULTS, weighting_from_params

__all__ = ["EASERecommender"]

_FLOAT64_MAX_ITEMS = 8_000
"""Above this many items the Gram matrix is inverted in float32 to halve memory."""
MAX_ITEMS = 100_000
"""Upper bound of ``max_items``: the dense item x item inverse would take 40 GB or more."""


class EASERecommender(Recommender):
    """EASE with L2 regularisation ``lam`` (see the module docstring)."""

    name = "ease"
    defaults = {
        "lam": 500.0,
        "weighting": "binary",
        "history_weighting": "same",
        "max_items": 20_000,
        "top_k": 0,
        **WEIGHTING_DEFAULTS,
    }

    def _check_params(self) -> None:
        p = self.params
        self._require(p["lam"] > 0, f"lam must be > 0, got {p['lam']}")
        self._require_between("lam", 0, 1e9)
        self._require_between("max_items", 1, MAX_ITEMS)
        self._require_between("top_k", 0, 5_000)  # 0 = dense
        self._weighting = weighting_from_params(p)
        if p["history_weighting"] == "same":
            self._history_weighting = self._weighting
        else:
            self._history_weighting = weighting_from_params(p, "history_weighting")

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
        self._history_weighting.fit(user_items)
        dtype = np.float64 if n_items <= _FLOAT64_MAX_ITEMS else np.float32
        gram = (weighted.T @ weighted).astype(dtype).toarray()
        progress(0.2)
        gram[np.diag_indices(n_items)] += dtype(self.params["lam"])
        inverse = _inverse_spd(gram)
        del gram
        progress(0.8)
        inverse /= -np.diag(inverse)[None, :]
        inverse[np.diag_indices(n_items)] = 0.0
        weights = np.ascontiguousarray(inverse, dtype=np.float32)
        del inverse
        if self.params["top_k"]:
            self.weights: np.ndarray | sp.csr_matrix = _keep_top_k(weights, self.params["top_k"])
        else:
            self.weights = weights

    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        weighted = self._history_weighting.transform(history)
        scores = weighted @ self.weights
        if sp.issparse(scores):
            scores = scores.toarray()
        return np.asarray(scores, dtype=np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        state = dict(self._weighting.state())
        state.update({f"history_{k}": v for k, v in self._history_weighting.state().items()})
        if sp.issparse(self.weights):
            state.update(csr_state("weights", self.weights))
        else:
            state["weights"] = self.weights
        return state

    def _set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        self._weighting.set_state(arrays)
        self._history_weighting.set_state(
            {k[len("history_") :]: v for k, v in arrays.items() if k.startswith("history_")}
        )
        if "weights" in arrays:
            self.weights = np.asarray(arrays["weights"], dtype=np.float32)
        else:
            self.weights = csr_from_state("weights", arrays)


def _inverse_spd(matrix: np.ndarray, block: int = 1024) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix, in place (Cholesky, LAPACK).

    ``potrf``/``potri`` cost a third of a general inversion and work in the input's
    memory (the C-ordered input is read as its Fortran-ordered transpose, which is
    the same matrix). Only one triangle comes back; it is mirrored blockwise.
    """
    potrf, potri = scipy.linalg.get_lapack_funcs(("potrf", "potri"), (matrix,))
    fortran = matrix.T  # symmetric: same matrix, Fortran-contiguous view
    factor, info = potrf(fortran, lower=False, overwrite_a=True, clean=False)
    if info != 0:
        raise EngineError(f"ease: Gram matrix is not positive definite (LAPACK info {info})")
    inverse, info = potri(factor, lower=False, overwrite_c=True)
    if info != 0:
        raise EngineError(f"ease: Gram matrix inversion failed (LAPACK info {info})")
    n = inverse.shape[0]
    for start in range(0, n, block):
        stop = min(start + block, n)
        inverse[stop:, start:stop] = inverse[start:stop, stop:].T
        upper = np.triu(inverse[start:stop, start:stop])
        inverse[start:stop, start:stop] = upper + np.triu(upper, 1).T
    return inverse


def _keep_top_k(weights: np.ndarray, k: int) -> sp.csr_matrix:
    """The ``k`` largest-magnitude entries of each row as CSR."""
    n_rows, n_cols = weights.shape
    k = min(k, n_cols)
    part = np.argpartition(-np.abs(weights), k - 1, axis=1)[:, :k]
    values = np.take_along_axis(weights, part, axis=1)
    matrix = sp.csr_matrix((values.ravel(), part.ravel(), np.arange(0, n_rows * k + 1, k)), shape=(n_rows, n_cols))
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix
