"""Candidates for a list, in levels: the model's top picks (explained), products
popular in the categories of the session's history, products popular in the
shopper's stated interests, trending; and a product's neighbours (collaborative
or content). Serving (``serving``) fills a list from them level by level."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from shop.models import Product

from . import conf, explanations, model_cache
from .artifacts import NON_CF_ALGORITHMS, LoadedModel
from .engine import top_n
from .model_cache import Snapshot, VersionInfo
from .models import DEFAULT_SLOT
from .selectors import HistoryEvent
from .strategies import version_for
from .trending import trending_items

NO_ANCHOR_REASON = explanations.reason_for(explanations.MODEL)


@dataclass(slots=True)
class Candidate:
    product_id: int
    score: float
    code: str
    reason: str = ""  # may contain {name} (the anchor) or {category}
    anchor_id: int | None = None  # explaining product (history item, the viewed product)
    anchor_kind: int | None = None
    category_id: int | None = None  # when known before fetching (model columns, trending)
    source: str = ""  # what produced it: one of explanations.SOURCES


class ModelCandidates(Sequence[Candidate]):
    """The model's ranked columns for one shopper as explained candidates, each made
    when first looked at: a list is filled from the first dozen or so, and a batch of
    thousands of shoppers (exports, emails) need not build the rest."""

    def __init__(
        self,
        loaded: LoadedModel,
        code: str,
        cols: np.ndarray,
        scores: np.ndarray,
        anchors: list[tuple[int, int, int]],
        best_anchor: np.ndarray | None,
    ) -> None:
        self.code, self.scores, self.anchors, self.best_anchor = code, scores, anchors, best_anchor
        self.product_ids = loaded.item_ids[cols]
        categories = loaded.item_category
        self.category_ids = np.where(cols < categories.size, categories[np.minimum(cols, categories.size - 1)], -1)
        self._made: list[Candidate] = []
        self._lists: tuple[list, list, list] | None = None

    def __len__(self) -> int:
        return int(self.product_ids.size)

    def _make(self, j: int) -> Candidate:
        if self._lists is None:
            self._lists = (self.product_ids.tolist(), self.scores.tolist(), self.category_ids.tolist())
        products, scores, categories = self._lists
        anchor_id = anchor_kind = None
        if self.best_anchor is not None and self.best_anchor[j] >= 0:
            _, anchor_id, anchor_kind = self.anchors[int(self.best_anchor[j])]
        reason = explanations.because(anchor_kind) if anchor_id is not None else NO_ANCHOR_REASON
        category = categories[j]
        return Candidate(
            products[j],
            scores[j],
            self.code,
            reason,
            anchor_id,
            anchor_kind,
            category if category >= 0 else None,
            explanations.MODEL,
        )

    def __iter__(self) -> Iterator[Candidate]:
        made = self._made
        for j in range(len(self)):
            if j == len(made):
                made.append(self._make(j))
            yield made[j]

    def __getitem__(self, index):  # type: ignore[override]
        return list(self)[index]

    def anchor_ids(self) -> set[int]:
        """The products the candidates' reasons name ("because you viewed X")."""
        if self.best_anchor is None:
            return set()
        return {self.anchors[int(a)][1] for a in np.unique(self.best_anchor) if a >= 0}


@dataclass
class Shopper:
    user_id: int | None
    session_key: str
    history: list[HistoryEvent]
    excluded: set[int]
    levels: list[tuple[str, Sequence[Candidate]]] = field(default_factory=list)  # (strategy label, candidates)

    @property
    def code(self) -> str:
        return "history" if self.user_id is not None else "session"


def history_arrays(history: Sequence[HistoryEvent]):
    return (
        np.fromiter((e.product_id for e in history), np.int64, len(history)),
        np.fromiter((e.kind for e in history), np.int64, len(history)),
        np.fromiter((e.value for e in history), np.float64, len(history)),
        np.fromiter((e.at for e in history), np.float64, len(history)),
    )


# --- trending ------------------------------------------------------------------------------
def trending_cands(
    snap: Snapshot,
    *,
    n: int,
    code: str,
    reason: str,
    categories: set[int] | None = None,
    weights: dict[int, float] | None = None,
    source: str = explanations.TRENDING,
) -> list[Candidate]:
    """Trending candidates, optionally restricted to (and weighted by) categories.
    The plain list (no categories) is memoised with the trending list it comes from.
    ``source``: what they are in the list they fill (the trending list itself,
    filler, a category...; ``explanations.SOURCES``)."""
    out: list[Candidate] = []
    limit = max(4 * n, 40)
    items = trending_items(snap)
    plain = categories is None and not weights
    if plain:
        key = ("trending_cands", limit, code, reason, source)
        memo = snap.memo.get(key)
        if memo is not None and memo[0] is items:
            return list(memo[1])
    trending_only = source == explanations.TRENDING  # "Trending now" says it: enough shoppers
    for item in items:
        if categories is not None and item.category_id not in categories:
            continue
        if trending_only and not item.supported:
            continue
        score = item.score * (weights.get(item.category_id, 1.0) if weights else 1.0)
        out.append(
            Candidate(
                item.product_id,
                score,
                code,
                reason,
                anchor_id=item.category_id,
                category_id=item.category_id,
                source=source,
            )
        )
        if weights is None and len(out) >= limit:
            break
    if weights:
        out.sort(key=lambda c: -c.score)
        out = out[:limit]
    if plain:
        snap.memo[key] = (items, tuple(out))
    return out


