"""The users x items interaction matrix: event weighting, time decay and id maps.

An *event* is one (user, item, kind, value, time) row — a view, a purchase of
``value`` units, a rating of ``value`` stars... ``matrix_build`` turns a batch of
events into a ``scipy.sparse.csr_matrix`` of confidence weights (users x items,
float32) plus the external ids of its rows and columns, fully vectorised.

Weight of one event::

    kind_weights[kind] * value_multiplier(kind, value) * 0.5 ** (age_days / half_life_days)

* ``value_multiplier`` depends on the kind's *value mode* (``DEFAULT_VALUE_MODES``):

  - ``"ignore"`` (views, clicks, wishlist): 1, the value is not used;
  - ``"quantity"`` (add to cart, remove from cart, purchase): ``1 + ln(min(q, cap))``
    for a quantity ``q >= 1`` (``q < 1``, e.g. "not given", counts as 1): buying 12
    of something is stronger evidence than buying one, but wholesale orders of
    thousands must not drown every other signal;
  - ``"rating"``: ``value - rating_neutral`` (stars above neutral are positive,
    below are negative evidence);
  - ``"linear"``: the value itself.

* Negative weights (``REMOVE_FROM_CART``, bad ratings) cancel positive evidence for
  the same (user, item): duplicates are summed and the *sum* is clipped at 0, so a
  cart add followed by a removal leaves only the view/click signal. The matrix
  never contains negative entries.
* Time decay is optional (``half_life_days=None`` disables it); ``now`` defaults to
  the newest event, and events after ``now`` count as age 0.

The matrix holds *weights*, not a confidence transform: each algorithm applies its
own (``alpha`` scaling for ALS, ``log``/``binary``/``bm25`` weighting, ...), see
``weighting.py``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import scipy.sparse as sp

from .errors import EngineError, UnknownIdError

__all__ = [
    "DEFAULT_KIND_WEIGHTS",
    "DEFAULT_QUANTITY_CAP",
    "DEFAULT_RATING_NEUTRAL",
    "DEFAULT_VALUE_MODES",
    "InteractionMatrix",
    "Kind",
    "event_weights",
    "matrix_build",
    "recent_popularity",
]

SECONDS_PER_DAY = 86_400.0


class Kind(enum.IntEnum):
    """Interaction kind codes, identical to ``shop.models.Interaction.Kind``."""

    VIEW = 1
    CLICK = 2
    ADD_TO_CART = 3
    REMOVE_FROM_CART = 4
    PURCHASE = 5
    RATING = 6
    WISHLIST = 7


DEFAULT_KIND_WEIGHTS: Mapping[int, float] = MappingProxyType(
    {
        Kind.VIEW: 1.0,
        Kind.CLICK: 1.0,
        Kind.ADD_TO_CART: 3.0,
        # cancels the add-to-cart signal of the same quantity
        Kind.REMOVE_FROM_CART: -3.0,
        Kind.PURCHASE: 5.0,
        # per star above/below neutral: 5 stars -> +4, 1 star -> -4
        Kind.RATING: 2.0,
        Kind.WISHLIST: 2.0,
    }
)
"""Default weight per kind code (see the module docstring for how values enter)."""

DEFAULT_VALUE_MODES: Mapping[int, str] = MappingProxyType(
    {
        Kind.ADD_TO_CART: "quantity",
        Kind.REMOVE_FROM_CART: "quantity",
        Kind.PURCHASE: "quantity",
        Kind.RATING: "rating",
    }
)
"""How each kind's ``value`` enters its weight; kinds not listed ignore their value."""

DEFAULT_QUANTITY_CAP = 100.0
DEFAULT_RATING_NEUTRAL = 3.0

_VALUE_MODES = ("ignore", "quantity", "rating", "linear")


