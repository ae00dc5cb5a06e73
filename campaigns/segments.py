"""Segment rules -> querysets of customers.

A segment is a rule tree stored as JSON::

    {"all": [ node, ... ]}      every node holds (AND)
    {"any": [ node, ... ]}      at least one holds (OR)
    {"not": node}               the node does not hold
    {"rule": "<name>", ...}     a rule (below)

Rules (``days`` are whole days counted back from now; categories by id or slug and
include their sub-categories):

===================  ==================================================================
``consent``          ``value`` (default true): has (or lacks) marketing consent
``country``          ``in``: list of countries (as stored on the customer)
``bought_category``  ``category``, optional ``days``: bought a product of the category
``interested_in``    ``category``; ``include_activity`` (default false) also counts views,
                     clicks, carts and wishes in the category, within optional ``days``
``bought_within``    ``days``: placed an order in the last N days
``not_bought_within``  ``days``: has ordered before but not in the last N days;
                     ``include_never`` (default false) also takes who never ordered
``joined_within``    ``days``: signed up in the last N days
``rfm``              ``recency`` / ``frequency`` / ``monetary``: lists of quintile scores
                     1..5 (5 = most recent / most orders / most spent), at least one
``users``            a fixed list: ``ids`` and/or ``emails``
``lookalike``        ``seed``: ``{"segment": id}``, ``{"ids": [...]}`` or ``{"emails": [...]}``;
                     ``size`` (1..20000): the customers whose purchase histories are most
                     similar (cosine over the customer x product matrix) to the seed's
``segment``          ``id``: members of another segment
``likely_buyers``    ``product`` (id or SKU), ``size`` (1..20000): the customers most likely
                     to want the product, best first (the active model's item-to-customer
                     scores, or content similarity for a product the model does not know;
                     ``recommendations.trends``); who bought it already is left out
``churn_risk``       ``above`` and/or ``below`` (0..1): the predicted risk that the customer
                     no longer buys here (1 - probability of being active, BG/NBD)
``predicted_value``  ``top_percent`` (0..100] and/or ``above`` (an amount): the predicted
                     value of the next 12 months (Gamma-Gamma), as a top share or a floor
``expected_purchases``  ``above`` and/or ``below``: predicted orders in the next 90 days
===================  ==================================================================

The three prediction rules read ``shop.CustomerPrediction`` (computed by
``recommendations.predictions``): a customer without a prediction never matches them.
Orders that were cancelled never count. Validation names every problem with its
path in the tree (``all[1].days: must be a whole number of days >= 1``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.db import connection
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet, Sum
from django.db.models.expressions import RawSQL
from django.utils import timezone
from scipy import sparse

from recommendations import services as recommendations_services
from shop.models import Category, CustomerPrediction, Interaction, Order, OrderLine, Product, User
from shop.selectors import category_descendant_ids

from .models import Segment

MAX_DAYS = 36500
MAX_LIST = 20000
MAX_LOOKALIKE = 20000
MAX_DEPTH = 12
RULE_NAMES = (
    "consent",
    "country",
    "bought_category",
    "interested_in",
    "bought_within",
    "not_bought_within",
    "joined_within",
    "rfm",
    "users",
    "lookalike",
    "segment",
    "likely_buyers",
    "churn_risk",
    "predicted_value",
    "expected_purchases",
)
ACTIVITY_KINDS = (
    Interaction.Kind.VIEW,
    Interaction.Kind.CLICK,
    Interaction.Kind.ADD_TO_CART,
    Interaction.Kind.WISHLIST,
    Interaction.Kind.PURCHASE,
    Interaction.Kind.RATING,
)


class RuleError(ValueError):
    """The rule tree is invalid; ``messages`` names every problem with its path."""

    def __init__(self, messages: list[str]):
        self.messages = messages
        super().__init__("; ".join(messages))


# --- validation ---------------------------------------------------------------------
@dataclass
class _Checker:
    segment_id: int | None
    errors: list[str] = field(default_factory=list)
    visiting: set[int] = field(default_factory=set)

    def err(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}" if path else message)

    def days(self, node: dict, path: str, key: str = "days", *, required: bool = True) -> None:
        if key not in node:
            if required:
                self.err(f"{path}.{key}", "is required (a whole number of days >= 1)")
            return
        value = node[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
            self.err(f"{path}.{key}", f"must be a whole number of days between 1 and {MAX_DAYS}, not {value!r}")

    def boolean(self, node: dict, path: str, key: str) -> None:
        if key in node and not isinstance(node[key], bool):
            self.err(f"{path}.{key}", f"must be true or false, not {node[key]!r}")

    def category(self, node: dict, path: str) -> None:
        if "category" not in node:
            self.err(f"{path}.category", "is required (a category id or slug)")
            return
        if _category_lookup(node["category"]) is None:
            self.err(f"{path}.category", f"unknown category {node['category']!r}")

    def id_list(self, value, path: str) -> list[int] | None:
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            self.err(path, "must be a list of customer ids (whole numbers)")
            return None
        if len(value) > MAX_LIST:
            self.err(path, f"at most {MAX_LIST} entries")
            return None
        unknown = sorted(set(value) - set(User.objects.filter(pk__in=value).values_list("pk", flat=True)))
        if unknown:
            self.err(
                path,
                f"unknown customer id(s): {', '.join(map(str, unknown[:10]))}"
                + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""),
            )
        return value

    def email_list(self, value, path: str) -> list[str] | None:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.err(path, "must be a list of email addresses")
            return None
        if len(value) > MAX_LIST:
            self.err(path, f"at most {MAX_LIST} entries")
            return None
        wanted = {v.strip().lower() for v in value}
        known = set(User.objects.filter(email__in=wanted).values_list("email", flat=True))
        unknown = sorted(wanted - known)
        if unknown:
            self.err(
                path,
                f"unknown customer email(s): {', '.join(unknown[:10])}"
                + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""),
            )
        return value

    def segment_ref(self, value, path: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.err(path, f"must be a segment id, not {value!r}")
            return
        if value == self.segment_id or value in self.visiting:
            self.err(path, f"segment {value} refers back to itself (a cycle)")
            return
        other = Segment.objects.filter(pk=value).values_list("rules", flat=True).first()
        if other is None:
            self.err(path, f"unknown segment {value}")
            return
        # The referenced segment must not lead back to this one.
        self.visiting.add(value)
        inner = _Checker(segment_id=self.segment_id, visiting=self.visiting)
        inner.node(other, "", 0)
        self.visiting.discard(value)
        for message in inner.errors:
            if "cycle" in message:
                self.err(path, f"segment {value} refers back to this segment (a cycle)")
                break

    def node(self, node, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            self.err(path, f"rules nest deeper than {MAX_DEPTH} levels")
            return
        if not isinstance(node, dict):
            self.err(path, f"must be an object, not {type(node).__name__}")
            return
        combinators = [k for k in ("all", "any", "not") if k in node]
        if combinators:
            if len(node) != 1:
                self.err(path, f"a {combinators[0]!r} node holds nothing else (found {sorted(node)})")
                return
            key = combinators[0]
            if key == "not":
                self.node(node["not"], f"{path}.not" if path else "not", depth + 1)
                return
            children = node[key]
            if not isinstance(children, list) or not children:
                self.err(f"{path}.{key}" if path else key, "must be a non-empty list of rules")
                return
            for i, child in enumerate(children):
                self.node(child, f"{path}.{key}[{i}]" if path else f"{key}[{i}]", depth + 1)
            return
        name = node.get("rule")
        if name is None:
            self.err(path, 'needs "rule" (or "all", "any", "not")')
            return
        if name not in RULE_NAMES:
            self.err(f"{path}.rule" if path else "rule", f"unknown rule {name!r}; one of {', '.join(RULE_NAMES)}")
            return
        allowed = {"rule", *_PARAMS[name]}
        extra = sorted(set(node) - allowed)
        if extra:
            self.err(path, f"rule {name!r} does not take {', '.join(extra)} (takes {', '.join(_PARAMS[name])})")
        getattr(self, f"rule_{name}")(node, path or name)

    # one method per rule -------------------------------------------------------------
    def rule_consent(self, node, path):
        self.boolean(node, path, "value")

    def rule_country(self, node, path):
        value = node.get("in")
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            self.err(f"{path}.in", "must be a non-empty list of country names")

    def rule_bought_category(self, node, path):
        self.category(node, path)
        self.days(node, path, required=False)

    def rule_interested_in(self, node, path):
        self.category(node, path)
        self.boolean(node, path, "include_activity")
        self.days(node, path, required=False)

    def rule_bought_within(self, node, path):
        self.days(node, path)

    def rule_not_bought_within(self, node, path):
        self.days(node, path)
        self.boolean(node, path, "include_never")

    def rule_joined_within(self, node, path):
        self.days(node, path)

    def rule_rfm(self, node, path):
        present = [k for k in ("recency", "frequency", "monetary") if k in node]
        if not present:
            self.err(path, "needs at least one of recency, frequency, monetary (lists of scores 1..5)")
        for key in present:
            value = node[key]
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 5 for v in value)
            ):
                self.err(f"{path}.{key}", f"must be a non-empty list of quintile scores 1..5, not {value!r}")

    def rule_users(self, node, path):
        if "ids" not in node and "emails" not in node:
            self.err(path, "needs ids and/or emails")
        if "ids" in node:
            self.id_list(node["ids"], f"{path}.ids")
        if "emails" in node:
            self.email_list(node["emails"], f"{path}.emails")

    def rule_lookalike(self, node, path):
        seed = node.get("seed")
        if not isinstance(seed, dict) or len(seed) != 1 or next(iter(seed)) not in ("segment", "ids", "emails"):
            self.err(f"{path}.seed", 'must be {"segment": id}, {"ids": [...]} or {"emails": [...]}')
        else:
            key, value = next(iter(seed.items()))
            if key == "segment":
                self.segment_ref(value, f"{path}.seed.segment")
            elif key == "ids":
                if self.id_list(value, f"{path}.seed.ids") == []:
                    self.err(f"{path}.seed.ids", "must name at least one customer")
            elif self.email_list(value, f"{path}.seed.emails") == []:
                self.err(f"{path}.seed.emails", "must name at least one customer")
        size = node.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_LOOKALIKE:
            self.err(f"{path}.size", f"must be a whole number between 1 and {MAX_LOOKALIKE}, not {size!r}")
        self.boolean(node, path, "include_seed")

    def rule_segment(self, node, path):
        self.segment_ref(node.get("id"), f"{path}.id")

    def number(self, node: dict, path: str, key: str, low: float, high: float | None) -> None:
        if key not in node:
            return
        value = node[key]
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or value < low or (high is not None and value > high):
            bounds = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
            self.err(f"{path}.{key}", f"must be a number {bounds}, not {value!r}")

    def bounds(self, node: dict, path: str, keys: tuple[str, ...], low: float, high: float | None) -> None:
        if not any(k in node for k in keys):
            self.err(path, f"needs {' and/or '.join(keys)}")
        for key in keys:
            self.number(node, path, key, low, high)

    def rule_churn_risk(self, node, path):
        self.bounds(node, path, ("above", "below"), 0.0, 1.0)

    def rule_predicted_value(self, node, path):
        self.bounds(node, path, ("top_percent", "above"), 0.0, None)
        self.number(node, path, "top_percent", 0.0, 100.0)
        if node.get("top_percent") == 0:
            self.err(f"{path}.top_percent", "must be above 0 (a share of customers, up to 100)")

    def rule_expected_purchases(self, node, path):
        self.bounds(node, path, ("above", "below"), 0.0, None)

    def rule_likely_buyers(self, node, path):
        if "product" not in node:
            self.err(f"{path}.product", "is required (a product id or SKU)")
        elif _product_lookup(node["product"]) is None:
            self.err(f"{path}.product", f"unknown product {node['product']!r} (a product id or SKU)")
        size = node.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_LOOKALIKE:
            self.err(f"{path}.size", f"must be a whole number between 1 and {MAX_LOOKALIKE}, not {size!r}")


_PARAMS: dict[str, tuple[str, ...]] = {
    "consent": ("value",),
    "country": ("in",),
    "bought_category": ("category", "days"),
    "interested_in": ("category", "include_activity", "days"),
    "bought_within": ("days",),
    "not_bought_within": ("days", "include_never"),
    "joined_within": ("days",),
    "rfm": ("recency", "frequency", "monetary"),
    "users": ("ids", "emails"),
    "lookalike": ("seed", "size", "include_seed"),
    "segment": ("id",),
    "likely_buyers": ("product", "size"),
    "churn_risk": ("above", "below"),
    "predicted_value": ("top_percent", "above"),
    "expected_purchases": ("above", "below"),
}

# What the admin's segment builder shows for each rule: (label, one-line help). A rule
# missing here still appears in the builder, under its name. Inputs are chosen by
# parameter name (see campaigns/admin.py, ``PARAM_KINDS``); a parameter with a fixed
# set of values lists them in PARAM_CHOICES: {"param": [(value, label), ...]}.
RULE_HELP: dict[str, tuple[str, str]] = {
    "consent": ("Marketing consent", "has agreed to marketing emails (untick: has not)"),
    "country": ("Country", "lives in one of these countries (comma-separated, as stored)"),
    "bought_category": ("Bought in category", "bought a product of the category (sub-categories too)"),
    "interested_in": ("Interested in category", "chose the category as an interest, or (optionally) browsed it"),
    "bought_within": ("Ordered recently", "placed an order in the last N days"),
    "not_bought_within": ("Lapsed", "has ordered before but not in the last N days"),
    "joined_within": ("Joined recently", "signed up in the last N days"),
    "rfm": ("RFM scores", "recency / frequency / monetary quintiles, 5 = best"),
    "users": ("Chosen customers", "a fixed list of customer ids and/or emails"),
    "lookalike": ("Lookalikes", "the customers whose purchases are most like a seed group's"),
    "segment": ("In another segment", "members of another segment"),
    "likely_buyers": ("Likely buyers of a product", "the N customers most likely to want the product (id or SKU)"),
    "churn_risk": ("Churn risk", "predicted risk (0..1) that the customer no longer buys: above and/or below"),
    "predicted_value": ("Predicted value", "top N% by predicted 12-month value, and/or a value above an amount"),
    "expected_purchases": ("Expected purchases", "predicted orders in the next 90 days: above and/or below"),
}
PARAM_CHOICES: dict[str, list[tuple[object, str]]] = {}


def rules_validate(rules, *, segment_id: int | None = None) -> None:
    """Raise `RuleError` naming every problem of the rule tree (paths included)."""
    checker = _Checker(segment_id=segment_id)
    checker.node(rules, "", 0)
    if checker.errors:
        raise RuleError(checker.errors)


# --- rules -> Q ---------------------------------------------------------------------
def _category_lookup(value) -> Category | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Category.objects.filter(pk=value).first()
    if isinstance(value, str) and value:
        return Category.objects.filter(slug=value).first()
    return None


def _product_lookup(value) -> int | None:
    """A product's id from its id or SKU (None: no such product)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Product.objects.filter(pk=value).values_list("pk", flat=True).first()
    if isinstance(value, str) and value.strip():
        return Product.objects.filter(sku=value.strip()).values_list("pk", flat=True).first()
    return None


