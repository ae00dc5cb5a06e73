"""Merchandising rules: the rule language, its validation, and the rules pass of serving.

The rule language
-----------------
A *condition* says which products a rule is about. It is a JSON tree; every node is
an object with exactly one key:

==============================================  =================================================
``{}``                                          every product
``{"category": [3, 7]}``                        in these categories or any category below them
``{"product": [12, 40]}``                       these products
``{"price": {"min": 5, "max": 20}}``            price within the bounds (inclusive; either optional)
``{"new_days": 30}``                            added to the catalogue in the last 30 days
``{"stock": {"min": 50}}``                      units in stock within the bounds; untracked stock
                                                (NULL) counts as unlimited
``{"attribute": {"key": "colour", "in": [..]}}``  the product attribute ``key`` is one of the values
                                                (``"equals": v`` for one value, ``"exists": true``)
``{"all": [c, ...]}`` ``{"any": [c, ...]}``      every / at least one sub-condition
``{"not": c}``                                  the sub-condition does not hold
==============================================  =================================================

A *rule* (``MerchandisingRule``, or a per-request rule of an API client) pairs a
condition with an action:

* ``boost`` / ``bury`` by ``weight``: the candidates of a list, in the order serving
  ranked them (model, then fallbacks), get a rank score ``1 - position / pool size``
  (1 for the first, towards 0 for the last); a boost adds its weight to the products
  that match, a bury subtracts it, and the pool is re-sorted (stable). A weight of 1
  moves a product past every product no rule touches; 0.1 about a tenth of the pool.
* ``include``: only matching products are shown (several include rules: all must match).
* ``exclude``: matching products are never shown.
* ``pin``: ``product`` is put at ``position`` (1 = first) after diversity, so the
  per-category cap never moves it; a pin respects what must never be shown (inactive,
  out of stock, bought, the product on screen, a category page's category).

Where rules apply: once, in ``serving`` -- after scoring and candidate generation and
before the diversity cap -- for every list (the store, the API, emails through
``recommend_for_users_batch``, the ``recommend`` export). A rule applies to the
placements it names, or everywhere when it names none, between ``starts_at`` and
``ends_at``. The pass looks at the first ``pool_size(n)`` candidates (``1.5n``, at
least ``n + 5``, as many as serving reads without rules; up to twice that for a
diverse list; all of them only when filters leave the list short): a boost reorders what the recommender proposed, it does not add
products the recommender never proposed (a pin does).

A placement's ``long_tail_weight`` (0 = off) re-ranks the pool towards less popular
products first (``long_tail.rerank_positions``: popularity calibration), then the rules
apply.

Each shown product carries its rule effects (``RuleEffect``: rule id, action, weight)
and the list records the ids of the rules that changed it (``Impression.rule_ids``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import cached_property

from django.db.models import BigIntegerField, CharField, FloatField, Value

from shop.models import Category, Product
from shop.selectors import category_descendant_ids

from .model_cache import Snapshot
from .models import MerchandisingRule, Placement

MAX_DEPTH = 8
MAX_NODES = 200
MAX_IDS = 1000
MAX_REQUEST_RULES = 20
MAX_WEIGHT = 10.0
ACTIONS = ("boost", "bury", "include", "exclude", "pin")
LEAVES = ("category", "product", "price", "new_days", "stock", "attribute")
GROUPS = ("all", "any", "not")
# The product fields a condition may read (``attributes`` only when a rule reads them).
NEEDS_ATTRIBUTES = "attribute"

Predicate = Callable[[Product, float], bool]  # (product, now as a timestamp) -> matches


class RuleError(ValueError):
    """A rule or condition that is not valid; ``path`` names the bad part
    (``"condition.all[1].price.min"``)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


@dataclass(frozen=True)
class RuleEffect:
    """What one rule did to one product of a list."""

    rule_id: int | None  # None: a per-request rule of an API client
    action: str
    weight: float = 0.0
    name: str = ""

    def as_dict(self) -> dict:
        return {"rule_id": self.rule_id, "action": self.action, "weight": self.weight, "name": self.name}


