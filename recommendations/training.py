"""Training: database -> matrix -> engine -> holdout metrics -> artifact -> activation.

One ``ModelVersion`` row per run carries its state (queued, running with progress
and stage, succeeded, failed with the error). ``model_train`` is what the Celery
task, the ``train`` command and the schedule run:

1. read the customers' interactions in one streaming query
   (``training_data.interaction_matrix_build``);
2. hold out a test part by the protocol that fits the data's shape
   (``engine.evaluation.protocol_choose``; the version's ``protocol`` overrides):
   explicit ratings -> a random 20% of each customer's items; other events -> the
   last ``TRAIN_HOLDOUT_DAYS`` (or the last ``TRAIN_HOLDOUT_FRACTION`` of events if
   that window is degenerate), falling back to the random split when time cannot
   separate train from test. The protocol and why are stored in the metrics;
3. fit on the training part and score NDCG/precision/recall/MAP@10 on the test
   part, with serving's exclusions (consumed items are neither candidates nor
   relevant). "auto" first selects the algorithm (``candidates_for``'s grid and
   the hybrid) on a validation split cut the same
   way from the training part, so the reported metrics stay honest; algorithms
   that need side data the store does not have are skipped with the reason;
4. refit on all data and save the artifact in Django storage;
5. activate it if it beats the slot's active version on NDCG@10 (or nothing is
   active), then prune old artifacts (``versions``: the version lifecycle).

A failure at any step (including the soft time limit) marks the version failed
with the error and leaves the active version serving. Running a version twice is
harmless: a finished version is left alone, an interrupted one starts over.

A hard-killed worker cannot record anything, so a run proves it is alive: a small
thread (``_Heartbeat``) writes ``heartbeat_at`` every ``TRAIN_HEARTBEAT_SECONDS``,
and so does every progress write. ``versions.stale_runs_fail`` (a periodic task, and
the start of every run) fails runs silent for ``TRAIN_HEARTBEAT_TIMEOUT``. A run
that was only slow finds its row failed at its next write (``RunAbandoned``) and
stops without activating or overwriting that error.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.utils import timezone

from . import conf
from .artifacts import ArtifactMeta, artifact_write, kind_weights_parse
from .engine import base as engine_base
from .engine.evaluation import (
    Protocol,
    consumed_mask,
    dense_index,
    evaluate,
    protocol_choose,
    protocol_split,
)
from .engine.matrix import InteractionMatrix, matrix_build, recent_popularity
from .engine.selection import SelectionResult, candidates_for, select_model
from .models import ModelVersion
from .noise import events_exclude, noise_find
from .training_data import Events, catalogue_side_read, interaction_matrix_build, product_categories
from .versions import TrainingError, artifact_delete, artifacts_prune, model_version_promote, stale_runs_fail

logger = logging.getLogger(__name__)

SIDE_TEXT_ALGORITHMS = frozenset({"content", "hybrid", "auto"})
TRENDING_HALF_LIFE_DAYS = 2.0
"""Half-life of the hybrid's trending part (what sells now; 2 days beat 7 on Online Retail)."""
DAY = 86_400.0


# --- progress and heartbeat -----------------------------------------------------------------
class RunAbandoned(Exception):  # noqa: N818 - a state, not an error of this run's making
    """This run's row is no longer running (the heartbeat sweep failed it): stop."""


def _running(version_id: int, **fields: Any) -> None:
    """Write ``fields`` and a heartbeat to the row if it is still running; else stop the run."""
    if not ModelVersion.objects.filter(pk=version_id, status=ModelVersion.Status.RUNNING).update(
        heartbeat_at=timezone.now(), **fields
    ):
        raise RunAbandoned(f"model version {version_id} is no longer running")


