"""Model versions: their lifecycle from creation to retirement.

* ``model_version_create``: a queued training run (algorithm and parameters checked now);
* ``model_version_promote``: champion/challenger at the end of a run — the new version
  is activated only if it beats the slot's active one on NDCG@10;
* ``model_version_activate`` / ``model_version_deactivate`` / ``model_version_delete``:
  staff decisions;
* ``model_version_retire``: a version that holds data of a forgotten customer never
  serves again (tainted, deactivated, artifact deleted after commit), and
  ``model_version_reactivate_clean`` puts a slot's newest clean version back;
* ``artifacts_prune``: old artifacts go, active ones and experiments' stay;
* ``stale_runs_fail``: a running version whose heartbeat stopped (its worker was
  killed) is marked failed, so it does not stay "running" until the broker redelivers.

Every change of what may be served bumps the serving epoch in the same transaction
(``model_cache.epoch_bump``), so serving processes reload on their next call.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta
from typing import Any

from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import conf, model_cache
from .artifacts import algorithm_names
from .engine import base as engine_base
from .engine.evaluation import PROTOCOLS
from .models import DEFAULT_SLOT, ForgottenUser, ModelVersion

logger = logging.getLogger(__name__)


class TrainingError(ValueError):
    """A training run or a version change cannot proceed (bad input, not enough
    data, a version that cannot serve); the message says why."""


# --- creating runs ------------------------------------------------------------------------
def params_check(*, algorithm: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Validate an algorithm name and its parameters now (not in the worker)."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise TrainingError(f"params must be a JSON object, got {type(params).__name__}")
    names = algorithm_names()
    if algorithm == "auto":
        unknown = sorted(set(params) - {"candidates", "time_budget_s"})
        if unknown:
            raise TrainingError(f"auto: unknown parameter(s) {unknown}; known: ['candidates', 'time_budget_s']")
        return params
    if algorithm not in names:
        raise TrainingError(f"unknown algorithm {algorithm!r}; use 'auto' or one of {names}")
    try:
        return engine_base.algorithm_build(algorithm, **params).get_params()
    except engine_base.EngineError as exc:
        raise TrainingError(str(exc)) from exc


def model_version_create(
    *,
    algorithm: str | None = None,
    params: dict[str, Any] | None = None,
    slot: str = DEFAULT_SLOT,
    trigger: str = ModelVersion.Trigger.COMMAND,
    created_by=None,
    protocol: str = "",
) -> ModelVersion:
    """A queued training run (validated). Start it with ``services.model_train_enqueue``
    or run it in this process with ``training.model_train``. ``protocol`` forces a
    holdout protocol (``engine.evaluation.PROTOCOLS``); blank: chosen from the data."""
    algorithm = algorithm or conf.get("TRAIN_DEFAULT_ALGORITHM")
    params = params_check(algorithm=algorithm, params=params)
    if not slot or len(slot) > 40 or not slot.replace("-", "").replace("_", "").isalnum():
        raise TrainingError(f"slot must be a short slug (letters, digits, - and _), got {slot!r}")
    if trigger not in ModelVersion.Trigger.values:
        raise TrainingError(f"unknown trigger {trigger!r}")
    if protocol and protocol not in PROTOCOLS:
        raise TrainingError(f"unknown protocol {protocol!r}; one of {', '.join(PROTOCOLS)}")
    return ModelVersion.objects.create(
        protocol=protocol,
        algorithm=algorithm,
        requested_algorithm=algorithm,
        params=params,
        slot=slot,
        trigger=trigger,
        created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
        stage="queued",
    )


# --- champion / challenger, staff decisions ----------------------------------------------
def _beats(challenger: ModelVersion, champion: ModelVersion | None) -> tuple[bool, str]:
    if champion is None:
        return True, "activated: no active model in this slot"
    new, old = challenger.ndcg, champion.ndcg
    if new is None:
        return False, f"kept {champion.label}: this run has no holdout metrics to compare"
    if old is None:
        return True, f"activated: replaces {champion.label}, which had no holdout metrics"
    if new > old:
        return True, f"activated: NDCG@10 {new:.4f} beats {champion.label}'s {old:.4f}"
    return False, f"kept {champion.label}: NDCG@10 {new:.4f} does not beat its {old:.4f}"


def model_version_promote(*, version: ModelVersion, finish: bool = False) -> bool:
    """Champion/challenger: activate ``version`` if it beats the slot's active one.
    With ``finish`` (the end of a run) the version is marked succeeded in the same
    transaction, so nobody sees a success that is not yet activated. A version that
    read data before a customer was forgotten is never activated."""
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if finish and version.status == ModelVersion.Status.RUNNING:
            version.status = ModelVersion.Status.SUCCEEDED
            version.progress, version.stage = 100, "done"
            version.save(update_fields=["status", "progress", "stage"])
        if version.status != ModelVersion.Status.SUCCEEDED or version.tainted_at is not None:
            return False
        if (
            version.data_read_at
            and ForgottenUser.objects.filter(forgotten_at__gte=version.data_read_at, had_interactions=True).exists()
        ):
            model_version_retire(version=version, reason="a customer was forgotten while it trained")
            model_cache.epoch_bump()
            return False
        champion = (
            ModelVersion.objects.select_for_update()
            .filter(slot=version.slot, is_active=True)
            .exclude(pk=version.pk)
            .first()
        )
        wins, note = _beats(version, champion)
        if wins:
            _activate(version, champion, note)
        else:
            ModelVersion.objects.filter(pk=version.pk).update(activation_note=note[:255])
            model_cache.epoch_bump()  # a new succeeded version can serve its algorithm's strategy
        logger.info("model version %s: %s", version.pk, note)
        return wins


def _activate(version: ModelVersion, champion: ModelVersion | None, note: str) -> None:
    if champion is not None:
        ModelVersion.objects.filter(pk=champion.pk).update(is_active=False)
    ModelVersion.objects.filter(pk=version.pk).update(
        is_active=True, activated_at=timezone.now(), activation_note=note[:255]
    )
    model_cache.epoch_bump()


def model_version_activate(*, version: ModelVersion, by=None) -> ModelVersion:
    """Make ``version`` the active one of its slot by hand (staff decision)."""
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if version.status != ModelVersion.Status.SUCCEEDED:
            raise TrainingError(f"{version.label} cannot be activated: it is {version.status}, not succeeded")
        if version.tainted_at is not None:
            raise TrainingError(f"{version.label} cannot be activated: it holds data of a forgotten customer")
        if not version.artifact.name or not default_storage.exists(version.artifact.name):
            raise TrainingError(f"{version.label} cannot be activated: its artifact was pruned")
        if version.is_active:
            return version
        champion = ModelVersion.objects.select_for_update().filter(slot=version.slot, is_active=True).first()
        who = getattr(by, "email", "") or "staff"
        _activate(
            version, champion, f"activated by hand by {who}" + (f" (replacing {champion.label})" if champion else "")
        )
    version.refresh_from_db()
    return version


def model_version_deactivate(*, version: ModelVersion) -> ModelVersion:
    """Stop serving ``version``; its slot falls back to interests/trending."""
    with transaction.atomic():
        ModelVersion.objects.filter(pk=version.pk, is_active=True).update(
            is_active=False, activation_note="deactivated by hand"
        )
        model_cache.epoch_bump()
    version.refresh_from_db()
    return version


def model_version_delete(*, version: ModelVersion) -> None:
    """Delete a version and its artifact; refused while it serves, trains, or an
    experiment uses it."""
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if version.is_active:
            raise TrainingError(f"{version.label} is active: activate another version (or deactivate it) first")
        if version.status == ModelVersion.Status.RUNNING:
            raise TrainingError(f"{version.label} is training: wait until it finishes")
        if version.variants.exists():
            raise TrainingError(f"{version.label} serves an experiment variant")
        name = version.artifact.name if version.artifact else ""
        version.delete()
        model_cache.epoch_bump()
        if name:
            transaction.on_commit(lambda: artifact_delete(name))


def model_version_retire(*, version: ModelVersion, reason: str) -> None:
    """Never serve ``version`` again: tainted, deactivated, its artifact deleted once
    the transaction commits (the caller bumps the serving epoch)."""
    name = version.artifact.name if version.artifact else ""
    ModelVersion.objects.filter(pk=version.pk).update(
        tainted_at=timezone.now(), is_active=False, artifact="", activation_note=f"retired: {reason}"[:255]
    )
    if name:
        transaction.on_commit(lambda: artifact_delete(name))


def model_version_reactivate_clean(*, slot: str, note: str) -> ModelVersion | None:
    """Activate the newest clean (succeeded, not tainted, with an artifact) version
    of ``slot``, if there is one (a slot that lost its active version)."""
    clean = (
        ModelVersion.objects.filter(slot=slot, status=ModelVersion.Status.SUCCEEDED, tainted_at__isnull=True)
        .exclude(artifact="")
        .order_by("-finished_at", "-id")
        .first()
    )
    if clean is not None:
        _activate(clean, None, note)
    return clean


def artifact_delete(name: str | None) -> None:
    """Delete a stored artifact (a failure is logged, not raised; no name, nothing to do)."""
    if not name:
        return
    try:
        default_storage.delete(name)
    except OSError:
        logger.warning("could not delete artifact %s", name, exc_info=True)


def artifacts_prune(*, slot: str, keep: int | None = None) -> int:
    """Delete the artifacts of all but the ``keep`` newest succeeded versions of a
    slot (never the active one, nor one an experiment uses). Returns how many."""
    keep = int(conf.get("ARTIFACT_KEEP") if keep is None else keep)
    versions = list(
        ModelVersion.objects.filter(slot=slot, status=ModelVersion.Status.SUCCEEDED)
        .exclude(artifact="")
        .filter(is_active=False, variants__isnull=True)
        .order_by("-finished_at", "-id")
    )
    active_count = ModelVersion.objects.filter(slot=slot, is_active=True).count()
    pruned = 0
    for version in versions[max(keep - active_count, 0) :]:
        name = version.artifact.name
        ModelVersion.objects.filter(pk=version.pk).update(artifact="", artifact_size=0)
        artifact_delete(name)
        pruned += 1
    return pruned


def stale_runs_fail(*, exclude: int | None = None, now: datetime | None = None) -> list[int]:
    """Mark failed the running versions silent for more than ``TRAIN_HEARTBEAT_TIMEOUT``
    seconds (no heartbeat, or none since they started): their worker stopped. Queued,
    finished and active versions are never touched (the active one keeps serving);
    ``exclude`` is the run about to (re)start. A run that was only slow finds its row
    failed at its next write and stops without activating. Returns the ids failed."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=float(conf.get("TRAIN_HEARTBEAT_TIMEOUT")))
    silent = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    failed: list[int] = []
    with transaction.atomic():
        stale = ModelVersion.objects.select_for_update(skip_locked=True).filter(
            silent, status=ModelVersion.Status.RUNNING, is_active=False
        )
        if exclude is not None:
            stale = stale.exclude(pk=exclude)
        for version in stale:
            since = version.heartbeat_at or version.started_at
            name = version.artifact.name if version.artifact else ""
            ModelVersion.objects.filter(pk=version.pk).update(
                status=ModelVersion.Status.FAILED,
                stage="failed",
                finished_at=now,
                artifact="",
                error=f"worker stopped: no heartbeat since {since.isoformat(timespec='seconds') if since else '?'} "
                f"(more than {conf.get('TRAIN_HEARTBEAT_TIMEOUT')}s); the active model keeps serving",
            )
            if name:
                transaction.on_commit(functools.partial(artifact_delete, name))
            logger.warning("model version %s failed: no heartbeat since %s (worker stopped?)", version.pk, since)
            failed.append(version.pk)
    return failed


def versions_with_user_data(*, first: datetime, last: datetime):
    """Succeeded, still clean versions whose data window covers [first, last]."""
    return (
        ModelVersion.objects.filter(status=ModelVersion.Status.SUCCEEDED, tainted_at__isnull=True)
        .filter(Q(data_until__isnull=True) | Q(data_until__gte=first))
        .filter(Q(data_since__isnull=True) | Q(data_since__lte=last))
    )
