"""Serving: turn the active model (or the fallbacks) into explained, filtered,
diverse lists of products, each with an id that clicks and orders carry.

The public functions are re-exported by ``recommendations.services`` (the serving
contract); this module holds their implementation.

How one list is made (``recommend_for_user``):

1. The process's view of what is active is refreshed if the serving epoch moved
   (``model_cache.snapshot``: one primary-key query), and an A/B experiment running
   for the context may pick the variant (``experiments``).
2. The shopper's recent events are read (one query) and folded into the model at
   call time, so a click changes the next page without retraining; products they
   must not see again (bought; just viewed...) are read with them, and so is the
   customer's existence when the caller holds only an id. The model's picks come
   from its ``top_k`` (ALS: an exact early-stopping scan, items by decreasing norm).
3. Candidates come in levels (``candidates``): the model's top picks, then — when
   the model has nothing to say — products popular in the categories of the
   session's history, then products popular in the shopper's stated interests,
   then trending.
4. One query fetches every candidate product with its category; inactive and
   out-of-stock products are dropped, at most ``AFFINITY_RECOMMEND_MAX_PER_CATEGORY``
   per category are taken (relaxed only if the list would otherwise be short), and
   model picks are explained by the history item that contributes most to their
   score (``explanations``).
5. The list is recorded as an ``Impression`` unless told not to (queued in Redis
   and written in batches, or one INSERT without Redis: ``impressions``).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from django.db import connection, connections

from shop.models import PRODUCT_IN_STOCK, Category, Interaction, Product, User
from shop.selectors import category_descendant_ids

from . import conf, explanations, impressions, long_tail, model_cache, rules, selectors
from .candidates import (
    Candidate,
    ModelCandidates,
    Shopper,
    category_of,
    cf_version,
    content_cands,
    history_category_cands,
    interest_cands,
    interests_blend,
    interests_share,
    model_cands,
    trending_cands,
)
from .engine import blas_single_thread
from .experiments import experiment_assign, user_id_of
from .model_cache import VersionInfo
from .models import Impression
from .rules import CompiledRule, RuleEffect, RuleSet
from .selectors import HistoryEvent
from .strategies import strategy_check, version_for

CONTEXTS = ("home", "product", "category", "cart", "email", "api")
# The placement (``Placement.key``) whose rules a list follows when the caller names none.
CONTEXT_PLACEMENTS = {"home": "home", "cart": "cart", "email": "email", "api": "api"}
# Not loaded with the picks' products (no list shows them; reading one costs a query).
DEFERRED_PRODUCT_FIELDS = ("description", "attributes", "updated_at")
MAX_N = 100


# --- the contract's types ----------------------------------------------------------
class ShopperNotFound(LookupError):
    """``recommend_for_user(user_id=...)`` for a customer id that does not exist."""


@dataclass(frozen=True)
class Pick:
    product: Product
    score: float
    reason: str
    reason_code: str  # "history" | "similar" | "also_bought" | "interest" | "trending" | "session" | "rule"
    source: str = ""  # what really produced it: one of explanations.SOURCES
    rule_effects: tuple[RuleEffect, ...] = ()  # what merchandising rules did to it (``rules``)


@dataclass(frozen=True)
class RecommendationList:
    id: uuid.UUID
    picks: list[Pick]
    context: str
    strategy: str
    model_version_id: int | None
    variant: str
    placement: str = ""
    rule_ids: tuple[int, ...] = ()  # the merchandising rules that changed the list
    experiment_id: int | None = None

    @property
    def products(self) -> list[Product]:
        return [p.product for p in self.picks]


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_N:
        raise ValueError(f"n must be an integer from 1 to {MAX_N}, got {n!r}")
    return n


# --- assembling ----------------------------------------------------------------------
def _fill(
    shopper_levels: list[tuple[str, list[Candidate]]],
    products: dict[int, Product],
    *,
    n: int,
    excluded: set[int],
    category_ids: set[int] | None,
) -> tuple[list[tuple[Candidate, Product]], str, int]:
    """Take candidates level by level: servable, not excluded, not twice, at most
    MAX_PER_CATEGORY per category (relaxed only if the list would be short)."""
    cap = _category_cap(n, category_ids)
    out_of_stock_ok = not conf.get("RECOMMEND_EXCLUDE_OUT_OF_STOCK")
    chosen: list[tuple[Candidate, Product]] = []
    taken: set[int] = set()
    per_category: Counter = Counter()
    deferred: list[tuple[Candidate, Product]] = []
    strategy = ""
    for label, cands in shopper_levels:
        for cand in cands:
            if len(chosen) >= n:
                break
            product = products.get(cand.product_id)
            if (
                product is None
                or cand.product_id in taken
                or not _servable(product, excluded, category_ids, out_of_stock_ok)
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


def _category_cap(n: int, category_ids: set[int] | None) -> int:
    """At most this many picks per category (a category page is about one category)."""
    if category_ids is not None:
        return n
    return int(conf.get("RECOMMEND_MAX_PER_CATEGORY")) or n


def _servable(product: Product, excluded: set[int], category_ids: set[int] | None, out_of_stock_ok: bool) -> bool:
    """Whether ``product`` may be shown at all: active, in stock (unless allowed), not
    excluded for the shopper, inside a category page's category."""
    return (
        product.pk not in excluded
        and product.is_active
        and (product.in_stock or out_of_stock_ok)
        and (category_ids is None or product.category_id in category_ids)
    )


