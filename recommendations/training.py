"""Training: database -> matrix -> engine -> holdout metrics -> artifact -> activation.

One ``ModelVersion`` row per run carries its state (queued, running with progress
and stage, succeeded, failed with the error). ``model_train`` is what the Celery
task, the ``train`` command and the schedule run:

1. read the customers' interactions in one streaming query (``selectors``);
2. split them in time: the last ``TRAIN_HOLDOUT_DAYS`` (or the last
   ``TRAIN_HOLDOUT_FRACTION`` of events if that window is degenerate) are the test;
3. fit on the earlier part and score NDCG/precision/recall/MAP@10 on new items of
   the test part ("auto" first selects the algorithm on a validation window cut
   from the training part, so the reported metrics stay honest);
4. refit on all data and save the artifact in Django storage;
5. activate it if it beats the slot's active version on NDCG@10 (or nothing is
   active), then prune old artifacts.

A failure at any step (including the soft time limit) marks the version failed
with the error and leaves the active version serving. Running a version twice is
harmless: a finished version is left alone, an interrupted one starts over.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import conf, selectors, state
from .artifacts import ArtifactMeta, algorithm_names, artifact_write, kind_weights_parse
from .engine import base as engine_base
from .engine.evaluation import Split, evaluate
from .engine.matrix import matrix_build, recent_popularity
from .models import DEFAULT_SLOT, ForgottenUser, ModelVersion

logger = logging.getLogger(__name__)

SIDE_TEXT_ALGORITHMS = frozenset({"content", "hybrid", "auto"})
DAY = 86_400.0


class TrainingError(ValueError):
    """A training run cannot proceed (bad input or not enough data); the message says why."""


# --- creating and starting runs ---------------------------------------------------------
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
) -> ModelVersion:
    """A queued training run (validated). Start it with ``model_train_enqueue`` or
    run it in this process with ``model_train``."""
    algorithm = algorithm or conf.get("TRAIN_DEFAULT_ALGORITHM")
    params = params_check(algorithm=algorithm, params=params)
    if not slot or len(slot) > 40 or not slot.replace("-", "").replace("_", "").isalnum():
        raise TrainingError(f"slot must be a short slug (letters, digits, - and _), got {slot!r}")
    if trigger not in ModelVersion.Trigger.values:
        raise TrainingError(f"unknown trigger {trigger!r}")
    return ModelVersion.objects.create(
        algorithm=algorithm,
        requested_algorithm=algorithm,
        params=params,
        slot=slot,
        trigger=trigger,
        created_by=created_by if getattr(created_by, "is_authenticated", False) else None,
        stage="queued",
    )


def model_train_enqueue(*, version: ModelVersion) -> None:
    """Send the run to a worker once the current transaction commits."""
    from .tasks import model_train_task

    def send() -> None:
        result = model_train_task.delay(version.pk)
        ModelVersion.objects.filter(pk=version.pk, task_id="").update(task_id=result.id or "")

    transaction.on_commit(send)


# --- progress ------------------------------------------------------------------------------
class _Progress:
    """Writes progress (0-100) and stage text to the row, at most twice a second,
    outside any transaction; also forwards to an optional callback (progress bars)."""

    def __init__(self, version_id: int, callback: Callable[[int, str], None] | None) -> None:
        self.version_id = version_id
        self.callback = callback
        self.last_write = 0.0
        self.percent = 0
        self.stage = ""

    def set(self, percent: float, stage: str | None = None, *, force: bool = False) -> None:
        percent = int(max(self.percent, min(100, round(percent))))
        stage_changed = stage is not None and stage != self.stage
        if stage is not None:
            self.stage = stage
        changed = percent != self.percent or stage_changed
        self.percent = percent
        if self.callback and changed:
            self.callback(percent, self.stage)
        now = time.monotonic()
        if changed and (force or stage_changed or now - self.last_write >= 0.5):
            ModelVersion.objects.filter(pk=self.version_id).update(progress=percent, stage=self.stage[:200])
            self.last_write = now

    def part(self, start: float, stop: float, stage: str) -> Callable[[float], None]:
        self.set(start, stage)

        def report(fraction: float) -> None:
            self.set(start + (stop - start) * min(max(float(fraction), 0.0), 1.0))

        return report


# --- the run -------------------------------------------------------------------------------
def _claim(version_id: int) -> ModelVersion | None:
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().filter(pk=version_id).first()
        if version is None:
            logger.warning("model version %s does not exist (deleted?); nothing to train", version_id)
            return None
        if version.is_finished:
            logger.info("model version %s already %s; not training again", version_id, version.status)
            return None
        if version.status == ModelVersion.Status.RUNNING:
            logger.warning("model version %s was interrupted; starting it over", version_id)
            if version.artifact:  # written before the interruption: the new run writes its own
                name = version.artifact.name
                transaction.on_commit(lambda: _delete_artifact(name))
                version.artifact = ""
                version.save(update_fields=["artifact"])
        version.status = ModelVersion.Status.RUNNING
        version.started_at = timezone.now()
        version.progress, version.stage, version.error = 0, "starting", ""
        version.save(update_fields=["status", "started_at", "progress", "stage", "error"])
        return version


def model_train(*, version_id: int, progress: Callable[[int, str], None] | None = None) -> ModelVersion | None:
    """Run one training (see the module docstring). Never raises for a failed run:
    the version records the error; returns the version (None if it vanished)."""
    from celery.exceptions import SoftTimeLimitExceeded

    version = _claim(version_id)
    if version is None:
        return ModelVersion.objects.filter(pk=version_id).first()
    reporter = _Progress(version.pk, progress)
    started = time.perf_counter()
    try:
        _run(version, reporter)
    except SoftTimeLimitExceeded:
        _fail(
            version,
            f"timed out after {time.perf_counter() - started:.0f}s (the task's soft time limit); "
            "the active model keeps serving",
        )
    except (TrainingError, engine_base.EngineError) as exc:
        _fail(version, f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001 - any failure is recorded on the row
        logger.exception("training of model version %s failed", version.pk)
        _fail(version, f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc(limit=8)}")
    version.refresh_from_db()
    return version


def _fail(version: ModelVersion, message: str) -> None:
    logger.warning("model version %s failed: %s", version.pk, message.splitlines()[0])
    name = version.artifact.name if version.artifact else ""
    ModelVersion.objects.filter(pk=version.pk).update(
        status=ModelVersion.Status.FAILED,
        error=message[:20_000],
        finished_at=timezone.now(),
        stage="failed",
        is_active=False,
        artifact="",
    )
    if name:
        _delete_artifact(name)


@dataclass
class _Data:
    events: selectors.Events
    item_ids: np.ndarray
    item_text: list[str] | None
    item_category: np.ndarray
    kind_weights: dict[int, float]
    half_life: float | None


def _side(data: _Data, mask: np.ndarray | None, now: float) -> engine_base.SideData:
    events = data.events if mask is None else data.events.select(mask)
    recent = (
        recent_popularity(items=events.items, times=events.times, item_ids=data.item_ids, half_life_days=7.0, now=now)
        if len(events)
        else np.zeros(data.item_ids.size, np.float32)
    )
    return engine_base.SideData(item_text=data.item_text, item_category=data.item_category, item_recent=recent)


def _matrix(data: _Data, mask: np.ndarray | None, *, now: float, user_ids: np.ndarray | None = None):
    e = data.events if mask is None else data.events.select(mask)
    return matrix_build(
        users=e.users,
        items=e.items,
        kinds=e.kinds,
        values=e.values,
        times=e.times,
        kind_weights=data.kind_weights,
        half_life_days=data.half_life,
        now=now,
        item_ids=data.item_ids,
        user_ids=user_ids,
    )


def _relevant_matrix(data: _Data, mask: np.ndarray, *, user_ids: np.ndarray):
    """Held-out items as a binary matrix: positive evidence only (no removals, no bad ratings)."""
    e = data.events.select(mask)
    positive = np.isin(e.kinds, [k for k, w in data.kind_weights.items() if w > 0])
    positive &= ~((e.kinds == 6) & (e.values < 3))
    ones = {k: 1.0 for k in data.kind_weights}
    return matrix_build(
        users=e.users[positive],
        items=e.items[positive],
        kinds=e.kinds[positive],
        values=np.ones(int(positive.sum())),
        times=e.times[positive],
        kind_weights=ones,
        value_modes={},
        item_ids=data.item_ids,
        user_ids=user_ids,
    )


def _cutoff(times: np.ndarray) -> float:
    newest = float(times.max())
    cutoff = newest - float(conf.get("TRAIN_HOLDOUT_DAYS")) * DAY
    share = float((times >= cutoff).mean())
    if not 0.02 <= share <= 0.4:
        cutoff = float(np.quantile(times, 1.0 - float(conf.get("TRAIN_HOLDOUT_FRACTION"))))
    return cutoff


def holdout_split(events: selectors.Events, *, cutoff: float) -> Split:
    """``engine.evaluation.temporal_split(..., known_only=True, new_pairs_only=True)``
    computed with integer keys instead of structured arrays (the same masks, a test
    checks it; ~10x faster on a million events, which matters for the training budget)."""
    train = events.times < cutoff
    user_index, n_users = _dense_index(events.users)
    item_index, n_items = _dense_index(events.items)
    seen_user = np.zeros(n_users, dtype=bool)
    seen_user[user_index[train]] = True
    seen_item = np.zeros(n_items, dtype=bool)
    seen_item[item_index[train]] = True
    test = ~train & seen_user[user_index] & seen_item[item_index]
    if test.any():
        pair = user_index * n_items + item_index
        test &= ~np.isin(pair, pair[train])
    return Split(train=train, test=test)


def _dense_index(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Small consecutive integers for ids: an offset when the ids (primary keys) are
    dense enough, ``np.unique`` otherwise."""
    if ids.size == 0:
        return ids.astype(np.int64), 0
    low, high = int(ids.min()), int(ids.max())
    if high - low < 4 * ids.size + 1_000_000:
        return (ids - low).astype(np.int64), high - low + 1
    unique, index = np.unique(ids, return_inverse=True)
    return index.astype(np.int64), int(unique.size)


