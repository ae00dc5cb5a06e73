"""The per-process cache of active models: what a serving process keeps in
memory, and how it knows when to refresh it.

The ``ServingState`` row's ``epoch`` is bumped (in the same transaction) by every
change of what may be served: a version activated or retired, an experiment
changed, a customer forgotten. A serving call reads the epoch with one
primary-key query (or trusts it for ``AFFINITY_SERVING_STATE_TTL`` seconds) and,
when it moved, reloads the active versions and experiments; loaded artifacts stay
cached by version id, so a refresh reloads only what changed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import conf
from .artifacts import LoadedModel, artifact_read
from .models import Experiment, ModelVersion, ServingState

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionInfo:
    id: int
    algorithm: str
    slot: str
    artifact: str


@dataclass(frozen=True)
class VariantInfo:
    name: str
    weight: int
    strategy: str
    model_version: VersionInfo | None


@dataclass(frozen=True)
class ExperimentInfo:
    id: int
    key: str
    context: str
    variants: tuple[VariantInfo, ...]

    @property
    def total_weight(self) -> int:
        return sum(v.weight for v in self.variants)


@dataclass
class Snapshot:
    epoch: int
    active: dict[str, VersionInfo] = field(default_factory=dict)  # slot -> version
    experiments: list[ExperimentInfo] = field(default_factory=list)
    checked_at: float = 0.0
    memo: dict = field(default_factory=dict)  # per-epoch computed values (trending...)


_lock = threading.RLock()
_snapshot: Snapshot | None = None
_models: OrderedDict[int, LoadedModel] = OrderedDict()


def epoch_read() -> int:
    row = ServingState.objects.filter(pk=1).values_list("epoch", flat=True).first()
    return int(row or 0)


def epoch_bump() -> None:
    """Mark that what may be served changed (call inside the changing transaction)."""
    updated = ServingState.objects.filter(pk=1).update(epoch=F("epoch") + 1, changed_at=timezone.now())
    if not updated:
        ServingState.objects.get_or_create(pk=1, defaults={"epoch": 2})
    transaction.on_commit(_forget_local)


def _forget_local() -> None:
    """This process made the change: do not wait for a TTL to see it."""
    global _snapshot
    with _lock:
        _snapshot = None


def _version_info(row: ModelVersion) -> VersionInfo:
    return VersionInfo(id=row.pk, algorithm=row.algorithm, slot=row.slot, artifact=row.artifact.name)


def _load(epoch: int) -> Snapshot:
    active = {
        v.slot: _version_info(v)
        for v in ModelVersion.objects.filter(is_active=True).only("id", "algorithm", "slot", "artifact")
    }
    experiments = []
    for exp in Experiment.objects.filter(is_active=True).prefetch_related("variants__model_version"):
        variants = tuple(
            VariantInfo(
                name=v.name,
                weight=v.weight,
                strategy=v.strategy,
                model_version=(
                    _version_info(v.model_version)
                    if v.model_version is not None
                    and v.model_version.status == ModelVersion.Status.SUCCEEDED
                    and v.model_version.tainted_at is None
                    and v.model_version.artifact
                    else None
                ),
            )
            for v in exp.variants.all()
        )
        if variants:
            experiments.append(ExperimentInfo(id=exp.pk, key=exp.key, context=exp.context, variants=variants))
    return Snapshot(epoch=epoch, active=active, experiments=experiments, checked_at=time.monotonic())


def snapshot(*, epoch: int | None = None) -> Snapshot:
    """The current view of active versions and experiments (refreshed on epoch
    change). ``epoch``: the caller already read it (in the same round trip as
    something else), so it is not read again."""
    global _snapshot
    ttl = float(conf.get("SERVING_STATE_TTL"))
    current = _snapshot
    if epoch is None and current is not None and ttl > 0 and time.monotonic() - current.checked_at < ttl:
        return current
    if epoch is None:
        epoch = epoch_read()
    with _lock:
        current = _snapshot
        if current is not None and current.epoch == epoch:
            current.checked_at = time.monotonic()
            return current
        fresh = _load(epoch)
        keep = {v.id for v in fresh.active.values()} | {
            var.model_version.id for e in fresh.experiments for var in e.variants if var.model_version
        }
        for version_id in [vid for vid in _models if vid not in keep]:
            # retired or tainted versions leave memory at once (others reload lazily)
            _models.pop(version_id, None)
        _snapshot = fresh
        return fresh


def model_get(info: VersionInfo) -> LoadedModel | None:
    """The loaded artifact of a version (cached per process); None if unreadable."""
    with _lock:
        loaded = _models.get(info.id)
        if loaded is not None:
            _models.move_to_end(info.id)
            return loaded
    if not info.artifact:
        return None
    try:
        loaded = artifact_read(name=info.artifact, version_id=info.id)
    except Exception:  # noqa: BLE001 - a broken artifact must not break the store
        logger.exception("cannot load the artifact of model version %s (%s)", info.id, info.artifact)
        return None
    with _lock:
        _models[info.id] = loaded
        _models.move_to_end(info.id)
        while len(_models) > int(conf.get("SERVING_MODEL_CACHE_SIZE")):
            _models.popitem(last=False)
    logger.info("loaded model %s into process memory", loaded.label)
    return loaded


def reset() -> None:
    """Drop everything cached in this process (tests, after a fork)."""
    global _snapshot
    with _lock:
        _snapshot = None
        _models.clear()
