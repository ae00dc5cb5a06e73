"""Each merchandising rule's effect on offline ranking quality (``manage.py evaluate --rules``).

The protocol, on the database's events:

* the cut is ``holdout_days`` before the newest customer event; a customer's
  *holdout* is what they bought or put in their cart after the cut, and customers with
  events on both sides take part (at most ``max_users``, a seeded sample);
* their lists are made by serving's batch path (``recommend_for_users_batch``, the
  path of emails and the export) from their events *before* the cut, for a placement,
  with exactly one rule set each: none, every live rule of the placement, and every
  live rule but one, for each rule;
* NDCG@k of each list against the holdout (binary relevance), averaged over the
  customers; a rule's effect is NDCG with every rule minus NDCG without that rule.

What to read: the differences. The active model (and trending) may have been trained
on events after the cut, so the absolute values are optimistic; every rule set is
judged on the same lists' inputs, so the differences are each rule's own effect on
what customers went on to buy. Merchandising rules serve business goals -- a rule
that costs some NDCG may be worth it -- this shows the price.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.db.models import Max

from shop.models import Interaction

from . import model_cache, rules, serving
from .engine.evaluation import ndcg_at_k
from .selectors import HistoryEvent

HOLDOUT_KINDS = (Interaction.Kind.PURCHASE, Interaction.Kind.ADD_TO_CART)


@dataclass(frozen=True)
class RuleEffectRow:
    rule_id: int | None  # None: the rows "no rules" and "all rules"
    name: str
    action: str
    ndcg: float  # with the rule set of this row
    delta: float  # ndcg(all rules) - ndcg(all rules but this one); 0 for the summary rows
    users: int


def _sample(holdout_days: float, max_users: int, seed: int):
    newest = Interaction.objects.filter(user__isnull=False).aggregate(m=Max("occurred_at"))["m"]
    if newest is None:
        raise ValueError("no customer events to evaluate on")
    cut = newest - timedelta(days=holdout_days)
    after: dict[int, set[int]] = {}
    for uid, pid in (
        Interaction.objects.filter(user__isnull=False, occurred_at__gt=cut, kind__in=HOLDOUT_KINDS)
        .values_list("user_id", "product_id")
        .distinct()
        .iterator(chunk_size=20_000)
    ):
        after.setdefault(uid, set()).add(pid)
    before_users = set(
        Interaction.objects.filter(user_id__in=list(after), occurred_at__lte=cut)
        .values_list("user_id", flat=True)
        .distinct()
    )
    users = sorted(u for u in after if u in before_users)
    random.Random(seed).shuffle(users)
    users = sorted(users[:max_users])
    if not users:
        raise ValueError(f"no customer has events on both sides of {cut:%Y-%m-%d %H:%M} (try more --holdout-days)")
    histories: dict[int, list[HistoryEvent]] = {u: [] for u in users}
    rows = (
        Interaction.objects.filter(user_id__in=users, occurred_at__lte=cut)
        .order_by("user_id", "-occurred_at")
        .values_list("user_id", "product_id", "kind", "value", "occurred_at", "product__category_id")
    )
    for uid, pid, kind, value, at, category in rows.iterator(chunk_size=20_000):
        if len(histories[uid]) < 200:
            histories[uid].append(HistoryEvent(pid, kind, float(value or 1.0), at.timestamp(), category))
    return users, histories, {u: after[u] for u in users}


def rule_effects_ndcg(
    *, placement: str = "email", k: int = 10, holdout_days: float = 14, max_users: int = 1000, seed: int = 0
) -> list[RuleEffectRow]:
    """The rows of the report (see the module doc): "no rules", "all rules", then one
    per live rule of ``placement`` with its effect, largest loss first."""
    if not 1 <= k <= serving.MAX_N:
        raise ValueError(f"k must be from 1 to {serving.MAX_N}, got {k}")
    users, histories, holdout = _sample(holdout_days, max_users, seed)
    live = rules.rules_for(model_cache.snapshot(), placement)

    def score(ruleset: rules.RuleSet) -> float:
        picks = serving.recommend_for_users_batch(
            user_ids=users, n=k, explain=False, placement=placement, ruleset=ruleset, histories=histories
        )
        ranked = np.full((len(users), k), -1, dtype=np.int64)
        for row, user in enumerate(users):
            ids = [p.product.pk for p in picks[user][:k]]
            ranked[row, : len(ids)] = ids
        # every sampled customer has a holdout, so the mean is over all of them
        return float(ndcg_at_k(ranked, [holdout[u] for u in users], k))

    base = score(rules.RuleSet())
    full = score(live) if live else base
    rows = [
        RuleEffectRow(None, "no rules", "", base, 0.0, len(users)),
        RuleEffectRow(None, f"all {len(live.rules)} live rules", "", full, full - base, len(users)),
    ]
    per_rule = []
    for rule in live.rules:
        without = score(live.without(rule.id)) if rule.id is not None else full
        per_rule.append(RuleEffectRow(rule.id, rule.name, rule.action, without, full - without, len(users)))
    per_rule.sort(key=lambda r: r.delta)
    return rows + per_rule