# --------------------------------------------------------------------------- helpers
def _as_1d(name: str, array: object, dtype: type) -> np.ndarray:
    """``array`` as a 1-D array of ``dtype``, with a clear error otherwise."""
    try:
        out = np.asarray(array)
    except (TypeError, ValueError) as exc:  # pragma: no cover - numpy message is enough
        raise EngineError(f"{name}: cannot convert to an array ({exc})") from exc
    if out.ndim != 1:
        raise EngineError(f"{name} must be one-dimensional, got shape {out.shape}")
    if np.issubdtype(dtype, np.integer):
        if out.size and not (np.issubdtype(out.dtype, np.integer) or np.issubdtype(out.dtype, np.bool_)):
            if not np.issubdtype(out.dtype, np.floating) or not np.all(np.isfinite(out) & (out == np.round(out))):
                raise EngineError(f"{name} must hold integers, got dtype {out.dtype}")
    elif out.size and not np.issubdtype(out.dtype, np.number):
        raise EngineError(f"{name} must be numeric, got dtype {out.dtype}")
    return out.astype(dtype, copy=False)


def _check_finite(name: str, array: np.ndarray) -> None:
    bad = ~np.isfinite(array)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise EngineError(f"{name} contains {int(bad.sum())} NaN/inf value(s) (first at position {first})")


class _IdLookup:
    """External int64 id -> position, vectorised via a sorted copy of the ids."""

    __slots__ = ("_sorted", "_sorter")

    def __init__(self, ids: np.ndarray) -> None:
        self._sorter = np.argsort(ids, kind="stable")
        self._sorted = ids[self._sorter]
        if ids.size > 1 and np.any(self._sorted[1:] == self._sorted[:-1]):
            dup = self._sorted[1:][self._sorted[1:] == self._sorted[:-1]][0]
            raise EngineError(f"ids must be unique, {int(dup)} occurs more than once")

    def index(self, query: np.ndarray) -> np.ndarray:
        if self._sorted.size == 0:
            return np.full(query.shape, -1, dtype=np.int64)
        pos = np.searchsorted(self._sorted, query)
        pos = np.minimum(pos, self._sorted.size - 1)
        found = self._sorted[pos] == query
        return np.where(found, self._sorter[pos], -1).astype(np.int64, copy=False)


