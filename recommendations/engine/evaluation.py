"""Offline evaluation as pure functions: splits and top-k ranking metrics.

Splits take parallel event arrays and return boolean masks (``Split(train, test)``)
over the events, so the caller builds the train/test matrices with
``matrix_build`` (give the test matrix the training ids as its universe).

Metric conventions (``recommended`` is an int array (rows, >= k) of item columns,
``-1`` for an empty slot; ``relevant`` a list of sets or a CSR matrix whose
stored entries are the relevant items of each row):

* ``hits_i`` = 1 when the i-th recommendation (i = 1..k) is relevant;
* NDCG@k = sum_i hits_i / ln(i + 1) divided by the ideal DCG of
  ``min(k, |relevant|)`` hits (binary gain; the log base cancels out);
* Precision@k = hits / k (empty slots count as misses);
* Recall@k = hits / |relevant|;
* MAP@k: AP@k = sum_i hits_i * Precision@i / min(k, |relevant|);
* hit rate@k = 1 when at least one hit.

Rows without relevant items are left out of averages (``average=False`` gives the
per-row values, NaN for those rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

import numpy as np
import scipy.sparse as sp

from .errors import EngineError
from .rerank import TAIL, default_target, popularity_groups, rerank_lists

if TYPE_CHECKING:
    from .base import Recommender
    from .matrix import InteractionMatrix

__all__ = [
    "PROTOCOLS",
    "Protocol",
    "Split",
    "catalogue_coverage",
    "consumed_mask",
    "dense_index",
    "evaluate",
    "hit_rate_at_k",
    "intra_list_diversity",
    "leave_last_n_out",
    "map_at_k",
    "ndcg_at_k",
    "novelty",
    "popularity_bias",
    "precision_at_k",
    "protocol_choose",
    "protocol_split",
    "random_stratified_split",
    "recall_at_k",
    "temporal_split",
]

Relevant: TypeAlias = Sequence[set[int]] | sp.spmatrix


class Split(NamedTuple):
    """Boolean masks over the events: ``train`` and ``test`` (disjoint)."""

    train: np.ndarray
    test: np.ndarray


# --------------------------------------------------------------------------- splits
def _events(users: np.ndarray, *others: np.ndarray | None) -> list[np.ndarray]:
    users = np.asarray(users)
    if users.ndim != 1:
        raise EngineError(f"users must be one-dimensional, got shape {users.shape}")
    out = [users]
    for other in others:
        if other is None:
            continue
        other = np.asarray(other)
        if other.shape != users.shape:
            raise EngineError(f"event arrays differ in length: {other.shape} vs {users.shape}")
        out.append(other)
    return out


def temporal_split(
    users: np.ndarray,
    items: np.ndarray,
    times: np.ndarray,
    *,
    cutoff: float,
    known_only: bool = True,
    new_pairs_only: bool = False,
) -> Split:
    """Global temporal split: train = events before ``cutoff``, test = at/after it.

    ``known_only`` keeps only test events whose user and item both occur in train
    (a model can only be judged on those); ``new_pairs_only`` also drops test events
    whose (user, item) pair occurs in train (the "new items" protocol). Users and
    items are mapped to small integers (``dense_index``) and pairs to one integer
    key, so a million events split in a fraction of a second.
    """
    users, items, times = _events(users, items, times)
    times = times.astype(np.float64)
    if not np.all(np.isfinite(times)):
        raise EngineError("times contains NaN/inf values")
    train = times < cutoff
    test = ~train
    if not (known_only or new_pairs_only) or not test.any():
        return Split(train=train, test=test)
    user_index, n_users = dense_index(users)
    item_index, n_items = dense_index(items)
    if known_only:
        seen_user = np.zeros(n_users, dtype=bool)
        seen_user[user_index[train]] = True
        seen_item = np.zeros(n_items, dtype=bool)
        seen_item[item_index[train]] = True
        test &= seen_user[user_index] & seen_item[item_index]
    if new_pairs_only and test.any():
        pair = user_index * n_items + item_index
        test &= ~np.isin(pair, pair[train])
    return Split(train=train, test=test)


def dense_index(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Small consecutive integers for integer ids, and how many there can be: an
    offset when the ids (primary keys) are dense enough, ``np.unique`` otherwise."""
    ids = np.asarray(ids)
    if ids.size == 0:
        return ids.astype(np.int64), 0
    if not np.issubdtype(ids.dtype, np.integer):
        unique, index = np.unique(ids, return_inverse=True)
        return index.astype(np.int64).ravel(), int(unique.size)
    low, high = int(ids.min()), int(ids.max())
    if high - low < 4 * ids.size + 1_000_000:
        return (ids - low).astype(np.int64), high - low + 1
    unique, index = np.unique(ids, return_inverse=True)
    return index.astype(np.int64).ravel(), int(unique.size)