def _evaluation_sample(events: selectors.Events, train: np.ndarray, test: np.ndarray, seed: int = 0):
    """The events the holdout model learns from and is judged on, bounded so that
    evaluating costs a fraction of the final fit: at most ``TRAIN_EVAL_MAX_USERS``
    test users (random), and the training events of those users plus of random
    other users up to max(``TRAIN_EVAL_MIN_INTERACTIONS``, ``TRAIN_EVAL_FRACTION`` of
    all events) in all. Below the bounds everything is used."""
    max_users = int(conf.get("TRAIN_EVAL_MAX_USERS"))
    max_events = max(
        int(conf.get("TRAIN_EVAL_MIN_INTERACTIONS")), int(float(conf.get("TRAIN_EVAL_FRACTION")) * len(events))
    )
    rng = np.random.default_rng(seed)
    test_users = np.unique(events.users[test])
    if test_users.size > max_users:
        test_users = np.sort(rng.choice(test_users, size=max_users, replace=False))
        test = test & np.isin(events.users, test_users)
    if int(train.sum()) <= max_events:
        return train, test
    index, size = _dense_index(events.users)
    counts = np.bincount(index[train], minlength=size)
    chosen = np.zeros(size, dtype=bool)
    chosen[index[test]] = True  # the evaluated users, whole
    budget = max_events - int(counts[chosen].sum())
    others = np.flatnonzero(~chosen & (counts > 0))
    rng.shuffle(others)
    chosen[others[np.cumsum(counts[others]) <= max(budget, 0)]] = True
    return train & chosen[index], test


