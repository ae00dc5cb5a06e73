"""Placements: the named places where lists are shown, and serving one by name.

A ``Placement`` (staff edit them in admin; the defaults are seeded by migration
``0007`` so that the store, emails and the API show what they showed before) has a
strategy, a size, a fallback chain and the merchandising rules that name it.
``placement_serve(key, ...)`` makes its list:

1. the placement's strategy makes a list of ``size`` products:

   * ``personal``      -- ``serving.recommend_for_user`` (the model, with its own
     fallbacks: the session's categories, interests, trending);
   * ``similar`` / ``also_bought`` -- ``serving.similar_products`` of the product on
     screen (nothing without one);
   * ``trending``      -- ``serving.trending_products`` (in the category, if given);
   * ``new_arrivals``  -- the newest active products (``Product.created_at``);
   * ``neighbours``    -- "shoppers like you": the customers (or sessions) who
     interacted with most of the same products as this shopper, and what *they*
     interacted with that this shopper has not, by how many of them did;

2. while the list is short, each strategy of ``fallbacks`` fills the rest (no
   product twice; each pick keeps its own source and reason);
3. the merchandising rules of the placement (and the global ones) apply inside each
   serving call (``serving._apply_rules``: after scoring, before diversity), and the
   list is recorded once as an ``Impression`` with the placement's key and the ids of
   the rules that changed it.

Placements are read once per serving epoch (saving one bumps it: ``receivers``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from django.db.models import Count, Max

from shop.models import PRODUCT_IN_STOCK, Category, Interaction, Product, User
from shop.selectors import category_descendant_ids

from . import conf, explanations, model_cache, rules, selectors, serving
from .candidates import Candidate
from .experiments import user_id_of
from .models import MerchandisingRule, Placement
from .rules import CompiledRule, RuleSet
from .serving import RecommendationList

STRATEGIES = tuple(Placement.Strategy.values)
# The context a placement's lists are recorded under (the rest: "product" with a
# product on screen, else "api").
PLACEMENT_CONTEXTS = {
    "home": "home",
    "home-trending": "home",
    "because-viewed": "home",
    "cart": "cart",
    "email": "email",
    "api": "api",
}
NEIGHBOURS = 50  # customers (or sessions) compared with the shopper
# The placements the store, emails and the API use: (key, name, strategy, size, fallbacks).
# Migration 0007 seeds them (a copy: migrations do not import app code); a default whose
# row is missing (deleted, or a test database flushed) serves with these settings, so
# switching a placement off is done with ``is_active``, not by deleting it.
DEFAULT_PLACEMENTS = (
    ("home", "Recommended for you", "personal", 8, ()),
    ("home-trending", "Trending now", "trending", 8, ()),
    ("because-viewed", "Because you viewed", "also_bought", 8, ("similar",)),
    ("product-also-bought", "Customers also bought", "also_bought", 8, ()),
    ("product-similar", "Similar products", "similar", 8, ()),
    ("cart", "You might also like", "personal", 8, ()),
    ("email", "Picked for you", "personal", 6, ()),
    ("api", "API default", "personal", 10, ()),
)
NEIGHBOUR_HISTORY = 200  # of the shopper's most recent products


class PlacementNotFound(LookupError):
    """``placement_serve`` for a key that names no placement."""


@dataclass(frozen=True)
class PlacementInfo:
    key: str
    name: str
    strategy: str
    size: int
    fallbacks: tuple[str, ...]
    long_tail_weight: float
    is_active: bool


def placements_all(snap: model_cache.Snapshot | None = None) -> dict[str, PlacementInfo]:
    """Every placement by key (read once per serving epoch; the defaults whose rows
    are missing with their default settings)."""
    snap = snap or model_cache.snapshot()
    memo = snap.memo.get("placements")
    if memo is None:
        memo = {
            key: PlacementInfo(key, name, strategy, size, fallbacks, 0.0, True)
            for key, name, strategy, size, fallbacks in DEFAULT_PLACEMENTS
        }
        memo |= {
            p.key: PlacementInfo(
                p.key,
                p.name,
                p.strategy,
                int(p.size),
                tuple(s for s in (p.fallbacks or []) if s in STRATEGIES),
                float(p.long_tail_weight),
                p.is_active,
            )
            for p in Placement.objects.all()
        }
        snap.memo["placements"] = memo
    return memo


def placements_seed() -> int:
    """Create the default placements that are missing (how many were)."""
    created = 0
    for key, name, strategy, size, fallbacks in DEFAULT_PLACEMENTS:
        _, new = Placement.objects.get_or_create(
            key=key, defaults={"name": name, "strategy": strategy, "size": size, "fallbacks": list(fallbacks)}
        )
        created += new
    return created


def placement_get(key: str, snap: model_cache.Snapshot | None = None) -> PlacementInfo:
    """A placement by key; ``PlacementNotFound`` names the known ones."""
    found = placements_all(snap)
    if key not in found:
        raise PlacementNotFound(f"unknown placement {key!r}; use one of {sorted(found)}")
    return found[key]


def fallbacks_check(value) -> list[str]:
    """A fallback chain as staff typed it: a list of strategy names (``ValueError`` if not)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f'fallbacks must be a list of strategy names, e.g. ["trending"]; use {list(STRATEGIES)}')
    unknown = [v for v in value if v not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategy {unknown[0]!r} in fallbacks; use {list(STRATEGIES)}")
    if len(set(value)) != len(value):
        raise ValueError("a strategy appears twice in fallbacks")
    return value


# --- candidates of the placement-only strategies --------------------------------------------------
def new_arrival_cands(*, n: int, category_ids: set[int] | None = None) -> list[Candidate]:
    """The newest active, available products (newest first)."""
    qs = Product.objects.filter(PRODUCT_IN_STOCK, is_active=True)
    if category_ids is not None:
        qs = qs.filter(category_id__in=category_ids)
    source = explanations.NEW_ARRIVALS
    reason = explanations.reason_for(source)
    rows = qs.order_by("-created_at", "-id").values_list("id", "category_id")[: max(3 * n, n + 20)]
    return [
        Candidate(pid, 1.0 / (1 + i), explanations.REASON_CODES[source], reason, category_id=cid, source=source)
        for i, (pid, cid) in enumerate(rows)
    ]


def neighbour_cands(*, user_id: int | None, session_key: str, n: int) -> tuple[list[Candidate], set[int]]:
    """ "Shoppers like you": products of the customers (or sessions) who share most
    products with this shopper, by how many of those neighbours interacted with each;
    and the shopper's own products (not recommended back)."""
    if user_id is None and not session_key:
        return [], set()
    own = (
        Interaction.objects.filter(user_id=user_id)
        if user_id is not None
        else Interaction.objects.filter(session_key=session_key, user__isnull=True)
    )
    mine = list(
        own.values("product_id")
        .annotate(last=Max("occurred_at"))
        .order_by("-last")
        .values_list("product_id", flat=True)[:NEIGHBOUR_HISTORY]
    )
    if not mine:
        return [], set()
    others = Interaction.objects.filter(product_id__in=mine, user__isnull=False)
    if user_id is not None:
        others = others.exclude(user_id=user_id)
    neighbours = list(
        others.values("user_id")
        .annotate(shared=Count("product_id", distinct=True))
        .order_by("-shared", "user_id")
        .values_list("user_id", flat=True)[:NEIGHBOURS]
    )
    if not neighbours:
        return [], set(mine)
    rows = (
        Interaction.objects.filter(user_id__in=neighbours)
        .exclude(product_id__in=mine)
        .values("product_id")
        .annotate(people=Count("user_id", distinct=True))
        .order_by("-people", "product_id")
        .values_list("product_id", "people")[: max(4 * n, 40)]
    )
    source = explanations.NEIGHBOURS
    reason = explanations.reason_for(source)
    top = None
    out = []
    for pid, people in rows:
        top = top or people
        out.append(Candidate(pid, people / top, explanations.REASON_CODES[source], reason, source=source))
    return out, set(mine)


# --- serving a placement ---------------------------------------------------------------------------
def _one(
    strategy: str,
    placement: PlacementInfo,
    *,
    n: int,
    user: User | None,
    user_id: int | None,
    session_key: str,
    product: Product | None,
    category: Category | None,
    exclude: set[int],
    model_strategy: str | None,
    extra_rules: Sequence[CompiledRule],
    ruleset: RuleSet | None,
) -> RecommendationList | None:
    """One strategy's list for the placement (None: the strategy has nothing to work
    from, e.g. "similar" without a product)."""
    context = PLACEMENT_CONTEXTS.get(placement.key, "product" if product is not None else "api")
    common: dict[str, Any] = {
        "placement": placement.key,
        "extra_rules": extra_rules,
        "ruleset": ruleset,
        "record_impression": False,
    }
    if strategy == Placement.Strategy.PERSONAL:
        who = {"user_id": user_id} if user_id is not None else {"user": user}
        return serving.recommend_for_user(
            **who,
            session_key=session_key,
            context=context,
            n=n,
            product=product,
            category=category,
            strategy=model_strategy,
            exclude_product_ids=exclude,
            **common,
        )
    if strategy in (Placement.Strategy.SIMILAR, Placement.Strategy.ALSO_BOUGHT):
        if product is None:
            return None
        rec = serving.similar_products(
            product=product,
            n=min(n + len(exclude), serving.MAX_N),
            kind=strategy,
            user=user,
            session_key=session_key,
            **common,
        )
        return _drop(rec, exclude, n)
    if strategy == Placement.Strategy.TRENDING:
        rec = serving.trending_products(n=min(n + len(exclude), serving.MAX_N), category=category, **common)
        return _drop(rec, exclude, n)
    uid = user_id if user_id is not None else user_id_of(user)
    if strategy == Placement.Strategy.NEW_ARRIVALS:
        category_ids = set(category_descendant_ids(category_id=category.pk)) if category is not None else None
        levels: list[tuple[str, Sequence[Candidate]]] = [
            ("new_arrivals", new_arrival_cands(n=n + len(exclude), category_ids=category_ids))
        ]
        bought = selectors.users_purchased(user_ids=[uid], kinds=conf.consumed_kinds())[uid] if uid else set()
        excluded = exclude | set(bought)
    else:  # neighbours
        cands, mine = neighbour_cands(user_id=uid, session_key=session_key, n=n)
        levels = [("neighbours", cands)]
        excluded = exclude | mine
    if product is not None:
        excluded.add(product.pk)
    return serving.recommend_from_candidates(
        levels=levels,
        n=n,
        context=context,
        placement=placement.key,
        excluded=excluded,
        user_id=uid,
        session_key=session_key,
        extra_rules=extra_rules,
        ruleset=ruleset,
        record_impression=False,
    )


def _drop(rec: RecommendationList, exclude: set[int], n: int) -> RecommendationList:
    if not exclude and len(rec.picks) <= n:
        return rec
    return replace(rec, picks=[p for p in rec.picks if p.product.pk not in exclude][:n])


def placement_serve(
    key: str,
    *,
    user: User | None = None,
    user_id: int | None = None,
    session_key: str = "",
    product: Product | None = None,
    category: Category | None = None,
    n: int | None = None,
    exclude_product_ids: Iterable[int] = (),
    model_strategy: str | None = None,
    extra_rules: Sequence[CompiledRule] = (),
    ruleset: RuleSet | None = None,
    record_impression: bool = True,
) -> RecommendationList:
    """The list of placement ``key`` (see the module doc). ``n``: the placement's size
    unless given; ``model_strategy``: the model behind "personal" ("auto", an algorithm);
    ``extra_rules``: an API request's own rules; ``ruleset``: exactly these rules (the
    admin preview). Raises ``PlacementNotFound`` and, from serving, ``ShopperNotFound``
    and ``ValueError``."""
    snap = model_cache.snapshot()
    placement = placement_get(key, snap)
    size = n if n is not None else placement.size
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= serving.MAX_N:
        raise ValueError(f"n must be an integer from 1 to {serving.MAX_N}, got {size!r}")
    uid = user_id if user_id is not None else user_id_of(user)
    if user is not None and not user.is_authenticated:
        user = None
    if not placement.is_active:
        return RecommendationList(uuid.uuid4(), [], PLACEMENT_CONTEXTS.get(key, "api"), "", None, "", placement=key)
    exclude = set(exclude_product_ids)
    merged: RecommendationList | None = None
    for strategy in dict.fromkeys((placement.strategy, *placement.fallbacks)):
        want = size - (len(merged.picks) if merged else 0)
        if want <= 0:
            break
        taken = exclude | ({p.product.pk for p in merged.picks} if merged else set())
        rec = _one(
            strategy,
            placement,
            n=want,
            user=user,
            user_id=user_id,
            session_key=session_key,
            product=product,
            category=category,
            exclude=taken,
            model_strategy=model_strategy,
            extra_rules=extra_rules,
            ruleset=ruleset,
        )
        if rec is None:
            continue
        if merged is None:
            merged = rec
        elif rec.picks:
            merged = replace(
                merged,
                picks=merged.picks + rec.picks[:want],
                rule_ids=tuple(sorted(set(merged.rule_ids) | set(rec.rule_ids))),
            )
    if merged is None:
        merged = RecommendationList(uuid.uuid4(), [], PLACEMENT_CONTEXTS.get(key, "api"), "", None, "", placement=key)
    if record_impression and merged.picks:
        serving.list_record(merged, user_id=uid, session_key=session_key)
    return merged


def placement_preview(
    key: str, *, rule_id: int, user: User | None, product: Product | None = None
) -> tuple[RecommendationList, RecommendationList]:
    """The admin preview: the placement's list for ``user`` with the live rules plus rule
    ``rule_id`` (even if it is not live yet or is switched off), and without it. Nothing
    is recorded."""
    snap = model_cache.snapshot()
    placement_get(key, snap)
    row = MerchandisingRule.objects.prefetch_related("placements").get(pk=rule_id)
    compiled = rules.rule_compile(row, [p.key for p in row.placements.all()])
    live = rules.rules_for(snap, key)
    without = live.without(rule_id)
    with_rule = RuleSet([*without.rules, compiled], without.long_tail_weight)
    common = {"user": user, "product": product, "record_impression": False}
    return (
        placement_serve(key, ruleset=with_rule, **common),  # type: ignore[arg-type]
        placement_serve(key, ruleset=without, **common),  # type: ignore[arg-type]
    )
