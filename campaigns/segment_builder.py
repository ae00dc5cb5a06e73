"""What the admin's segment builder needs to draw its form: every rule of
`campaigns.segments` (read when the page is drawn, so a rule added there appears here
without other edits), the input each parameter takes, the pickers' options and
working examples built from this store's own data.

The builder (static/campaigns/segment_builder.js) writes the same rule tree that
`campaigns.segments` validates; the JSON stays editable as an advanced view."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime

from django.core.cache import cache
from django.db.models import Count, Max, Q
from django.utils import timezone

from shop.models import Category, Order, OrderLine, Product, User
from shop.selectors import category_nodes

from .models import Segment
from .segments import PARAM_CHOICES, RuleError, rule_registry, rules_validate

EXAMPLES_CACHE_KEY = "campaigns:segment-examples:v1:{marks}"
EXAMPLES_CACHE_SECONDS = 600

# The input of a parameter, by its name. Names not listed: ``include_*`` is a checkbox,
# anything else a text box whose value is read as JSON (a number, a list) or text.
PARAM_KINDS: dict[str, str] = {
    "days": "int",
    "size": "int",
    "top": "int",
    "n": "int",
    "limit": "int",
    "percentile": "int",
    "category": "category",
    "product": "product",
    "id": "segment",
    "seed": "seed",
    "value": "bool",
    "in": "strings",
    "emails": "strings",
    "ids": "ints",
    "recency": "scores",
    "frequency": "scores",
    "monetary": "scores",
}
# What a parameter is called in the form (default: its name, spaced).
PARAM_LABELS: dict[str, str] = {
    "days": "in the last … days",
    "in": "countries",
    "value": "yes",
    "include_activity": "or browsed it",
    "include_never": "also who never ordered",
    "include_seed": "include the seed",
    "id": "segment",
    "seed": "like the members of",
    "size": "how many",
}
# Values a new condition starts with (what its rule requires, set to a common choice).
RULE_DEFAULTS: dict[str, dict] = {
    "consent": {"value": True},
    "bought_within": {"days": 30},
    "not_bought_within": {"days": 90},
    "joined_within": {"days": 30},
    "lookalike": {"size": 500},
}


def param_kind(name: str) -> str:
    if name in PARAM_CHOICES:
        return "choice"
    if name in PARAM_KINDS:
        return PARAM_KINDS[name]
    if name.startswith("include_"):
        return "bool"
    return "json"


def category_options() -> list[dict]:
    """Every category as ``Parent › Child``, in tree order (the value is its slug)."""
    nodes = category_nodes()
    by_id = {c.id: c for c in nodes}
    children: dict[int | None, list] = {}
    for c in nodes:
        children.setdefault(c.parent_id if c.parent_id in by_id else None, []).append(c)
    out: list[dict] = []
    stack = [(c, c.name) for c in reversed(children.get(None, []))]
    seen: set[int] = set()
    while stack:
        node, label = stack.pop()
        if node.id in seen:
            continue
        seen.add(node.id)
        out.append({"value": node.slug, "id": node.id, "label": label})
        stack.extend((child, f"{label} › {child.name}") for child in reversed(children.get(node.id, [])))
    return out


def segment_options(*, exclude_id: int | None = None) -> list[dict]:
    qs = Segment.objects.order_by("name").values_list("pk", "name")
    return [{"value": pk, "label": name} for pk, name in qs if pk != exclude_id]


def product_options(*, query: str = "", ids: list[int] | None = None, limit: int = 20) -> list[dict]:
    """Products for the product picker: by name or SKU, or by id (to show a saved choice)."""
    qs = Product.objects.order_by("name")
    if ids:
        qs = qs.filter(pk__in=ids)
    else:
        query = query.strip()
        if not query:
            return []
        qs = qs.filter(Q(name__icontains=query) | Q(sku__iexact=query))
    return [{"value": pk, "label": f"{name} ({sku})"} for pk, name, sku in qs.values_list("pk", "name", "sku")[:limit]]


def _days_back(newest: datetime | None, window: int) -> tuple[int, bool]:
    """``window`` days, counted back from the newest record rather than from today when
    that record is old (an imported history), so an example works on any store; and
    whether it was moved back."""
    if newest is None:
        return window, False
    age = math.ceil((timezone.now() - newest).total_seconds() / 86400)
    return (window + age, True) if age > window // 3 else (window, False)


def _window_label(days: int, window: int, moved: bool, records: str) -> str:
    return f"in the last {window} days of {records} ({days} days back)" if moved else f"in the last {window} days"


def examples() -> list[dict]:
    """`examples_build`, cached for a few minutes while the store's orders, customers and
    categories stay as they were (the segment pages show them)."""
    marks = [
        Order.objects.aggregate(m=Max("pk"))["m"],
        User.objects.aggregate(m=Max("pk"))["m"],
        Category.objects.aggregate(m=Max("pk"), n=Count("pk")),
    ]
    key = EXAMPLES_CACHE_KEY.format(marks=hashlib.blake2b(repr(marks).encode(), digest_size=8).hexdigest())
    return cache.get_or_set(key, examples_build, EXAMPLES_CACHE_SECONDS)


def examples_build() -> list[dict]:
    """Working examples on this store's data: each one is validated before it is offered,
    and its day counts reach back to the store's newest orders and sign-ups."""
    busiest = list(
        OrderLine.objects.values("product__category__slug", "product__category__name")
        .exclude(product__category__isnull=True)
        .annotate(n=Count("id"))
        .order_by("-n")[:1]
    )
    last_order = Order.objects.aggregate(newest=Max("placed_at"))["newest"]
    last_join = User.objects.filter(is_staff=False).aggregate(newest=Max("date_joined"))["newest"]
    recent, recent_moved = _days_back(last_order, 90)
    lapsed, lapsed_moved = _days_back(last_order, 60)
    joined, joined_moved = _days_back(last_join, 30)
    candidates: list[tuple[str, dict]] = []
    if busiest:
        slug, name = busiest[0]["product__category__slug"], busiest[0]["product__category__name"]
        candidates.append(
            (
                f"Bought {name} {_window_label(recent, 90, recent_moved, 'orders')}",
                {
                    "all": [
                        {"rule": "consent", "value": True},
                        {"rule": "bought_category", "category": slug, "days": recent},
                    ]
                },
            )
        )
    candidates += [
        (
            f"Lapsed: no order {_window_label(lapsed, 60, lapsed_moved, 'orders')}",
            {"all": [{"rule": "consent", "value": True}, {"rule": "not_bought_within", "days": lapsed}]},
        ),
        (
            "Big spenders who lapsed",
            {"all": [{"rule": "rfm", "monetary": [5]}, {"rule": "not_bought_within", "days": lapsed}]},
        ),
        (
            "Best customers (RFM 4–5)",
            {"all": [{"rule": "rfm", "recency": [4, 5], "frequency": [4, 5], "monetary": [4, 5]}]},
        ),
        (
            f"Joined {_window_label(joined, 30, joined_moved, 'sign-ups')}",
            {"all": [{"rule": "joined_within", "days": joined}]},
        ),
    ]
    out = []
    for label, rules in candidates:
        try:
            rules_validate(rules)
        except RuleError:
            continue
        out.append({"label": label, "rules": rules, "json": json.dumps(rules)})
    return out


def builder_schema(*, segment_id: int | None, product_url: str) -> dict:
    """Everything the builder's script reads (emitted with ``json_script``)."""
    rules = []
    for rule in rule_registry():
        rules.append(
            {
                **rule,
                "inputs": [
                    {
                        "name": p,
                        "kind": param_kind(p),
                        "label": PARAM_LABELS.get(p, p.replace("_", " ")),
                        "choices": [{"value": v, "label": label} for v, label in PARAM_CHOICES.get(p, [])],
                    }
                    for p in rule["params"]
                ],
                "defaults": RULE_DEFAULTS.get(rule["name"], {}),
            }
        )
    return {
        "rules": rules,
        "categories": category_options(),
        "segments": segment_options(exclude_id=segment_id),
        "examples": examples(),
        "product_url": product_url,
    }
