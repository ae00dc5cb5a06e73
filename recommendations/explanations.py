"""Why a pick was made, told truthfully.

Every served pick carries its **source** -- what really produced it -- and a reason
text that says exactly that (``SOURCES``, ``reason_for``):

====================  =======================================================
``model``             the active model's pick for this shopper's history
``co_purchase``       customers who bought the product on screen also bought it
``similar_content``   its text and category resemble the product on screen
``history_category``  popular in a category the shopper looked at (no model)
``interests``         popular in a category the shopper chose as an interest
``trending``          the trending list itself ("Trending now" shelves)
``popular``           filler: popular products, when nothing personal is left
``new_arrivals``      the newest products of a quiet category
``neighbours``        bought by shoppers like this one
``rule``              put there by a merchandising rule
``pin``               pinned to its position by staff
====================  =======================================================

"Because you viewed X" is said only when the history item X *really* contributes
to the pick: X alone, folded into the model, must rank the pick within its top
``1 - ANCHOR_MIN_RANK`` (2 %) of the catalogue (``engine.explain``: the pick's rank
against a random sample of the catalogue). A model pick no recent item explains
says "Based on your recent activity"; filler never names a history item.

``ANCHOR_MIN_RANK`` was chosen on data (``bench/explanations.py``; table in
bench/RESULTS.md, "Honest explanations"). Ground truth for "X relates to the pick":
in the training data, customers who bought X bought the pick at least twice as
often as customers at large (lift >= 2, >= 3 such customers). With 10 picks for
600 customers and 3 anchors each, the old rule (any positive contribution) named
an anchor for 77-98 % of picks, and on purchases-only own data (no text, 40 %
noise) only 43 % (ALS) / 55 % (EASE) / 72 % (item-kNN) of those anchors were
related. Rank 0.98 (the pick in the anchor's top 2 %) raises that to 66 / 83 /
98 % there and to 90-95 % on Online Retail (from 86-89 %), still explaining
44-62 % of picks; 0.99 gains a little more precision but drops coverage to
31-46 %, 0.95 leaves ALS at 55 %.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from shop.models import Interaction

from .artifacts import LoadedModel
from .engine import explain
from .selectors import HistoryEvent

# Shoppers whose explanation anchors are folded in together (bounds the memory of
# models whose user vectors are score rows).
CONTRIBUTION_ROWS = 64

ANCHOR_MIN_RANK = 0.98
"""A history item explains a pick only if the pick is in that item's top 2 % (see the
module docstring for the measurement)."""
ANCHOR_MIN_TOP = 3
"""In a small catalogue (under 150 products) top 2 % is less than three products: there
a pick with fewer than 3 products ranked above it by the anchor counts too. Not more:
in an 80-product test store a rare product's ALS fold-in already ranks an unrelated
product 6th (tests/recommendations/test_explanations.py)."""

# --- the vocabulary -------------------------------------------------------------------
MODEL = "model"
CO_PURCHASE = "co_purchase"
SIMILAR_CONTENT = "similar_content"
HISTORY_CATEGORY = "history_category"
INTERESTS = "interests"
TRENDING = "trending"
POPULAR = "popular"
NEW_ARRIVALS = "new_arrivals"
NEIGHBOURS = "neighbours"
RULE = "rule"
PIN = "pin"

SOURCES: dict[str, str] = {
    MODEL: "Personal model",
    CO_PURCHASE: "Bought together",
    SIMILAR_CONTENT: "Similar content",
    HISTORY_CATEGORY: "Popular in a browsed category",
    INTERESTS: "Stated interests",
    TRENDING: "Trending",
    POPULAR: "Popular (filler)",
    NEW_ARRIVALS: "New arrivals",
    NEIGHBOURS: "Shoppers like you",
    RULE: "Merchandising rule",
    PIN: "Pinned by staff",
}
"""Source code -> label for staff (admin, dashboard)."""

# The shopper-facing text of each source ({name}: the product that explains it;
# {category}: the pick's category). A model pick with an anchor uses BECAUSE.
REASONS: dict[str, str] = {
    MODEL: "Based on your recent activity",
    CO_PURCHASE: "Customers who bought {name} also bought this",
    SIMILAR_CONTENT: "Similar to {name}",
    HISTORY_CATEGORY: "Popular in {category}, which you browsed",
    INTERESTS: "Matches your interest in {category}",
    TRENDING: "Trending now",
    POPULAR: "Popular now",
    NEW_ARRIVALS: "New in {category}",
    NEIGHBOURS: "Shoppers like you bought this",
    RULE: "Featured",
    PIN: "Featured",
}
NO_ANCHOR = REASONS[MODEL]
"""A model pick no recent history item explains."""
IN_CATEGORY: dict[str, str] = {TRENDING: "Popular in {category}", POPULAR: "Popular in {category}"}
"""The text of trending/filler picks restricted to a category (a category page)."""

BECAUSE = {
    Interaction.Kind.PURCHASE: "Because you bought {name}",
    Interaction.Kind.ADD_TO_CART: "Because you added {name} to your cart",
    Interaction.Kind.WISHLIST: "Because you saved {name}",
    Interaction.Kind.RATING: "Because you rated {name}",
    Interaction.Kind.CLICK: "Because you looked at {name}",
    Interaction.Kind.VIEW: "Because you viewed {name}",
}

# reason_code (the API's older, coarser field) of each source
REASON_CODES: dict[str, str] = {
    MODEL: "history",
    CO_PURCHASE: "also_bought",
    SIMILAR_CONTENT: "similar",
    HISTORY_CATEGORY: "session",
    INTERESTS: "interest",
    TRENDING: "trending",
    POPULAR: "trending",
    NEW_ARRIVALS: "trending",
    NEIGHBOURS: "history",
    RULE: "rule",
    PIN: "rule",
}


def reason_for(source: str, *, in_category: bool = False) -> str:
    """The reason text (template) of a pick of ``source`` (``ValueError`` for an unknown one)."""
    if source not in REASONS:
        raise ValueError(f"unknown recommendation source {source!r}; use one of {sorted(REASONS)}")
    if in_category and source in IN_CATEGORY:
        return IN_CATEGORY[source]
    return REASONS[source]


def because(kind: int | None) -> str:
    """The reason text for a model pick anchored on an event of ``kind`` ({name}: the anchor)."""
    return BECAUSE.get(kind, BECAUSE[Interaction.Kind.VIEW])  # type: ignore[call-overload]


def names_history_item(reason: str) -> bool:
    """Whether a reason template claims a history item ("Because you ...")."""
    return reason.startswith("Because you")


# --- anchors: the history items that may explain a model pick -------------------------------
def anchors(loaded: LoadedModel, history: Sequence[HistoryEvent], limit: int) -> list[tuple[int, int, int]]:
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
        if current is None or strength.get(e.kind, 0) > strength.get(current, 0):  # type: ignore[call-overload]
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


def _null(loaded: LoadedModel) -> np.ndarray:
    """The model's fixed null sample of columns (memoised on the loaded model)."""
    null = loaded.memo.get("explain_null")
    if null is None:
        null = explain.null_columns(loaded.model.n_items)
        loaded.memo["explain_null"] = null
    return null


