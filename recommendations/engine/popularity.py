"""Non-personalised baselines: all-time popularity and trending (recency-weighted).

Both score every history the same (they ignore it, apart from the usual exclusion
of already-seen items in ``recommend``) and are the fallbacks for shoppers with no
usable history.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp

from .base import Progress, Recommender, SideData

__all__ = ["PopularityRecommender", "TrendingRecommender"]


class PopularityRecommender(Recommender):
    """All-time popularity.

    ``count="users"`` ranks items by the number of distinct users with any
    interaction; ``count="weight"`` by the sum of the matrix weights (so it follows
    the kind weights and any time decay the matrix was built with).
    """

    name = "popularity"
    defaults = {"count": "users"}

    def _check_params(self) -> None:
        self._require(
            self.params["count"] in ("users", "weight"),
            f"count must be 'users' or 'weight', got {self.params['count']!r}",
        )

    def _fit(self, user_items: sp.csr_matrix, side: SideData | None, progress: Progress) -> None:
        if self.params["count"] == "users":
            counts = np.bincount(user_items.indices, minlength=user_items.shape[1])
        else:
            counts = np.asarray(user_items.sum(axis=0)).ravel()
        self.item_scores = _normalised(counts)

    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        return np.repeat(self.item_scores[None, :], history.shape[0], axis=0)

    def _similar(self, items: np.ndarray) -> np.ndarray:
        return self._score(sp.csr_matrix((items.size, self.n_items), dtype=np.float32))

    def _state(self) -> dict[str, np.ndarray]:
        return {"item_scores": self.item_scores}

    def _set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.item_scores = np.asarray(arrays["item_scores"], dtype=np.float32)


class TrendingRecommender(PopularityRecommender):
    """Recency-weighted popularity ("trending now").

    Uses ``side.item_recent`` (``matrix.recent_popularity``: events weighted by
    ``0.5 ** (age / half_life)``) when given. Without it the column sums of the
    training matrix are used — recency-weighted when the matrix was built with a
    ``half_life_days`` — and ``smoothing`` mixes in a little all-time popularity
    (by distinct users) so items with no recent activity are still ordered.
    """

    name = "trending"
    defaults = {"smoothing": 0.01}

    def _check_params(self) -> None:
        self._require(0 <= self.params["smoothing"] <= 1, "smoothing must be in [0, 1]")

    def _fit(self, user_items: sp.csr_matrix, side: SideData | None, progress: Progress) -> None:
        if side is not None and side.item_recent is not None:
            recent = np.asarray(side.item_recent, dtype=np.float64)
        else:
            recent = np.asarray(user_items.sum(axis=0), dtype=np.float64).ravel()
        all_time = np.bincount(user_items.indices, minlength=user_items.shape[1])
        smoothing = self.params["smoothing"]
        self.item_scores = _normalised((1 - smoothing) * _normalised(recent) + smoothing * _normalised(all_time))


def _normalised(values: np.ndarray) -> np.ndarray:
    """``values / max`` as float32 (all zeros stay zeros)."""
    values = np.asarray(values, dtype=np.float64)
    top = values.max() if values.size else 0.0
    return (values / top if top > 0 else values).astype(np.float32)