def leave_last_n_out(users: np.ndarray, items: np.ndarray, times: np.ndarray, *, n: int = 1) -> Split:
    """Per user, the ``n`` latest events go to test, the rest to train.

    Users with ``n`` or fewer events keep all of them in train (nothing would be
    left to learn from). Ties in time are broken by event order (later position =
    later event).
    """
    if n < 1:
        raise EngineError(f"n must be >= 1, got {n}")
    users, items, times = _events(users, items, times)
    order = np.lexsort((np.arange(users.size), times.astype(np.float64), users))
    sorted_users = users[order]
    # position of each event from the end of its user's run
    run_end = np.r_[np.flatnonzero(sorted_users[1:] != sorted_users[:-1]), users.size - 1]
    run_start = np.r_[0, run_end[:-1] + 1]
    run_length = run_end - run_start + 1
    from_end = np.repeat(run_end, run_length) - np.arange(users.size)
    length = np.repeat(run_length, run_length)
    test_sorted = (from_end < n) & (length > n)
    test = np.zeros(users.size, dtype=bool)
    test[order] = test_sorted
    return Split(train=~test, test=test)


def random_stratified_split(
    users: np.ndarray,
    items: np.ndarray | None = None,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Split:
    """Per user, a random ``test_fraction`` of their events goes to test.

    Stratified by user: every user with at least 2 events gets
    ``max(1, round(test_fraction * count))`` test events but keeps at least one in
    train; users with a single event stay in train. Reproducible for a ``seed``.
    """
    if not 0 < test_fraction < 1:
        raise EngineError(f"test_fraction must be in (0, 1), got {test_fraction}")
    (users, *_) = _events(users, items)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(users.size), users))
    sorted_users = users[order]
    starts = np.r_[0, np.flatnonzero(sorted_users[1:] != sorted_users[:-1]) + 1]
    counts = np.diff(np.r_[starts, users.size])
    n_test = np.where(counts >= 2, np.clip(np.round(test_fraction * counts), 1, counts - 1), 0)
    rank = np.arange(users.size) - np.repeat(starts, counts)
    test_sorted = rank < np.repeat(n_test, counts)
    test = np.zeros(users.size, dtype=bool)
    test[order] = test_sorted
    return Split(train=~test, test=test)


# --------------------------------------------------------------------------- protocols
PROTOCOLS = ("temporal", "random-per-user", "leave-last-out")
"""The holdout protocols ``protocol_split`` knows."""

RATING_KIND = 6
"""``Kind.RATING``: explicit feedback (the code of ``matrix.Kind``, kept here so the
splits stay free of the matrix module)."""


class Protocol(NamedTuple):
    """A holdout protocol and why it was chosen (shown to staff next to the metrics)."""

    name: str
    reason: str