def _valid_orders() -> QuerySet[Order]:
    return Order.objects.exclude(status=Order.Status.CANCELLED)


@dataclass
class _Builder:
    now: datetime
    segment_stack: tuple[int, ...] = ()

    def since(self, days: int) -> datetime:
        return self.now - timedelta(days=days)

    def node(self, node: dict) -> Q:
        if "all" in node:
            q = Q()
            for child in node["all"]:
                q &= self.node(child)
            return q
        if "any" in node:
            q = self.node(node["any"][0])
            for child in node["any"][1:]:
                q |= self.node(child)
            return q
        if "not" in node:
            return ~self.node(node["not"])
        return getattr(self, f"rule_{node['rule']}")(node)

    def categories(self, node: dict) -> list[int]:
        category = _category_lookup(node["category"])
        if category is None:
            raise RuleError([f"unknown category {node['category']!r}"])
        return category_descendant_ids(category_id=category.pk)

    def rule_consent(self, node):
        return Q(marketing_consent=node.get("value", True))

    def rule_country(self, node):
        return Q(country__in=[c.strip() for c in node["in"]])

    def rule_bought_category(self, node):
        lines = OrderLine.objects.filter(
            order__user=OuterRef("pk"), product__category_id__in=self.categories(node)
        ).exclude(order__status=Order.Status.CANCELLED)
        if node.get("days"):
            lines = lines.filter(order__placed_at__gte=self.since(node["days"]))
        return Q(Exists(lines))

    def rule_interested_in(self, node):
        ids = self.categories(node)
        through = User.interests.through
        q = Q(Exists(through.objects.filter(user_id=OuterRef("pk"), category_id__in=ids)))
        if node.get("include_activity"):
            acts = Interaction.objects.filter(
                user=OuterRef("pk"), product__category_id__in=ids, kind__in=ACTIVITY_KINDS
            )
            if node.get("days"):
                acts = acts.filter(occurred_at__gte=self.since(node["days"]))
            q |= Q(Exists(acts))
        return q

    def rule_bought_within(self, node):
        return Q(Exists(_valid_orders().filter(user=OuterRef("pk"), placed_at__gte=self.since(node["days"]))))

    def rule_not_bought_within(self, node):
        recent = Exists(_valid_orders().filter(user=OuterRef("pk"), placed_at__gte=self.since(node["days"])))
        q = ~Q(recent)
        if not node.get("include_never"):
            q &= Q(Exists(_valid_orders().filter(user=OuterRef("pk"))))
        return q

    def rule_joined_within(self, node):
        return Q(date_joined__gte=self.since(node["days"]))

    def rule_rfm(self, node):
        return ids_q(
            rfm_user_ids(now=self.now, **{k: node[k] for k in ("recency", "frequency", "monetary") if k in node})
        )

    def rule_users(self, node):
        q = Q(pk__in=[])
        if node.get("ids"):
            q |= ids_q(node["ids"])
        if node.get("emails"):
            q |= Q(email__in=[e.strip().lower() for e in node["emails"]])
        return q

    def rule_lookalike(self, node):
        seed = node["seed"]
        if "segment" in seed:
            seed_ids = list(self.segment_users(seed["segment"]).values_list("pk", flat=True))
        elif "ids" in seed:
            seed_ids = list(seed["ids"])
        else:
            emails = [e.strip().lower() for e in seed["emails"]]
            seed_ids = list(User.objects.filter(email__in=emails).values_list("pk", flat=True))
        ids = lookalike_user_ids(seed_ids=seed_ids, size=node["size"])
        if node.get("include_seed"):
            ids = sorted(set(ids) | set(seed_ids))
        return ids_q(ids)

    def rule_segment(self, node):
        return Q(pk__in=self.segment_users(node["id"]).values("pk"))

    def predicted(self, q: Q) -> Q:
        """Customers whose stored prediction matches ``q`` (none without a prediction)."""
        return Q(Exists(CustomerPrediction.objects.filter(q, user=OuterRef("pk"))))

    def rule_churn_risk(self, node):
        q = Q()
        if "above" in node:
            q &= Q(probability_alive__lt=1.0 - float(node["above"]))  # churn risk = 1 - P(alive)
        if "below" in node:
            q &= Q(probability_alive__gt=1.0 - float(node["below"]))
        return self.predicted(q)

    def rule_predicted_value(self, node):
        q = Q()
        if "top_percent" in node:
            q &= Q(value_percentile__gt=100.0 - float(node["top_percent"]))
        if "above" in node:
            q &= Q(predicted_value__gt=float(node["above"]))
        return self.predicted(q)

    def rule_expected_purchases(self, node):
        q = Q()
        if "above" in node:
            q &= Q(expected_purchases_90d__gt=float(node["above"]))
        if "below" in node:
            q &= Q(expected_purchases_90d__lt=float(node["below"]))
        return self.predicted(q)

    def rule_likely_buyers(self, node):
        product_id = _product_lookup(node["product"])
        if product_id is None:
            raise RuleError([f"unknown product {node['product']!r}"])
        return ids_q(recommendations_services.likely_buyer_ids(product_id=product_id, size=node["size"]))

    def segment_users(self, segment_id: int) -> QuerySet[User]:
        if segment_id in self.segment_stack:
            raise RuleError([f"segment {segment_id} refers back to itself (a cycle)"])
        rules = Segment.objects.filter(pk=segment_id).values_list("rules", flat=True).first()
        if rules is None:
            raise RuleError([f"unknown segment {segment_id}"])
        inner = _Builder(now=self.now, segment_stack=(*self.segment_stack, segment_id))
        return customers_base().filter(inner.node(rules))