def _sample_rows(test, limit: int, seed: int = 0):
    rows = np.flatnonzero(np.diff(test.user_items.indptr) > 0)
    if rows.size <= limit:
        return test.user_items
    keep = np.zeros(test.user_items.shape[0], dtype=bool)
    keep[np.random.default_rng(seed).choice(rows, size=limit, replace=False)] = True
    import scipy.sparse as sp

    return sp.diags(keep.astype(np.float32)) @ test.user_items


METRIC_NAMES = {
    "ndcg": "ndcg@10",
    "precision": "precision@10",
    "recall": "recall@10",
    "map": "map@10",
    "hit_rate": "hit_rate@10",
    "coverage": "coverage",
    "novelty": "novelty",
    "diversity": "diversity",
    "users": "eval_users",
}


def _metrics(raw: dict[str, float], k: int) -> dict[str, float]:
    out = {}
    for key, value in raw.items():
        name = METRIC_NAMES.get(key, key)
        if k != 10:
            name = name.replace("@10", f"@{k}")
        if isinstance(value, (int, float)) and np.isfinite(value):
            out[name] = round(float(value), 6)
    return out


def _run(version: ModelVersion, reporter: _Progress) -> None:
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    kind_weights = kind_weights_parse(conf.get("TRAIN_KIND_WEIGHTS"))
    half_life = conf.get("TRAIN_HALF_LIFE_DAYS")
    algorithm = version.requested_algorithm or version.algorithm
    params = dict(version.params or {})
    k = int(conf.get("TRAIN_EVAL_K"))

    # 1. read ----------------------------------------------------------------------------
    read_at = timezone.now()
    ModelVersion.objects.filter(pk=version.pk).update(data_read_at=read_at)
    events = selectors.interaction_events_read(
        until=read_at, kinds=sorted(kind_weights), progress=reporter.part(0, 15, "reading interactions")
    )
    timings["read"] = events.read_seconds
    if len(events) == 0:
        raise TrainingError("no customer interactions to learn from yet")
    now = float(events.times.max())

    # 2. items, side data -----------------------------------------------------------------
    tic = time.perf_counter()
    reporter.set(15, "preparing the matrix")
    item_ids = np.unique(events.items)
    texts = None
    categories = np.full(item_ids.size, -1, dtype=np.int64)
    if algorithm in SIDE_TEXT_ALGORITHMS:
        # the whole active catalogue, so products nobody touched yet get content neighbours
        item_ids, texts, categories = selectors.catalogue_side_read()
        item_ids, texts, categories = _merge_items(item_ids, texts, categories, np.unique(events.items))
    else:
        categories = selectors.product_categories(item_ids=item_ids)
    data = _Data(events, item_ids, texts, categories, kind_weights, half_life)
    timings["prepare"] = time.perf_counter() - tic

    # 3. holdout evaluation -----------------------------------------------------------------
    tic = time.perf_counter()
    cutoff = _cutoff(events.times)
    split = holdout_split(events, cutoff=cutoff)
    metrics: dict[str, Any] = {}
    selection_rows: list[dict] = []
    train_mask, test_mask = _evaluation_sample(events, split.train, split.test)
    if test_mask.any() and train_mask.any():
        train = _matrix(data, train_mask, now=cutoff)
        test = _relevant_matrix(data, test_mask, user_ids=train.user_ids)
        test_rows = test.user_items
        side_train = _side(data, train_mask, cutoff)
        if algorithm == "auto":
            algorithm, params, selection_rows = _select(data, train_mask, cutoff, params, reporter)
        model = engine_base.algorithm_build(algorithm, **params)
        model.fit(
            train.user_items,
            side_train,
            progress=reporter.part(25 if selection_rows else 20, 50, f"fitting {algorithm} on the training part"),
        )
        reporter.set(50, "scoring the holdout")
        if np.diff(test_rows.indptr).any():
            users = int((np.diff(test_rows.indptr) > 0).sum())
            # coverage/novelty/diversity cost more than the accuracy metrics on big catalogues
            beyond = users * train.n_items <= 20_000_000
            metrics = _metrics(evaluate(model, train, test_rows, k=k, beyond_accuracy=beyond), k)
        metrics["eval_train_interactions"] = int(train_mask.sum())
        metrics["holdout_cutoff"] = datetime.fromtimestamp(cutoff, tz=dt_timezone.utc).isoformat()
        del model, train, test
    elif algorithm == "auto":
        algorithm, params = "trending", {}
    timings["evaluate"] = time.perf_counter() - tic

    # 4. refit on everything ---------------------------------------------------------------------
    tic = time.perf_counter()
    full = _matrix(data, None, now=now)
    model = engine_base.algorithm_build(algorithm, **params)
    model.fit(
        full.user_items, _side(data, None, now), progress=reporter.part(55, 90, f"fitting {algorithm} on all data")
    )
    timings["fit"] = time.perf_counter() - tic

    # 5. artifact -----------------------------------------------------------------------------
    tic = time.perf_counter()
    reporter.set(90, "saving the artifact")
    meta = ArtifactMeta(kind_weights=kind_weights, half_life_days=half_life, trained_at=now, version_id=version.pk)
    name = f"{settings.AFFINITY_ARTIFACT_DIR.strip('/')}/v{version.pk}-{algorithm}-{uuid.uuid4().hex[:8]}.npz"
    stored, size = artifact_write(model=model, item_ids=item_ids, item_category=categories, meta=meta, name=name)
    timings["artifact"] = time.perf_counter() - tic
    if selection_rows:
        metrics["selection"] = selection_rows
    total = time.perf_counter() - clock
    timings["total"] = total
    ModelVersion.objects.filter(pk=version.pk).update(
        algorithm=algorithm,
        params=model.get_params(),
        progress=97,
        stage="deciding activation",
        metrics=metrics,
        timings={k_: round(v, 3) for k_, v in timings.items()},
        training_seconds=round(total, 3),
        artifact=stored,
        artifact_size=size,
        n_users=int(full.n_users),
        n_items=int(full.n_items),
        n_interactions=len(events),
        data_since=datetime.fromtimestamp(float(events.times.min()), tz=dt_timezone.utc),
        data_until=datetime.fromtimestamp(now, tz=dt_timezone.utc),
        finished_at=timezone.now(),
    )
    version.refresh_from_db()

    # 6. champion / challenger --------------------------------------------------------------------
    model_version_promote(version=version, finish=True)
    artifacts_prune(slot=version.slot)
    version.refresh_from_db(fields=["activation_note"])
    if reporter.callback:
        reporter.callback(100, version.activation_note or "done")