def history_category_cands(snap, shopper: Shopper, *, n: int, now: float) -> list[Candidate]:
    """No model to ask: products popular in the categories the shopper looked at."""
    weights: dict[int, float] = {}
    for e in shopper.history:
        if e.category_id is not None:
            weights[e.category_id] = weights.get(e.category_id, 0.0) + 0.5 ** ((now - e.at) / 86400 / 7)
    if not weights:
        return []
    return trending_cands(
        snap,
        n=n,
        code=shopper.code,
        reason=explanations.reason_for(explanations.HISTORY_CATEGORY),
        categories=set(weights),
        weights=weights,
        source=explanations.HISTORY_CATEGORY,
    )


def interest_cands(snap, interests: list[int], *, n: int) -> list[Candidate]:
    if not interests:
        return []
    return trending_cands(
        snap,
        n=n,
        code="interest",
        reason=explanations.reason_for(explanations.INTERESTS),
        categories=set(interests),
        source=explanations.INTERESTS,
    )


def interests_share(shopper: Shopper) -> float:
    """The share of a list that stated interests take: ``p / (p + h)`` (see
    ``interests_blend``)."""
    prior = float(conf.get("RECOMMEND_INTERESTS_PRIOR"))
    distinct = len({e.product_id for e in shopper.history})
    return prior / (prior + distinct) if prior + distinct > 0 else 0.0


def interests_blend(shopper: Shopper, interest_level: Sequence[Candidate], *, n: int) -> None:
    """Blend stated interests into the shopper's first level instead of leaving them
    behind it: a customer who just signed up with interests and a short anonymous
    history sees both. The interests' share of the first ``n`` places is
    ``p / (p + h)`` (``h``: distinct products in the history, ``p``:
    ``RECOMMEND_INTERESTS_PRIOR``), spread evenly through the list, so it fades as
    the history grows. The first level keeps its label (its strategy)."""
    if not interest_level or not shopper.levels:
        return
    share = interests_share(shopper)
    if int(n * share) <= 0:  # floor(n * share) places go to the interests
        return
    label, first = shopper.levels[0]
    primary, extra = iter(list(first)), iter(interest_level)
    blended: list[Candidate] = []
    for i in range(n):
        source = extra if int((i + 1) * share) > int(i * share) else primary
        cand = next(source, None) or next(primary if source is extra else extra, None)
        if cand is None:
            break
        blended.append(cand)
    blended += list(primary) + list(extra)
    shopper.levels[0] = (label, blended)