def ids_q(ids: Iterable[int], field_name: str = "pk") -> Q:
    """``field IN ids`` with the ids in ONE query parameter when the list is long (a
    PostgreSQL array, an SQLite JSON array), so lists of any size stay within the
    database's limit on parameters."""
    ids = [int(i) for i in ids]
    if len(ids) <= 500:
        return Q(**{f"{field_name}__in": ids})
    if connection.vendor == "postgresql":
        sub = RawSQL("SELECT unnest(%s::bigint[])", (ids,))
    else:
        sub = RawSQL("SELECT value FROM json_each(%s)", (json.dumps(ids),))
    return Q(**{f"{field_name}__in": sub})


def customers_base() -> QuerySet[User]:
    """Everyone a segment can contain: active accounts."""
    return User.objects.filter(is_active=True)


def rules_queryset(rules: dict, *, now: datetime | None = None, segment_id: int | None = None) -> QuerySet[User]:
    """The customers matching ``rules`` (validated first; raises `RuleError`)."""
    rules_validate(rules, segment_id=segment_id)
    builder = _Builder(now=now or timezone.now(), segment_stack=(segment_id,) if segment_id else ())
    return customers_base().filter(builder.node(rules))


def segment_queryset(segment, *, now: datetime | None = None) -> QuerySet[User]:
    return rules_queryset(segment.rules, now=now, segment_id=segment.pk)