def best_anchors(loaded: LoadedModel, anchors: list[list[tuple[int, int, int]]], ids: np.ndarray) -> list[np.ndarray]:
    """For each row of candidate columns ``ids`` (-1: none), the index into that row's
    anchors of the history item that really explains each candidate, or -1 (no
    history item contributes enough: ``ANCHOR_MIN_RANK``)."""
    model = loaded.model
    null = _null(loaded)
    counts = [len(a) for a in anchors]
    out: list[np.ndarray] = []
    for start in range(0, len(anchors), CONTRIBUTION_ROWS):  # bounded memory for the batch path
        group = counts[start : start + CONTRIBUTION_ROWS]
        size = sum(group)
        if size == 0:
            out += [np.full(ids[start + i].size, -1, np.int64) for i in range(len(group))]
            continue
        cols = np.fromiter((c for a in anchors[start : start + CONTRIBUTION_ROWS] for c, _, _ in a), np.int64, size)
        vectors = explain.one_item_vectors(model, cols)  # every anchor of the group folded at once
        nulls = explain.null_sorted(model, vectors, null)
        at = 0
        for offset, count in enumerate(group):
            row = np.asarray(ids[start + offset])
            if count == 0:
                out.append(np.full(row.size, -1, np.int64))
                continue
            cand = np.where(row >= 0, row, 0)
            contrib = explain.scores_at(model, vectors[at : at + count], cand)
            rank = explain.ranks(contrib, nulls[at : at + count])
            best = explain.best_anchor(contrib, rank, ANCHOR_MIN_RANK, n_items=model.n_items, min_top=ANCHOR_MIN_TOP)
            out.append(np.where(row >= 0, best, -1))
            at += count
    return out
