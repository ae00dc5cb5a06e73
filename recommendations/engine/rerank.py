"""Popularity-calibrated re-ranking: more long-tail exposure for a small, measured
loss of accuracy.

Recommenders amplify popularity: a list is usually far more "head" than the
shopper's own history. Calibrated popularity (Abdollahpouri, Mansoury, Burke,
Mobasher and Malthouse, "User-centered evaluation of popularity bias in
recommender systems", UMAP 2021) splits the catalogue into popularity groups and
re-ranks each list greedily so that its mix of groups comes close to a target
mix -- the shopper's own history mix, or the store's when there is no history --
while keeping the most relevant items first:

    next = argmax_i  (1 - weight) * relevance(i) - weight * JS(target, mix(list + i))

``relevance`` is the candidate's score min-max scaled to [0, 1] over the
candidates (or 1 - rank / count when the scores of a mixed list are not
comparable) and ``JS`` the Jensen-Shannon divergence (base 2, in [0, 1]).
``weight`` 0 leaves the list exactly as it was; 1 only calibrates.

Groups (``popularity_groups``): the **head** is the most popular items that
together hold ``head_share`` of all interactions, the **tail** the least popular
items holding the last ``tail_share``, the **mid** the rest (Abdollahpouri et al.'s
20% / 20% split by default). Every function here is pure numpy.
"""

from __future__ import annotations

import numpy as np

from .errors import EngineError

__all__ = [
    "GROUP_NAMES",
    "HEAD",
    "MID",
    "TAIL",
    "default_target",
    "group_mix",
    "js_divergence",
    "popularity_calibrated",
    "popularity_groups",
    "rerank_lists",
]

HEAD, MID, TAIL = 0, 1, 2
GROUP_NAMES = ("head", "mid", "tail")
_N_GROUPS = 3
_SMOOTHING = 0.01  # a little of the uniform mix in every target: no empty group


def _check_shares(head_share: float, tail_share: float) -> None:
    if not (0.0 < head_share < 1.0 and 0.0 < tail_share < 1.0 and head_share + tail_share < 1.0):
        raise EngineError(
            f"head_share and tail_share must be in (0, 1) with a sum below 1, got {head_share} and {tail_share}"
        )


def popularity_groups(item_popularity: np.ndarray, *, head_share: float = 0.2, tail_share: float = 0.2) -> np.ndarray:
    """The popularity group (``HEAD`` 0, ``MID`` 1, ``TAIL`` 2) of every item.

    ``item_popularity`` holds a non-negative count (or share) per item, e.g. the
    distinct customers of each catalogue column. Items are sorted by decreasing
    popularity (ties by index); the head is the shortest prefix holding at least
    ``head_share`` of the total, the tail the items after the point where
    ``1 - tail_share`` of the total is reached; items never interacted with are
    tail. With no interaction at all every item is tail.
    """
    _check_shares(head_share, tail_share)
    popularity = np.asarray(item_popularity, dtype=np.float64)
    if popularity.ndim != 1:
        raise EngineError(f"item_popularity must be one-dimensional, got shape {popularity.shape}")
    if popularity.size and (not np.all(np.isfinite(popularity)) or popularity.min() < 0):
        raise EngineError("item_popularity must be finite and non-negative")
    groups = np.full(popularity.size, TAIL, dtype=np.int8)
    total = popularity.sum()
    if total <= 0:
        return groups
    order = np.argsort(-popularity, kind="stable")
    before = np.cumsum(popularity[order]) - popularity[order]  # share held by the items ranked above
    before /= total
    ranked = np.full(order.size, MID, dtype=np.int8)
    ranked[before < head_share] = HEAD
    ranked[before >= 1.0 - tail_share] = TAIL
    ranked[popularity[order] <= 0] = TAIL
    groups[order] = ranked
    return groups


def default_target(head_share: float = 0.2, tail_share: float = 0.2) -> np.ndarray:
    """The store's own mix by interactions: ``(head_share, rest, tail_share)``."""
    _check_shares(head_share, tail_share)
    return np.array([head_share, 1.0 - head_share - tail_share, tail_share])