# --- the model --------------------------------------------------------------------------------
def model_cands(
    loaded: LoadedModel,
    shoppers: Sequence[Shopper],
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
        allowed = allowed_columns(loaded, category_ids)
        if not allowed.any():
            return
    explain_items = int(conf.get("RECOMMEND_EXPLAIN_ITEMS")) if explain else 0
    k = min(max(4 * n, n + 20), loaded.model.n_items)
    if len(rows_for) == 1:
        model_cands_one(loaded, rows_for[0], k=k, now=now, allowed=allowed, explain_items=explain_items, label=label)
        return
    batch = 512
    for start in range(0, len(rows_for), batch):
        chunk = rows_for[start : start + batch]
        rows = loaded.history_rows([history_arrays(s.history) for s in chunk], now=now)
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
        # the engine's batch top-k (ALS: an exact early-stopping scan, not every item scored)
        ids, scores = loaded.model.top_k_batch(rows[live], k, exclude=exclude, allowed=allowed)
        anchors = [explanations.anchors(loaded, chunk[r].history, explain_items) for r in live.tolist()]
        best = explanations.best_anchors(loaded, anchors, ids) if explain_items else None
        for pos, r in enumerate(live.tolist()):
            add_level(
                loaded,
                chunk[r],
                ids[pos],
                scores[pos],
                anchors[pos],
                best[pos] if best is not None else None,
                label,
            )


def model_cands_one(
    loaded: LoadedModel,
    shopper: Shopper,
    *,
    k: int,
    now: float,
    allowed: np.ndarray | None,
    explain_items: int,
    label: str,
) -> None:
    """One shopper (the per-request path): the same scores and picks as the batch
    path, with the history row, exclusions and the cut made in plain numpy."""
    row = loaded.history_rows([history_arrays(shopper.history)], now=now)
    if row.nnz == 0:
        return
    excluded = np.zeros(0, np.int64)
    if shopper.excluded:
        excluded = loaded.columns(np.fromiter(shopper.excluded, np.int64, len(shopper.excluded)))
        excluded = excluded[excluded >= 0]
    cols, values = loaded.model.top_k(row, k, exclude=excluded, allowed=allowed)
    anchors = explanations.anchors(loaded, shopper.history, explain_items)
    best = explanations.best_anchors(loaded, [anchors], cols[None, :])[0] if explain_items else None
    add_level(loaded, shopper, cols, values, anchors, best, label)


def allowed_columns(loaded: LoadedModel, category_ids: set[int]) -> np.ndarray:
    """Bool mask of the model's columns in ``category_ids`` (memoised on the loaded model)."""
    key = frozenset(category_ids)
    memo = loaded.memo.get(("allowed", key))
    if memo is None:
        memo = np.isin(loaded.item_category, list(category_ids))
        if len(loaded.memo) > 256:
            loaded.memo.clear()
        loaded.memo[("allowed", key)] = memo
    return memo


def add_level(
    loaded: LoadedModel,
    shopper: Shopper,
    ids: np.ndarray,
    scores: np.ndarray,
    anchors: list[tuple[int, int, int]],
    best: np.ndarray | None,
    label: str,
) -> None:
    """The model's ranked columns as explained candidates (`ModelCandidates`): a pick
    names the recent item that really points at it ("because you viewed X",
    ``explanations.best_anchors``: -1 for none)."""
    ids = np.asarray(ids)
    valid = int(np.argmin(ids >= 0)) if (ids < 0).any() else ids.size  # the columns before the first -1
    if valid == 0:
        return
    best_anchor = None
    if best is not None and anchors and best.size:
        best_anchor = np.asarray(best)[:valid]
    shopper.levels.append(
        (label, ModelCandidates(loaded, shopper.code, ids[:valid], np.asarray(scores)[:valid], anchors, best_anchor))
    )


def category_of(loaded: LoadedModel, col: int) -> int | None:
    category = int(loaded.item_category[col]) if col < loaded.item_category.size else -1
    return category if category >= 0 else None


# --- a product's neighbours ----------------------------------------------------------------------
def cf_version(snap: Snapshot) -> VersionInfo | None:
    """The version whose item neighbours come from co-behaviour ("customers also bought")."""
    default = snap.active.get(DEFAULT_SLOT)
    if default is not None and default.algorithm not in NON_CF_ALGORITHMS:
        return default
    others = sorted((v for v in snap.active.values() if v.algorithm not in NON_CF_ALGORITHMS), key=lambda v: -v.id)
    return others[0] if others else None


def content_model(snap: Snapshot):
    """A fitted content model: the content version's, or the hybrid's content part."""
    candidates = [v for v in snap.active.values() if v.algorithm in ("content", "hybrid")]
    candidates.sort(key=lambda v: (v.algorithm != "content", v.slot != DEFAULT_SLOT))
    version = candidates[0] if candidates else version_for(snap, "content")
    loaded = model_cache.model_get(version) if version is not None else None
    if loaded is None:
        return None, None
    model = loaded.model if loaded.algorithm == "content" else loaded.model.content_model  # hybrid's part
    return (loaded, model) if model is not None else (None, None)


MIN_TEXT_SIMILARITY = 0.1
"""A product is "similar" only if its text resembles the product's more than chance:
text cosine >= 0.1 is the 99th percentile of random pairs of the Online Retail
catalogue (0.127 at 99.5 %, 94 % of random pairs share no word), and keeps 98 % of
the products' 8 nearest text neighbours (measured with the content model on the
bundled data's descriptions). Sharing only the category is not similarity: those
fill as "Popular in {category}"."""


def text_similarity(model, similarity: float, *, same_category: bool) -> float:
    """The text part of a content similarity: the content model's vector is the text
    block (weight 1 - w) and the category block (weight w), so two products of one
    category score w with no word in common."""
    weight = float(model.params.get("category_weight", 0.0)) if getattr(model, "categories", np.zeros(0)).size else 0.0
    if getattr(model, "terms", np.zeros(1)).size == 0:
        return 0.0  # categories only: no text to resemble
    if weight >= 1.0:
        return 0.0
    return (similarity - (weight if same_category else 0.0)) / (1.0 - weight)


def content_cands(snap, product: Product, *, n: int) -> tuple[str, list[Candidate]]:
    loaded, model = content_model(snap)
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
        ids, scores = top_n(model.score_profiles(profile), k)
    cands = [
        Candidate(
            int(loaded.item_ids[c]),
            float(s),
            "similar",
            explanations.reason_for(explanations.SIMILAR_CONTENT),
            product.pk,
            category_id=category_of(loaded, c),
            source=explanations.SIMILAR_CONTENT,
        )
        for c, s in zip(ids[0].tolist(), scores[0].tolist(), strict=True)
        if c >= 0
        and text_similarity(model, s, same_category=category_of(loaded, c) == product.category_id)
        >= MIN_TEXT_SIMILARITY
    ]
    return f"model:{loaded.label}", cands