# --- RFM ----------------------------------------------------------------------------
def rfm_table(*, now: datetime | None = None) -> dict[int, tuple[int, int, int]]:
    """(recency, frequency, monetary) quintile scores 1..5 of every customer with an
    order. A score is ``1 + floor(5 * percent_rank)`` (capped at 5) of the customer's
    last order time, order count and total spend among all customers with orders, so
    ties share a score and 5 is the most recent / most frequent / biggest spender."""
    rows = list(
        _valid_orders()
        .filter(user__isnull=False)
        .values("user_id")
        .annotate(n=Count("id"), m=Sum("total"), last=Max("placed_at"))
        .values_list("user_id", "last", "n", "m")
    )
    if not rows:
        return {}
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    last = np.fromiter((r[1].timestamp() for r in rows), dtype=np.float64, count=len(rows))
    freq = np.fromiter((r[2] for r in rows), dtype=np.float64, count=len(rows))
    money = np.fromiter((float(r[3] or 0) for r in rows), dtype=np.float64, count=len(rows))
    r, f, m = (_quintile_scores(v) for v in (last, freq, money))
    return {int(u): (int(a), int(b), int(c)) for u, a, b, c in zip(ids, r, f, m, strict=True)}


def _quintile_scores(values: np.ndarray) -> np.ndarray:
    """1 + floor(5 * percent_rank) with ties at their lowest rank (SQL PERCENT_RANK)."""
    n = len(values)
    if n == 1:
        return np.ones(1, dtype=np.int64)
    order = np.argsort(values, kind="stable")
    sorted_vals = values[order]
    # rank of each value = index of its first occurrence among the sorted values
    first = np.searchsorted(sorted_vals, sorted_vals, side="left")
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = first
    pct = ranks / (n - 1)
    return np.minimum(5, 1 + np.floor(pct * 5 + 1e-9).astype(np.int64))


