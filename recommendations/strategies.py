"""Serving strategies: "auto" (the default slot's active model), an algorithm's
name (its active version, or else its newest clean success), or the model-free
"trending" and "interests"; and which loaded version serves each."""

from __future__ import annotations

from .artifacts import algorithm_names
from .model_cache import Snapshot, VersionInfo
from .models import DEFAULT_SLOT, ModelVersion

SPECIAL_STRATEGIES = ("auto", "trending", "interests")


def strategy_check(strategy: str | None) -> str:
    """The normalised strategy, or ``ValueError`` naming an unknown one."""
    if strategy in (None, "", "auto"):
        return "auto"
    if strategy in SPECIAL_STRATEGIES or strategy in algorithm_names():
        return strategy
    raise ValueError(f"unknown strategy {strategy!r}; use one of {list(SPECIAL_STRATEGIES) + algorithm_names()}")


def version_for(snap: Snapshot, strategy: str) -> VersionInfo | None:
    """The version serving a strategy: the default slot's active one for "auto"; for
    an algorithm, its active version (default slot first) or else its newest clean
    success."""
    if strategy == "auto":
        return snap.active.get(DEFAULT_SLOT)
    if strategy in SPECIAL_STRATEGIES:
        return None
    active = [v for v in snap.active.values() if v.algorithm == strategy]
    if active:
        active.sort(key=lambda v: (v.slot != DEFAULT_SLOT, -v.id))
        return active[0]
    memo_key = ("latest", strategy)
    if memo_key not in snap.memo:
        row = (
            ModelVersion.objects.filter(
                algorithm=strategy, status=ModelVersion.Status.SUCCEEDED, tainted_at__isnull=True
            )
            .exclude(artifact="")
            .order_by("-finished_at", "-id")
            .only("id", "algorithm", "slot", "artifact")
            .first()
        )
        snap.memo[memo_key] = VersionInfo(row.pk, row.algorithm, row.slot, row.artifact.name) if row else None
    return snap.memo[memo_key]
