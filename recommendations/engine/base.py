"""The one interface every recommendation algorithm implements.

A ``Recommender`` is fitted on a users x items CSR matrix of confidence weights
(``matrix.InteractionMatrix.user_items``) and afterwards needs nothing but
*history rows* to score: every algorithm folds a history in at call time, so
known users, users who appeared after training and anonymous sessions are all
served the same way (``InteractionMatrix.history_rows`` builds the rows).

Artifacts are ``.npz`` files holding only numeric/string arrays (``algorithm``,
``params`` as JSON, ``n_items`` and the algorithm's ``state__*`` arrays), loaded
with ``allow_pickle=False``.

Subclasses set ``name`` and ``defaults`` (parameter -> default value, which also
fixes its type) and implement ``_fit``, ``_score`` and ``_state``/``_set_state``;
they may override ``_similar`` for a better item-item similarity than the default
(the scores of a one-item history).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from ._arrays import top_n
from .errors import (
    EmptyDataError,
    EngineError,
    NotFittedError,
    TooManyItemsError,
    UnknownIdError,
)

__all__ = [
    "ALGORITHMS",
    "FORMAT_VERSION",
    "EmptyDataError",
    "EngineError",
    "NotFittedError",
    "Progress",
    "Recommender",
    "SideData",
    "TooManyItemsError",
    "UnknownIdError",
    "algorithm_build",
    "check_user_items",
    "from_arrays",
    "load",
]

FORMAT_VERSION = 1
"""Version of the artifact layout written by ``Recommender.save``."""

Progress = Callable[[float], None]
"""Progress callback: receives a fraction in [0, 1]."""

ALGORITHMS: dict[str, type[Recommender]] = {}
"""Registry: algorithm name -> class (filled when the algorithm modules are imported)."""


# --------------------------------------------------------------------------- side data
@dataclass
class SideData:
    """Optional per-item side information, aligned with the matrix columns."""

    item_text: list[str] | None = None
    """Name + description + category text per item column."""
    item_category: np.ndarray | None = None
    """Integer category id per item column (-1 for none)."""
    item_recent: np.ndarray | None = None
    """Recency-weighted popularity per item column (``matrix.recent_popularity``)."""

    @property
    def has_content(self) -> bool:
        """True when some item has text or a category (what content models need)."""
        if self.item_text is not None and any(text.strip() for text in self.item_text):
            return True
        return self.item_category is not None and bool(np.any(np.asarray(self.item_category) >= 0))

    def check(self, n_items: int) -> None:
        """Raise ``EngineError`` unless every given field has one entry per item."""
        if self.item_text is not None:
            if len(self.item_text) != n_items:
                raise EngineError(f"side.item_text has {len(self.item_text)} entries for {n_items} items")
            if not all(isinstance(text, str) for text in self.item_text):
                raise EngineError("side.item_text must hold one string per item")
        if self.item_category is not None:
            category = np.asarray(self.item_category)
            if category.shape != (n_items,):
                raise EngineError(f"side.item_category has shape {category.shape} for {n_items} items")
            if category.size and not np.issubdtype(category.dtype, np.integer):
                raise EngineError("side.item_category must hold integer ids (-1 for none)")
        if self.item_recent is not None:
            recent = np.asarray(self.item_recent, dtype=np.float64)
            if recent.shape != (n_items,):
                raise EngineError(f"side.item_recent has shape {recent.shape} for {n_items} items")
            if not np.all(np.isfinite(recent)):
                raise EngineError("side.item_recent contains NaN/inf values")
            if np.any(recent < 0):
                raise EngineError("side.item_recent must be non-negative")


# --------------------------------------------------------------------------- validation
def check_user_items(user_items: object, *, what: str = "user_items") -> sp.csr_matrix:
    """Validate a weights matrix: sparse or 2-D array, finite, non-negative.

    Returns a CSR float32 copy with duplicates summed and explicit zeros removed.
    """
    if sp.issparse(user_items):
        matrix = sp.csr_matrix(user_items, dtype=np.float32, copy=True)
    elif isinstance(user_items, np.ndarray):
        if user_items.ndim == 1:
            user_items = user_items[None, :]
        if user_items.ndim != 2:
            raise EngineError(f"{what} must be 2-D, got shape {user_items.shape}")
        matrix = sp.csr_matrix(user_items.astype(np.float32))
    else:
        kind = type(user_items).__name__
        raise EngineError(f"{what} must be a scipy.sparse matrix or a numpy array, got {kind}")
    matrix.sum_duplicates()
    if matrix.nnz and not np.all(np.isfinite(matrix.data)):
        bad = int((~np.isfinite(matrix.data)).sum())
        raise EngineError(f"{what} contains {bad} NaN/inf value(s)")
    if matrix.nnz and matrix.data.min() < 0:
        raise EngineError(f"{what} contains negative weights; weights must be >= 0")
    matrix.eliminate_zeros()
    return matrix


def _coerce_param(algorithm: str, key: str, value: Any, default: Any) -> Any:
    """``value`` converted to the type of ``default`` or an ``EngineError``."""

    def bad(expected: str) -> EngineError:
        return EngineError(f"{algorithm}: parameter {key!r} must be {expected}, got {value!r}")

    if isinstance(default, bool):
        if not isinstance(value, (bool, np.bool_)):
            raise bad("true or false")
        return bool(value)
    if isinstance(default, int):
        if isinstance(value, (bool, np.bool_)):
            raise bad("an integer")
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return int(value)
        raise bad("an integer")
    if isinstance(default, float):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise bad("a number")
        value = float(value)
        if not np.isfinite(value):
            raise bad("a finite number")
        return value
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if isinstance(default, dict):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise bad("a dict (or its JSON)") from exc
        if not isinstance(value, Mapping):
            raise bad("a dict")
        return {str(k): v for k, v in value.items()}
    # default None: any JSON scalar
    if value is not None and not isinstance(value, (bool, int, float, str)):
        raise bad("a JSON scalar")
    return value


class _ProgressReporter:
    """Wrap an optional callback; clamp to [0, 1] and map sub-ranges."""

    def __init__(self, callback: Progress | None, start: float = 0.0, stop: float = 1.0) -> None:
        self.callback = callback
        self.start = start
        self.stop = stop

    def __call__(self, fraction: float) -> None:
        if self.callback is not None:
            fraction = min(max(float(fraction), 0.0), 1.0)
            self.callback(self.start + (self.stop - self.start) * fraction)

    def part(self, start: float, stop: float) -> _ProgressReporter:
        """A reporter for the sub-range [start, stop] of this one."""
        span = self.stop - self.start
        return _ProgressReporter(self.callback, self.start + span * start, self.start + span * stop)


# --------------------------------------------------------------------------- interface
class Recommender(ABC):
    """Base class of every algorithm (see the module docstring)."""

    name: ClassVar[str]
    """Registry key, e.g. ``"ease"``."""
    defaults: ClassVar[Mapping[str, Any]] = {}
    """Parameter name -> default (its type is the parameter's type)."""
    needs_interactions: ClassVar[bool] = True
    """False for algorithms that can be fitted on side data alone (content)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            if cls.name in ALGORITHMS and ALGORITHMS[cls.name] is not cls:
                raise TypeError(f"algorithm name {cls.name!r} registered twice")
            ALGORITHMS[cls.name] = cls

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise EngineError(f"{self.name}: unknown parameter(s) {unknown}; known: {sorted(self.defaults)}")
        merged = dict(self.defaults)
        for key, value in params.items():
            merged[key] = _coerce_param(self.name, key, value, self.defaults[key])
        self.params: dict[str, Any] = merged
        self._check_params()
        self._n_items: int | None = None

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.params.items() if v != self.defaults.get(k)}
        args = ", ".join(f"{k}={v!r}" for k, v in changed.items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------ parameters
    def _check_params(self) -> None:  # noqa: B027 - an optional hook, not abstract
        """Subclass hook: raise ``EngineError`` for out-of-range parameters."""

    def _require(self, condition: bool, message: str) -> None:
        if not condition:
            raise EngineError(f"{self.name}: {message}")

    def _require_between(self, key: str, low: float, high: float) -> None:
        """``params[key]`` within [low, high] (NaN is refused); the error names the bound."""
        value = self.params[key]
        self._require(low <= value <= high, f"{key} must be between {low} and {high}, got {value!r}")

    def get_params(self) -> dict[str, Any]:
        """All parameters (defaults included), JSON-serialisable."""
        return json.loads(json.dumps(self.params))

    # ------------------------------------------------------------ state
    @property
    def fitted(self) -> bool:
        return self._n_items is not None

    @property
    def n_items(self) -> int:
        self._require_fitted()
        assert self._n_items is not None
        return self._n_items

    def _require_fitted(self) -> None:
        if self._n_items is None:
            raise NotFittedError(f"{self.name}: call fit() or load() first")

    # ------------------------------------------------------------ fitting
    def fit(
        self,
        user_items: sp.spmatrix,
        side: SideData | None = None,
        *,
        progress: Progress | None = None,
    ) -> Self:
        """Learn from a users x items weights matrix (and optional side data)."""
        matrix = check_user_items(user_items)
        n_users, n_items = matrix.shape
        if n_items == 0:
            raise EmptyDataError(f"{self.name}: the matrix has no items")
        if self.needs_interactions and (n_users == 0 or matrix.nnz == 0):
            raise EmptyDataError(f"{self.name}: no interactions to learn from (matrix {n_users} x {n_items})")
        if side is not None:
            side.check(n_items)
        reporter = _ProgressReporter(progress)
        reporter(0.0)
        self._fit(matrix, side, reporter)
        self._n_items = n_items
        reporter(1.0)
        return self

    @abstractmethod
    def _fit(self, user_items: sp.csr_matrix, side: SideData | None, progress: Progress) -> None:
        """Fit on a validated CSR float32 matrix."""

    # ------------------------------------------------------------ scoring
    def check_history(self, history: object) -> sp.csr_matrix:
        """``history`` validated (``check_user_items``) as CSR float32 rows of this
        model's width (``EngineError`` otherwise)."""
        matrix = check_user_items(history, what="history")
        if matrix.shape[1] != self.n_items:
            raise EngineError(
                f"{self.name}: history has {matrix.shape[1]} item columns, the model was fitted on {self.n_items}"
            )
        return matrix

    def score(self, history: sp.spmatrix) -> np.ndarray:
        """Scores (rows, n_items) float32 for each history row; higher is better."""
        matrix = self.check_history(history)
        scores = np.asarray(self._score(matrix), dtype=np.float32)
        if scores.shape != (matrix.shape[0], self.n_items):  # pragma: no cover - bug guard
            raise AssertionError(f"{self.name}._score returned shape {scores.shape}")
        return scores

    @abstractmethod
    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        """Dense (rows, n_items) scores for validated history rows (a new array)."""

    # ------------------------------------------------------------ fold-in
    def fold_in(self, history: sp.csr_matrix) -> np.ndarray:
        """History rows already validated by ``check_history`` as user vectors
        (rows, d) float32, with ``fold_in(h) @ item_vectors(cols).T == score(h)[:, cols]``.

        Default: the rows' scores (d = n_items; a model without latent factors
        describes a user by its scores). Factor models return their folded-in
        user factors."""
        return np.asarray(self._score(history), dtype=np.float32)

    def user_vectors(self, history: sp.spmatrix) -> np.ndarray:
        """Each history row folded in (``fold_in`` of the validated rows). With
        ``item_vectors``, scores a few columns without scoring the catalogue
        (explanations fold every anchor at once and score only the candidates)."""
        return self.fold_in(self.check_history(history))

    def item_vectors(self, columns: np.ndarray | list[int]) -> np.ndarray:
        """The item side of ``user_vectors``: (len(columns), d) float32. Default:
        one-hot rows of the columns (d = n_items)."""
        cols = np.asarray(columns, dtype=np.int64)
        out = np.zeros((cols.size, self.n_items), dtype=np.float32)
        out[np.arange(cols.size), cols] = 1.0
        return out

    def top_k(
        self,
        history: sp.spmatrix,
        k: int,
        *,
        exclude: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best item columns for ONE history row (the per-request path):
        ``(columns int64, scores float32)``, best first (equal scores by column),
        possibly fewer than ``k``. ``exclude``: columns never listed; ``allowed``: a
        bool mask over items of what may be listed. The history's own items are
        not excluded (pass them in ``exclude``). Default: score every item."""
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
            raise EngineError(f"k must be a non-negative integer, got {k!r}")
        matrix = self.check_history(history)
        if matrix.shape[0] != 1:
            raise EngineError(f"top_k takes one history row, got {matrix.shape[0]}")
        scores = np.array(self._score(matrix)[0], dtype=np.float32, copy=True)
        if exclude is not None and len(exclude):
            scores[np.asarray(exclude, dtype=np.int64)] = -np.inf
        if allowed is not None:
            scores[~self._check_allowed(allowed)] = -np.inf
        ids, top = top_n(scores[None, :], int(k))
        valid = ids[0] >= 0
        return ids[0][valid], top[0][valid]

    def top_k_batch(
        self,
        history: sp.spmatrix,
        k: int,
        *,
        exclude: sp.spmatrix | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best item columns for EACH history row (the batch path: exports,
        campaigns): ``(ids int64 (rows, k), scores float32 (rows, k))``, best first
        (equal scores by column), padded with id ``-1`` / score ``-inf`` when fewer
        than ``k`` items qualify -- what ``recommend(history, n=k, exclude=exclude,
        exclude_history=False, allowed=allowed)`` returns (equal scores at the cut-off
        aside). ``exclude``: a sparse matrix of the same rows whose stored entries are
        columns never listed for that row; ``allowed``: a bool mask over items of what
        may be listed. The history's own items are not excluded. Default: score every
        item (factor models override it with a scan that reads only what can win)."""
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 0:
            raise EngineError(f"k must be a non-negative integer, got {k!r}")
        matrix = self.check_history(history)
        rows = matrix.shape[0]
        excluded: sp.csr_matrix | None = None
        if exclude is not None:
            if not sp.issparse(exclude):
                raise EngineError("exclude must be a scipy.sparse matrix")
            excluded = sp.csr_matrix(exclude)
            if excluded.shape != (rows, self.n_items):
                raise EngineError(f"exclude has shape {excluded.shape}; expected ({rows}, {self.n_items})")
            excluded.sum_duplicates()  # canonical: one entry per (row, column)
        mask = self._check_allowed(allowed) if allowed is not None else None
        return self._top_k_batch(matrix, int(k), excluded, mask)

    def _top_k_batch(
        self,
        history: sp.csr_matrix,
        k: int,
        exclude: sp.csr_matrix | None,
        allowed: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``top_k_batch`` on validated arguments. Default: dense scores + ``top_n``."""
        scores = np.array(self._score(history), dtype=np.float32, copy=True)
        if exclude is not None and exclude.nnz:
            rows = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
            scores[rows, exclude.indices] = -np.inf
        if allowed is not None:
            scores[:, ~allowed] = -np.inf
        return top_n(scores, k)

    def _check_allowed(self, allowed: np.ndarray) -> np.ndarray:
        mask = np.asarray(allowed)
        if mask.dtype != np.bool_ or mask.shape != (self.n_items,):
            raise EngineError(f"allowed must be a bool mask of shape ({self.n_items},), got {mask.dtype} {mask.shape}")
        return mask

    def recommend(
        self,
        history: sp.spmatrix,
        *,
        n: int = 10,
        exclude: sp.spmatrix | None = None,
        exclude_history: bool = True,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` item columns per history row.

        ``exclude_history`` drops the row's own items; ``exclude`` (same rows, or one
        row for all) drops further items (stored entries count, whatever the value);
        ``allowed`` is a bool mask over items (or per row) of what may be shown.
        Returns ``(ids int64 (rows, n), scores float32 (rows, n))``, padded with id
        ``-1`` / score ``-inf`` when fewer than ``n`` items qualify.
        """
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise EngineError(f"n must be a non-negative integer, got {n!r}")
        matrix = self.check_history(history)
        scores = np.array(self._score(matrix), dtype=np.float32, copy=True)
        rows = matrix.shape[0]
        if exclude_history and matrix.nnz:
            r, c = matrix.nonzero()
            scores[r, c] = -np.inf
        if exclude is not None:
            if not sp.issparse(exclude):
                raise EngineError("exclude must be a scipy.sparse matrix")
            exclude = sp.csr_matrix(exclude)
            if exclude.shape[1] != self.n_items or exclude.shape[0] not in (1, rows):
                raise EngineError(f"exclude has shape {exclude.shape}; expected ({rows} or 1, {self.n_items})")
            r, c = exclude.nonzero()
            if exclude.shape[0] == 1 and rows != 1:
                scores[:, c] = -np.inf
            else:
                scores[r, c] = -np.inf
        if allowed is not None:
            mask = np.asarray(allowed)
            if mask.dtype != np.bool_ or mask.shape not in ((self.n_items,), (rows, self.n_items)):
                raise EngineError(
                    f"allowed must be a bool mask of shape ({self.n_items},) or "
                    f"({rows}, {self.n_items}), got {mask.dtype} {mask.shape}"
                )
            scores[np.broadcast_to(~mask, scores.shape)] = -np.inf
        return top_n(scores, int(n))

    def _check_items(self, items: np.ndarray | list[int] | int) -> np.ndarray:
        array = np.atleast_1d(np.asarray(items))
        if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
            raise EngineError(f"items must be integer column indices, got {array.dtype}")
        array = array.astype(np.int64)
        bad = (array < 0) | (array >= self.n_items)
        if bad.any():
            raise UnknownIdError(
                f"{self.name}: item column(s) {array[bad][:10].tolist()} out of range "
                f"[0, {self.n_items}) (-1 means an unknown item id)"
            )
        return array

    def similar_items(self, items: np.ndarray | list[int], *, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` most similar item columns to each given item column (itself excluded).

        Only items with a positive similarity are listed. Returns
        ``(ids int64 (len(items), n), scores float32)``, padded like ``recommend``.
        """
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise EngineError(f"n must be a non-negative integer, got {n!r}")
        array = self._check_items(items)
        sims = np.array(self._similar(array), dtype=np.float32, copy=True)
        sims[np.arange(array.size), array] = -np.inf
        sims[~(sims > 0)] = -np.inf  # no positive similarity: not similar
        return top_n(sims, int(n))

    def _similar(self, items: np.ndarray) -> np.ndarray:
        """Similarity rows (len(items), n_items); default: scores of one-item histories."""
        one_hot = sp.csr_matrix(
            (np.ones(items.size, np.float32), (np.arange(items.size), items)),
            shape=(items.size, self.n_items),
        )
        return self._score(one_hot)

    # ------------------------------------------------------------ persistence
    @abstractmethod
    def _state(self) -> dict[str, np.ndarray]:
        """The fitted arrays needed to score (no user factors of training users)."""

    @abstractmethod
    def _set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Restore from ``_state`` arrays."""

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything ``save`` writes, as a dict of plain arrays."""
        arrays: dict[str, np.ndarray] = {
            "algorithm": np.array(self.name),
            "params": np.array(json.dumps(self.get_params(), sort_keys=True)),
            "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
            "n_items": np.array(self.n_items, dtype=np.int64),
        }
        for key, value in self._state().items():
            array = np.asarray(value)
            if array.dtype == object:  # pragma: no cover - bug guard
                raise AssertionError(f"{self.name}: state {key!r} would need pickle")
            arrays[f"state__{key}"] = array
        return arrays

    def save(self, file: str | IO[bytes], *, compress: bool = True) -> None:
        """Write the fitted model as ``.npz`` (no pickle inside)."""
        arrays = self.to_arrays()
        write = np.savez_compressed if compress else np.savez
        write(file, **arrays)  # type: ignore[arg-type]  # numpy's stub reads **kwds as allow_pickle

    @classmethod
    def load_arrays(cls, arrays: Mapping[str, np.ndarray]) -> Self:
        """Rebuild a fitted model from ``to_arrays`` output (or an opened ``.npz``)."""
        for key in ("algorithm", "params", "format_version", "n_items"):
            if key not in arrays:
                raise EngineError(f"not a model artifact: {key!r} missing")
        name = str(arrays["algorithm"])
        if name != cls.name:
            raise EngineError(f"artifact holds algorithm {name!r}, not {cls.name!r}")
        version = int(arrays["format_version"])
        if version > FORMAT_VERSION:
            raise EngineError(f"artifact format {version} is newer than this engine ({FORMAT_VERSION})")
        params = json.loads(str(arrays["params"]))
        model = cls(**params)
        state = {k[len("state__") :]: arrays[k] for k in arrays if k.startswith("state__")}
        model._set_state(state)
        model._n_items = int(arrays["n_items"])
        return model


# --------------------------------------------------------------------------- module API
def algorithm_build(name: str, **params: Any) -> Recommender:
    """A new, unfitted model of a registered algorithm (``EngineError`` if unknown)."""
    try:
        cls = ALGORITHMS[name]
    except KeyError:
        raise EngineError(f"unknown algorithm {name!r}; available: {sorted(ALGORITHMS)}") from None
    return cls(**params)


def from_arrays(arrays: Mapping[str, np.ndarray]) -> Recommender:
    """Dispatch ``load_arrays`` on the stored algorithm name."""
    if "algorithm" not in arrays:
        raise EngineError("not a model artifact: 'algorithm' missing")
    name = str(arrays["algorithm"])
    if name not in ALGORITHMS:
        raise EngineError(f"artifact holds unknown algorithm {name!r}")
    return ALGORITHMS[name].load_arrays(arrays)


def load(file: str | IO[bytes]) -> Recommender:
    """Load a saved model (``np.load(..., allow_pickle=False)``)."""
    try:
        archive = np.load(file, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise EngineError("not a model artifact: expected an .npz archive")
        with archive:
            arrays = {key: archive[key] for key in archive.files}
    except EngineError:
        raise
    except (OSError, ValueError, EOFError) as exc:  # not a zip, truncated, pickled content
        raise EngineError(f"cannot read model artifact: {exc}") from exc
    return from_arrays(arrays)
