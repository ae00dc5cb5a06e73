"""The app's side of a model artifact: one ``.npz`` in Django storage holding the
engine's arrays (``Recommender.to_arrays``) plus what serving needs to fold a live
history in exactly as the training matrix was built (item ids per column, kind
weights, half-life, categories per column). Loaded with ``allow_pickle=False``.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import pkgutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import scipy.sparse as sp
from django.core.files import File
from django.core.files.storage import default_storage

from .engine import base as engine_base
from .engine.matrix import DEFAULT_KIND_WEIGHTS, InteractionMatrix, event_weights

logger = logging.getLogger(__name__)

META_PREFIX = "affinity__"
# Algorithms whose item neighbours come from co-behaviour ("customers also bought").
NON_CF_ALGORITHMS = frozenset({"popularity", "trending", "content"})


@cache
def algorithms() -> dict[str, type[engine_base.Recommender]]:
    """The engine's registry, with every algorithm module imported."""
    from . import engine

    for info in pkgutil.iter_modules(engine.__path__):
        if info.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{engine.__name__}.{info.name}")
        except ImportError as exc:  # an algorithm whose optional dependency is missing
            logger.warning("engine module %s not available: %s", info.name, exc)
    return dict(engine_base.ALGORITHMS)


def algorithm_names() -> list[str]:
    return sorted(algorithms())


@dataclass
class ArtifactMeta:
    """How the training matrix was built (serving repeats it for live histories)."""

    kind_weights: dict[int, float] = field(default_factory=lambda: dict(DEFAULT_KIND_WEIGHTS))
    half_life_days: float | None = None
    trained_at: float = 0.0  # unix time the data was read
    version_id: int | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind_weights": {str(k): float(v) for k, v in self.kind_weights.items()},
                "half_life_days": self.half_life_days,
                "trained_at": self.trained_at,
                "version_id": self.version_id,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> ArtifactMeta:
        raw = json.loads(text)
        return cls(
            kind_weights={int(k): float(v) for k, v in raw.get("kind_weights", {}).items()}
            or dict(DEFAULT_KIND_WEIGHTS),
            half_life_days=raw.get("half_life_days"),
            trained_at=float(raw.get("trained_at") or 0.0),
            version_id=raw.get("version_id"),
        )


@dataclass
class LoadedModel:
    """A fitted model ready to score live histories."""

    version_id: int
    algorithm: str
    model: engine_base.Recommender
    items: InteractionMatrix  # 0 x n_items: the column <-> product id maps
    item_category: np.ndarray  # category id per column (-1 for none), at training time
    meta: ArtifactMeta
    loaded_at: float = field(default_factory=time.monotonic)
    memo: dict = field(default_factory=dict)  # values derived once per loaded model (category masks...)

    @property
    def label(self) -> str:
        return f"{self.algorithm}#{self.version_id}"

    @property
    def item_ids(self) -> np.ndarray:
        return self.items.item_ids

    @property
    def is_cf(self) -> bool:
        return self.algorithm not in NON_CF_ALGORITHMS

    def columns(self, product_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        return self.items.item_index(np.asarray(product_ids, dtype=np.int64))

    def history_rows(
        self, histories: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], *, now: float
    ) -> sp.csr_matrix:
        """Fold-in rows from live events ``(product_ids, kinds, values, unix_times)``,
        weighted with the training matrix's kind weights and time decay."""
        weighted = []
        for products, kinds, values, times in histories:
            if len(products):
                kinds = np.asarray(kinds, dtype=np.int64)
                known = np.isin(kinds, list(self.meta.kind_weights))
                weights = event_weights(
                    kinds=kinds[known],
                    values=np.asarray(values, dtype=np.float64)[known],
                    times=np.asarray(times, dtype=np.float64)[known],
                    kind_weights=self.meta.kind_weights,
                    half_life_days=self.meta.half_life_days,
                    now=now,
                )
                weighted.append((np.asarray(products, dtype=np.int64)[known], weights))
            else:
                weighted.append((np.zeros(0, np.int64), np.zeros(0, np.float32)))
        return self.items.history_rows(weighted)

    def history_row(
        self, products: np.ndarray, kinds: np.ndarray, values: np.ndarray, times: np.ndarray, *, now: float
    ) -> sp.csr_matrix:
        """One shopper's fold-in row: the same weights as ``history_rows`` (kind
        weights, time decay, duplicates summed, negative sums clipped, zeros
        dropped), built straight into a 1-row CSR — the per-request path, where
        scipy's general COO conversion costs more than the scoring's arithmetic."""
        n_items = self.model.n_items
        known = np.isin(kinds, list(self.meta.kind_weights))
        cols = self.columns(products[known])
        weights = event_weights(
            kinds=kinds[known],
            values=values[known],
            times=times[known],
            kind_weights=self.meta.kind_weights,
            half_life_days=self.meta.half_life_days,
            now=now,
        )
        on = cols >= 0
        if not on.any():
            return sp.csr_matrix((1, n_items), dtype=np.float32)
        unique, inverse = np.unique(cols[on], return_inverse=True)
        summed = np.bincount(inverse, weights=np.asarray(weights, dtype=np.float64)[on])
        keep = summed > 0
        data, indices = summed[keep].astype(np.float32), unique[keep].astype(np.int32)
        return sp.csr_matrix((data, indices, np.array([0, indices.size], dtype=np.int32)), shape=(1, n_items))