def _pick(cand: Candidate, product: Product, names: dict[int, str]) -> Pick:
    reason = cand.reason
    if "{name}" in reason:
        reason = reason.format(name=names.get(cand.anchor_id, "an item you saw"))
    elif "{category}" in reason:
        reason = reason.format(category=product.category.name if product.category else "the shop")
    source = cand.source or explanations.MODEL
    return Pick(product=product, score=round(float(cand.score), 6), reason=reason, reason_code=cand.code, source=source)


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
            placement=rec.placement[:40],
            rule_ids=list(rec.rule_ids),
        )
    )


def list_record(rec: RecommendationList, *, user_id: int | None, session_key: str) -> None:
    """Record a list assembled by the caller (a placement's fallback chain) as shown."""
    _record(rec, user_id=user_id, session_key=session_key, experiment_id=rec.experiment_id)


def _choose(
    levels: list[tuple[str, list[Candidate]]],
    *,
    n: int,
    excluded: set[int],
    category_ids: set[int] | None,
) -> tuple[list[tuple[Candidate, Product]], str, dict[int, Product]]:
    """Fetch the candidates most likely to be shown (the first 1.5n (at least n+5),
    level by level, and the products their explanations name) in one query,
    then fill the list; only if filters and diversity leave it short are the
    remaining candidates fetched too (a second query)."""
    wanted: set[int] = set()
    rest: set[int] = set()
    budget = rules.pool_size(n)
    cap = _category_cap(n, category_ids)
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


def _fetch(ids: Iterable[int], *, attributes: bool = False) -> dict[int, Product]:
    """Products by id with their category, in one query (the fields no list shows
    deferred; ``attributes`` loaded when a rule reads them)."""
    ids = set(ids)
    if not ids:
        return {}
    deferred = [f for f in DEFERRED_PRODUCT_FIELDS if not (attributes and f == "attributes")]
    return Product.objects.select_related("category").defer(*deferred).order_by().in_bulk(ids)


# --- merchandising rules: the one place they apply ----------------------------------------------
def _ruleset(
    snap: model_cache.Snapshot,
    placement: str,
    extra_rules: Sequence[CompiledRule],
    ruleset: RuleSet | None,
    now: float,
) -> RuleSet:
    """The rules of a list: ``ruleset`` when the caller gives it (the admin preview),
    else the live rules of ``placement`` plus the request's own."""
    if ruleset is not None:
        return ruleset
    return rules.rules_for(snap, placement, now=now, extra=extra_rules)