@dataclass(frozen=True)
class CompiledRule:
    id: int | None
    name: str
    action: str
    weight: float
    predicate: Predicate
    reads_attributes: bool
    placements: frozenset[str] = frozenset()  # empty: every placement
    starts_at: float | None = None
    ends_at: float | None = None
    product_id: int | None = None
    position: int | None = None

    def live(self, now: float) -> bool:
        return (self.starts_at is None or self.starts_at <= now) and (self.ends_at is None or now < self.ends_at)

    @cached_property
    def effect(self) -> RuleEffect:
        signed = self.weight if self.action == "boost" else -self.weight if self.action == "bury" else 0.0
        return RuleEffect(self.id, self.action, signed, self.name)


@dataclass
class RuleSet:
    """The rules of one list (live, for its placement, plus the request's own)."""

    rules: list[CompiledRule] = field(default_factory=list)
    long_tail_weight: float = 0.0  # the placement's (``Placement.long_tail_weight``): 0 = off

    def __bool__(self) -> bool:
        return bool(self.rules) or self.long_tail_weight > 0

    @property
    def reads_attributes(self) -> bool:
        return any(r.reads_attributes for r in self.rules)

    @property
    def pins(self) -> list[CompiledRule]:
        return sorted((r for r in self.rules if r.action == "pin"), key=lambda r: (r.position or 1, -(r.id or 0)))

    def without(self, rule_id: int) -> RuleSet:
        return RuleSet([r for r in self.rules if r.id != rule_id], self.long_tail_weight)