def rfm_user_ids(
    *,
    now: datetime | None = None,
    recency: Iterable[int] = (),
    frequency: Iterable[int] = (),
    monetary: Iterable[int] = (),
) -> list[int]:
    """Ids of the customers whose RFM scores are within the given lists."""
    wanted = (set(recency), set(frequency), set(monetary))
    return [
        uid
        for uid, scores in rfm_table(now=now).items()
        if all(not want or score in want for want, score in zip(wanted, scores, strict=True))
    ]


# --- lookalikes -----------------------------------------------------------------------
def purchase_matrix() -> tuple[np.ndarray, sparse.csr_matrix]:
    """The customer x product purchase matrix (binary, scipy CSR) and its row ids."""
    pairs = (
        OrderLine.objects.filter(order__user__isnull=False)
        .exclude(order__status=Order.Status.CANCELLED)
        .values_list("order__user_id", "product_id")
        .distinct()
    )
    users: list[int] = []
    products: list[int] = []
    for u, p in pairs.iterator(chunk_size=20000):
        users.append(u)
        products.append(p)
    if not users:
        return np.zeros(0, dtype=np.int64), sparse.csr_matrix((0, 0))
    u_ids, u_idx = np.unique(np.asarray(users, dtype=np.int64), return_inverse=True)
    _, p_idx = np.unique(np.asarray(products, dtype=np.int64), return_inverse=True)
    data = np.ones(len(u_idx), dtype=np.float32)
    matrix = sparse.csr_matrix((data, (u_idx, p_idx)), shape=(len(u_ids), int(p_idx.max()) + 1))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return u_ids, matrix


