"""Truncated SVD ("PureSVD") of the weighted interaction matrix.

``X ~ U S V^T`` with ``factors`` singular triplets (``scipy.sparse.linalg.svds``);
a history row ``h`` is projected onto the item space and back::

    scores = (h @ V) @ V^T

which reproduces the rank-``factors`` reconstruction ``U S V^T`` exactly for a
training row, and needs nothing but ``V`` for new users. Item similarity is the
cosine between the rows of ``V S``.

``item_norm_exponent`` (beta) optionally rescales item column ``i`` by
``|x_i| ** -beta`` before the decomposition; scores are then the reconstruction
of the rescaled matrix, which counters PureSVD's bias towards the most popular
items (0 = plain PureSVD).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg

from .base import Progress, Recommender, SideData
from .weighting import WEIGHTING_DEFAULTS, weighting_from_params

__all__ = ["SVDRecommender"]


class SVDRecommender(Recommender):
    """Truncated SVD with projection fold-in (see the module docstring)."""

    name = "svd"
    defaults = {
        "factors": 64,
        "weighting": "none",
        "item_norm_exponent": 0.0,
        "random_state": 0,
        **WEIGHTING_DEFAULTS,
    }

    def _check_params(self) -> None:
        p = self.params
        self._require_between("factors", 1, 1024)
        self._require(
            0.0 <= p["item_norm_exponent"] <= 1.0,
            f"item_norm_exponent must be in [0, 1], got {p['item_norm_exponent']}",
        )
        self._weighting = weighting_from_params(p)

    def _fit(self, user_items: sp.csr_matrix, side: SideData | None, progress: Progress) -> None:
        weighted = self._weighting.fit(user_items).transform(user_items).astype(np.float64)
        n_users, n_items = weighted.shape
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=0)).ravel())
        beta = self.params["item_norm_exponent"]
        scale = np.ones(n_items)
        if beta > 0:
            scale = np.where(norms > 0, np.power(np.maximum(norms, 1e-12), -beta), 0.0)
        self.item_scale = scale.astype(np.float32)
        scaled = weighted @ sp.diags(scale)
        rank = min(self.params["factors"], min(n_users, n_items))
        if rank >= min(n_users, n_items) - 1 or min(n_users, n_items) <= 64:
            # tiny matrix: exact dense SVD (svds needs k < min(shape))
            _, singular, vt = np.linalg.svd(scaled.toarray(), full_matrices=False)
            singular, vt = singular[:rank], vt[:rank]
        else:
            rng = np.random.default_rng(self.params["random_state"])
            v0 = rng.standard_normal(min(n_users, n_items))
            _, singular, vt = scipy.sparse.linalg.svds(scaled, k=rank, v0=v0)
            order = np.argsort(-singular)
            singular, vt = singular[order], vt[order]
        progress(0.9)
        self.item_factors = np.ascontiguousarray(vt.T, dtype=np.float32)  # n_items x rank
        self.singular_values = singular.astype(np.float32)

    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        weighted = self._weighting.transform(history)
        if self.params["item_norm_exponent"] > 0:
            weighted.data *= self.item_scale[weighted.indices]
        latent = np.asarray(weighted @ self.item_factors, dtype=np.float32)
        return latent @ self.item_factors.T

    def _similar(self, items: np.ndarray) -> np.ndarray:
        vectors = self.item_factors * self.singular_values[None, :]
        norms = np.linalg.norm(vectors, axis=1)
        norms[norms == 0] = 1.0
        unit = vectors / norms[:, None]
        return unit[items] @ unit.T

    def _state(self) -> dict[str, np.ndarray]:
        return {
            "item_factors": self.item_factors,
            "singular_values": self.singular_values,
            "item_scale": self.item_scale,
            **self._weighting.state(),
        }

    def _set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.item_factors = np.asarray(arrays["item_factors"], dtype=np.float32)
        self.singular_values = np.asarray(arrays["singular_values"], dtype=np.float32)
        self.item_scale = np.asarray(arrays["item_scale"], dtype=np.float32)
        self._weighting.set_state(arrays)