def _apply_rules(
    levels: list[tuple[str, Sequence[Candidate]]],
    products: dict[int, Product],
    *,
    n: int,
    excluded: set[int],
    category_ids: set[int] | None,
    ruleset: RuleSet,
    now: float,
    fetch: bool = True,
) -> tuple[list[tuple[Candidate, Product]], str, dict[int, list[RuleEffect]], tuple[int, ...]]:
    """The rules pass, after scoring and before diversity (see ``rules``): the first
    ``rules.pool_size(n)`` candidates in serving order are filtered and re-ranked by
    the rules, the list is filled from them (the category cap applies), and pins are
    put in place last, so diversity never moves them. ``fetch``: read the products
    missing from ``products`` (the batch path has them all already).

    Returns the chosen picks, the label of the first level that contributed, each
    product's rule effects and the ids of the rules that changed the list."""
    rank: dict[str, int] = {}
    for index, (label, _) in enumerate(levels):
        rank.setdefault(label, index)

    def walk() -> Iterator[tuple[str, Candidate, int]]:  # lazily: model candidates are made when looked at
        seen: set[int] = set()
        for label, cands in levels:
            for c in cands:
                pid = c.product_id
                if pid not in excluded and pid not in seen:
                    seen.add(pid)
                    yield label, c, pid

    walker = walk()
    # the pool: the first pool_size(n) candidates that fit the per-category cap where
    # the category is known (as `_choose` fetches: one query of as many rows as without
    # rules usually makes a diverse list); the others are read only if the list is short
    cap = _category_cap(n, category_ids)
    size = rules.pool_size(n)
    entries: list[tuple[str, Candidate, int]] = []
    held: list[tuple[str, Candidate, int]] = []
    per_category: Counter = Counter()
    for entry in walker:
        category = entry[1].category_id
        if category is not None and per_category[category] >= cap:
            held.append(entry)
            continue
        entries.append(entry)
        if category is not None:
            per_category[category] += 1
        if len(entries) >= size:
            break
    pins = ruleset.pins

    def load(part: list[tuple[str, Candidate, int]], extra: set[int]) -> None:
        wanted = {pid for _, _, pid in part} | extra
        wanted |= {c.anchor_id for _, c, _ in part if c.anchor_id and "{name}" in c.reason}
        missing = [pid for pid in wanted if pid not in products]
        if fetch and missing:
            products.update(_fetch(missing, attributes=ruleset.reads_attributes))

    load(entries, {r.product_id for r in pins if r.product_id is not None})
    if ruleset.long_tail_weight > 0 and len(entries) > 1:  # the placement's popularity calibration
        order = long_tail.rerank_positions(
            [pid for _, _, pid in entries], weight=ruleset.long_tail_weight, n=len(entries)
        )
        first = set(order)
        entries = [entries[i] for i in order] + [e for i, e in enumerate(entries) if i not in first]
    ordered, effects, applied = rules.reorder(entries, products, ruleset, now=now)
    chosen, _, strict = _fill(
        [(lb, [c]) for lb, c, _ in ordered], products, n=n, excluded=excluded, category_ids=category_ids
    )
    rest = held + list(walker) if strict < n else []
    if rest:
        entries += rest
        load(rest, set())
        ordered, effects, applied = rules.reorder(entries, products, ruleset, now=now)
        chosen, _, strict = _fill(
            [(lb, [c]) for lb, c, _ in ordered], products, n=n, excluded=excluded, category_ids=category_ids
        )
    label_of = {pid: lb for lb, _, pid in entries}
    position = {pid: i for i, (_, _, pid) in enumerate(entries)}
    out: list[tuple[Candidate, Product]] = []
    for c, p in chosen:
        # a pick that only a boost brought into the list is the rule's, not the recommender's
        if position.get(p.pk, 0) >= n and any(e.weight > 0 for e in effects.get(p.pk, ())):
            c = Candidate(
                p.pk,
                c.score,
                explanations.REASON_CODES[explanations.RULE],
                explanations.reason_for(explanations.RULE),
                category_id=p.category_id,
                source=explanations.RULE,
            )
        out.append((c, p))
    out = _pin(out, pins, products, n=n, excluded=excluded, category_ids=category_ids, effects=effects)
    labels = [label_of[p.pk] for _, p in out if p.pk in label_of]
    produced = min(labels, key=lambda lb: rank.get(lb, len(rank))) if labels else ""
    shown = {p.pk for _, p in out}
    applied |= {e.rule_id for pid in shown for e in effects.get(pid, ()) if e.rule_id is not None}
    return out, produced, {pid: e for pid, e in effects.items() if pid in shown}, tuple(sorted(applied))


