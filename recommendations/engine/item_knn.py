"""Item-based nearest neighbours: cosine (the classic formula) and BM25-weighted.

Fitting computes, for every item ``j``, its ``k`` most similar items ``i``::

    cosine:  sim(j, i) = <x_j, x_i> / (|x_j| |x_i| + shrink)
    dot:     sim(j, i) = <x_j, x_i>

over the item columns ``x`` of the (weighted) users x items matrix, and keeps them
as a sparse items x items matrix ``W`` (row ``j`` = the neighbours of ``j``). A
history row ``h`` (weighted the same way) is scored ``h @ W``: every item the
shopper touched votes for its neighbours with its similarity (``history_weighting``
may weight history rows differently from the training rows, e.g. BM25 for the
similarities but each history item counting once). Scoring one row costs
``O(|h| * k)``; there is no per-user state, so fold-in is exact.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp

from ._arrays import csr_from_state, csr_state, topk_similarity
from .base import Progress, Recommender, SideData
from .weighting import WEIGHTING_DEFAULTS, weighting_from_params

__all__ = ["ItemKNNBM25Recommender", "ItemKNNRecommender"]


class ItemKNNRecommender(Recommender):
    """Item-item kNN with cosine similarity (see the module docstring)."""

    name = "item_knn"
    defaults = {
        "k": 100,
        "shrink": 0.0,
        "similarity": "cosine",
        "weighting": "none",
        "history_weighting": "same",
        **WEIGHTING_DEFAULTS,
    }

    def _check_params(self) -> None:
        p = self.params
        self._require_between("k", 1, 5_000)
        self._require_between("shrink", 0, 1_000_000)
        self._require(
            p["similarity"] in ("cosine", "dot"),
            f"similarity must be 'cosine' or 'dot', got {p['similarity']!r}",
        )
        self._weighting = weighting_from_params(p)
        if p["history_weighting"] == "same":
            self._history_weighting = self._weighting
        else:
            self._history_weighting = weighting_from_params(p, "history_weighting")

    def _fit(self, user_items: sp.csr_matrix, side: SideData | None, progress: Progress) -> None:
        weighted = self._weighting.fit(user_items).transform(user_items)
        self._history_weighting.fit(user_items)
        item_users = weighted.T.tocsr()
        right = weighted.tocsc()
        denominator = None
        if self.params["similarity"] == "cosine":
            norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=0)).ravel())
            norms = norms.astype(np.float32)
            shrink = np.float32(self.params["shrink"])

            def denominator(block: np.ndarray, rows: slice) -> np.ndarray:
                scale = norms[rows, None] * norms[None, :] + shrink
                scale[scale == 0] = 1.0
                block /= scale
                return block

        self.similarity = topk_similarity(
            item_users, right, self.params["k"], denominator=denominator, progress=progress
        )

    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        weighted = self._history_weighting.transform(history)
        return np.asarray((weighted @ self.similarity).todense(), dtype=np.float32)

    def _similar(self, items: np.ndarray) -> np.ndarray:
        return np.asarray(self.similarity[items].todense(), dtype=np.float32)

    def _state(self) -> dict[str, np.ndarray]:
        return {
            **csr_state("similarity", self.similarity),
            **self._weighting.state(),
            **{f"history_{k}": v for k, v in self._history_weighting.state().items()},
        }

    def _set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.similarity = csr_from_state("similarity", arrays)
        self._weighting.set_state(arrays)
        self._history_weighting.set_state(
            {k[len("history_") :]: v for k, v in arrays.items() if k.startswith("history_")}
        )


class ItemKNNBM25Recommender(ItemKNNRecommender):
    """Item-item kNN over BM25-weighted item vectors (dot product of the weights).

    BM25 (``weighting.py``) damps heavy users (idf) and saturates repeated
    interactions, so neighbours reflect co-occurrence among ordinary shoppers.
    """

    name = "item_knn_bm25"
    defaults = {
        **ItemKNNRecommender.defaults,
        "similarity": "dot",
        "weighting": "bm25",
        "history_weighting": "binary",
    }