def _coo_to_csr(rows: np.ndarray, cols: np.ndarray, data: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """Sum duplicates in float64, clip negative sums at 0, drop zeros, return float32 CSR."""
    matrix = sp.csr_matrix((data.astype(np.float64, copy=False), (rows, cols)), shape=shape, dtype=np.float64)
    matrix.sum_duplicates()
    np.maximum(matrix.data, 0.0, out=matrix.data)
    matrix.eliminate_zeros()
    out = matrix.astype(np.float32)
    out.indices = out.indices.astype(np.int32, copy=False)
    out.indptr = out.indptr.astype(np.int32 if out.nnz < 2**31 else np.int64, copy=False)
    return out


# --------------------------------------------------------------------------- weights
def event_weights(
    *,
    kinds: np.ndarray,
    values: np.ndarray,
    times: np.ndarray | None = None,
    kind_weights: Mapping[int, float] = DEFAULT_KIND_WEIGHTS,
    value_modes: Mapping[int, str] = DEFAULT_VALUE_MODES,
    half_life_days: float | None = None,
    now: float | None = None,
    quantity_cap: float = DEFAULT_QUANTITY_CAP,
    rating_neutral: float = DEFAULT_RATING_NEUTRAL,
) -> np.ndarray:
    """Weight of every event (float32, may be negative), as described in the module doc.

    Use the same arguments as the matrix was built with to weight a shopper's live
    history before ``InteractionMatrix.history_rows``.

    Raises ``EngineError`` for kind codes missing from ``kind_weights``, unknown
    value modes, NaN/inf values or times, or a non-positive half-life.
    """
    kinds = _as_1d("kinds", kinds, np.int64)
    values = _as_1d("values", values, np.float64)
    if values.shape != kinds.shape:
        raise EngineError(f"values has {values.size} entries, kinds has {kinds.size}")
    _check_finite("values", values)
    for kind, weight in kind_weights.items():
        if not np.isfinite(weight):
            raise EngineError(f"kind_weights[{kind}] is not finite: {weight!r}")
    for kind, mode in value_modes.items():
        if mode not in _VALUE_MODES:
            raise EngineError(f"value_modes[{kind}] = {mode!r}; expected one of {_VALUE_MODES}")
    if not quantity_cap >= 1:
        raise EngineError(f"quantity_cap must be >= 1, got {quantity_cap!r}")

    codes = np.array(sorted(int(k) for k in kind_weights), dtype=np.int64)
    base = np.array([float(kind_weights[int(k)]) for k in codes], dtype=np.float64)
    weights = np.zeros(kinds.size, dtype=np.float64)
    if kinds.size:
        if codes.size == 0:
            raise EngineError("kind_weights is empty: no kind code has a weight")
        pos = np.minimum(np.searchsorted(codes, kinds), codes.size - 1)
        known = codes[pos] == kinds
        if not known.all():
            unknown = np.unique(kinds[~known])
            raise EngineError(
                f"kind code(s) {unknown.tolist()} have no weight in kind_weights (known: {codes.tolist()})"
            )
        weights = base[pos]

    mode_codes = {mode: [int(k) for k, m in value_modes.items() if m == mode] for mode in _VALUE_MODES}
    if mode_codes["quantity"]:
        mask = np.isin(kinds, mode_codes["quantity"])
        quantity = np.clip(values[mask], 1.0, quantity_cap)
        weights[mask] *= 1.0 + np.log(quantity)
    if mode_codes["rating"]:
        mask = np.isin(kinds, mode_codes["rating"])
        weights[mask] *= values[mask] - rating_neutral
    if mode_codes["linear"]:
        mask = np.isin(kinds, mode_codes["linear"])
        weights[mask] *= values[mask]

    if half_life_days is not None:
        if not (np.isfinite(half_life_days) and half_life_days > 0):
            raise EngineError(f"half_life_days must be a positive number, got {half_life_days!r}")
        if times is None:
            raise EngineError("times are required for time decay (half_life_days is set)")
        times = _as_1d("times", times, np.float64)
        if times.shape != kinds.shape:
            raise EngineError(f"times has {times.size} entries, kinds has {kinds.size}")
        _check_finite("times", times)
        if times.size:
            reference = float(times.max()) if now is None else float(now)
            if not np.isfinite(reference):
                raise EngineError(f"now must be finite, got {now!r}")
            age_days = np.maximum(reference - times, 0.0) / SECONDS_PER_DAY
            weights *= np.exp2(-age_days / half_life_days)
    return weights.astype(np.float32)


def recent_popularity(
    *,
    items: np.ndarray,
    times: np.ndarray,
    item_ids: np.ndarray,
    half_life_days: float = 7.0,
    now: float | None = None,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Recency-weighted popularity ("trending") per item column of ``item_ids``.

    Sum over events of ``weight * 0.5 ** (age_days / half_life_days)``; ``weights``
    defaults to 1 per event, ``now`` to the newest event. Events of items outside
    ``item_ids`` are ignored. Returns float32 of ``len(item_ids)``, for
    ``SideData.item_recent``.
    """
    items = _as_1d("items", items, np.int64)
    times = _as_1d("times", times, np.float64)
    item_ids = _as_1d("item_ids", item_ids, np.int64)
    if times.shape != items.shape:
        raise EngineError(f"times has {times.size} entries, items has {items.size}")
    _check_finite("times", times)
    if weights is None:
        weights = np.ones(items.size, dtype=np.float64)
    else:
        weights = _as_1d("weights", weights, np.float64)
        if weights.shape != items.shape:
            raise EngineError(f"weights has {weights.size} entries, items has {items.size}")
        _check_finite("weights", weights)
    if not (np.isfinite(half_life_days) and half_life_days > 0):
        raise EngineError(f"half_life_days must be a positive number, got {half_life_days!r}")
    cols = _IdLookup(item_ids).index(items)
    keep = cols >= 0
    if not keep.any():
        return np.zeros(item_ids.size, dtype=np.float32)
    reference = float(times[keep].max()) if now is None else float(now)
    age_days = np.maximum(reference - times[keep], 0.0) / SECONDS_PER_DAY
    decayed = weights[keep] * np.exp2(-age_days / half_life_days)
    return np.bincount(cols[keep], weights=decayed, minlength=item_ids.size).astype(np.float32)


# --------------------------------------------------------------------------- the matrix
@dataclass
class InteractionMatrix:
    """A users x items matrix of non-negative confidence weights with its id maps.

    ``user_ids[row]`` and ``item_ids[col]`` are the external (database) ids; the
    reverse maps are ``user_index`` / ``item_index`` (``-1`` for unknown ids).
    """

    user_items: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    _users: _IdLookup = field(init=False, repr=False, compare=False)
    _items: _IdLookup = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.user_ids = _as_1d("user_ids", self.user_ids, np.int64)
        self.item_ids = _as_1d("item_ids", self.item_ids, np.int64)
        if not sp.issparse(self.user_items):
            raise EngineError("user_items must be a scipy.sparse matrix")
        self.user_items = sp.csr_matrix(self.user_items, dtype=np.float32)
        expected = (self.user_ids.size, self.item_ids.size)
        if self.user_items.shape != expected:
            raise EngineError(f"user_items has shape {self.user_items.shape}, ids give {expected}")
        self._users = _IdLookup(self.user_ids)
        self._items = _IdLookup(self.item_ids)

    @property
    def shape(self) -> tuple[int, int]:
        return self.user_items.shape

    @property
    def n_users(self) -> int:
        return int(self.user_ids.size)

    @property
    def n_items(self) -> int:
        return int(self.item_ids.size)

    def user_index(self, ids: np.ndarray | Sequence[int] | int) -> np.ndarray:
        """Row of each external user id, ``-1`` for ids not in the matrix."""
        return self._users.index(np.asarray(ids, dtype=np.int64))

    def item_index(self, ids: np.ndarray | Sequence[int] | int) -> np.ndarray:
        """Column of each external item id, ``-1`` for ids not in the matrix."""
        return self._items.index(np.asarray(ids, dtype=np.int64))

    def user_rows(self, ids: np.ndarray | Sequence[int]) -> sp.csr_matrix:
        """The matrix rows of known users (``UnknownIdError`` names unknown ids)."""
        ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
        rows = self.user_index(ids)
        if np.any(rows < 0):
            raise UnknownIdError(f"unknown user id(s): {ids[rows < 0][:10].tolist()}")
        return self.user_items[rows]

    def history_rows(self, histories: Sequence[tuple[np.ndarray, np.ndarray]]) -> sp.csr_matrix:
        """Fold-in rows for arbitrary (known or new) users: one row per history.

        Each history is ``(item_ids, weights)`` in external item ids (weight it with
        ``event_weights`` to match the training matrix). Items outside the matrix
        are ignored (a product added after training has no column); duplicates are
        summed and negative sums clipped at 0. An empty history gives an empty row.
        """
        counts = np.zeros(len(histories), dtype=np.int64)
        item_parts: list[np.ndarray] = []
        weight_parts: list[np.ndarray] = []
        for number, (item_ids, weights) in enumerate(histories):
            item_ids = _as_1d(f"histories[{number}] item ids", item_ids, np.int64)
            weights = _as_1d(f"histories[{number}] weights", weights, np.float64)
            if weights.shape != item_ids.shape:
                raise EngineError(f"histories[{number}]: {item_ids.size} item ids but {weights.size} weights")
            _check_finite(f"histories[{number}] weights", weights)
            counts[number] = item_ids.size
            item_parts.append(item_ids)
            weight_parts.append(weights)
        if not item_parts:
            return sp.csr_matrix((0, self.n_items), dtype=np.float32)
        if len(item_parts) == 1:
            return self._history_row(item_parts[0], weight_parts[0])
        items = np.concatenate(item_parts)
        data = np.concatenate(weight_parts)
        rows = np.repeat(np.arange(len(histories), dtype=np.int64), counts)
        cols = self.item_index(items)
        keep = cols >= 0
        return _coo_to_csr(rows[keep], cols[keep], data[keep], (len(histories), self.n_items))

    def _history_row(self, item_ids: np.ndarray, weights: np.ndarray) -> sp.csr_matrix:
        """One history (the per-request path): the same row as the general path
        (duplicates summed in float64, negative sums clipped, zeros dropped), built
        straight into a 1-row CSR, where scipy's COO conversion would cost more than
        scoring the row."""
        cols = self.item_index(item_ids)
        on = cols >= 0
        if not on.any():
            return sp.csr_matrix((1, self.n_items), dtype=np.float32)
        unique, inverse = np.unique(cols[on], return_inverse=True)
        summed = np.bincount(inverse, weights=weights[on])
        keep = summed > 0
        data, indices = summed[keep].astype(np.float32), unique[keep].astype(np.int32)
        indptr = np.array([0, indices.size], dtype=np.int32)
        return sp.csr_matrix((data, indices, indptr), shape=(1, self.n_items))


def matrix_build(
    *,
    users: np.ndarray,
    items: np.ndarray,
    kinds: np.ndarray,
    values: np.ndarray,
    times: np.ndarray,
    kind_weights: Mapping[int, float] = DEFAULT_KIND_WEIGHTS,
    half_life_days: float | None = None,
    now: float | None = None,
    item_ids: np.ndarray | None = None,
    user_ids: np.ndarray | None = None,
    value_modes: Mapping[int, str] = DEFAULT_VALUE_MODES,
    quantity_cap: float = DEFAULT_QUANTITY_CAP,
    rating_neutral: float = DEFAULT_RATING_NEUTRAL,
) -> InteractionMatrix:
    """Build the weighted users x items matrix from parallel event arrays.

    ``item_ids`` / ``user_ids`` fix the column / row universe (e.g. the whole
    catalogue, including products without events, or a training matrix's ids when
    building its test matrix); events outside a fixed universe are left out —
    that is what a fixed universe means. Without them the universe is the sorted
    distinct ids of the events.

    Raises ``EngineError`` on mismatched lengths, NaN/inf values or times, kind codes
    without a weight, or duplicate ids in a given universe. Zero events give an
    empty matrix (fitting on it raises ``EmptyDataError``).
    """
    users = _as_1d("users", users, np.int64)
    items = _as_1d("items", items, np.int64)
    times = _as_1d("times", times, np.float64)
    n_events = users.size
    for name, array in (("items", items), ("kinds", kinds), ("values", values), ("times", times)):
        if np.shape(array) != (n_events,):
            raise EngineError(f"{name} has shape {np.shape(array)}, users has ({n_events},)")
    _check_finite("times", times)
    weights = event_weights(
        kinds=kinds,
        values=values,
        times=times,
        kind_weights=kind_weights,
        value_modes=value_modes,
        half_life_days=half_life_days,
        now=now,
        quantity_cap=quantity_cap,
        rating_neutral=rating_neutral,
    )

    if user_ids is None:
        user_ids, rows = np.unique(users, return_inverse=True)
    else:
        user_ids = _as_1d("user_ids", user_ids, np.int64)
        rows = _IdLookup(user_ids).index(users)
    if item_ids is None:
        item_ids, cols = np.unique(items, return_inverse=True)
    else:
        item_ids = _as_1d("item_ids", item_ids, np.int64)
        cols = _IdLookup(item_ids).index(items)
    rows = rows.astype(np.int64, copy=False).reshape(-1)
    cols = cols.astype(np.int64, copy=False).reshape(-1)
    keep = (rows >= 0) & (cols >= 0)
    if not keep.all():
        rows, cols, weights = rows[keep], cols[keep], weights[keep]
    user_items = _coo_to_csr(rows, cols, weights, (user_ids.size, item_ids.size))
    return InteractionMatrix(user_items=user_items, user_ids=user_ids, item_ids=item_ids)