# --- the language: validation and compilation ---------------------------------------------
def _number(value, path: str, *, minimum: float | None = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise RuleError(path, f"must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise RuleError(path, "must be a finite number")
    if minimum is not None and number < minimum:
        raise RuleError(path, f"must be at least {minimum:g}, got {number:g}")
    return number


def _ids(value, path: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise RuleError(path, "must be a non-empty list of ids")
    if len(value) > MAX_IDS:
        raise RuleError(path, f"at most {MAX_IDS} ids")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int) or not 1 <= item < 2**63:
            raise RuleError(f"{path}[{i}]", f"must be a positive whole number, got {item!r}")
        out.append(item)
    return out


def _bounds(value, path: str, *, whole: bool) -> tuple[float | None, float | None]:
    if not isinstance(value, dict) or not value:
        raise RuleError(path, 'must be an object with "min" and/or "max"')
    unknown = set(value) - {"min", "max"}
    if unknown:
        raise RuleError(path, f'unknown key {sorted(unknown)[0]!r}; use "min" and/or "max"')
    low = _number(value["min"], f"{path}.min") if "min" in value else None
    high = _number(value["max"], f"{path}.max") if "max" in value else None
    if whole and any(b is not None and b != int(b) for b in (low, high)):
        raise RuleError(path, "bounds must be whole numbers")
    if low is not None and high is not None and low > high:
        raise RuleError(path, f"min ({low:g}) is greater than max ({high:g})")
    return low, high


def _scalar(value, path: str):
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise RuleError(path, f"must be a string, number, true/false or null, got {type(value).__name__}")


class _Compiler:
    """One condition tree -> a predicate, checking every node (and that the categories exist)."""

    def __init__(self, *, categories: Callable[[list[int]], set[int]] | None) -> None:
        self.nodes = 0
        self.reads_attributes = False
        self.categories = categories

    def compile(self, node, path: str, depth: int = 0) -> Predicate:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise RuleError(path, f"a condition has at most {MAX_NODES} nodes")
        if depth > MAX_DEPTH:
            raise RuleError(path, f"conditions nest at most {MAX_DEPTH} deep")
        if not isinstance(node, dict):
            raise RuleError(path, f"a condition is an object, got {type(node).__name__}")
        if not node:
            return lambda p, now: True
        if len(node) != 1:
            raise RuleError(path, f"a condition node has exactly one key, got {sorted(node)}")
        ((key, value),) = node.items()
        here = f"{path}.{key}" if path else key
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise RuleError(here, "must be a non-empty list of conditions")
            parts = [self.compile(v, f"{here}[{i}]", depth + 1) for i, v in enumerate(value)]
            if key == "all":
                return lambda p, now: all(f(p, now) for f in parts)
            return lambda p, now: any(f(p, now) for f in parts)
        if key == "not":
            inner = self.compile(value, here, depth + 1)
            return lambda p, now: not inner(p, now)
        if key == "category":
            ids = _ids(value, here)
            if self.categories is None:
                wanted = set(ids)
            else:
                wanted = self.categories(ids)
            return lambda p, now: p.category_id in wanted
        if key == "product":
            product_ids = set(_ids(value, here))
            return lambda p, now: p.pk in product_ids
        if key == "price":
            low, high = _bounds(value, here, whole=False)
            return lambda p, now: (low is None or float(p.price) >= low) and (high is None or float(p.price) <= high)
        if key == "stock":
            low, high = _bounds(value, here, whole=True)

            def stock(p: Product, now: float) -> bool:
                units = math.inf if p.stock is None else p.stock
                return (low is None or units >= low) and (high is None or units <= high)

            return stock
        if key == "new_days":
            days = _number(value, here)
            if days <= 0 or days > 36500:
                raise RuleError(here, f"must be a number of days from 1 to 36500, got {value!r}")
            seconds = days * 86400
            return lambda p, now: p.created_at is not None and now - p.created_at.timestamp() <= seconds
        if key == "attribute":
            return self.attribute(value, here)
        raise RuleError(here, f"unknown condition {key!r}; use one of {list(LEAVES + GROUPS)}")

    def attribute(self, value, path: str) -> Predicate:
        if not isinstance(value, dict) or "key" not in value:
            raise RuleError(path, 'must be an object with "key" and one of "equals", "in", "exists"')
        name = value["key"]
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise RuleError(f"{path}.key", "must be a non-empty attribute name (at most 100 characters)")
        tests = set(value) - {"key"}
        if len(tests) != 1 or not tests <= {"equals", "in", "exists"}:
            raise RuleError(path, 'needs exactly one of "equals", "in", "exists" besides "key"')
        self.reads_attributes = True
        (test,) = tests
        if test == "exists":
            if not isinstance(value["exists"], bool):
                raise RuleError(f"{path}.exists", "must be true or false")
            present = value["exists"]
            return lambda p, now: (name in (p.attributes or {})) == present
        if test == "equals":
            values = [_scalar(value["equals"], f"{path}.equals")]
        else:
            if not isinstance(value["in"], list) or not value["in"]:
                raise RuleError(f"{path}.in", "must be a non-empty list of values")
            values = [_scalar(v, f"{path}.in[{i}]") for i, v in enumerate(value["in"])]
        folded = {v.casefold() if isinstance(v, str) else v for v in values}

        def attribute(p: Product, now: float) -> bool:
            attrs = p.attributes or {}
            if name not in attrs:
                return False
            found = attrs[name]
            items = found if isinstance(found, list) else [found]
            return any((v.casefold() if isinstance(v, str) else v) in folded for v in items if not isinstance(v, dict))

        return attribute


def _existing_categories(ids: list[int]) -> set[int]:
    """The categories and every category below them; ``RuleError`` names an unknown one."""
    known = set(Category.objects.filter(pk__in=ids).values_list("pk", flat=True))
    missing = [i for i in ids if i not in known]
    if missing:
        raise RuleError("", f"unknown category {missing[0]}")
    out: set[int] = set()
    for cid in ids:
        out |= set(category_descendant_ids(category_id=cid))
    return out


def condition_compile(condition, *, path: str = "condition", check_categories: bool = True) -> tuple[Predicate, bool]:
    """A condition tree -> (predicate, whether it reads product attributes);
    ``RuleError`` names the first bad node."""
    if isinstance(condition, str):
        raise RuleError(path, "a condition is a JSON object, not a string")
    compiler = _Compiler(categories=_category_lookup(path) if check_categories else None)
    predicate = compiler.compile(condition, path)
    return predicate, compiler.reads_attributes


def _category_lookup(path: str) -> Callable[[list[int]], set[int]]:
    def lookup(ids: list[int]) -> set[int]:
        try:
            return _existing_categories(ids)
        except RuleError as exc:
            raise RuleError(f"{path}.category" if path else "category", exc.message) from None

    return lookup


def condition_check(condition, *, path: str = "condition") -> None:
    """Validate a condition tree (categories must exist); ``RuleError`` if not."""
    condition_compile(condition, path=path)


def _timestamp(at: datetime | None) -> float | None:
    return at.timestamp() if at is not None else None


def rule_check(*, action: str, condition, weight: float | None, product_id: int | None, position: int | None) -> None:
    """The checks a rule must pass before it is saved (admin form, services)."""
    if action not in ACTIONS:
        raise RuleError("action", f"unknown action {action!r}; use one of {list(ACTIONS)}")
    if action == "pin":
        if product_id is None:
            raise RuleError("product", "a pin needs a product")
        if position is None or position < 1:
            raise RuleError("position", "a pin needs a position of 1 or more")
        return
    condition_check(condition)
    if action in ("boost", "bury"):
        w = _number(weight, "weight")
        if not 0 < w <= MAX_WEIGHT:
            raise RuleError("weight", f"must be above 0 and at most {MAX_WEIGHT:g}, got {w:g}")


def rule_compile(rule: MerchandisingRule, placements: Iterable[str] = ()) -> CompiledRule:
    if rule.action == "pin":
        predicate: Predicate = lambda p, now: p.pk == rule.product_id  # noqa: E731
        reads = False
    else:
        predicate, reads = condition_compile(rule.condition, path=f"rule {rule.pk} condition")
    return CompiledRule(
        id=rule.pk,
        name=rule.name,
        action=rule.action,
        weight=float(rule.weight or 0.0),
        predicate=predicate,
        reads_attributes=reads,
        placements=frozenset(placements),
        starts_at=_timestamp(rule.starts_at),
        ends_at=_timestamp(rule.ends_at),
        product_id=rule.product_id,
        position=rule.position,
    )


def request_rules(filter_condition=None, boosts: Sequence | None = None) -> list[CompiledRule]:
    """An API client's per-request rules: ``filter`` (a condition: only matching
    products) and ``boosts`` (a list of ``{"if": condition, "weight": w}``, a negative
    weight buries), validated with the same language; ``RuleError`` names the bad part."""
    out: list[CompiledRule] = []
    if filter_condition is not None:
        predicate, reads = condition_compile(filter_condition, path="filter")
        out.append(CompiledRule(None, "filter", "include", 0.0, predicate, reads))
    if boosts is not None:
        if not isinstance(boosts, list):
            raise RuleError("boost", 'must be a list of {"if": condition, "weight": number}')
        if len(boosts) > MAX_REQUEST_RULES:
            raise RuleError("boost", f"at most {MAX_REQUEST_RULES} boosts")
        for i, item in enumerate(boosts):
            path = f"boost[{i}]"
            if not isinstance(item, dict) or set(item) != {"if", "weight"}:
                raise RuleError(path, 'must be an object with exactly "if" and "weight"')
            weight = _number(item["weight"], f"{path}.weight", minimum=None)
            if weight == 0 or abs(weight) > MAX_WEIGHT:
                raise RuleError(f"{path}.weight", f"must be non-zero and within ±{MAX_WEIGHT:g}, got {weight:g}")
            predicate, reads = condition_compile(item["if"], path=f"{path}.if")
            action = "boost" if weight > 0 else "bury"
            out.append(CompiledRule(None, f"request boost {i + 1}", action, abs(weight), predicate, reads))
    return out


# --- the live rules ----------------------------------------------------------------------------
def _load_all() -> tuple[list[CompiledRule], dict[str, float]]:
    """The enabled rules (compiled) and the placements' long-tail weights: one query
    when there is no rule (the usual case), the rules themselves only when there are."""
    rule_ids = MerchandisingRule.objects.filter(is_active=True).annotate(
        k=Value("", CharField()), w=Value(0.0, FloatField())
    )
    weights = Placement.objects.filter(long_tail_weight__gt=0, is_active=True).annotate(i=Value(0, BigIntegerField()))
    rows = list(  # no ORDER BY inside a UNION (SQLite refuses the models' default ordering there)
        rule_ids.order_by()
        .values_list("id", "k", "w")
        .union(weights.order_by().values_list("i", "key", "long_tail_weight"), all=True)
    )
    long_tail = {key: float(weight) for i, key, weight in rows if key}
    if not any(key == "" for _, key, _ in rows):
        return [], long_tail
    out = []
    for rule in MerchandisingRule.objects.filter(is_active=True).prefetch_related("placements"):
        try:
            out.append(rule_compile(rule, [p.key for p in rule.placements.all()]))
        except RuleError:  # saved before a category it names was deleted: it matches nothing
            continue
    return out, long_tail


def rules_for(
    snap: Snapshot, placement: str, *, now: float | None = None, extra: Sequence[CompiledRule] = ()
) -> RuleSet:
    """The rules of a list: enabled, live at ``now``, global or for ``placement``, plus
    ``extra`` (the request's). The enabled rules are read once per serving epoch (a rule
    or placement saved bumps it) and kept on the snapshot; the time window is checked per call."""
    memo = snap.memo.get("merch_rules")
    if memo is None:
        memo = snap.memo["merch_rules"] = _load_all()
    compiled, weights = memo
    weight = float(weights.get(placement, 0.0))
    if not compiled and not extra:
        return RuleSet(long_tail_weight=weight)
    now = time.time() if now is None else now
    live = [r for r in compiled if (not r.placements or placement in r.placements) and r.live(now)]
    return RuleSet(live + list(extra), weight)


# --- the pass ------------------------------------------------------------------------------------
def allows(ruleset: RuleSet, product: Product, now: float) -> bool:
    """Whether the include and exclude rules let ``product`` be shown (products added
    after the pass: a quiet category page's newest products)."""
    return _blocking(ruleset.rules, product, now) is None


def _blocking(rules: Sequence[CompiledRule], product: Product, now: float) -> CompiledRule | None:
    """The first exclude rule that matches ``product``, else the first include rule it
    fails (None: it may be shown)."""
    hit = next((r for r in rules if r.action == "exclude" and r.predicate(product, now)), None)
    if hit is None:
        hit = next((r for r in rules if r.action == "include" and not r.predicate(product, now)), None)
    return hit


def pool_size(n: int) -> int:
    """How many of a list's first candidates the rules pass re-ranks (as many as serving
    reads without rules: the rules cost no extra product rows)."""
    return n + max(5, n // 2)


def reorder(
    entries: Sequence[tuple[str, object, int]],
    products: Mapping[int, Product],
    ruleset: RuleSet,
    *,
    now: float,
) -> tuple[list[tuple[str, object, int]], dict[int, list[RuleEffect]], set[int]]:
    """The rules pass over ranked candidates ``(level label, candidate, product id)``:
    drop what exclude/include rules say, re-rank by boosts and buries (see the module
    doc), and return the new order, each product's effects and the ids of the
    exclude/include rules that dropped a candidate. Candidates whose product is
    unknown are dropped (they cannot be shown either)."""
    scored = [r for r in ruleset.rules if r.action in ("boost", "bury")]
    includes = [r for r in ruleset.rules if r.action == "include"]
    filters = [r for r in ruleset.rules if r.action in ("include", "exclude")]
    size = max(len(entries), 1)
    ranked: list[tuple[float, int, tuple[str, object, int]]] = []
    effects: dict[int, list[RuleEffect]] = {}
    dropped_by: set[int] = set()
    for i, entry in enumerate(entries):
        product = products.get(entry[2])
        if product is None:
            continue
        hit = _blocking(filters, product, now)
        if hit is not None:
            if hit.id is not None:
                dropped_by.add(hit.id)
            continue
        score = 1.0 - i / size
        mine = []
        for r in scored:
            if r.predicate(product, now):
                e = r.effect
                score += e.weight
                mine.append(e)
        if includes:
            mine += [r.effect for r in includes]
        if mine:
            effects[entry[2]] = mine
        ranked.append((-score, i, entry))
    ranked.sort(key=lambda t: (t[0], t[1]))
    return [e for _, _, e in ranked], effects, dropped_by
