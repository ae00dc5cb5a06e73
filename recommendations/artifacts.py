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

from . import conf, engine
from .engine import base as engine_base
from .engine.matrix import DEFAULT_KIND_WEIGHTS, InteractionMatrix, event_weights

logger = logging.getLogger(__name__)

META_PREFIX = "affinity__"
# Algorithms whose item neighbours come from co-behaviour ("customers also bought").
NON_CF_ALGORITHMS = frozenset({"popularity", "trending", "content"})


@cache
def algorithms() -> dict[str, type[engine_base.Recommender]]:
    """The engine's registry, with every algorithm module imported."""
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
        weighted with the training matrix's kind weights and time decay, built by the
        engine's ``InteractionMatrix.history_rows`` (one history: the per-request path).
        Many histories are weighted in one ``event_weights`` call over all their events."""
        if len(histories) > 1:
            return self._history_rows_many(histories, now=now)
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

    def _history_rows_many(
        self, histories: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], *, now: float
    ) -> sp.csr_matrix:
        counts = np.fromiter((len(h[0]) for h in histories), np.int64, len(histories))
        if not counts.any():
            return self.items.history_rows([(np.zeros(0, np.int64), np.zeros(0, np.float32))] * len(histories))
        products, kinds, values, times = (
            np.concatenate([np.asarray(h[i], dtype=dtype) for h in histories])
            for i, dtype in enumerate((np.int64, np.int64, np.float64, np.float64))
        )
        known = np.isin(kinds, list(self.meta.kind_weights))
        weights = np.zeros(products.size, np.float64)
        weights[known] = event_weights(
            kinds=kinds[known],
            values=values[known],
            times=times[known],
            kind_weights=self.meta.kind_weights,
            half_life_days=self.meta.half_life_days,
            now=now,
        )
        ends = np.cumsum(counts)[:-1]
        kept = np.split(known, ends)
        return self.items.history_rows(
            [(p[k], w[k]) for p, w, k in zip(np.split(products, ends), np.split(weights, ends), kept, strict=True)]
        )


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
    return LoadedModel(
        version_id=version_id,
        algorithm=model.name,
        model=model,
        items=items,
        item_category=arrays[f"{META_PREFIX}item_category"].astype(np.int64),
        meta=ArtifactMeta.from_json(str(arrays[f"{META_PREFIX}meta"])),
    )


def kind_weights_parse(value: Mapping | None) -> dict[int, float]:
    """Kind weights from settings/params: keys are kind names ("purchase") or codes."""
    if not value:
        return dict(DEFAULT_KIND_WEIGHTS)
    return {code: float(weight) for code, weight in conf.kinds_parse(value, what="kind weights").items()}
