"""Row weighting schemes applied to interaction rows before an algorithm sees them.

A scheme is fitted on the training matrix (it may keep per-item statistics) and
then applied identically to training rows and to fold-in history rows, so a
known user's history gives the same weighted row at serving time as in training.

Schemes (``mode``):

* ``"none"``   — the matrix weights as built;
* ``"binary"`` — 1 for every stored entry;
* ``"log"``    — ``log1p(weight)``: dampens repeat purchases and heavy viewers;
* ``"confidence"`` — ``1 + alpha * weight`` (Hu, Koren & Volinsky's confidence):
  every interaction counts, stronger/more recent ones more (with a time-decayed
  matrix this mixes all-time co-occurrence with recent co-occurrence);
* ``"bm25"``   — Okapi BM25 with items as documents and users as terms::

      w_ui = r_ui * (k1 + 1) / (k1 * (1 - b + b * len_i / avg_len) + r_ui) * idf_u
      idf_u = ln(1 + (n_items - df_u + 0.5) / (df_u + 0.5))

  ``len_i`` is item ``i``'s total weight in training (kept), ``df_u`` the number of
  items in user ``u``'s row (computed from the row itself, so it works for users
  never seen in training).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np
import scipy.sparse as sp

from .errors import EngineError

__all__ = ["WEIGHTING_DEFAULTS", "WEIGHTING_MODES", "RowWeighting", "weighting_from_params"]

WEIGHTING_MODES: Final = ("none", "binary", "log", "confidence", "bm25")

WEIGHTING_DEFAULTS: Final = {"bm25_k1": 1.2, "bm25_b": 0.75, "confidence_alpha": 1.0}
"""The extra parameters of the schemes, shared by every algorithm that weights rows."""


class RowWeighting:
    """A fitted weighting scheme (see the module docstring)."""

    def __init__(self, mode: str = "none", *, k1: float = 1.2, b: float = 0.75, alpha: float = 1.0) -> None:
        if mode not in WEIGHTING_MODES:
            raise EngineError(f"weighting must be one of {WEIGHTING_MODES}, got {mode!r}")
        if not (k1 > 0 and 0 <= b <= 1):
            raise EngineError(f"bm25 needs k1 > 0 and 0 <= b <= 1, got k1={k1!r}, b={b!r}")
        if not alpha >= 0:
            raise EngineError(f"confidence_alpha must be >= 0, got {alpha!r}")
        self.mode = mode
        self.k1 = float(k1)
        self.b = float(b)
        self.alpha = float(alpha)
        self.item_length_norm: np.ndarray | None = None

    def fit(self, user_items: sp.csr_matrix) -> RowWeighting:
        """Keep the per-item statistics the scheme needs (BM25: item length norms)."""
        if self.mode == "bm25":
            lengths = np.asarray(user_items.sum(axis=0), dtype=np.float64).ravel()
            average = lengths[lengths > 0].mean() if np.any(lengths > 0) else 1.0
            self.item_length_norm = ((1.0 - self.b) + self.b * lengths / average).astype(np.float32)
        return self

    def transform(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        """Weighted copy of ``rows`` (CSR float32, same sparsity pattern)."""
        out = sp.csr_matrix(rows, dtype=np.float32, copy=True)
        if self.mode == "none" or out.nnz == 0:
            return out
        if self.mode == "binary":
            out.data[:] = 1.0
        elif self.mode == "log":
            np.log1p(out.data, out=out.data)
        elif self.mode == "confidence":
            out.data = (1.0 + self.alpha * out.data).astype(np.float32)
        else:  # bm25
            if self.item_length_norm is None:
                raise EngineError("bm25 weighting used before fit")
            n_items = out.shape[1]
            df = np.diff(out.indptr).astype(np.float64)
            idf = np.log1p((n_items - df + 0.5) / (df + 0.5))
            row_of = np.repeat(np.arange(out.shape[0]), np.diff(out.indptr))
            norm = self.item_length_norm[out.indices].astype(np.float64)
            r = out.data.astype(np.float64)
            out.data = (r * (self.k1 + 1.0) / (self.k1 * norm + r) * idf[row_of]).astype(np.float32)
        return out

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to save (empty unless the scheme keeps statistics)."""
        if self.item_length_norm is None:
            return {}
        return {"item_length_norm": self.item_length_norm}

    def set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        if "item_length_norm" in arrays:
            self.item_length_norm = np.asarray(arrays["item_length_norm"], dtype=np.float32)


def weighting_from_params(
    params: dict, key: str = "weighting", *, allowed: tuple[str, ...] = WEIGHTING_MODES
) -> RowWeighting:
    """The scheme named by ``params[key]`` with the shared extra parameters."""
    mode = params[key]
    if mode not in allowed:
        raise EngineError(f"{key} must be one of {allowed}, got {mode!r}")
    return RowWeighting(
        mode,
        k1=params.get("bm25_k1", 1.2),
        b=params.get("bm25_b", 0.75),
        alpha=params.get("confidence_alpha", 1.0),
    )