def _merge_items(ids, texts, categories, event_items):
    """Catalogue ids plus products with events that are no longer active."""
    missing = np.setdiff1d(event_items, ids)
    if missing.size == 0:
        return ids, texts, categories
    m_ids, m_texts, m_cats = selectors.catalogue_side_read(item_ids=missing)
    order = np.argsort(np.concatenate([ids, m_ids]), kind="stable")
    all_ids = np.concatenate([ids, m_ids])[order]
    all_texts = [(texts + m_texts)[i] for i in order.tolist()]
    all_cats = np.concatenate([categories, m_cats])[order]
    return all_ids, all_texts, all_cats


def _select(data: _Data, train_mask: np.ndarray, cutoff: float, params: dict, reporter: _Progress):
    """Automatic model selection on a validation window cut from the training part."""
    from .engine.selection import select_model

    times = data.events.times[train_mask]
    val_cutoff = _cutoff(times)
    inner = train_mask & (data.events.times < val_cutoff)
    val = train_mask & (data.events.times >= val_cutoff)
    inner_matrix = _matrix(data, inner, now=val_cutoff)
    known = np.isin(data.events.users, inner_matrix.user_ids) & np.isin(data.events.items, data.events.items[inner])
    validation = _relevant_matrix(data, val & known, user_ids=inner_matrix.user_ids)
    seen = inner_matrix.user_items.copy()
    seen.data[:] = 1
    validation_rows = _sample_rows(validation, int(conf.get("TRAIN_EVAL_MAX_USERS")), seed=1)
    validation_rows = validation_rows - validation_rows.multiply(seen)  # new items only
    validation_rows.eliminate_zeros()
    if not np.diff(validation_rows.tocsr().indptr).any():
        return "trending", {}, [{"algorithm": "trending", "status": "chosen", "reason": "no validation data"}]
    result = select_model(
        inner_matrix.user_items,
        validation_rows,
        _side(data, inner, val_cutoff),
        candidates=params.get("candidates"),
        k=int(conf.get("TRAIN_EVAL_K")),
        time_budget_s=float(params.get("time_budget_s") or conf.get("TRAIN_SELECTION_BUDGET_S")),
        progress=reporter.part(20, 45, "selecting the algorithm"),
    )
    rows = []
    for row in result.rows:
        clean = {
            k: (round(v, 6) if isinstance(v, float) else v)
            for k, v in row.items()
            if k in ("algorithm", "params", "status", "reason", "ndcg", "precision", "recall", "train_seconds")
        }
        rows.append(clean)
    return result.best_name, dict(result.best_params), rows