def lookalike_user_ids(*, seed_ids: Iterable[int], size: int) -> list[int]:
    """The ``size`` customers (not in the seed) most similar to the seed group: cosine
    similarity between each customer's purchase row and the mean of the seed's
    L2-normalised rows. Only customers with a positive similarity qualify; ties go to
    the lower id (deterministic)."""
    seed = set(int(s) for s in seed_ids)
    u_ids, matrix = purchase_matrix()
    if not seed or matrix.shape[0] == 0:
        return []
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    normalised = sparse.diags(1.0 / norms) @ matrix
    seed_rows = np.flatnonzero(np.isin(u_ids, np.fromiter(seed, dtype=np.int64)))
    if len(seed_rows) == 0:
        return []  # nobody in the seed has bought anything: nothing to compare with
    centroid = np.asarray(normalised[seed_rows].mean(axis=0)).ravel()
    c_norm = float(np.linalg.norm(centroid))
    if c_norm == 0:
        return []
    sims = np.asarray(normalised @ (centroid / c_norm)).ravel()
    sims[seed_rows] = -math.inf
    candidates = np.flatnonzero(sims > 1e-12)
    if len(candidates) == 0:
        return []
    order = np.lexsort((u_ids[candidates], -sims[candidates]))
    return [int(u) for u in u_ids[candidates[order[:size]]]]


