"""Small array helpers shared by the algorithms (top-n selection, sparse state, kNN)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import scipy.sparse as sp

__all__ = [
    "csr_from_state",
    "csr_state",
    "row_normalise_max",
    "top_n",
    "topk_similarity",
]


def top_n(scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``n`` columns per row, best first.

    Returns ``(ids int64 (rows, n), scores float32 (rows, n))``; slots without a
    candidate (``-inf`` score, or fewer than ``n`` columns) get id ``-1`` and score
    ``-inf``. Equal scores are listed by column index (argpartition decides which of
    several tied items at the cut-off make the list).
    """
    rows, cols = scores.shape
    ids = np.full((rows, n), -1, dtype=np.int64)
    out = np.full((rows, n), -np.inf, dtype=np.float32)
    k = min(n, cols)
    if k <= 0 or rows == 0:
        return ids, out
    neg = -scores.astype(np.float32, copy=False)
    if k < cols:
        part = np.argpartition(neg, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(cols), (rows, cols))
    part_neg = np.take_along_axis(neg, part, axis=1)
    order = np.lexsort((part, part_neg), axis=1)
    best = np.take_along_axis(part, order, axis=1)
    best_scores = -np.take_along_axis(part_neg, order, axis=1)
    invalid = ~(best_scores > -np.inf)  # -inf and NaN
    best = np.where(invalid, -1, best)
    best_scores = np.where(invalid, -np.inf, best_scores)
    ids[:, :k] = best
    out[:, :k] = best_scores
    return ids, out


def csr_state(prefix: str, matrix: sp.spmatrix) -> dict[str, np.ndarray]:
    """A CSR matrix as plain arrays (for ``np.savez`` without pickle)."""
    matrix = sp.csr_matrix(matrix)
    return {
        f"{prefix}_data": matrix.data,
        f"{prefix}_indices": matrix.indices,
        f"{prefix}_indptr": matrix.indptr,
        f"{prefix}_shape": np.asarray(matrix.shape, dtype=np.int64),
    }


def csr_from_state(prefix: str, arrays: Mapping[str, np.ndarray]) -> sp.csr_matrix:
    """Inverse of ``csr_state``."""
    shape = tuple(int(v) for v in arrays[f"{prefix}_shape"])
    return sp.csr_matrix(
        (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"]),
        shape=shape,
    )


def row_normalise_max(scores: np.ndarray) -> np.ndarray:
    """Divide each row by its largest absolute finite value (rows of zeros stay zero)."""
    finite = np.where(np.isfinite(scores), np.abs(scores), 0.0)
    scale = finite.max(axis=1, keepdims=True) if scores.shape[1] else np.ones((scores.shape[0], 1))
    scale[scale == 0] = 1.0
    return (scores / scale).astype(np.float32, copy=False)


def topk_similarity(
    left: sp.csr_matrix,
    right: sp.csc_matrix | sp.csr_matrix,
    k: int,
    *,
    denominator: Callable[[np.ndarray, slice], np.ndarray] | None = None,
    exclude_self: bool = True,
    block_rows: int = 1024,
    progress: Callable[[float], None] | None = None,
) -> sp.csr_matrix:
    """Row-wise top-``k`` of ``left @ right`` (items x items), as float32 CSR.

    Computed in blocks of ``block_rows`` rows so memory stays at
    ``block_rows x n_items`` dense floats. ``denominator(block, rows)`` may rescale a
    dense block in place (e.g. cosine norms); ``exclude_self`` zeroes the diagonal.
    Only strictly positive similarities are kept.
    """
    n_rows, n_cols = left.shape[0], right.shape[1]
    k = max(0, min(k, n_cols - (1 if exclude_self else 0)))
    indptr = [np.zeros(1, dtype=np.int64)]
    indices: list[np.ndarray] = []
    data: list[np.ndarray] = []
    total = 0
    for start in range(0, n_rows, block_rows):
        stop = min(start + block_rows, n_rows)
        block = np.asarray((left[start:stop] @ right).todense(), dtype=np.float32)
        if denominator is not None:
            block = denominator(block, slice(start, stop))
        if exclude_self:
            local = np.arange(stop - start)
            diag = local + start
            inside = diag < n_cols
            block[local[inside], diag[inside]] = 0.0
        if k == 0:
            counts = np.zeros(stop - start, dtype=np.int64)
        else:
            if k < n_cols:
                part = np.argpartition(-block, k - 1, axis=1)[:, :k]
            else:
                part = np.broadcast_to(np.arange(n_cols), block.shape)
            values = np.take_along_axis(block, part, axis=1)
            keep = values > 0
            counts = keep.sum(axis=1)
            indices.append(part[keep].astype(np.int32))
            data.append(values[keep].astype(np.float32))
        total_counts = np.cumsum(counts) + total
        total = int(total_counts[-1]) if total_counts.size else total
        indptr.append(total_counts)
        if progress is not None:
            progress(stop / n_rows)
    result = sp.csr_matrix(
        (
            np.concatenate(data) if data else np.zeros(0, np.float32),
            np.concatenate(indices) if indices else np.zeros(0, np.int32),
            np.concatenate(indptr),
        ),
        shape=(n_rows, n_cols),
    )
    result.sort_indices()
    return result
