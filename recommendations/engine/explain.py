"""Does one history item really point at a pick? (pure numerics)

A pick's explanation names a history item ("because you viewed X") only when X
*alone* points at the pick clearly more than at the rest of the catalogue. The
measure is model-agnostic: fold the one-item history {X} into the model
(``Recommender.user_vectors``), score the pick and a fixed random sample of the
catalogue (the null), and take the pick's rank within that null -- the share of
random products X points at less than at the pick. A rank of 0.99 means the
pick is in X's top 1 %: "because you viewed X" is true. A pick that X points at
no more than at a random product (trending filler, the model's general taste)
gets no "because".

The threshold on the rank is chosen on data in ``recommendations.explanations``
(``ANCHOR_MIN_RANK``, measured by ``bench/explanations.py``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .base import Recommender

NULL_SAMPLE = 256
"""Random catalogue columns that make the null (rank resolution 1/256)."""


def null_columns(n_items: int, *, size: int = NULL_SAMPLE, seed: int = 0) -> np.ndarray:
    """A fixed random sample of ``size`` columns (every column of a small catalogue)."""
    if n_items <= size:
        return np.arange(n_items, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_items, size=size, replace=False)).astype(np.int64)


def one_item_vectors(model: Recommender, anchor_cols: np.ndarray) -> np.ndarray:
    """User vectors of one-item histories, one per anchor column (folded at once)."""
    cols = np.asarray(anchor_cols, dtype=np.int32)
    size = cols.size
    one_hot = sp.csr_matrix(
        (np.ones(size, np.float32), cols, np.arange(size + 1, dtype=np.int32)), shape=(size, model.n_items)
    )
    return model.user_vectors(one_hot)


def scores_at(model: Recommender, vectors: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """(rows, columns) scores of user ``vectors`` at item ``columns`` as float64. A model
    whose user vectors are score rows (the default one-hot ``item_vectors``) is read by
    indexing: no (columns x n_items) one-hot matrix is built."""
    cols = np.asarray(columns, dtype=np.int64)
    if type(model).item_vectors is Recommender.item_vectors:
        return np.asarray(vectors[:, cols], dtype=np.float64)
    return np.asarray(vectors @ model.item_vectors(cols).T, dtype=np.float64)


def null_sorted(model: Recommender, vectors: np.ndarray, null_cols: np.ndarray) -> np.ndarray:
    """(anchors, sample) scores of each one-item history against the null, sorted per row."""
    null = scores_at(model, vectors, null_cols)
    null.sort(axis=1)
    return null


def ranks(contrib: np.ndarray, null: np.ndarray) -> np.ndarray:
    """(anchors, candidates) rank of each contribution within its anchor's sorted null:
    the share of null scores strictly below it (0 when the null is empty)."""
    contrib = np.asarray(contrib, dtype=np.float64)
    out = np.zeros(contrib.shape, dtype=np.float64)
    if null.shape[1] == 0:
        return out
    for a in range(contrib.shape[0]):
        out[a] = np.searchsorted(null[a], contrib[a], side="left") / null.shape[1]
    return out


def anchor_strength(
    model: Recommender, anchor_cols: np.ndarray, candidates: np.ndarray, null_cols: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(contributions, ranks), each (anchors, candidates): how much each anchor alone
    points at each candidate, and how that ranks against the anchor's null."""
    if len(anchor_cols) == 0:
        empty = np.zeros((0, len(candidates)), np.float64)
        return empty, empty
    vectors = one_item_vectors(model, np.asarray(anchor_cols))
    contrib = scores_at(model, vectors, np.asarray(candidates, np.int64))
    return contrib, ranks(contrib, null_sorted(model, vectors, null_cols))


def best_anchor(
    contrib: np.ndarray, rank: np.ndarray, min_rank: float, *, n_items: int = 0, min_top: int = 0
) -> np.ndarray:
    """Per candidate, the index of the anchor that explains it (the highest rank with a
    positive contribution; ties: the larger contribution), or -1 when no anchor really
    contributes. An anchor contributes when the candidate's rank is at least
    ``min_rank`` or -- in a small catalogue, where a top share is less than a shelf --
    when fewer than ``min_top`` of the ``n_items`` products rank above it."""
    if contrib.shape[0] == 0:
        return np.full(contrib.shape[1], -1, np.int64)
    strong = rank >= min_rank
    if min_top > 0 and n_items > 0:
        strong |= (1.0 - rank) * n_items < min_top
    ok = strong & (contrib > 0)
    key = np.where(ok, rank * 1e6 + np.argsort(np.argsort(contrib, axis=0), axis=0), -np.inf)
    best = np.argmax(key, axis=0)
    return np.where(ok.any(axis=0), best, -1).astype(np.int64)
