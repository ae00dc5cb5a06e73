"""Serving: turn the active model (or the fallbacks) into explained, filtered,
diverse lists of products, each with an id that clicks and orders carry.

The public functions are re-exported by ``recommendations.services`` (the serving
contract); this module holds their implementation.

How one list is made (``recommend_for_user``):

1. The process's view of what is active is refreshed if the serving epoch moved
   (``state.snapshot``: one primary-key query), and an A/B experiment running for
   the context may pick the variant (hash of the experiment key and the user id or
   session key).
2. The shopper's recent events are read (one query) and folded into the model at
   call time, so a click changes the next page without retraining; products they
   must not see again (bought; just viewed...) are read with them, and so is the
   customer's existence when the caller holds only an id. An ALS model's picks
   come from an exact early-stopping scan (``artifacts``: items by decreasing
   norm, stopping when no item left can beat the k-th best).
3. Candidates come in levels: the model's top picks, then — when the model has
   nothing to say — products popular in the categories of the session's history,
   then products popular in the shopper's stated interests, then trending.
4. One query fetches every candidate product; inactive and out-of-stock products
   are dropped, at most ``AFFINITY_RECOMMEND_MAX_PER_CATEGORY`` per category are
   taken (relaxed only if the list would otherwise be short), and model picks are
   explained by the history item that contributes most to their score.
5. The list is recorded as an ``Impression`` unless told not to (queued in Redis
   and written in batches, or one INSERT without Redis: ``impressions``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from django.core.cache import cache
from django.db import connection

from shop.models import Category, Interaction, Product, User

from . import conf, impressions, selectors, state
from .artifacts import LoadedModel, algorithm_names
from .engine._arrays import top_n
from .models import DEFAULT_SLOT, Impression, ModelVersion
from .selectors import HistoryEvent, TrendingItem

logger = logging.getLogger(__name__)
# Trending per serving epoch in the shared cache (a new epoch -- activation, a
# forgotten customer -- starts a new key).
TRENDING_CACHE_KEY = "affinity:rec:trending:{epoch}"

CONTEXTS = ("home", "product", "category", "cart", "email", "api")
# Not loaded with the picks' products (no list shows them; reading one costs a query).
DEFERRED_PRODUCT_FIELDS = ("description", "attributes", "updated_at")
SPECIAL_STRATEGIES = ("auto", "trending", "interests")
MAX_N = 100

_BECAUSE = {
    Interaction.Kind.PURCHASE: "Because you bought {name}",
    Interaction.Kind.ADD_TO_CART: "Because you added {name} to your cart",
    Interaction.Kind.WISHLIST: "Because you saved {name}",
    Interaction.Kind.RATING: "Because you rated {name}",
    Interaction.Kind.CLICK: "Because you looked at {name}",
    Interaction.Kind.VIEW: "Because you viewed {name}",
}


# --- the contract's types ----------------------------------------------------------
class ShopperNotFound(LookupError):
    """``recommend_for_user(user_id=...)`` for a customer id that does not exist."""


@dataclass(frozen=True)
class Pick:
    product: Product
    score: float
    reason: str
    reason_code: str  # "history" | "similar" | "also_bought" | "interest" | "trending" | "session"


@dataclass(frozen=True)
class RecommendationList:
    id: uuid.UUID
    picks: list[Pick]
    context: str
    strategy: str
    model_version_id: int | None
    variant: str

    @property
    def products(self) -> list[Product]:
        return [p.product for p in self.picks]


# --- internals -----------------------------------------------------------------------
@dataclass
class _Cand:
    product_id: int
    score: float
    code: str
    reason: str = ""  # may contain {name} (the anchor) or {category}
    anchor_id: int | None = None  # explaining product (history item, the viewed product)
    anchor_kind: int | None = None
    category_id: int | None = None  # when known before fetching (model columns, trending)


@dataclass
class _Shopper:
    user_id: int | None
    session_key: str
    history: list[HistoryEvent]
    excluded: set[int]
    levels: list[tuple[str, list[_Cand]]] = field(default_factory=list)  # (strategy label, candidates)

    @property
    def code(self) -> str:
        return "history" if self.user_id is not None else "session"


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise ValueError(f"n must be an integer from 1 to {MAX_N}, got {n!r}")
    return n


def strategy_check(strategy: str | None) -> str:
    """The normalised strategy, or ``ValueError`` naming an unknown one."""
    if strategy in (None, "", "auto"):
        return "auto"
    if strategy in SPECIAL_STRATEGIES or strategy in algorithm_names():
        return strategy
    raise ValueError(f"unknown strategy {strategy!r}; use one of {list(SPECIAL_STRATEGIES) + algorithm_names()}")


def _user_id(user: User | None) -> int | None:
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user.pk


def _version_for(snap: state.Snapshot, strategy: str) -> state.VersionInfo | None:
    """The version serving a strategy: the default slot's active one for "auto"; for
    an algorithm, its active version (default slot first) or else its newest clean
    success."""
    if strategy == "auto":
        return snap.active.get(DEFAULT_SLOT)
    if strategy in SPECIAL_STRATEGIES:
        return None
    active = [v for v in snap.active.values() if v.algorithm == strategy]
    if active:
        active.sort(key=lambda v: (v.slot != DEFAULT_SLOT, -v.id))
        return active[0]
    memo_key = ("latest", strategy)
    if memo_key not in snap.memo:
        row = (
            ModelVersion.objects.filter(
                algorithm=strategy, status=ModelVersion.Status.SUCCEEDED, tainted_at__isnull=True
            )
            .exclude(artifact="")
            .order_by("-finished_at", "-id")
            .only("id", "algorithm", "slot", "artifact")
            .first()
        )
        snap.memo[memo_key] = state.VersionInfo(row.pk, row.algorithm, row.slot, row.artifact.name) if row else None
    return snap.memo[memo_key]


def _assign(snap: state.Snapshot, context: str, user_id: int | None, session_key: str):
    """(experiment, variant) of a shopper, deterministic per shopper and experiment."""
    ident = f"u{user_id}" if user_id is not None else (f"s{session_key}" if session_key else "")
    if not ident:
        return None, None
    for exp in snap.experiments:
        if exp.context in ("", context):
            digest = hashlib.sha256(f"{exp.key}:{ident}".encode()).digest()
            bucket = int.from_bytes(digest[:8], "big") % exp.total_weight
            for variant in exp.variants:
                if bucket < variant.weight:
                    return exp, variant
                bucket -= variant.weight
    return None, None


def variant_for(*, context: str, user: User | None = None, session_key: str = "") -> tuple[str, str]:
    """(experiment key, variant name) a shopper is assigned to in ``context`` ("" if none)."""
    exp, variant = _assign(state.snapshot(), context, _user_id(user), session_key)
    return (exp.key, variant.name) if exp else ("", "")


# --- trending (shared by every path) -----------------------------------------------------
def _trending(snap: state.Snapshot) -> list[TrendingItem]:
    """Trending products: memoised in the process per epoch for TRENDING_TTL seconds,
    shared between processes through the cache under a key with the epoch in it
    (so a forgotten customer's events leave trending at once)."""
    ttl = float(conf.get("TRENDING_TTL"))
    memo = snap.memo.get("trending")
    if memo is not None and time.monotonic() - memo[0] < ttl:
        return memo[1]
    key = TRENDING_CACHE_KEY.format(epoch=snap.epoch)
    items = None
    try:
        raw = cache.get(key)
        if raw is not None:
            items = [TrendingItem(p, c, s) for p, c, s in raw]
    except Exception:  # noqa: BLE001 - a cache outage must not break serving
        logger.warning("cache unavailable for trending", exc_info=True)
    if items is None:
        items = selectors.trending_compute()
        try:
            cache.set(key, [(i.product_id, i.category_id, i.score) for i in items], timeout=max(int(ttl), 1))
        except Exception:  # noqa: BLE001
            logger.warning("cache unavailable for trending", exc_info=True)
    snap.memo["trending"] = (time.monotonic(), items)
    return items


def _trending_cands(
    snap, *, n: int, code: str, reason: str, categories: set[int] | None = None, weights: dict[int, float] | None = None
) -> list[_Cand]:
    """Trending candidates, optionally restricted to (and weighted by) categories.
    The plain list (no categories) is memoised with the trending list it comes from."""
    out: list[_Cand] = []
    limit = max(4 * n, 40)
    items = _trending(snap)
    plain = categories is None and not weights
    if plain:
        key = ("trending_cands", limit, code, reason)
        memo = snap.memo.get(key)
        if memo is not None and memo[0] is items:
            return list(memo[1])
    for item in items:
        if categories is not None and item.category_id not in categories:
            continue
        score = item.score * (weights.get(item.category_id, 1.0) if weights else 1.0)
        out.append(
            _Cand(item.product_id, score, code, reason, anchor_id=item.category_id, category_id=item.category_id)
        )
        if weights is None and len(out) >= limit:
            break
    if weights:
        out.sort(key=lambda c: -c.score)
        out = out[:limit]
    if plain:
        snap.memo[key] = (items, tuple(out))
    return out


# --- model candidates ---------------------------------------------------------------------
def _history_arrays(history: Sequence[HistoryEvent]):
    return (
        np.fromiter((e.product_id for e in history), np.int64, len(history)),
        np.fromiter((e.kind for e in history), np.int64, len(history)),
        np.fromiter((e.value for e in history), np.float64, len(history)),
        np.fromiter((e.at for e in history), np.float64, len(history)),
    )


def _anchors(loaded: LoadedModel, history: Sequence[HistoryEvent], limit: int) -> list[tuple[int, int, int]]:
    """Most recent distinct known products of a history: (column, product id, strongest kind)."""
    if not history or limit <= 0:
        return []
    ids = [e.product_id for e in history]
    cols = loaded.columns(ids)
    strength = {
        Interaction.Kind.PURCHASE: 5,
        Interaction.Kind.ADD_TO_CART: 4,
        Interaction.Kind.WISHLIST: 3,
        Interaction.Kind.RATING: 2,
        Interaction.Kind.CLICK: 1,
        Interaction.Kind.VIEW: 0,
    }
    best_kind: dict[int, int] = {}
    for e in history:
        if e.kind == Interaction.Kind.REMOVE_FROM_CART:
            continue
        current = best_kind.get(e.product_id)
        if current is None or strength.get(e.kind, 0) > strength.get(current, 0):
            best_kind[e.product_id] = e.kind
    out, seen = [], set()
    for pid, col in zip(ids, cols.tolist(), strict=True):
        if col < 0 or pid in seen or pid not in best_kind:
            continue
        seen.add(pid)
        out.append((col, pid, best_kind[pid]))
        if len(out) >= limit:
            break
    return out


def _model_cands(
    loaded: LoadedModel,
    shoppers: Sequence[_Shopper],
    *,
    n: int,
    now: float,
    category_ids: set[int] | None,
    explain: bool,
    label: str,
) -> None:
    """Add the model's candidates (with explanations) as the first level of each shopper."""
    rows_for = [s for s in shoppers if s.history]
    if not rows_for:
        return
    allowed = None
    if category_ids is not None:
        allowed = _allowed_columns(loaded, category_ids)
        if not allowed.any():
            return
    explain_items = int(conf.get("RECOMMEND_EXPLAIN_ITEMS")) if explain else 0
    k = min(max(4 * n, n + 20), loaded.model.n_items)
    if len(rows_for) == 1:
        _model_cands_one(loaded, rows_for[0], k=k, now=now, allowed=allowed, explain_items=explain_items, label=label)
        return
    batch = 512
    for start in range(0, len(rows_for), batch):
        chunk = rows_for[start : start + batch]
        rows = loaded.history_rows([_history_arrays(s.history) for s in chunk], now=now)
        live = np.flatnonzero(np.diff(rows.indptr) > 0)
        if live.size == 0:
            continue
        # excluded products as a sparse mask (history items are handled by the rules)
        ex_r, ex_c = [], []
        for pos, r in enumerate(live.tolist()):
            cols = loaded.columns(list(chunk[r].excluded)) if chunk[r].excluded else np.zeros(0, np.int64)
            cols = cols[cols >= 0]
            ex_r.append(np.full(cols.size, pos, np.int64))
            ex_c.append(cols)
        exclude = sp.csr_matrix(
            (np.ones(sum(c.size for c in ex_c), np.float32), (np.concatenate(ex_r), np.concatenate(ex_c))),
            shape=(live.size, loaded.model.n_items),
        )
        ids, scores = loaded.model.recommend(rows[live], n=k, exclude=exclude, exclude_history=False, allowed=allowed)
        anchors = [_anchors(loaded, chunk[r].history, explain_items) for r in live.tolist()]
        contrib = _contributions(loaded, anchors, ids) if explain_items else None
        for pos, r in enumerate(live.tolist()):
            _add_level(
                loaded,
                chunk[r],
                ids[pos],
                scores[pos],
                anchors[pos],
                contrib[pos] if contrib is not None else None,
                label,
            )


def _model_cands_one(
    loaded: LoadedModel,
    shopper: _Shopper,
    *,
    k: int,
    now: float,
    allowed: np.ndarray | None,
    explain_items: int,
    label: str,
) -> None:
    """One shopper (the per-request path): the same scores and picks as the batch
    path, with the history row, exclusions and the cut made in plain numpy."""
    row = loaded.history_row(*_history_arrays(shopper.history), now=now)
    if row.nnz == 0:
        return
    excluded = np.zeros(0, np.int64)
    if shopper.excluded:
        excluded = loaded.columns(np.fromiter(shopper.excluded, np.int64, len(shopper.excluded)))
        excluded = excluded[excluded >= 0]
    top_columns = getattr(loaded.model, "top_columns", None)  # factor models: early-stopping exact top-k
    if top_columns is not None:
        cols, values = top_columns(row, k, exclude=excluded, allowed=allowed)
        ids = np.full((1, k), -1, np.int64)
        top = np.full((1, k), -np.inf, np.float32)
        ids[0, : cols.size], top[0, : cols.size] = cols, values
    else:
        full = loaded.model.score(row)
        if not (full.flags.owndata and full.flags.writeable):  # never mask a model's own array
            full = full.copy()
        scores = full[0]
        scores[excluded] = -np.inf
        if allowed is not None:
            scores[~allowed] = -np.inf
        ids, top = top_n(scores[None, :], k)
    anchors = _anchors(loaded, shopper.history, explain_items)
    contrib = _contributions(loaded, [anchors], ids)[0] if explain_items else None
    _add_level(loaded, shopper, ids[0], top[0], anchors, contrib, label)


def _allowed_columns(loaded: LoadedModel, category_ids: set[int]) -> np.ndarray:
    """Bool mask of the model's columns in ``category_ids`` (memoised on the loaded model)."""
    key = frozenset(category_ids)
    memo = loaded.memo.get(("allowed", key))
    if memo is None:
        memo = np.isin(loaded.item_category, list(category_ids))
        if len(loaded.memo) > 256:
            loaded.memo.clear()
        loaded.memo[("allowed", key)] = memo
    return memo


def _add_level(
    loaded: LoadedModel,
    shopper: _Shopper,
    ids: np.ndarray,
    scores: np.ndarray,
    anchors: list[tuple[int, int, int]],
    contrib: np.ndarray | None,
    label: str,
) -> None:
    """The model's ranked columns as explained candidates: each pick names the recent
    item that alone points at it most ("because you viewed X")."""
    best_anchor = None
    if contrib is not None and anchors and contrib.size:
        best_anchor = np.argmax(contrib, axis=0)
        best_value = contrib[best_anchor, np.arange(contrib.shape[1])]
    item_ids = loaded.item_ids
    cands = []
    for j, col in enumerate(ids.tolist()):
        if col < 0:
            break
        anchor_id = anchor_kind = None
        if best_anchor is not None and best_value[j] > 0:
            _, anchor_id, anchor_kind = anchors[int(best_anchor[j])]
        reason = (
            _BECAUSE.get(anchor_kind, _BECAUSE[Interaction.Kind.VIEW])
            if anchor_id is not None
            else "Based on your recent activity"
        )
        cands.append(
            _Cand(
                int(item_ids[col]),
                float(scores[j]),
                shopper.code,
                reason,
                anchor_id,
                anchor_kind,
                _category_of(loaded, col),
            )
        )
    if cands:
        shopper.levels.append((label, cands))


def _category_of(loaded: LoadedModel, col: int) -> int | None:
    category = int(loaded.item_category[col]) if col < loaded.item_category.size else -1
    return category if category >= 0 else None


def _contributions(loaded: LoadedModel, anchors: list[list[tuple[int, int, int]]], ids: np.ndarray) -> list[np.ndarray]:
    """For each row, (anchors x candidates) scores of one-item histories: how much
    each recent item alone points at each candidate."""
    counts = [len(a) for a in anchors]
    total = sum(counts)
    out: list[np.ndarray] = []
    if total == 0:
        return [np.zeros((0, ids.shape[1]), np.float32) for _ in anchors]
    cols = np.fromiter((c for a in anchors for c, _, _ in a), np.int32, total)
    user_vectors = getattr(loaded.model, "user_vectors", None)
    if user_vectors is not None:  # factor models: every anchor folded at once, only the candidates scored
        one_hot = sp.csr_matrix(
            (np.ones(total, np.float32), cols, np.arange(total + 1, dtype=np.int32)),
            shape=(total, loaded.model.n_items),
        )
        vectors = user_vectors(one_hot)
        factors = loaded.model.item_factors
    pos = 0
    for row, count in enumerate(counts):
        cand = np.where(ids[row] >= 0, ids[row], 0)
        if user_vectors is not None:
            out.append(vectors[pos : pos + count] @ factors[cand].T)
        else:  # one one-item history per anchor, scored against the catalogue
            rows = sp.csr_matrix(
                (np.ones(count, np.float32), cols[pos : pos + count], np.arange(count + 1, dtype=np.int32)),
                shape=(count, loaded.model.n_items),
            )
            out.append(loaded.model.score(rows)[:, cand])
        pos += count
    return out


# --- assembling ----------------------------------------------------------------------
def _fill(
    shopper_levels: list[tuple[str, list[_Cand]]],
    products: dict[int, Product],
    *,
    n: int,
    excluded: set[int],
    category_ids: set[int] | None,
) -> tuple[list[tuple[_Cand, Product]], str, int]:
    """Take candidates level by level: servable, not excluded, not twice, at most
    MAX_PER_CATEGORY per category (relaxed only if the list would be short)."""
    cap = int(conf.get("RECOMMEND_MAX_PER_CATEGORY")) or n
    if category_ids is not None:
        cap = n  # a category page is about one category
    out_of_stock_ok = not conf.get("RECOMMEND_EXCLUDE_OUT_OF_STOCK")
    chosen: list[tuple[_Cand, Product]] = []
    taken: set[int] = set()
    per_category: Counter = Counter()
    deferred: list[tuple[_Cand, Product]] = []
    strategy = ""
    for label, cands in shopper_levels:
        for cand in cands:
            if len(chosen) >= n:
                break
            product = products.get(cand.product_id)
            if (
                product is None
                or cand.product_id in taken
                or cand.product_id in excluded
                or not product.is_active
                or (product.stock <= 0 and not out_of_stock_ok)
                or (category_ids is not None and product.category_id not in category_ids)
            ):
                continue
            taken.add(cand.product_id)
            if per_category[product.category_id] >= cap:
                deferred.append((cand, product))
                continue
            per_category[product.category_id] += 1
            chosen.append((cand, product))
            strategy = strategy or label
    strict = len(chosen)
    for cand, product in deferred:  # diversity relaxed: better n picks than fewer
        if len(chosen) >= n:
            break
        chosen.append((cand, product))
    return chosen, strategy, strict


def _pick(cand: _Cand, product: Product, names: dict[int, str]) -> Pick:
    reason = cand.reason
    if "{name}" in reason:
        reason = reason.format(name=names.get(cand.anchor_id, "an item you saw"))
    elif "{category}" in reason:
        reason = reason.format(category=product.category.name if product.category else "the shop")
    return Pick(product=product, score=round(float(cand.score), 6), reason=reason, reason_code=cand.code)


def _record(rec: RecommendationList, *, user_id: int | None, session_key: str, experiment_id: int | None) -> None:
    """Record the list as shown (queued in Redis, or one INSERT: see ``impressions``)."""
    impressions.record(
        Impression(
            id=rec.id,
            user_id=user_id,
            session_key=(session_key or "")[:64],
            context=rec.context,
            strategy=rec.strategy[:80],
            model_version_id=rec.model_version_id,
            experiment_id=experiment_id,
            variant=rec.variant,
            product_ids=[p.product.pk for p in rec.picks],
            reason_codes=[p.reason_code for p in rec.picks],
        )
    )


def _choose(
    levels: list[tuple[str, list[_Cand]]],
    *,
    n: int,
    excluded: set[int],
    category_ids: set[int] | None,
) -> tuple[list[tuple[_Cand, Product]], str, dict[int, Product]]:
    """Fetch the candidates most likely to be shown (the first 1.5n (at least n+5),
    level by level, and the products their explanations name) in one query,
    then fill the list; only if filters and diversity leave it short are the
    remaining candidates fetched too (a second query)."""
    wanted: set[int] = set()
    rest: set[int] = set()
    budget = n + max(5, n // 2)
    cap = n if category_ids is not None else (int(conf.get("RECOMMEND_MAX_PER_CATEGORY")) or n)
    per_category: Counter = Counter()
    for _, cands in levels:
        for c in cands:
            if c.product_id in excluded or c.product_id in wanted:
                continue
            # the category cap applied already here, where the category is known, so
            # that the one fetch brings a diverse enough set
            if len(wanted) < budget and (c.category_id is None or per_category[c.category_id] < cap):
                wanted.add(c.product_id)
                if c.category_id is not None:
                    per_category[c.category_id] += 1
                if c.anchor_id and "{name}" in c.reason:
                    wanted.add(c.anchor_id)
            else:
                rest.add(c.product_id)
    products = _fetch(wanted)
    chosen, produced, strict = _fill(levels, products, n=n, excluded=excluded, category_ids=category_ids)
    rest -= wanted
    if strict < n and rest:
        products.update(_fetch(rest))
        chosen, produced, strict = _fill(levels, products, n=n, excluded=excluded, category_ids=category_ids)
    return chosen, produced, products


def _fetch(ids: Iterable[int]) -> dict[int, Product]:
    """Products by id, each with its category attached (as ``select_related`` would)
    from a per-process category cache refreshed every five minutes — categories
    are few and rarely change, products are many and change (stock) all the time.
    On PostgreSQL one fixed statement (``id = ANY(array)``) read into model
    instances, without building a queryset each time: this runs on every list."""
    ids = set(ids)
    if not ids:
        return {}
    if connection.vendor == "postgresql":
        names, statement = _product_select()
        with connection.cursor() as cursor:
            cursor.execute(statement, [list(ids)])
            rows = cursor.fetchall()
        products = [Product.from_db(connection.alias, names, row) for row in rows]
    else:
        products = list(Product.objects.filter(pk__in=ids).order_by().defer(*DEFERRED_PRODUCT_FIELDS))
    wanted = {p.category_id for p in products if p.category_id is not None}
    categories = state.categories(wanted)
    for p in products:
        p._state.fields_cache["category"] = categories.get(p.category_id) if p.category_id is not None else None
    return {p.pk: p for p in products}


@functools.cache
def _product_select() -> tuple[list[str], str]:
    """(attribute names, SELECT by an array of ids) for the product columns lists use.
    PostgreSQL returns these column types as Django's fields hold them (no converters)."""
    fields = [f for f in Product._meta.concrete_fields if f.name not in DEFERRED_PRODUCT_FIELDS]
    q = connection.ops.quote_name
    columns = ", ".join(q(f.column) for f in fields)
    return [f.attname for f in fields], f"SELECT {columns} FROM {q(Product._meta.db_table)} WHERE {q('id')} = ANY(%s)"


def _descendants(snap: state.Snapshot, category: Category | None) -> set[int] | None:
    if category is None:
        return None
    key = ("descendants", category.pk)
    memo = snap.memo.get(key)
    if memo is None or time.monotonic() - memo[0] > 300:
        memo = (time.monotonic(), selectors.category_descendants(category_id=category.pk))
        snap.memo[key] = memo
    return memo[1]


def _history_category_cands(snap, shopper: _Shopper, *, n: int, now: float) -> list[_Cand]:
    """No model to ask: products popular in the categories the shopper looked at."""
    weights: dict[int, float] = {}
    for e in shopper.history:
        if e.category_id is not None:
            weights[e.category_id] = weights.get(e.category_id, 0.0) + 0.5 ** ((now - e.at) / 86400 / 7)
    if not weights:
        return []
    return _trending_cands(
        snap, n=n, code=shopper.code, reason="Popular in {category}", categories=set(weights), weights=weights
    )


def _interest_cands(snap, interests: list[int], *, n: int) -> list[_Cand]:
    if not interests:
        return []
    return _trending_cands(
        snap, n=n, code="interest", reason="Matches your interest in {category}", categories=set(interests)
    )


# --- public: one shopper ------------------------------------------------------------------
def recommend_for_user(
    *,
    user: User | None = None,
    user_id: int | None = None,
    session_key: str = "",
    context: str = "home",
    n: int = 10,
    product: Product | None = None,
    category: Category | None = None,
    strategy: str | None = None,
    exclude_product_ids: Iterable[int] = (),
    record_impression: bool = True,
) -> RecommendationList:
    """Recommendations for a customer or an anonymous session (see the module doc).

    The customer is ``user`` or, for a caller that holds only an id (the API),
    ``user_id``: its existence is checked in the same round trip as the history
    read, and ``ShopperNotFound`` is raised when there is no such customer."""
    if context not in CONTEXTS:
        raise ValueError(f"unknown context {context!r}; use one of {list(CONTEXTS)}")
    n = _check_n(n)
    requested = strategy_check(strategy)
    session_key = session_key or ""
    if user is not None and user_id is not None:
        raise ValueError("pass user or user_id, not both")
    by_id = user_id is not None
    if by_id and (isinstance(user_id, bool) or not isinstance(user_id, int)):
        raise ValueError(f"user_id must be an integer, got {user_id!r}")
    if not by_id:
        user_id = _user_id(user)
    rules = conf.get("RECOMMEND_EXCLUDE_KINDS") or {}
    # one round trip: recent events, what they bought, their interests, the serving
    # epoch (and whether the customer exists, when only the id is known)
    known = selectors.shopper_state(
        user_id=user_id,
        session_key=session_key,
        limit=int(conf.get("RECOMMEND_HISTORY_LIMIT")),
        forever_kinds=[int(k) for k, days in rules.items() if days is None],
        with_epoch=True,
        with_user=by_id,
    )
    if by_id and not known.user_exists:
        raise ShopperNotFound(f"no customer with id {user_id}")
    snap = state.snapshot(epoch=known.epoch)
    experiment = variant = None
    if requested == "auto":
        experiment, variant = _assign(snap, context, user_id, session_key)
    effective = requested
    version: state.VersionInfo | None
    if variant is not None:
        version = variant.model_version
        if version is None:
            effective = strategy_check(variant.strategy or "auto")
            version = _version_for(snap, effective)
        else:
            effective = version.algorithm
    else:
        version = _version_for(snap, requested)
    now = time.time()
    history = known.history if effective not in ("trending", "interests") else []
    if product is not None:  # the product on screen is the freshest signal
        history.insert(0, HistoryEvent(product.pk, Interaction.Kind.VIEW, 1.0, now, product.category_id))
    excluded = set(exclude_product_ids) | known.bought
    if product is not None:
        excluded.add(product.pk)
    # kinds excluded for a while (just viewed...) come from the recent events; for an
    # anonymous session, short by nature, the recent events are all of it
    excluded |= selectors.shopper_excluded_products(user_id=None, history=known.history, now=now)
    category_ids = _descendants(snap, category)
    shopper = _Shopper(user_id, session_key, history, excluded)
    loaded = state.model_get(version) if version is not None else None
    if loaded is not None:
        _model_cands(
            loaded, [shopper], n=n, now=now, category_ids=category_ids, explain=True, label=f"model:{loaded.label}"
        )
    if effective != "interests" and effective != "trending" and not shopper.levels and history:
        shopper.levels.append((f"fallback:{shopper.code}", _history_category_cands(snap, shopper, n=n, now=now)))
    if known.interests and effective != "trending":
        shopper.levels.append(("fallback:interests", _interest_cands(snap, known.interests, n=n)))
    reason = "Popular in {category}" if category is not None else "Trending now"
    shopper.levels.append(
        ("trending", _trending_cands(snap, n=n, code="trending", reason=reason, categories=category_ids))
    )
    chosen, produced, products = _choose(shopper.levels, n=n, excluded=excluded, category_ids=category_ids)
    if len(chosen) < n and category_ids is not None:
        # a quiet category: newest products in it, no trending signal needed
        extra = (
            Product.objects.select_related("category")
            .filter(category_id__in=category_ids, is_active=True, stock__gt=0)
            .exclude(pk__in=excluded | {p.pk for _, p in chosen})
            .order_by("-created_at")[: n - len(chosen)]
        )
        chosen += [(_Cand(p.pk, 0.0, "trending", "New in {category}"), p) for p in extra]
        produced = produced or "fallback:category"
    names = {pid: p.name for pid, p in products.items()}
    picks = [_pick(c, p, names) for c, p in chosen]
    rec = RecommendationList(
        id=uuid.uuid4(),
        picks=picks,
        context=context,
        strategy=produced or "trending",
        model_version_id=loaded.version_id if loaded is not None and produced.startswith("model:") else None,
        variant=variant.name if variant is not None else "",
    )
    if record_impression:
        _record(rec, user_id=user_id, session_key=session_key, experiment_id=experiment.id if experiment else None)
    return rec


# --- public: similar products -----------------------------------------------------------------
def _cf_version(snap: state.Snapshot) -> state.VersionInfo | None:
    default = snap.active.get(DEFAULT_SLOT)
    if default is not None and default.algorithm not in ("popularity", "trending", "content"):
        return default
    others = sorted(
        (v for v in snap.active.values() if v.algorithm not in ("popularity", "trending", "content")),
        key=lambda v: -v.id,
    )
    return others[0] if others else None


def _content_model(snap: state.Snapshot):
    """A fitted content model: the content version's, or the hybrid's content part."""
    candidates = [v for v in snap.active.values() if v.algorithm in ("content", "hybrid")]
    candidates.sort(key=lambda v: (v.algorithm != "content", v.slot != DEFAULT_SLOT))
    version = candidates[0] if candidates else _version_for(snap, "content")
    loaded = state.model_get(version) if version is not None else None
    if loaded is None:
        return None, None
    model = loaded.model if loaded.algorithm == "content" else getattr(loaded.model, "content_model", None)
    return (loaded, model) if model is not None else (None, None)


def _content_cands(snap, product: Product, *, n: int) -> tuple[str, list[_Cand]]:
    loaded, model = _content_model(snap)
    if model is None:
        return "", []
    k = min(max(4 * n, 40), model.n_items)
    col = int(loaded.columns([product.pk])[0])
    if col >= 0:
        ids, scores = model.similar_items([col], n=k)
    else:  # a product newer than the model: vectorise its text with the stored vocabulary
        text = f"{product.name} {product.category.name if product.category else ''} {product.description[:500]}"
        profile = model.profile_from_text([text])
        if product.category_id is not None:
            profile = profile + model.profile_from_categories([[product.category_id]])
        from .engine._arrays import top_n

        ids, scores = top_n(model.score_profiles(profile), k)
    cands = [
        _Cand(
            int(loaded.item_ids[c]),
            float(s),
            "similar",
            "Similar to {name}",
            product.pk,
            category_id=_category_of(loaded, c),
        )
        for c, s in zip(ids[0].tolist(), scores[0].tolist(), strict=True)
        if c >= 0 and s > 0
    ]
    return f"model:{loaded.label}", cands


def similar_products(
    *,
    product: Product,
    n: int = 8,
    kind: str = "also_bought",
    user: User | None = None,
    session_key: str = "",
    record_impression: bool = True,
) -> RecommendationList:
    """ "Customers also bought" (collaborative item neighbours; co-purchases when no
    model knows the product) or "similar products" (content: text and category,
    computed from the product's text when it is newer than the model)."""
    if kind not in ("also_bought", "similar"):
        raise ValueError(f"unknown kind {kind!r}; use 'also_bought' or 'similar'")
    n = _check_n(n)
    snap = state.snapshot()
    user_id = _user_id(user)
    excluded = {product.pk}
    if user_id is not None:
        rules = conf.get("RECOMMEND_EXCLUDE_KINDS") or {}
        forever = [int(k) for k, days in rules.items() if days is None]
        if forever:
            excluded |= set(
                Interaction.objects.filter(user_id=user_id, kind__in=forever)
                .values_list("product_id", flat=True)
                .distinct()
            )
    levels: list[tuple[str, list[_Cand]]] = []
    version_id = None
    if kind == "also_bought":
        info = _cf_version(snap)
        loaded = state.model_get(info) if info is not None else None
        col = int(loaded.columns([product.pk])[0]) if loaded is not None else -1
        if loaded is not None and col >= 0:
            k = min(max(4 * n, 40), loaded.model.n_items)
            ids, scores = loaded.model.similar_items([col], n=k)
            levels.append(
                (
                    f"model:{loaded.label}",
                    [
                        _Cand(
                            int(loaded.item_ids[c]),
                            float(s),
                            "also_bought",
                            "Customers who bought {name} also bought this",
                            product.pk,
                            category_id=_category_of(loaded, c),
                        )
                        for c, s in zip(ids[0].tolist(), scores[0].tolist(), strict=True)
                        if c >= 0
                    ],
                )
            )
            version_id = loaded.version_id
        else:
            levels.append(
                (
                    "fallback:co_purchase",
                    [
                        _Cand(pid, s, "also_bought", "Customers who bought {name} also bought this", product.pk)
                        for pid, s in selectors.co_purchased(product_id=product.pk, limit=max(4 * n, 40))
                    ],
                )
            )
    label, cands = _content_cands(snap, product, n=n)
    if cands:
        levels.append((label, cands))
        if kind == "similar":
            version_id = int(label.split("#")[1])
    if product.category_id is not None:
        levels.append(
            (
                "fallback:category",
                _trending_cands(
                    snap, n=n, code="similar", reason="More in {category}", categories={product.category_id}
                ),
            )
        )
    levels.append(("trending", _trending_cands(snap, n=n, code="trending", reason="Trending now")))
    chosen, produced, _ = _choose(levels, n=n, excluded=excluded, category_ids=None)
    picks = [_pick(c, p, {product.pk: product.name}) for c, p in chosen]
    produced = produced or "trending"
    rec = RecommendationList(
        id=uuid.uuid4(),
        picks=picks,
        context="product",
        strategy=produced,
        model_version_id=version_id if produced.startswith("model:") else None,
        variant="",
    )
    if record_impression:
        _record(rec, user_id=user_id, session_key=session_key, experiment_id=None)
    return rec


def trending_products(
    *, n: int = 10, category: Category | None = None, record_impression: bool = True
) -> RecommendationList:
    """What is popular right now (in a category and its subcategories, if given)."""
    n = _check_n(n)
    snap = state.snapshot()
    category_ids = _descendants(snap, category)
    reason = "Popular in {category}" if category is not None else "Trending now"
    cands = _trending_cands(snap, n=n, code="trending", reason=reason, categories=category_ids)
    levels = [("trending", cands)]
    chosen, _, _ = _choose(levels, n=n, excluded=set(), category_ids=category_ids)
    if len(chosen) < n and category_ids is not None:
        extra = (
            Product.objects.select_related("category")
            .filter(category_id__in=category_ids, is_active=True, stock__gt=0)
            .exclude(pk__in=[p.pk for _, p in chosen])
            .order_by("-created_at")[: n - len(chosen)]
        )
        chosen += [(_Cand(p.pk, 0.0, "trending", "New in {category}"), p) for p in extra]
    picks = [_pick(c, p, {}) for c, p in chosen]
    rec = RecommendationList(
        id=uuid.uuid4(),
        picks=picks,
        context="category" if category else "home",
        strategy="trending",
        model_version_id=None,
        variant="",
    )
    if record_impression:
        _record(rec, user_id=None, session_key="", experiment_id=None)
    return rec


# --- public: many customers at once ------------------------------------------------------------
def recommend_for_users_batch(
    *,
    user_ids: Sequence[int],
    n: int = 10,
    strategy: str | None = None,
    exclude_purchased: bool = True,
    explain: bool = True,
    history_limit: int | None = None,
) -> dict[int, list[Pick]]:
    """Top ``n`` for many customers with batched scoring (campaigns, exports). No
    impressions are recorded and no on-site experiment applies. Users without
    history get their interests, then trending; unknown ids get trending."""
    n = _check_n(n)
    requested = strategy_check(strategy)
    snap = state.snapshot()
    version = _version_for(snap, requested)
    loaded = state.model_get(version) if version is not None else None
    now = time.time()
    user_ids = list(dict.fromkeys(int(u) for u in user_ids))
    if not user_ids:
        return {}
    limit = int(history_limit or conf.get("RECOMMEND_HISTORY_LIMIT"))
    use_history = requested not in ("trending", "interests")
    histories = selectors.users_histories(user_ids=user_ids, limit=limit) if use_history else {u: [] for u in user_ids}
    rules = conf.get("RECOMMEND_EXCLUDE_KINDS") or {}
    forever = [int(k) for k, days in rules.items() if days is None] if exclude_purchased else []
    bought = selectors.users_purchased(user_ids=user_ids, kinds=forever)
    windows = {int(k): float(d) * 86400 for k, d in rules.items() if d is not None}
    shoppers = []
    for uid in user_ids:
        history = histories.get(uid, [])
        excluded = set(bought.get(uid, ()))
        excluded |= {e.product_id for e in history if e.kind in windows and now - e.at <= windows[e.kind]}
        shoppers.append(_Shopper(uid, "", history, excluded))
    if loaded is not None and use_history:
        _model_cands(loaded, shoppers, n=n, now=now, category_ids=None, explain=explain, label=f"model:{loaded.label}")
    needing = (
        [s.user_id for s in shoppers if sum(len(c) for _, c in s.levels) < 2 * n] if requested != "trending" else []
    )
    interests: dict[int, list[int]] = {}
    if needing:
        for uid, cid in User.interests.through.objects.filter(user_id__in=needing).values_list(
            "user_id", "category_id"
        ):
            interests.setdefault(uid, []).append(cid)
    trending = _trending_cands(snap, n=n, code="trending", reason="Trending now")
    for s in shoppers:
        if use_history and not s.levels and s.history:
            s.levels.append(("fallback:history", _history_category_cands(snap, s, n=n, now=now)))
        if s.user_id in interests:
            s.levels.append(("fallback:interests", _interest_cands(snap, interests[s.user_id], n=n)))
        s.levels.append(("trending", trending))
    wanted = {c.product_id for s in shoppers for _, cs in s.levels for c in cs}
    wanted |= {c.anchor_id for s in shoppers for _, cs in s.levels for c in cs if c.anchor_id and "{name}" in c.reason}
    products: dict[int, Product] = {}
    wanted_list = list(wanted)
    for start in range(0, len(wanted_list), 5000):
        products.update(_fetch(wanted_list[start : start + 5000]))
    names = {pid: p.name for pid, p in products.items()}
    out: dict[int, list[Pick]] = {}
    for s in shoppers:
        chosen, _, _ = _fill(s.levels, products, n=n, excluded=s.excluded, category_ids=None)
        out[s.user_id] = [_pick(c, p, names) for c, p in chosen]
    return out