def protocol_choose(
    users: np.ndarray,
    kinds: np.ndarray,
    times: np.ndarray,
    *,
    cutoff: float,
    items: np.ndarray | None = None,
    explicit_share: float = 0.5,
    min_test_users: int = 10,
    min_test_user_share: float = 0.05,
    min_span_s: float = 2 * 86_400.0,
) -> Protocol:
    """The holdout that fits the data's shape.

    * Mostly explicit ratings (at least ``explicit_share`` of the events are
      ``RATING_KIND``): ``random-per-user`` -- a rating says what the customer
      thinks of an item, not what they will do next, and the newest ratings are
      not a sample of them.
    * Otherwise ``temporal`` at ``cutoff``, unless the timestamps cannot separate
      train from test: all events within ``min_span_s``, or fewer than
      max(``min_test_users``, ``min_test_user_share`` of the customers) customers
      with a known item after the cutoff and history before it -- then
      ``random-per-user``.
    """
    users, kinds, times = _events(users, kinds, times)
    if users.size == 0:
        return Protocol("temporal", "no events")
    share = float(np.mean(kinds == RATING_KIND))
    if share >= explicit_share:
        return Protocol(
            "random-per-user",
            f"{share:.0%} of the events are ratings (explicit feedback): a random 20% of each customer's "
            "items is held out",
        )
    times = times.astype(np.float64)
    span = float(times.max() - times.min())
    if span < min_span_s:
        return Protocol(
            "random-per-user",
            f"all events fall within {span / 3600:.1f} hours: time cannot separate train from test, "
            "so a random 20% of each customer's items is held out",
        )
    split = temporal_split(users, items if items is not None else np.zeros_like(users), times, cutoff=cutoff)
    test_users = int(np.unique(users[split.test]).size)
    n_users = int(np.unique(users).size)
    needed = max(min_test_users, int(np.ceil(min_test_user_share * n_users)))
    if test_users < needed:
        return Protocol(
            "random-per-user",
            f"only {test_users} of {n_users} customers have events after the temporal cutoff and before it "
            f"(fewer than {needed}): a random 20% of each customer's items is held out",
        )
    return Protocol(
        "temporal",
        f"implicit events over {span / 86_400:.0f} days: the latest ones are held out "
        f"({test_users} customers have events on both sides of the cutoff)",
    )