def _als_gram_cached(model: engine_base.Recommender) -> None:
    """Serving speed-up for ALS (and a hybrid's ALS part): the engine's fold-in
    recomputes ``Y^T Y`` (items x factors^2) on every call, which dominates the
    cost of scoring one shopper. Compute it once per loaded model and solve the
    same user step with it (same formula as ``engine.als.least_squares_fold_in``;
    a test checks both give the same scores)."""
    inner = getattr(model, "cf_model", None)
    if inner is not None:
        _als_gram_cached(inner)
    if model.name != "als" or not hasattr(model, "item_factors"):
        return
    y = np.asarray(model.item_factors, dtype=np.float64)
    regularization = float(model.params["regularization"])
    gram = y.T @ y + regularization * np.eye(y.shape[1])

    gram_inv = np.linalg.inv(gram)

    def fold_in(history: sp.csr_matrix) -> np.ndarray:
        confidence = model._confidence(history)
        users = np.zeros((confidence.shape[0], y.shape[1]), dtype=np.float64)
        indptr, indices, data = confidence.indptr, confidence.indices, confidence.data
        lengths = np.diff(indptr)
        single = np.flatnonzero(lengths == 1)
        if single.size:
            # one item (explanations' anchors): (G + (c-1) y y^T) u = c y has the closed
            # form u = c G^-1 y / (1 + (c-1) y^T G^-1 y) (Sherman-Morrison), all rows at once
            yu = y[indices[indptr[single]]]
            c = data[indptr[single]].astype(np.float64)
            z = yu @ gram_inv
            users[single] = z * (c / (1.0 + (c - 1.0) * np.einsum("ij,ij->i", z, yu)))[:, None]
        for row in np.flatnonzero(lengths > 1).tolist():
            start, stop = indptr[row], indptr[row + 1]
            yu = y[indices[start:stop]]
            c = data[start:stop].astype(np.float64)
            users[row] = np.linalg.solve(gram + (yu.T * (c - 1.0)) @ yu, yu.T @ c)
        return users.astype(np.float32)

    # Items by decreasing norm, their factors transposed and contiguous in that
    # order: ``top_columns`` scores the catalogue block by block and stops as soon
    # as no item left can beat the k-th best (a score u.y is at most |u| |y|).
    norms = np.linalg.norm(model.item_factors, axis=1)
    by_norm = np.argsort(-norms, kind="stable")
    norms_sorted = norms[by_norm].astype(np.float64)
    factors_sorted_t = np.ascontiguousarray(model.item_factors[by_norm].T)
    position = np.empty_like(by_norm)
    position[by_norm] = np.arange(by_norm.size)

    def score(history: sp.csr_matrix) -> np.ndarray:
        return fold_in(history) @ model.item_factors.T

    def top_columns(
        history: sp.csr_matrix,
        k: int,
        *,
        exclude: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        block: int = 4096,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The same top ``k`` as scoring every item and taking the best (equal scores
        at the cut-off aside), for one history row, without excluded columns and
        with only ``allowed`` ones (bool mask): ``(columns, scores)``, best first,
        possibly fewer than ``k``. Usually a few percent of the catalogue is read:
        serving is bound by memory bandwidth, not arithmetic."""
        u = fold_in(model._check_history(history))[0]
        bound = float(np.linalg.norm(u))
        n = by_norm.size
        drop = np.zeros(0, np.int64) if exclude is None or not len(exclude) else np.sort(position[exclude])
        best_cols, best_scores = np.zeros(0, np.int64), np.zeros(0, np.float32)
        start = 0
        while start < n:
            stop = min(n, start + block)
            scores = u @ factors_sorted_t[:, start:stop]
            cut = drop[(drop >= start) & (drop < stop)] - start
            scores[cut] = -np.inf
            cols = by_norm[start:stop]
            if allowed is not None:
                scores[~allowed[cols]] = -np.inf
            if scores.size > k:
                keep = np.argpartition(-scores, k - 1)[:k]
                cols, scores = cols[keep], scores[keep]
            cols, scores = np.concatenate([best_cols, cols]), np.concatenate([best_scores, scores])
            valid = scores > -np.inf
            cols, scores = cols[valid], scores[valid]
            if scores.size > k:
                keep = np.argpartition(-scores, k - 1)[:k]
                cols, scores = cols[keep], scores[keep]
            best_cols, best_scores = cols, scores
            start, block = stop, block * 2
            if (
                start < n
                and best_scores.size == k
                and float(best_scores.min()) > bound * norms_sorted[start] * (1 + 1e-5)
            ):
                break
        order = np.lexsort((best_cols, -best_scores))  # best first, ties by column
        return best_cols[order], best_scores[order]

    def user_vectors(history: sp.spmatrix) -> np.ndarray:
        """Each history row folded in (explanations fold every anchor at once and
        score only the candidates against ``item_factors``)."""
        return fold_in(model._check_history(history))

    model._score = score  # instance attributes: this loaded copy only
    model.top_columns = top_columns
    model.user_vectors = user_vectors


def artifact_write(
    *,
    model: engine_base.Recommender,
    item_ids: np.ndarray,
    item_category: np.ndarray,
    meta: ArtifactMeta,
    name: str,
) -> tuple[str, int]:
    """Save the bundle to the default storage under ``name``; returns (stored name, bytes)."""
    arrays = model.to_arrays()
    arrays[f"{META_PREFIX}item_ids"] = np.asarray(item_ids, dtype=np.int64)
    arrays[f"{META_PREFIX}item_category"] = np.asarray(item_category, dtype=np.int64)
    arrays[f"{META_PREFIX}meta"] = np.array(meta.to_json())
    with tempfile.TemporaryFile(suffix=".npz") as handle:
        np.savez_compressed(handle, **arrays)
        size = handle.tell()
        handle.seek(0)
        stored = default_storage.save(name, File(handle, name=name))
    return stored, size


def artifact_read(*, name: str, version_id: int) -> LoadedModel:
    """Load a bundle written by ``artifact_write`` (raises ``EngineError`` if damaged)."""
    with default_storage.open(name, "rb") as handle:
        payload = handle.read()
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as exc:
        raise engine_base.EngineError(f"cannot read model artifact {name}: {exc}") from exc
    for key in ("item_ids", "item_category", "meta"):
        if f"{META_PREFIX}{key}" not in arrays:
            raise engine_base.EngineError(f"artifact {name} lacks {META_PREFIX}{key}")
    algorithms()  # make sure every algorithm class is registered
    model = engine_base.from_arrays(arrays)
    item_ids = arrays[f"{META_PREFIX}item_ids"].astype(np.int64)
    if item_ids.size != model.n_items:
        raise engine_base.EngineError(f"artifact {name}: {item_ids.size} item ids for a model of {model.n_items} items")
    items = InteractionMatrix(
        user_items=sp.csr_matrix((0, item_ids.size), dtype=np.float32),
        user_ids=np.zeros(0, dtype=np.int64),
        item_ids=item_ids,
    )
    _als_gram_cached(model)
    return LoadedModel(
        version_id=version_id,
        algorithm=model.name,
        model=model,
        items=items,
        item_category=arrays[f"{META_PREFIX}item_category"].astype(np.int64),
        meta=ArtifactMeta.from_json(str(arrays[f"{META_PREFIX}meta"])),
    )


def kind_weights_parse(value: Mapping | None) -> dict[int, float]:
    """Kind weights from settings/params: keys may be codes or names ("purchase")."""
    from shop.models import Interaction

    if not value:
        return dict(DEFAULT_KIND_WEIGHTS)
    by_name = {label.replace(" ", "_"): code for code, label in Interaction.Kind.choices}
    out: dict[int, float] = {}
    for key, weight in value.items():
        code = by_name.get(str(key).lower()) if not str(key).lstrip("-").isdigit() else int(key)
        if code not in Interaction.Kind.values:
            raise ValueError(f"unknown interaction kind {key!r} in kind weights; use {sorted(by_name)}")
        out[int(code)] = float(weight)
    return out