class _Heartbeat:
    """A daemon thread writing the run's ``heartbeat_at`` every ``TRAIN_HEARTBEAT_SECONDS``
    while the engine computes (a stage may report no progress for minutes); with its own
    database connection, closed when it stops. Errors are logged, never raised."""

    def __init__(self, version_id: int) -> None:
        self.version_id = version_id
        self.interval = float(conf.get("TRAIN_HEARTBEAT_SECONDS"))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-v{version_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        if self.interval > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    ModelVersion.objects.filter(pk=self.version_id, status=ModelVersion.Status.RUNNING).update(
                        heartbeat_at=timezone.now()
                    )
                except DatabaseError:
                    logger.warning("heartbeat of model version %s not written", self.version_id, exc_info=True)
                    close_old_connections()
        finally:
            connection.close()


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
            _running(self.version_id, progress=percent, stage=self.stage[:200])
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
        version.started_at = version.heartbeat_at = timezone.now()
        version.progress, version.stage, version.error = 0, "starting", ""
        version.save(update_fields=["status", "started_at", "heartbeat_at", "progress", "stage", "error"])
        return version


def model_train(*, version_id: int, progress: Callable[[int, str], None] | None = None) -> ModelVersion | None:
    """Run one training (see the module docstring). Never raises for a failed run:
    the version records the error; returns the version (None if it vanished). Runs of
    dead workers are failed first (``versions.stale_runs_fail``)."""
    stale_runs_fail(exclude=version_id)
    version = _claim(version_id)
    if version is None:
        return ModelVersion.objects.filter(pk=version_id).first()
    reporter = _Progress(version.pk, progress)
    started = time.perf_counter()
    try:
        with _Heartbeat(version.pk):
            _run(version, reporter)
    except RunAbandoned:
        logger.warning("model version %s was failed meanwhile (no heartbeat in time); stopped", version.pk)
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
    # a row the heartbeat sweep failed meanwhile keeps its error
    ModelVersion.objects.filter(pk=version.pk, status=ModelVersion.Status.RUNNING).update(
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


def data_prepare(events: Events, *, side_text: bool, catalogue: bool = True) -> _Data:
    """The events with their item universe and side data: with ``side_text`` the whole
    active catalogue (so products nobody touched yet get content neighbours) and its
    texts; without ``catalogue`` (events from a file) no side data at all."""
    kind_weights = kind_weights_parse(conf.get("TRAIN_KIND_WEIGHTS"))
    half_life = conf.get("TRAIN_HALF_LIFE_DAYS")
    item_ids = np.unique(events.items)
    texts = None
    categories = np.full(item_ids.size, -1, dtype=np.int64)
    if catalogue and side_text:
        item_ids, texts, categories = catalogue_side_read()
        item_ids, texts, categories = _merge_items(item_ids, texts, categories, np.unique(events.items))
    elif catalogue:
        categories = product_categories(item_ids=item_ids)
    return _Data(events, item_ids, texts, categories, kind_weights, half_life)


def _side(data: _Data, mask: np.ndarray | None, now: float) -> engine_base.SideData:
    events = data.events if mask is None else data.events.select(mask)
    recent = (
        recent_popularity(
            items=events.items,
            times=events.times,
            item_ids=data.item_ids,
            half_life_days=TRENDING_HALF_LIFE_DAYS,
            now=now,
        )
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


def _relevant_matrix(data: _Data, mask: np.ndarray, *, user_ids: np.ndarray) -> InteractionMatrix:
    """Held-out items as a binary matrix: positive evidence only (no removals, no bad ratings)."""
    e = data.events.select(mask)
    positive = np.isin(e.kinds, [k for k, w in data.kind_weights.items() if w > 0])
    positive &= ~((e.kinds == 6) & (e.values < 3))
    return _ones(e, positive, data.item_ids, user_ids)


def _ones(e: Events, keep: np.ndarray, item_ids: np.ndarray, user_ids: np.ndarray) -> InteractionMatrix:
    return matrix_build(
        users=e.users[keep],
        items=e.items[keep],
        kinds=e.kinds[keep],
        values=np.ones(int(keep.sum())),
        times=e.times[keep],
        kind_weights=dict.fromkeys(np.unique(e.kinds[keep]).tolist(), 1.0),
        value_modes={},
        item_ids=item_ids,
        user_ids=user_ids,
    )


def _excluded_matrix(data: _Data, mask: np.ndarray, *, user_ids: np.ndarray, now: float) -> sp.csr_matrix:
    """What serving would hold back from each customer at ``now`` given the events of
    ``mask``: consumed kinds for ever, the windowed kinds (``exclude_kinds``) when recent."""
    e = data.events.select(mask)
    forever, windows = conf.exclude_kinds()
    keep = consumed_mask(e.kinds, forever)
    for kind, seconds in windows.items():
        keep |= (e.kinds == kind) & (e.times >= now - seconds)
    return _ones(e, keep, data.item_ids, user_ids).user_items


def _cutoff(times: np.ndarray) -> float:
    newest = float(times.max())
    cutoff = newest - float(conf.get("TRAIN_HOLDOUT_DAYS")) * DAY
    share = float((times >= cutoff).mean())
    if not 0.02 <= share <= 0.4:
        cutoff = float(np.quantile(times, 1.0 - float(conf.get("TRAIN_HOLDOUT_FRACTION"))))
    return cutoff


def _protocol(data: _Data, mask: np.ndarray | None, requested: str) -> tuple[Protocol, float]:
    """The protocol for these events (``requested`` wins) and the temporal cutoff."""
    e = data.events if mask is None else data.events.select(mask)
    cutoff = _cutoff(e.times)
    if requested:
        return Protocol(requested, "asked for (--protocol)"), cutoff
    return protocol_choose(e.users, e.kinds, e.times, cutoff=cutoff, items=e.items), cutoff


def _split(data: _Data, mask: np.ndarray | None, protocol: str, cutoff: float, seed: int):
    """Masks over all events (train, test) of the protocol applied to ``mask``'s events,
    and the matrices' "now" (the cutoff for a temporal split, else the newest event)."""
    e = data.events if mask is None else data.events.select(mask)
    split = protocol_split(protocol, e.users, e.items, e.times, cutoff=cutoff, seed=seed)
    if mask is None:
        train, test = split.train, split.test
    else:
        where = np.flatnonzero(mask)
        train = np.zeros(len(data.events), dtype=bool)
        test = np.zeros(len(data.events), dtype=bool)
        train[where[split.train]] = True
        test[where[split.test]] = True
    now = cutoff if protocol == "temporal" else float(e.times.max())
    return train, test, now


@dataclass
class Holdout:
    """One holdout: the training matrix (the models' data and the evaluated customers'
    histories), the held-out relevant items, what serving would exclude, side data."""

    protocol: Protocol
    now: float
    train_mask: np.ndarray
    train: InteractionMatrix
    relevant: sp.csr_matrix
    exclude: sp.csr_matrix
    side: engine_base.SideData

    @cached_property
    def users(self) -> int:
        """Customers with a held-out item serving would not exclude (the ones evaluated)."""
        left = self.relevant - self.relevant.multiply(self.exclude)
        return int((np.diff(sp.csr_matrix(left).indptr) > 0).sum())


def holdout_build(
    data: _Data, *, protocol: str = "", mask: np.ndarray | None = None, seed: int = 0, sample: bool = True
) -> Holdout | None:
    """Split ``mask``'s events (all by default) by the protocol that fits them (or
    ``protocol``), bounded by ``_evaluation_sample``; None when nothing is held out."""
    chosen, cutoff = _protocol(data, mask, protocol)
    train_mask, test_mask, now = _split(data, mask, chosen.name, cutoff, seed)
    if sample:
        train_mask, test_mask = _evaluation_sample(data.events, train_mask, test_mask, seed=seed)
    if not (train_mask.any() and test_mask.any()):
        return None
    train = _matrix(data, train_mask, now=now)
    relevant = _relevant_matrix(data, test_mask, user_ids=train.user_ids).user_items
    rows = _sample_rows(relevant, int(conf.get("TRAIN_EVAL_MAX_USERS")), seed=seed + 1)
    exclude = _excluded_matrix(data, train_mask, user_ids=train.user_ids, now=now)
    holdout = Holdout(chosen, now, train_mask, train, sp.csr_matrix(rows), exclude, _side(data, train_mask, now))
    return holdout if holdout.users else None


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


def _sample_rows(matrix: sp.csr_matrix, limit: int, seed: int = 0) -> sp.csr_matrix:
    rows = np.flatnonzero(np.diff(matrix.indptr) > 0)
    if rows.size <= limit:
        return matrix
    keep = np.zeros(matrix.shape[0], dtype=bool)
    keep[np.random.default_rng(seed).choice(rows, size=limit, replace=False)] = True
    return sp.csr_matrix(sp.diags(keep.astype(np.float32)) @ matrix)


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


LONG_TAIL_WEIGHTS = (0.1, 0.25, 0.5)
"""Re-ranking weights (``engine.rerank``) measured on every holdout: staff pick a
placement's ``long_tail_weight`` seeing NDCG and long-tail exposure at each."""


def long_tail_tradeoff(raw: dict[str, float], k: int) -> list[dict[str, float]]:
    """The re-ranking rows of an ``evaluate`` result, weight 0 (no re-ranking) first:
    ``weight``, ``ndcg@k``, ``long_tail_share``, ``popularity_lift``, ``coverage``,
    ``novelty`` (rounded; a figure that could not be measured is left out)."""
    names = {"ndcg": f"ndcg@{k}"}
    rows: dict[float, dict[str, float]] = {}
    for key, value in raw.items():
        if key in ("ndcg", "long_tail_share", "popularity_lift", "coverage", "novelty"):
            weight, name = 0.0, key
        elif key.startswith("rerank@") and ":" in key:
            label, name = key.split(":", 1)
            weight = float(label.removeprefix("rerank@"))
        else:
            continue
        if isinstance(value, (int, float)) and np.isfinite(value):
            rows.setdefault(weight, {"weight": weight})[names.get(name, name)] = round(float(value), 6)
    return [rows[w] for w in sorted(rows)] if len(rows) > 1 else []


def _run(version: ModelVersion, reporter: _Progress) -> None:
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    kind_weights = kind_weights_parse(conf.get("TRAIN_KIND_WEIGHTS"))
    algorithm = version.requested_algorithm or version.algorithm
    params = dict(version.params or {})
    k = int(conf.get("TRAIN_EVAL_K"))

    # 1. read ----------------------------------------------------------------------------
    read_at = timezone.now()
    _running(version.pk, data_read_at=read_at)
    events = interaction_matrix_build(
        until=read_at, kinds=sorted(kind_weights), progress=reporter.part(0, 15, "reading interactions")
    )
    # suspected bots and noise leave the matrix (their rows stay in the database)
    reporter.set(14, "leaving out suspected bots and noise")
    tic = time.perf_counter()
    noise = noise_find(until=read_at)
    events, dropped = events_exclude(events, noise)
    excluded = noise.summary(events=dropped)
    timings["read"] = events.read_seconds
    timings["noise"] = time.perf_counter() - tic
    if len(events) == 0:
        if dropped:
            raise TrainingError(
                f"no customer interactions left to learn from once {dropped} noise events were excluded"
            )
        raise TrainingError("no customer interactions to learn from yet")
    now = float(events.times.max())

    # 2. items, side data -----------------------------------------------------------------
    tic = time.perf_counter()
    reporter.set(15, "preparing the matrix")
    data = data_prepare(events, side_text=algorithm in SIDE_TEXT_ALGORITHMS)
    item_ids, categories = data.item_ids, data.item_category
    timings["prepare"] = time.perf_counter() - tic

    # 3. holdout evaluation -----------------------------------------------------------------
    tic = time.perf_counter()
    metrics: dict[str, Any] = {"excluded": excluded}
    selection_rows: list[dict] = []
    holdout = holdout_build(data, protocol=version.protocol)
    if holdout is not None:
        metrics["protocol"] = holdout.protocol.name
        metrics["protocol_reason"] = holdout.protocol.reason
        if algorithm == "auto":
            algorithm, params, selection_rows = _select(data, holdout, params, reporter)
        model = engine_base.algorithm_build(algorithm, **params)
        model.fit(
            holdout.train.user_items,
            holdout.side,
            progress=reporter.part(45 if selection_rows else 20, 50, f"fitting {algorithm} on the training part"),
        )
        reporter.set(50, "scoring the holdout")
        # coverage/novelty/diversity cost more than the accuracy metrics on big catalogues
        beyond = holdout.users * holdout.train.n_items <= 20_000_000
        raw = evaluate(
            model,
            holdout.train,
            holdout.relevant,
            k=k,
            beyond_accuracy=beyond,
            exclude_train=False,
            exclude=holdout.exclude,
            rerank_weights=LONG_TAIL_WEIGHTS if beyond else (),
        )
        metrics["long_tail_tradeoff"] = long_tail_tradeoff(raw, k)
        metrics.update(_metrics({key: v for key, v in raw.items() if not key.startswith("rerank@")}, k))
        metrics["eval_train_interactions"] = int(holdout.train_mask.sum())
        if holdout.protocol.name == "temporal":
            metrics["holdout_cutoff"] = datetime.fromtimestamp(holdout.now, tz=UTC).isoformat()
        del model, holdout
    elif algorithm == "auto":
        algorithm, params = "trending", {}
        metrics["protocol"] = "none"
        metrics["protocol_reason"] = "too few events to hold any out: trending chosen without a holdout"
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
    meta = ArtifactMeta(kind_weights=kind_weights, half_life_days=data.half_life, trained_at=now, version_id=version.pk)
    name = f"{settings.AFFINITY_ARTIFACT_DIR.strip('/')}/v{version.pk}-{algorithm}-{uuid.uuid4().hex[:8]}.npz"
    stored, size = artifact_write(model=model, item_ids=item_ids, item_category=categories, meta=meta, name=name)
    timings["artifact"] = time.perf_counter() - tic
    if selection_rows:
        metrics["selection"] = selection_rows
    total = time.perf_counter() - clock
    timings["total"] = total
    try:  # the results, if the row is still running (else the sweep failed it: stop)
        _running(
            version.pk,
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
    except RunAbandoned:
        artifact_delete(stored)
        raise
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


def _select(data: _Data, holdout: Holdout, params: dict, reporter: _Progress):
    """Automatic model selection on a validation split of the training part, cut by
    the holdout's protocol (so the holdout's metrics stay honest)."""
    inner = holdout_build(data, protocol=holdout.protocol.name, mask=holdout.train_mask, seed=1, sample=False)
    if inner is None:
        return "trending", {}, [{"algorithm": "trending", "status": "chosen", "reason": "no validation data"}]
    result = selection_run(
        inner,
        candidates=params.get("candidates"),
        time_budget_s=float(params.get("time_budget_s") or conf.get("TRAIN_SELECTION_BUDGET_S")),
        progress=reporter.part(20, 45, "selecting the algorithm"),
    )
    return result.best_name, dict(result.best_params), selection_rows(result)


def selection_run(
    holdout: Holdout,
    *,
    candidates: dict | None = None,
    time_budget_s: float | None = None,
    hybrid: bool = True,
    progress: Callable[[float], None] | None = None,
) -> SelectionResult:
    """``select_model`` on a holdout: every candidate fitted on its training matrix and
    judged on its held-out items with serving's exclusions (what ``train`` does to
    choose, and what ``manage.py evaluate`` reports)."""
    return select_model(
        holdout.train.user_items,
        holdout.relevant,
        holdout.side,
        candidates=candidates,
        k=int(conf.get("TRAIN_EVAL_K")),
        time_budget_s=time_budget_s,
        progress=progress,
        hybrid=hybrid,
        exclude_train=False,
        exclude=holdout.exclude,
    )


SELECTION_KEYS = (
    "algorithm",
    "params",
    "status",
    "reason",
    "ndcg",
    "precision",
    "recall",
    "map",
    "coverage",
    "novelty",
    "long_tail_share",
    "popularity_lift",
    "train_seconds",
)


def selection_rows(result: SelectionResult) -> list[dict[str, Any]]:
    """The selection's rows as stored on the version (JSON, rounded)."""
    return [
        {k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items() if k in SELECTION_KEYS}
        for row in result.rows
    ]


def evaluation_run(
    *,
    events: Events,
    catalogue: bool = True,
    protocol: str = "",
    algorithms: list[str] | None = None,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
) -> tuple[Holdout, SelectionResult]:
    """Offline evaluation of ``algorithms`` (default: the selection's candidates and
    the hybrid) on one holdout of ``events``: ``selection_run``, the code ``train``
    chooses with, so the numbers are the ones selection sees. Raises ``TrainingError``
    when nothing can be held out."""
    if len(events) == 0:
        raise TrainingError("no interactions to evaluate on")
    data = data_prepare(events, side_text=True, catalogue=catalogue)
    holdout = holdout_build(data, protocol=protocol, seed=seed)
    if holdout is None:
        raise TrainingError("too few interactions to hold any out")
    candidates = None
    hybrid = True
    if algorithms:
        unknown = sorted(set(algorithms) - set(engine_base.ALGORITHMS))
        if unknown:
            raise TrainingError(f"unknown algorithm(s) {unknown}; one of {sorted(engine_base.ALGORITHMS)}")
        grid = candidates_for(holdout.train.user_items)
        candidates = {name: grid.get(name, [{}]) for name in algorithms if name != "hybrid"}
        hybrid = "hybrid" in algorithms
        if not candidates:
            raise TrainingError("the hybrid needs a collaborative algorithm to blend (e.g. --algorithms ease,hybrid)")
    return holdout, selection_run(holdout, candidates=candidates, hybrid=hybrid, progress=progress)


def params_changed(algorithm: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """The parameters that differ from the algorithm's defaults (a hybrid's
    collaborative part too): what a table of candidates shows."""
    defaults = engine_base.ALGORITHMS[algorithm].defaults if algorithm in engine_base.ALGORITHMS else {}
    out = {k: v for k, v in (params or {}).items() if defaults.get(k) != v}
    cf = (params or {}).get("cf", "ease")
    if algorithm == "hybrid" and isinstance(out.get("cf_params"), dict) and cf in engine_base.ALGORITHMS:
        cf_defaults = engine_base.ALGORITHMS[cf].defaults
        out["cf_params"] = {k: v for k, v in out["cf_params"].items() if cf_defaults.get(k) != v}
    return out


def settings_text(row: dict[str, Any]) -> str:
    """A selection row's parameters that differ from the algorithm's defaults (JSON, or
    "defaults"), and its reason when it has one: the settings column of the tables."""
    params = params_changed(row["algorithm"], row.get("params"))
    text = json.dumps(params, sort_keys=True) if params else "defaults"
    return f"{text} - {row['reason']}" if row.get("reason") else text