def protocol_split(
    protocol: str,
    users: np.ndarray,
    items: np.ndarray,
    times: np.ndarray,
    *,
    cutoff: float | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> Split:
    """Train/test masks over the events for one of ``PROTOCOLS``.

    The unit held out is a (user, item) *pair*: all of a pair's events fall on the
    same side, so a repeated purchase never leaks its own test answer. ``temporal``
    needs ``cutoff`` (events before it train); ``random-per-user`` holds out a
    random ``test_fraction`` of each user's distinct items (users with one item
    stay in train); ``leave-last-out`` holds out each user's latest new item.
    Test events whose user or item never occurs in train are dropped (no model can
    be judged on them). Test pairs are never also train pairs.
    """
    users, items, times = _events(users, items, times)
    if protocol not in PROTOCOLS:
        raise EngineError(f"unknown protocol {protocol!r}; one of {', '.join(PROTOCOLS)}")
    if protocol == "temporal":
        if cutoff is None:
            raise EngineError("the temporal protocol needs a cutoff")
        split = temporal_split(users, items, times, cutoff=cutoff, known_only=True, new_pairs_only=True)
        return split
    user_index, _ = dense_index(users)
    item_index, n_items = dense_index(items)
    pair = user_index * max(n_items, 1) + item_index
    keys, inverse = np.unique(pair, return_inverse=True)
    inverse = inverse.ravel()
    pair_users = np.zeros(keys.size, dtype=np.int64)
    pair_users[inverse] = user_index
    if protocol == "random-per-user":
        pair_split = random_stratified_split(pair_users, test_fraction=test_fraction, seed=seed)
    else:
        first = np.full(keys.size, np.inf)
        np.minimum.at(first, inverse, times.astype(np.float64))
        pair_split = leave_last_n_out(pair_users, keys, first, n=1)
    test = pair_split.test[inverse]
    train = ~test
    seen_item = np.zeros(max(n_items, 1), dtype=bool)
    seen_item[item_index[train]] = True
    test &= seen_item[item_index]
    return Split(train=train, test=test)


def consumed_mask(kinds: np.ndarray, consumed_kinds: Iterable[int]) -> np.ndarray:
    """Events of the kinds serving never recommends back (purchases, ratings...)."""
    return np.isin(np.asarray(kinds), np.asarray(list(consumed_kinds), dtype=np.int64))


# --------------------------------------------------------------------------- metrics
def _hits(recommended: np.ndarray, relevant: Relevant, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(hits bool (rows, k), n_relevant int (rows,)) for the first k slots."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise EngineError(f"k must be a positive integer, got {k!r}")
    recommended = np.asarray(recommended)
    if recommended.ndim != 2:
        raise EngineError(f"recommended must be 2-D (rows, k), got shape {recommended.shape}")
    rows = recommended.shape[0]
    top = np.full((rows, k), -1, dtype=np.int64)
    width = min(k, recommended.shape[1])
    top[:, :width] = recommended[:, :width]
    if sp.issparse(relevant):
        matrix = sp.csr_matrix(relevant)
        if matrix.shape[0] != rows:
            raise EngineError(f"relevant has {matrix.shape[0]} rows, recommended {rows}")
        matrix.eliminate_zeros()
        n_relevant = np.diff(matrix.indptr).astype(np.int64)
        valid = top >= 0
        safe = np.where(valid, top, 0)
        if matrix.shape[1] == 0:
            hits = np.zeros_like(valid)
        else:
            safe = np.minimum(safe, matrix.shape[1] - 1)
            in_range = valid & (top < matrix.shape[1])
            flags = np.asarray(matrix[np.repeat(np.arange(rows), k), safe.ravel()], dtype=bool).reshape(rows, k)
            hits = flags & in_range
    else:
        if len(relevant) != rows:
            raise EngineError(f"relevant has {len(relevant)} rows, recommended {rows}")
        n_relevant = np.array([len(r) for r in relevant], dtype=np.int64)
        hits = np.array(
            [[item >= 0 and int(item) in rel for item in row] for row, rel in zip(top, relevant)],
            dtype=bool,
        ).reshape(rows, k)
    # an item recommended twice counts once (only its first position can hit)
    if k > 1:
        earlier = np.tril(np.ones((k, k), dtype=bool), -1)  # [j, j'] with j' < j
        repeated = ((top[:, :, None] == top[:, None, :]) & earlier[None]).any(axis=2)
        hits &= ~repeated
    return hits, n_relevant


def _finish(values: np.ndarray, n_relevant: np.ndarray, average: bool) -> float | np.ndarray:
    values = np.where(n_relevant > 0, values, np.nan)
    if not average:
        return values
    if not np.any(n_relevant > 0):
        return float("nan")
    return float(np.nanmean(values))


def ndcg_at_k(recommended: np.ndarray, relevant: Relevant, k: int, *, average: bool = True) -> float | np.ndarray:
    """NDCG@k with binary gain (see the module docstring)."""
    hits, n_relevant = _hits(recommended, relevant, k)
    discount = 1.0 / np.log(np.arange(2, k + 2))
    dcg = hits @ discount
    ideal = np.cumsum(discount)[np.clip(np.minimum(n_relevant, k) - 1, 0, k - 1)]
    return _finish(np.where(n_relevant > 0, dcg / ideal, 0.0), n_relevant, average)


def precision_at_k(recommended: np.ndarray, relevant: Relevant, k: int, *, average: bool = True) -> float | np.ndarray:
    """Precision@k = hits / k."""
    hits, n_relevant = _hits(recommended, relevant, k)
    return _finish(hits.sum(axis=1) / k, n_relevant, average)


def recall_at_k(recommended: np.ndarray, relevant: Relevant, k: int, *, average: bool = True) -> float | np.ndarray:
    """Recall@k = hits / |relevant|."""
    hits, n_relevant = _hits(recommended, relevant, k)
    return _finish(hits.sum(axis=1) / np.maximum(n_relevant, 1), n_relevant, average)


def map_at_k(recommended: np.ndarray, relevant: Relevant, k: int, *, average: bool = True) -> float | np.ndarray:
    """Mean average precision@k (normalised by ``min(k, |relevant|)``)."""
    hits, n_relevant = _hits(recommended, relevant, k)
    precision_at_i = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    ap = (precision_at_i * hits).sum(axis=1) / np.maximum(np.minimum(n_relevant, k), 1)
    return _finish(ap, n_relevant, average)


def hit_rate_at_k(recommended: np.ndarray, relevant: Relevant, k: int, *, average: bool = True) -> float | np.ndarray:
    """Share of rows with at least one relevant item in the top k."""
    hits, n_relevant = _hits(recommended, relevant, k)
    return _finish(np.asarray(hits.any(axis=1), dtype=np.float64), n_relevant, average)


def catalogue_coverage(recommended: np.ndarray, n_items: int, *, k: int | None = None) -> float:
    """Share of the ``n_items`` catalogue appearing in at least one top-k list."""
    if n_items < 1:
        raise EngineError(f"n_items must be >= 1, got {n_items}")
    recommended = np.asarray(recommended)
    top = recommended[:, :k] if k is not None else recommended
    shown = np.unique(top[(top >= 0) & (top < n_items)])
    return float(shown.size / n_items)


def novelty(recommended: np.ndarray, item_popularity: np.ndarray, *, k: int | None = None) -> float:
    """Mean self-information ``-log2 p(i)`` of the recommended items.

    ``item_popularity[i]`` is the share of users who interacted with item ``i``
    (in (0, 1]); items with popularity 0 are treated as the least popular
    positive value. Empty slots are ignored; NaN when nothing was recommended.
    """
    popularity = np.asarray(item_popularity, dtype=np.float64)
    if popularity.ndim != 1 or np.any(popularity < 0) or np.any(popularity > 1):
        raise EngineError("item_popularity must be 1-D shares in [0, 1]")
    positive = popularity[popularity > 0]
    floor = positive.min() if positive.size else 1.0
    recommended = np.asarray(recommended)
    top = recommended[:, :k] if k is not None else recommended
    items = top[(top >= 0) & (top < popularity.size)]
    if items.size == 0:
        return float("nan")
    return float(np.mean(-np.log2(np.maximum(popularity[items], floor))))


def intra_list_diversity(
    recommended: np.ndarray, item_vectors: np.ndarray | sp.spmatrix, *, k: int | None = None
) -> float:
    """Mean over lists of the mean pairwise cosine *distance* (1 - cos) of their items.

    ``item_vectors`` has one row per item (e.g. the item's column of the
    interaction matrix, or its content features). Lists with fewer than two items
    are skipped; NaN when no list qualifies. Items with a zero vector count as
    orthogonal to everything (distance 1).
    """
    vectors = sp.csr_matrix(item_vectors, dtype=np.float64)
    norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    unit = sp.diags(1.0 / norms) @ vectors
    recommended = np.asarray(recommended)
    top = recommended[:, :k] if k is not None else recommended
    values = []
    for row in top:
        items = row[(row >= 0) & (row < vectors.shape[0])]
        m = items.size
        if m < 2:
            continue
        block = unit[items]
        sims = np.asarray((block @ block.T).todense())
        pair_sum = (sims.sum() - np.trace(sims)) / 2.0
        values.append(1.0 - pair_sum / (m * (m - 1) / 2.0))
    return float(np.mean(values)) if values else float("nan")


# --------------------------------------------------------------------------- evaluate
def evaluate(
    model: Recommender,
    train: InteractionMatrix | sp.spmatrix,
    test: sp.spmatrix,
    *,
    k: int = 10,
    exclude_train: bool = True,
    batch_rows: int = 1024,
    beyond_accuracy: bool = True,
    exclude: sp.spmatrix | None = None,
    rerank_weights: Sequence[float] = (),
    rerank_candidates: int | None = None,
) -> dict[str, float]:
    """Score ``model`` on held-out ``test`` items, histories from ``train``.

    ``train`` and ``test`` are users x items matrices over the same rows/columns;
    every row with at least one ``test`` entry is a user to evaluate: the model
    recommends ``k`` items from that row's ``train`` history (excluding the
    training items when ``exclude_train``). Returns averages over those users —
    ``ndcg``, ``precision``, ``recall``, ``map``, ``hit_rate`` — plus
    ``coverage``, ``novelty`` (popularity from ``train``) and ``diversity``
    (cosine distance between the items' ``train`` columns) when
    ``beyond_accuracy``, and ``users`` (how many were evaluated).

    ``exclude`` (same shape; e.g. each user's consumed items, see
    ``consumed_mask``) is what serving never shows a user: those items are neither
    candidates nor relevant, so what is measured is what is served.

    Popularity bias (with ``beyond_accuracy``; groups by ``train`` popularity, see
    ``rerank.popularity_groups``): ``long_tail_share``, the share of recommended
    slots holding tail items, and ``popularity_lift``, how much more popular the
    recommended items are than the users' own histories (mean over users of
    ARP(list) / mean popularity of the history, minus 1; 0 = as popular as what the
    users chose, higher = more biased; Abdollahpouri et al.'s delta-GAP).

    ``rerank_weights``: each weight w > 0 also re-ranks ``rerank_candidates``
    (default 3k) candidates with ``rerank.rerank_lists`` (towards each user's own
    head/mid/tail mix) and reports ``rerank@<w>:ndcg``, ``...:long_tail_share``,
    ``...:popularity_lift``, ``...:coverage``, ``...:novelty``: the trade-off staff
    pick from.
    """
    matrix = train.user_items if hasattr(train, "user_items") else train
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    test = sp.csr_matrix(test)
    if matrix.shape != test.shape:
        raise EngineError(f"train has shape {matrix.shape}, test has shape {test.shape}")
    excluded = None
    if exclude is not None:
        excluded = _binary(exclude)
        if excluded.shape != test.shape:
            raise EngineError(f"exclude has shape {excluded.shape}, test has shape {test.shape}")
        test = sp.csr_matrix(test - test.multiply(excluded))
    test.eliminate_zeros()
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    result: dict[str, float] = {"users": float(users.size)}
    if users.size == 0:
        raise EngineError("no user has a test item: nothing to evaluate")
    sums = dict.fromkeys(("ndcg", "precision", "recall", "map", "hit_rate"), 0.0)
    lists = []
    weights = sorted({float(w) for w in rerank_weights if float(w) > 0})
    if any(not 0 < w <= 1 for w in weights):
        raise EngineError(f"rerank_weights must be in (0, 1], got {list(rerank_weights)}")
    n_candidates = max(int(rerank_candidates or 3 * k), k) if weights else k
    user_pop = np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.float64)
    groups = popularity_groups(user_pop)
    reranked: dict[float, list[np.ndarray]] = {w: [] for w in weights}
    rerank_ndcg = dict.fromkeys(weights, 0.0)
    for start in range(0, users.size, batch_rows):
        rows = users[start : start + batch_rows]
        ids, scores = model.recommend(
            matrix[rows],
            n=n_candidates,
            exclude_history=exclude_train,
            exclude=None if excluded is None else excluded[rows],
        )
        relevant = test[rows]
        if weights:
            targets = _history_mix(matrix[rows], groups)
            for w in weights:
                moved = rerank_lists(ids, scores, groups, weight=w, n=k, targets=targets)
                rerank_ndcg[w] += np.nansum(ndcg_at_k(moved, relevant, k, average=False))
                reranked[w].append(moved)
            ids = ids[:, :k]
        sums["ndcg"] += np.nansum(ndcg_at_k(ids, relevant, k, average=False))
        sums["precision"] += np.nansum(precision_at_k(ids, relevant, k, average=False))
        sums["recall"] += np.nansum(recall_at_k(ids, relevant, k, average=False))
        sums["map"] += np.nansum(map_at_k(ids, relevant, k, average=False))
        sums["hit_rate"] += np.nansum(hit_rate_at_k(ids, relevant, k, average=False))
        lists.append(ids)
    result.update({name: float(total / users.size) for name, total in sums.items()})
    if beyond_accuracy:
        recommended = np.concatenate(lists)
        n_users = max(matrix.shape[0], 1)
        popularity = np.bincount(matrix.indices, minlength=matrix.shape[1]) / n_users
        result["coverage"] = catalogue_coverage(recommended, matrix.shape[1])
        result["novelty"] = novelty(recommended, popularity)
        sample = recommended[: min(recommended.shape[0], 2000)]
        result["diversity"] = intra_list_diversity(sample, matrix.T.tocsr())
        result.update(popularity_bias(recommended, matrix[users], popularity))
    for w in weights:
        label = f"rerank@{w:g}"
        result[f"{label}:ndcg"] = float(rerank_ndcg[w] / users.size)
        if beyond_accuracy:
            moved = np.concatenate(reranked[w])
            result[f"{label}:coverage"] = catalogue_coverage(moved, matrix.shape[1])
            result[f"{label}:novelty"] = novelty(moved, popularity)
            for key, value in popularity_bias(moved, matrix[users], popularity).items():
                result[f"{label}:{key}"] = value
    return result


def _history_mix(history: sp.spmatrix, groups: np.ndarray) -> np.ndarray:
    """Each row's share of head / mid / tail items (distinct items of the row)."""
    binary = _binary(history)
    onehot = sp.csr_matrix(
        (np.ones(groups.size, dtype=np.float32), (np.arange(groups.size), groups.astype(np.int64))),
        shape=(groups.size, 3),
    )
    counts = np.asarray((binary @ onehot).todense(), dtype=np.float64)
    sums = counts.sum(axis=1, keepdims=True)
    return np.where(sums > 0, counts / np.where(sums > 0, sums, 1.0), default_target())


def popularity_bias(recommended: np.ndarray, history: sp.spmatrix, item_popularity: np.ndarray) -> dict[str, float]:
    """Popularity-bias figures of ``recommended`` (rows, k) for users with ``history``
    (rows x items, same rows): ``long_tail_share`` (share of filled slots holding
    tail items, groups by ``item_popularity``) and ``popularity_lift`` (mean over
    rows with a history and a list of ARP(list) / mean popularity of the history,
    minus 1). NaN where nothing qualifies."""
    popularity = np.asarray(item_popularity, dtype=np.float64)
    recommended = np.asarray(recommended)
    history = _binary(history)
    if history.shape[0] != recommended.shape[0]:
        raise EngineError(f"history has {history.shape[0]} rows, recommended {recommended.shape[0]}")
    groups = popularity_groups(popularity)
    filled = (recommended >= 0) & (recommended < popularity.size)
    items = np.where(filled, recommended, 0)
    out = {"long_tail_share": float(np.mean(groups[items[filled]] == TAIL)) if filled.any() else float("nan")}
    slots = filled.sum(axis=1)
    arp = np.where(slots > 0, (popularity[items] * filled).sum(axis=1) / np.maximum(slots, 1), np.nan)
    n_hist = np.diff(history.indptr)
    gap = np.asarray(history @ popularity).ravel() / np.maximum(n_hist, 1)
    ok = (slots > 0) & (n_hist > 0) & (gap > 0)
    out["popularity_lift"] = float(np.mean(arp[ok] / gap[ok] - 1.0)) if ok.any() else float("nan")
    return out


def _binary(matrix: sp.spmatrix) -> sp.csr_matrix:
    out = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    out.eliminate_zeros()
    out.data[:] = 1.0
    return out