# --- helpers for admin and API ---------------------------------------------------------
@dataclass(frozen=True)
class SegmentPreview:
    count: int
    sample: list[dict]


def rules_preview(rules: dict, *, segment_id: int | None = None, sample_size: int = 10) -> SegmentPreview:
    """How many customers match, and the first few of them (by id)."""
    qs = rules_queryset(rules, segment_id=segment_id)
    sample = list(
        qs.order_by("pk").values("pk", "email", "first_name", "last_name", "country", "marketing_consent")[:sample_size]
    )
    return SegmentPreview(count=qs.count(), sample=sample)


def rule_registry() -> list[dict]:
    """Every rule with its parameters, label and help, for the admin's segment builder
    (read at request time, so a rule added above appears there without other edits)."""
    return [
        {
            "name": name,
            "params": list(_PARAMS.get(name, ())),
            "label": RULE_HELP.get(name, (name.replace("_", " ").capitalize(), ""))[0],
            "help": RULE_HELP.get(name, ("", ""))[1],
        }
        for name in RULE_NAMES
    ]


__all__ = [
    "rule_registry",
    "RuleError",
    "rules_validate",
    "rules_queryset",
    "segment_queryset",
    "rules_preview",
    "rfm_table",
    "lookalike_user_ids",
    "RULE_NAMES",
]