def group_mix(groups: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Share of each group (head, mid, tail) among ``groups`` (a history's items),
    weighted by ``weights`` when given; the uniform mix when empty."""
    groups = np.asarray(groups, dtype=np.int64).ravel()
    if groups.size and (groups.min() < 0 or groups.max() >= _N_GROUPS):
        raise EngineError("groups must be 0 (head), 1 (mid) or 2 (tail)")
    w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if w is not None and w.shape != groups.shape:
        raise EngineError(f"weights has shape {w.shape}, groups {groups.shape}")
    counts = np.bincount(groups, weights=w, minlength=_N_GROUPS).astype(np.float64)
    total = counts.sum()
    if total <= 0:
        return np.full(_N_GROUPS, 1.0 / _N_GROUPS)
    return counts / total


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (base 2, in [0, 1]) between ``p`` and each row of ``q``."""
    p = np.asarray(p, dtype=np.float64)
    q = np.atleast_2d(np.asarray(q, dtype=np.float64))
    return _js_rows(p[None, :], q)


def _check_target(target: np.ndarray | None) -> np.ndarray:
    if target is None:
        return default_target()
    t = np.asarray(target, dtype=np.float64).ravel()
    if t.shape != (_N_GROUPS,) or not np.all(np.isfinite(t)) or t.min() < 0 or t.sum() <= 0:
        raise EngineError(f"target must be three non-negative shares (head, mid, tail), got {target!r}")
    t = t / t.sum()
    return (1.0 - _SMOOTHING) * t + _SMOOTHING / _N_GROUPS


def _relevance(scores: np.ndarray | None, count: int) -> np.ndarray:
    if scores is None:
        return 1.0 - np.arange(count, dtype=np.float64) / max(count, 1)
    s = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(s)
    if not finite.any():
        return 1.0 - np.arange(count, dtype=np.float64) / max(count, 1)
    low, high = s[finite].min(), s[finite].max()
    out = np.zeros(count)
    out[finite] = (s[finite] - low) / (high - low) if high > low else 1.0
    return out


def popularity_calibrated(
    groups: np.ndarray,
    *,
    weight: float,
    n: int,
    scores: np.ndarray | None = None,
    target: np.ndarray | None = None,
) -> np.ndarray:
    """Re-rank one ranked candidate list towards a popularity mix.

    ``groups`` (length c) is the popularity group of each candidate, **in the
    list's current order, best first** (``popularity_groups`` of the catalogue,
    indexed by the candidates). ``scores`` (length c, optional) their relevance;
    without it (candidates from mixed sources) the rank is the relevance.
    ``target`` is the mix to approach: ``group_mix`` of the shopper's history,
    or ``default_target()`` (the store's mix) when None. ``weight`` in [0, 1]:
    0 keeps the order as it is, higher trades relevance for calibration.

    Returns the positions (into the candidates) of the ``min(n, c)`` chosen, in
    their new order. A candidate with score ``-inf`` (padding) is never chosen
    over a real one.
    """
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= float(weight) <= 1.0:
        raise EngineError(f"weight must be a number from 0 to 1, got {weight!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise EngineError(f"n must be a non-negative integer, got {n!r}")
    g = np.asarray(groups, dtype=np.int64).ravel()
    count = g.size
    if count and (g.min() < 0 or g.max() >= _N_GROUPS):
        raise EngineError("groups must be 0 (head), 1 (mid) or 2 (tail)")
    if scores is not None and np.asarray(scores).shape != (count,):
        raise EngineError(f"scores has shape {np.asarray(scores).shape}, groups has {count} candidates")
    take = min(int(n), count)
    weight = float(weight)
    if weight == 0.0 or take == 0:
        return np.arange(take, dtype=np.int64)
    wanted = _check_target(target)
    relevance = _relevance(scores, count)
    padding = np.zeros(count, dtype=bool) if scores is None else ~np.isfinite(np.asarray(scores, dtype=np.float64))
    open_ = ~padding
    counts = np.zeros(_N_GROUPS)
    chosen = np.empty(take, dtype=np.int64)
    options = np.eye(_N_GROUPS)
    for step in range(take):
        if not open_.any():  # only padding left: keep its order
            open_ = padding.copy()
            padding[:] = False
        mixes = (counts[None, :] + options) / (step + 1)
        cost = js_divergence(wanted, mixes)  # the divergence after adding a head, mid or tail item
        value = (1.0 - weight) * relevance - weight * cost[g]
        value[~open_] = -np.inf
        best = int(np.argmax(value))  # ties: the earlier candidate
        chosen[step] = best
        open_[best] = False
        counts[g[best]] += 1
    return chosen


def _relevance_rows(scores: np.ndarray, real: np.ndarray) -> np.ndarray:
    s = np.where(real, scores, np.nan)
    with np.errstate(invalid="ignore"):
        low = np.nanmin(np.where(real, s, np.inf), axis=1, keepdims=True)
        high = np.nanmax(np.where(real, s, -np.inf), axis=1, keepdims=True)
        span = high - low
        out = np.where(span > 0, (s - low) / np.where(span > 0, span, 1.0), 1.0)
    return np.where(real, out, 0.0)


def rerank_lists(
    ids: np.ndarray,
    scores: np.ndarray,
    item_groups: np.ndarray,
    *,
    weight: float,
    n: int,
    targets: np.ndarray | None = None,
) -> np.ndarray:
    """``popularity_calibrated`` over many lists at once (offline evaluation), the
    same greedy choice for every row, vectorised over the rows.

    ``ids``/``scores`` (rows, c) as ``Recommender.recommend`` returns them (``-1``
    / ``-inf`` padding); ``item_groups`` the group of every item column;
    ``targets`` (rows, 3) each row's mix (None: the store's). Returns ids
    (rows, n), padded with -1.
    """
    ids = np.asarray(ids, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if ids.ndim != 2 or ids.shape != scores.shape:
        raise EngineError(f"ids and scores must be 2-D of one shape, got {ids.shape} and {scores.shape}")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= float(weight) <= 1.0:
        raise EngineError(f"weight must be a number from 0 to 1, got {weight!r}")
    rows, count = ids.shape
    take = min(int(n), count)
    out = np.full((rows, int(n)), -1, dtype=np.int64)
    if rows == 0 or take == 0:
        return out
    real = (ids >= 0) & np.isfinite(scores)
    if float(weight) == 0.0:
        out[:, :take] = np.where(real[:, :take], ids[:, :take], -1)
        return out
    groups_all = np.asarray(item_groups, dtype=np.int64)
    if targets is None:
        wanted = np.repeat(_check_target(None)[None, :], rows, axis=0)
    else:
        t = np.asarray(targets, dtype=np.float64)
        if t.shape != (rows, _N_GROUPS) or not np.all(np.isfinite(t)) or t.min() < 0:
            raise EngineError(f"targets must be non-negative shares of shape ({rows}, 3), got shape {t.shape}")
        sums = t.sum(axis=1, keepdims=True)
        t = np.where(sums > 0, t / np.where(sums > 0, sums, 1.0), 1.0 / _N_GROUPS)
        wanted = (1.0 - _SMOOTHING) * t + _SMOOTHING / _N_GROUPS
    g = np.where(real, groups_all[np.where(real, ids, 0)], 0)
    relevance = _relevance_rows(scores, real)
    open_ = real.copy()
    counts = np.zeros((rows, _N_GROUPS))
    row_index = np.arange(rows)
    for step in range(take):
        # JS divergence after adding a head, mid or tail item: (rows, 3)
        cost = np.stack(
            [_js_rows(wanted, (counts + np.eye(_N_GROUPS)[option]) / (step + 1)) for option in range(_N_GROUPS)],
            axis=1,
        )
        value = (1.0 - weight) * relevance - weight * np.take_along_axis(cost, g, axis=1)
        value[~open_] = -np.inf
        best = np.argmax(value, axis=1)
        ok = open_[row_index, best]
        out[row_index[ok], step] = ids[row_index[ok], best[ok]]
        open_[row_index[ok], best[ok]] = False
        counts[row_index[ok], g[row_index[ok], best[ok]]] += 1
    return out


def _js_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (base 2) row by row (``p`` may be one row, broadcast)."""
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum(axis=1)
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum(axis=1)
    return np.asarray(0.5 * (kl_p + kl_q))
