"""Why a pick was made: each model pick names the recent history item that alone
points at it most ("Because you viewed X"). The anchors are the most recent
distinct known products of the history; every anchor is folded into the model at
once (``Recommender.user_vectors``) and only the candidates are scored against them
(``Recommender.item_vectors``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from shop.models import Interaction

from .artifacts import LoadedModel
from .selectors import HistoryEvent

# Shoppers whose explanation anchors are folded in together (bounds the memory of
# models whose user vectors are score rows).
CONTRIBUTION_ROWS = 64

BECAUSE = {
    Interaction.Kind.PURCHASE: "Because you bought {name}",
    Interaction.Kind.ADD_TO_CART: "Because you added {name} to your cart",
    Interaction.Kind.WISHLIST: "Because you saved {name}",
    Interaction.Kind.RATING: "Because you rated {name}",
    Interaction.Kind.CLICK: "Because you looked at {name}",
    Interaction.Kind.VIEW: "Because you viewed {name}",
}


def because(kind: int | None) -> str:
    """The reason text for a pick anchored on an event of ``kind`` ({name}: the anchor)."""
    return BECAUSE.get(kind, BECAUSE[Interaction.Kind.VIEW])


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


def contributions(loaded: LoadedModel, anchors: list[list[tuple[int, int, int]]], ids: np.ndarray) -> list[np.ndarray]:
    """For each row, (anchors x candidates) scores of one-item histories: how much
    each recent item alone points at each candidate."""
    counts = [len(a) for a in anchors]
    total = sum(counts)
    out: list[np.ndarray] = []
    if total == 0:
        return [np.zeros((0, ids.shape[1]), np.float32) for _ in anchors]
    model = loaded.model
    for start in range(0, len(anchors), CONTRIBUTION_ROWS):  # bounded memory for the batch path
        group = counts[start : start + CONTRIBUTION_ROWS]
        size = sum(group)
        cols = np.fromiter((c for a in anchors[start : start + CONTRIBUTION_ROWS] for c, _, _ in a), np.int32, size)
        one_hot = sp.csr_matrix(
            (np.ones(size, np.float32), cols, np.arange(size + 1, dtype=np.int32)), shape=(size, model.n_items)
        )
        vectors = model.user_vectors(one_hot) if size else None  # every anchor of the group folded at once
        at = 0
        for offset, count in enumerate(group):
            row = ids[start + offset]
            if count == 0:
                out.append(np.zeros((0, row.size), np.float32))
                continue
            cand = np.where(row >= 0, row, 0)
            out.append(vectors[at : at + count] @ model.item_vectors(cand).T)
            at += count
    return out