# --- activation ----------------------------------------------------------------------------------
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
            _taint(version, "a customer was forgotten while it trained")
            state.epoch_bump()
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
            state.epoch_bump()  # a new succeeded version can serve its algorithm's strategy
        logger.info("model version %s: %s", version.pk, note)
        return wins


def _activate(version: ModelVersion, champion: ModelVersion | None, note: str) -> None:
    if champion is not None:
        ModelVersion.objects.filter(pk=champion.pk).update(is_active=False)
    ModelVersion.objects.filter(pk=version.pk).update(
        is_active=True, activated_at=timezone.now(), activation_note=note[:255]
    )
    state.epoch_bump()


def model_version_activate(*, version: ModelVersion, by=None) -> ModelVersion:
    """Make ``version`` the active one of its slot by hand (staff decision)."""
    with transaction.atomic():
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        if version.status != ModelVersion.Status.SUCCEEDED:
            raise TrainingError(f"{version.label} cannot be activated: it is {version.status}, not succeeded")
        if version.tainted_at is not None:
            raise TrainingError(f"{version.label} cannot be activated: it holds data of a forgotten customer")
        if not version.artifact or not default_storage.exists(version.artifact.name):
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
        state.epoch_bump()
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
        state.epoch_bump()
        if name:
            transaction.on_commit(lambda: _delete_artifact(name))


def _taint(version: ModelVersion, why: str) -> None:
    name = version.artifact.name if version.artifact else ""
    ModelVersion.objects.filter(pk=version.pk).update(
        tainted_at=timezone.now(), is_active=False, artifact="", activation_note=f"retired: {why}"[:255]
    )
    if name:
        transaction.on_commit(lambda: _delete_artifact(name))


def _delete_artifact(name: str) -> None:
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
        _delete_artifact(name)
        pruned += 1
    return pruned


def versions_with_user_data(*, first: datetime, last: datetime):
    """Succeeded, still clean versions whose data window covers [first, last]."""
    return (
        ModelVersion.objects.filter(status=ModelVersion.Status.SUCCEEDED, tainted_at__isnull=True)
        .filter(Q(data_until__isnull=True) | Q(data_until__gte=first))
        .filter(Q(data_since__isnull=True) | Q(data_since__lte=last))
    )