def _select(
    levels: list[tuple[str, Sequence[Candidate]]],
    *,
    n: int,
    excluded: set[int],
    category_ids: set[int] | None,
    ruleset: RuleSet,
    now: float,
) -> tuple[list[tuple[Candidate, Product]], str, dict[int, list[RuleEffect]], tuple[int, ...], dict[int, Product]]:
    """One list from its candidate levels: through the rules pass when a rule applies
    (``_apply_rules``), else ``_choose``. Returns the chosen picks, the label of the
    first level that contributed, the rule effects, the ids of the rules that changed
    the list and the products read."""
    if ruleset:
        products: dict[int, Product] = {}
        chosen, produced, effects, rule_ids = _apply_rules(
            levels, products, n=n, excluded=excluded, category_ids=category_ids, ruleset=ruleset, now=now
        )
        return chosen, produced, effects, rule_ids, products
    chosen, produced, products = _choose(levels, n=n, excluded=excluded, category_ids=category_ids)
    return chosen, produced, {}, (), products


def _pin(
    chosen: list[tuple[Candidate, Product]],
    pins: list[CompiledRule],
    products: dict[int, Product],
    *,
    n: int,
    excluded: set[int],
    category_ids: set[int] | None,
    effects: dict[int, list[RuleEffect]],
) -> list[tuple[Candidate, Product]]:
    """Put each pinned product at its position (after diversity). A pin respects what
    must never be shown: inactive, out of stock, excluded for the shopper, outside a
    category page's category."""
    out_of_stock_ok = not conf.get("RECOMMEND_EXCLUDE_OUT_OF_STOCK")
    for rule in pins:
        p = products.get(rule.product_id or 0)
        if p is None or not _servable(p, excluded, category_ids, out_of_stock_ok):
            continue
        chosen = [(c, q) for c, q in chosen if q.pk != p.pk]
        cand = Candidate(
            p.pk,
            0.0,
            explanations.REASON_CODES[explanations.PIN],
            explanations.reason_for(explanations.PIN),
            category_id=p.category_id,
            source=explanations.PIN,
        )
        chosen.insert(min((rule.position or 1) - 1, len(chosen)), (cand, p))
        effects[p.pk] = [*effects.get(p.pk, []), rule.effect]
    return chosen[:n]


def _with_effects(picks: list[Pick], effects: dict[int, list[RuleEffect]]) -> list[Pick]:
    if not effects:
        return picks
    return [replace(p, rule_effects=tuple(effects[p.product.pk])) if p.product.pk in effects else p for p in picks]


def _newest_in(category_ids: set[int], excluded: set[int], k: int, ruleset: RuleSet) -> list[tuple[Candidate, Product]]:
    """A quiet category's ``k`` newest servable products (no trending signal in it),
    in one query, those the include and exclude rules let through."""
    source = explanations.NEW_ARRIVALS
    reason = explanations.reason_for(source)
    newest = (
        Product.objects.select_related("category")
        .filter(PRODUCT_IN_STOCK, category_id__in=category_ids, is_active=True)
        .exclude(pk__in=excluded)
        .order_by("-created_at")[:k]
    )
    now = time.time()
    return [
        (Candidate(p.pk, 0.0, "trending", reason, source=source), p) for p in newest if rules.allows(ruleset, p, now)
    ]


