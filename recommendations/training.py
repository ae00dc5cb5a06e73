"""Training: database -> matrix -> engine -> holdout metrics -> artifact -> activation.

One ``ModelVersion`` row per run carries its state (queued, running with progress
and stage, succeeded, failed with the error). ``model_train`` is what the Celery
task, the ``train`` command and the schedule run:

1. read the customers' interactions in one streaming query
   (``training_data.interaction_matrix_build``);
2. split them in time: the last ``TRAIN_HOLDOUT_DAYS`` (or the last
   ``TRAIN_HOLDOUT_FRACTION`` of events if that window is degenerate) are the test;
3. fit on the earlier part and score NDCG/precision/recall/MAP@10 on new items of
   the test part ("auto" first selects the algorithm on a validation window cut
   from the training part, so the reported metrics stay honest);
4. refit on all data and save the artifact in Django storage;
5. activate it if it beats the slot's active version on NDCG@10 (or nothing is
   active), then prune old artifacts (``versions``: the version lifecycle).

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
from datetime import UTC, datetime
from typing import Any

import numpy as np
import scipy.sparse as sp
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import conf
from .artifacts import ArtifactMeta, artifact_write, kind_weights_parse
from .engine import base as engine_base
from .engine.evaluation import dense_index, evaluate, temporal_split
from .engine.matrix import matrix_build, recent_popularity
from .engine.selection import select_model
from .models import ModelVersion
from .training_data import Events, catalogue_side_read, interaction_matrix_build, product_categories
from .versions import TrainingError, artifact_delete, artifacts_prune, model_version_promote

logger = logging.getLogger(__name__)

SIDE_TEXT_ALGORITHMS = frozenset({"content", "hybrid", "auto"})
DAY = 86_400.0


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
                transaction.on_commit(lambda: artifact_delete(name))
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
        artifact_delete(name)


@dataclass
class _Data:
    events: Events
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
    return e.matrix(
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


def _evaluation_sample(events: Events, train: np.ndarray, test: np.ndarray, seed: int = 0):
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
    index, size = dense_index(events.users)
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
    events = interaction_matrix_build(
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
        item_ids, texts, categories = catalogue_side_read()
        item_ids, texts, categories = _merge_items(item_ids, texts, categories, np.unique(events.items))
    else:
        categories = product_categories(item_ids=item_ids)
    data = _Data(events, item_ids, texts, categories, kind_weights, half_life)
    timings["prepare"] = time.perf_counter() - tic

    # 3. holdout evaluation -----------------------------------------------------------------
    tic = time.perf_counter()
    cutoff = _cutoff(events.times)
    split = temporal_split(
        events.users, events.items, events.times, cutoff=cutoff, known_only=True, new_pairs_only=True
    )
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
        metrics["holdout_cutoff"] = datetime.fromtimestamp(cutoff, tz=UTC).isoformat()
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
        data_since=datetime.fromtimestamp(float(events.times.min()), tz=UTC),
        data_until=datetime.fromtimestamp(now, tz=UTC),
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
    m_ids, m_texts, m_cats = catalogue_side_read(item_ids=missing)
    order = np.argsort(np.concatenate([ids, m_ids]), kind="stable")
    all_ids = np.concatenate([ids, m_ids])[order]
    all_texts = [(texts + m_texts)[i] for i in order.tolist()]
    all_cats = np.concatenate([categories, m_cats])[order]
    return all_ids, all_texts, all_cats


def _select(data: _Data, train_mask: np.ndarray, cutoff: float, params: dict, reporter: _Progress):
    """Automatic model selection on a validation window cut from the training part."""
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