def _descendants(category: Category | None) -> set[int] | None:
    """A category and every category below it (None: no category)."""
    if category is None:
        return None
    return set(category_descendant_ids(category_id=category.pk))


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
    placement: str | None = None,
    extra_rules: Sequence[CompiledRule] = (),
    ruleset: RuleSet | None = None,
) -> RecommendationList:
    """Recommendations for a customer or an anonymous session (see the module doc).

    ``placement``: whose merchandising rules apply (None: the context's placement,
    ``CONTEXT_PLACEMENTS``; "": only the global rules); ``extra_rules``: the request's
    own (``rules.request_rules``); ``ruleset``: exactly these rules (the admin preview).

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
        user_id = user_id_of(user)
    forever, _ = conf.exclude_kinds()
    # one round trip: recent events, what they bought, their interests, the serving
    # epoch (and whether the customer exists, when only the id is known)
    known = selectors.shopper_state(
        user_id=user_id,
        session_key=session_key,
        limit=int(conf.get("RECOMMEND_HISTORY_LIMIT")),
        forever_kinds=forever,
        with_epoch=True,
        with_user=by_id,
    )
    if by_id and not known.user_exists:
        raise ShopperNotFound(f"no customer with id {user_id}")
    snap = model_cache.snapshot(epoch=known.epoch)
    experiment = variant = None
    if requested == "auto":
        experiment, variant = experiment_assign(snap, context, user_id, session_key)
    effective = requested
    version: VersionInfo | None
    if variant is not None:
        version = variant.model_version
        if version is None:
            effective = strategy_check(variant.strategy or "auto")
            version = version_for(snap, effective)
        else:
            effective = version.algorithm
    else:
        version = version_for(snap, requested)
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
    category_ids = _descendants(category)
    shopper = Shopper(user_id, session_key, history, excluded)
    loaded = model_cache.model_get(version) if version is not None else None
    if loaded is not None:
        model_cands(
            loaded, [shopper], n=n, now=now, category_ids=category_ids, explain=True, label=f"model:{loaded.label}"
        )
    if effective != "interests" and effective != "trending" and not shopper.levels and history:
        shopper.levels.append((f"fallback:{shopper.code}", history_category_cands(snap, shopper, n=n, now=now)))
    if known.interests and effective != "trending":
        interest_level = interest_cands(snap, known.interests, n=n)
        # stated interests blend with the history (a new customer's session) instead of
        # waiting behind the model's picks
        interests_blend(shopper, interest_level, n=n)
        shopper.levels.append(("fallback:interests", interest_level))
    filler = explanations.reason_for(explanations.POPULAR, in_category=category is not None)
    shopper.levels.append(
        (
            "trending",
            trending_cands(
                snap, n=n, code="trending", reason=filler, categories=category_ids, source=explanations.POPULAR
            ),
        )
    )
    placement_key = CONTEXT_PLACEMENTS.get(context, "") if placement is None else placement
    active_rules = _ruleset(snap, placement_key, extra_rules, ruleset, now)
    chosen, produced, effects, rule_ids, products = _select(
        shopper.levels, n=n, excluded=excluded, category_ids=category_ids, ruleset=active_rules, now=now
    )
    if len(chosen) < n and category_ids is not None:
        # a quiet category: newest products in it, no trending signal needed
        chosen += _newest_in(category_ids, excluded | {p.pk for _, p in chosen}, n - len(chosen), active_rules)
        produced = produced or "fallback:category"
    names = {pid: p.name for pid, p in products.items()}
    picks = _with_effects([_pick(c, p, names) for c, p in chosen], effects)
    rec = RecommendationList(
        id=uuid.uuid4(),
        picks=picks,
        context=context,
        strategy=produced or "trending",
        model_version_id=loaded.version_id if loaded is not None and produced.startswith("model:") else None,
        variant=variant.name if variant is not None else "",
        placement=placement_key,
        rule_ids=rule_ids,
        experiment_id=experiment.id if experiment else None,
    )
    if record_impression:
        _record(rec, user_id=user_id, session_key=session_key, experiment_id=rec.experiment_id)
    return rec


# --- public: similar products -----------------------------------------------------------------
def similar_products(
    *,
    product: Product,
    n: int = 8,
    kind: str = "also_bought",
    user: User | None = None,
    session_key: str = "",
    record_impression: bool = True,
    placement: str | None = None,
    extra_rules: Sequence[CompiledRule] = (),
    ruleset: RuleSet | None = None,
) -> RecommendationList:
    """ "Customers also bought" (collaborative item neighbours; co-purchases when no
    model knows the product) or "similar products" (content: text and category,
    computed from the product's text when it is newer than the model).

    ``placement`` (None: "product-also-bought" / "product-similar"), ``extra_rules``
    and ``ruleset``: the merchandising rules, as for ``recommend_for_user``."""
    if kind not in ("also_bought", "similar"):
        raise ValueError(f"unknown kind {kind!r}; use 'also_bought' or 'similar'")
    n = _check_n(n)
    snap = model_cache.snapshot()
    user_id = user_id_of(user)
    excluded = {product.pk}
    if user_id is not None:
        forever, _ = conf.exclude_kinds()
        if forever:
            excluded |= selectors.users_purchased(user_ids=[user_id], kinds=forever)[user_id]
    levels: list[tuple[str, list[Candidate]]] = []
    version_id = None
    if kind == "also_bought":
        info = cf_version(snap)
        loaded = model_cache.model_get(info) if info is not None else None
        col = int(loaded.columns([product.pk])[0]) if loaded is not None else -1
        if loaded is not None and col >= 0:
            k = min(max(4 * n, 40), loaded.model.n_items)
            ids, scores = loaded.model.similar_items([col], n=k)
            levels.append(
                (
                    f"model:{loaded.label}",
                    [
                        Candidate(
                            int(loaded.item_ids[c]),
                            float(s),
                            "also_bought",
                            explanations.reason_for(explanations.CO_PURCHASE),
                            product.pk,
                            category_id=category_of(loaded, c),
                            source=explanations.CO_PURCHASE,
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
                        Candidate(
                            pid,
                            s,
                            "also_bought",
                            explanations.reason_for(explanations.CO_PURCHASE),
                            product.pk,
                            source=explanations.CO_PURCHASE,
                        )
                        for pid, s in selectors.co_purchased(product_id=product.pk, limit=max(4 * n, 40))
                    ],
                )
            )
    label, cands = content_cands(snap, product, n=n)
    if cands:
        levels.append((label, cands))
        if kind == "similar":
            version_id = int(label.split("#")[1])
    if product.category_id is not None:
        levels.append(
            (
                "fallback:category",
                trending_cands(
                    snap,
                    n=n,
                    code="trending",
                    reason=explanations.reason_for(explanations.POPULAR, in_category=True),
                    categories={product.category_id},
                    source=explanations.POPULAR,
                ),
            )
        )
    filler = explanations.reason_for(explanations.POPULAR)
    levels.append(("trending", trending_cands(snap, n=n, code="trending", reason=filler, source=explanations.POPULAR)))
    placement_key = f"product-{kind.replace('_', '-')}" if placement is None else placement
    now = time.time()
    active_rules = _ruleset(snap, placement_key, extra_rules, ruleset, now)
    chosen, produced, effects, rule_ids, _ = _select(
        levels, n=n, excluded=excluded, category_ids=None, ruleset=active_rules, now=now
    )
    picks = _with_effects([_pick(c, p, {product.pk: product.name}) for c, p in chosen], effects)
    produced = produced or "trending"
    rec = RecommendationList(
        id=uuid.uuid4(),
        picks=picks,
        context="product",
        strategy=produced,
        model_version_id=version_id if produced.startswith("model:") else None,
        variant="",
        placement=placement_key,
        rule_ids=rule_ids,
    )
    if record_impression:
        _record(rec, user_id=user_id, session_key=session_key, experiment_id=None)
    return rec


def trending_products(
    *,
    n: int = 10,
    category: Category | None = None,
    record_impression: bool = True,
    placement: str | None = None,
    extra_rules: Sequence[CompiledRule] = (),
    ruleset: RuleSet | None = None,
) -> RecommendationList:
    """What is popular right now (in a category and its subcategories, if given).
    ``placement`` (None: "home-trending" without a category, else only the global
    rules), ``extra_rules``, ``ruleset``: the merchandising rules."""
    n = _check_n(n)
    snap = model_cache.snapshot()
    category_ids = _descendants(category)
    reason = explanations.reason_for(explanations.TRENDING, in_category=category is not None)
    cands = trending_cands(snap, n=n, code="trending", reason=reason, categories=category_ids)
    levels: list[tuple[str, Sequence[Candidate]]] = [("trending", cands)]
    placement_key = ("home-trending" if category is None else "") if placement is None else placement
    now = time.time()
    active_rules = _ruleset(snap, placement_key, extra_rules, ruleset, now)
    chosen, _, effects, rule_ids, _ = _select(
        levels, n=n, excluded=set(), category_ids=category_ids, ruleset=active_rules, now=now
    )
    if len(chosen) < n and category_ids is not None:
        chosen += _newest_in(category_ids, {p.pk for _, p in chosen}, n - len(chosen), active_rules)
    picks = _with_effects([_pick(c, p, {}) for c, p in chosen], effects)
    rec = RecommendationList(
        id=uuid.uuid4(),
        picks=picks,
        context="category" if category else "home",
        strategy="trending",
        model_version_id=None,
        variant="",
        placement=placement_key,
        rule_ids=rule_ids,
    )
    if record_impression:
        _record(rec, user_id=None, session_key="", experiment_id=None)
    return rec


def recommend_from_candidates(
    *,
    levels: list[tuple[str, Sequence[Candidate]]],
    n: int,
    context: str,
    placement: str,
    excluded: Iterable[int] = (),
    user_id: int | None = None,
    session_key: str = "",
    extra_rules: Sequence[CompiledRule] = (),
    ruleset: RuleSet | None = None,
    record_impression: bool = True,
) -> RecommendationList:
    """A list from candidates a caller made (a placement's new arrivals, its customer
    neighbours), through the same filters, rules pass and diversity as every list."""
    n = _check_n(n)
    snap = model_cache.snapshot()
    now = time.time()
    excluded = set(excluded)
    active_rules = _ruleset(snap, placement, extra_rules, ruleset, now)
    chosen, produced, effects, rule_ids, products = _select(
        levels, n=n, excluded=excluded, category_ids=None, ruleset=active_rules, now=now
    )
    names = {pid: p.name for pid, p in products.items()}
    rec = RecommendationList(
        id=uuid.uuid4(),
        picks=_with_effects([_pick(c, p, names) for c, p in chosen], effects),
        context=context,
        strategy=produced or (levels[0][0] if levels else "trending"),
        model_version_id=None,
        variant="",
        placement=placement,
        rule_ids=rule_ids,
    )
    if record_impression:
        _record(rec, user_id=user_id, session_key=session_key, experiment_id=None)
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
    products: dict[int, Product] | None = None,
    placement: str = "email",
    ruleset: RuleSet | None = None,
    histories: dict[int, list[HistoryEvent]] | None = None,
) -> dict[int, list[Pick]]:
    """Top ``n`` for many customers with batched scoring (campaigns, exports). No
    impressions are recorded and no on-site experiment applies. Users without
    history get their interests, then trending; unknown ids get trending.

    ``exclude_purchased`` (default): what they have (``AFFINITY_CONSUMED_KINDS``) is
    never recommended back. ``products``: a dict the caller keeps across the calls of
    one job (an export, a send) -- the products read by one call are not read again
    by the next (they are as fresh as the job).

    ``placement``: whose merchandising rules apply (default "email": campaigns and
    the export; "" = only the global rules); ``ruleset``: exactly these rules;
    ``histories``: the customers' events as given, newest first, instead of reading them
    (the offline measure of rules, ``rule_effects``: histories cut at a date)."""
    n = _check_n(n)
    requested = strategy_check(strategy)
    snap = model_cache.snapshot()
    version = version_for(snap, requested)
    loaded = model_cache.model_get(version) if version is not None else None
    now = time.time()
    user_ids = list(dict.fromkeys(int(u) for u in user_ids))
    if not user_ids:
        return {}
    limit = int(history_limit or conf.get("RECOMMEND_HISTORY_LIMIT"))
    use_history = requested not in ("trending", "interests")
    forever, windows = conf.exclude_kinds()
    consumed_kinds = forever if exclude_purchased else []
    if histories is not None:
        kinds = frozenset(consumed_kinds)
        bought = {u: {e.product_id for e in histories.get(u, []) if e.kind in kinds} for u in user_ids}
        histories = histories if use_history else {u: [] for u in user_ids}
    elif use_history:  # one read of their events on PostgreSQL
        histories, bought = selectors.users_events(user_ids=user_ids, limit=limit, consumed_kinds=consumed_kinds)
    else:
        histories = {u: [] for u in user_ids}
        bought = selectors.users_purchased(user_ids=user_ids, kinds=consumed_kinds)
    shoppers = []
    for uid in user_ids:
        history = histories.get(uid, [])
        excluded = set(bought.get(uid, ()))
        excluded |= {e.product_id for e in history if e.kind in windows and now - e.at <= windows[e.kind]}
        shoppers.append(Shopper(uid, "", history, excluded))
    if loaded is not None and use_history:
        model_cands(loaded, shoppers, n=n, now=now, category_ids=None, explain=explain, label=f"model:{loaded.label}")
    # interests: for those short of picks, and those whose short history they blend with
    needing = (
        [s.user_id for s in shoppers if sum(len(c) for _, c in s.levels) < 2 * n or int(n * interests_share(s)) > 0]
        if requested != "trending"
        else []
    )
    interests: dict[int, list[int]] = {}
    if needing:
        for uid, cid in User.interests.through.objects.filter(user_id__in=needing).values_list(
            "user_id", "category_id"
        ):
            interests.setdefault(uid, []).append(cid)
    filler = explanations.reason_for(explanations.POPULAR)
    trending = trending_cands(snap, n=n, code="trending", reason=filler, source=explanations.POPULAR)
    for s in shoppers:
        if use_history and not s.levels and s.history:
            s.levels.append(("fallback:history", history_category_cands(snap, s, n=n, now=now)))
        if s.user_id in interests:
            interest_level = interest_cands(snap, interests[s.user_id], n=n)
            interests_blend(s, interest_level, n=n)
            s.levels.append(("fallback:interests", interest_level))
        s.levels.append(("trending", trending))
    wanted: set[int] = set()
    seen: set[int] = set()  # levels shared by many shoppers (trending) are looked at once
    for s in shoppers:
        for _, cs in s.levels:
            if isinstance(cs, ModelCandidates):
                wanted.update(cs.product_ids.tolist())
                wanted |= cs.anchor_ids()
            elif id(cs) not in seen:
                seen.add(id(cs))
                wanted.update(c.product_id for c in cs)
                wanted.update(c.anchor_id for c in cs if c.anchor_id and "{name}" in c.reason)
    active_rules = _ruleset(snap, placement, (), ruleset, now)
    wanted |= {r.product_id for r in active_rules.pins if r.product_id is not None}
    if products is None:
        products = {}
    attributes = active_rules.reads_attributes
    missing = [
        pid
        for pid in wanted
        if pid not in products or (attributes and "attributes" in products[pid].get_deferred_fields())
    ]
    for start in range(0, len(missing), 5000):
        products.update(_fetch(missing[start : start + 5000], attributes=attributes))
    names = {pid: p.name for pid, p in products.items()} if explain else {}
    out: dict[int, list[Pick]] = {}
    for s in shoppers:
        if active_rules:
            chosen, _, effects, _ = _apply_rules(
                s.levels,
                products,
                n=n,
                excluded=s.excluded,
                category_ids=None,
                ruleset=active_rules,
                now=now,
                fetch=False,
            )
            out[s.user_id] = _with_effects([_pick(c, p, names) for c, p in chosen], effects)
        else:
            chosen, _, _ = _fill(s.levels, products, n=n, excluded=s.excluded, category_ids=None)
            out[s.user_id] = [_pick(c, p, names) for c, p in chosen]
    return out


def recommend_for_users_batches(
    *,
    user_ids: Sequence[int],
    n: int = 10,
    strategy: str | None = None,
    exclude_purchased: bool = True,
    batch_size: int = 1000,
    workers: int = 1,
    placement: str = "email",
    ruleset: RuleSet | None = None,
) -> Iterator[tuple[list[int], dict[int, list[Pick]]]]:
    """`recommend_for_users_batch` over any number of customers (the export): yields
    ``(the batch's ids, their picks)`` batch after batch, in the order of ``user_ids``.
    No explanations; the products are read once for the whole run.

    ``workers`` > 1 scores that many batches at a time in threads, each with its own
    database connection (the matrix work and the database waits run outside the GIL,
    so two cores are used). Inside a transaction (the caller's uncommitted rows are not
    visible to other connections) or on SQLite it is one batch at a time."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
    ids = list(user_ids)
    batches = [ids[start : start + batch_size] for start in range(0, len(ids), batch_size)]
    products: dict[int, Product] = {}

    def one(batch: list[int]) -> dict[int, list[Pick]]:
        return recommend_for_users_batch(
            user_ids=batch,
            n=n,
            strategy=strategy,
            exclude_purchased=exclude_purchased,
            explain=False,
            products=products,
            placement=placement,
            ruleset=ruleset,
        )

    if workers <= 1 or connection.in_atomic_block or connection.vendor != "postgresql" or len(batches) < 2:
        for batch in batches:
            yield batch, one(batch)
        return

    def threaded(batch: list[int]) -> dict[int, list[Pick]]:
        try:
            return one(batch)
        finally:
            connections.close_all()  # this thread's connections

    # one BLAS thread per worker: the workers are the parallelism (no oversubscribed cores)
    with blas_single_thread(), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="recommend-batches") as pool:
        pending: deque = deque()
        for batch in batches:
            pending.append((batch, pool.submit(threaded, batch)))
            if len(pending) > workers:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
