"""Settings of the recommendations app, with their defaults.

Every value can be overridden in Django settings (``AFFINITY_<NAME>``); the
defaults below are what the app does out of the box.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Serving ------------------------------------------------------------------------
    # How many of a shopper's most recent events are folded in at request time.
    "RECOMMEND_HISTORY_LIMIT": 200,
    # Kinds whose products are not recommended back, with how many days back they
    # count (None = ever): bought once -> not shown again; just viewed -> not for a day.
    "RECOMMEND_EXCLUDE_KINDS": {5: None, 1: 1, 2: 1, 3: 7},
    # At most this many picks of one category per list (diversity); 0 disables.
    "RECOMMEND_MAX_PER_CATEGORY": 3,
    "RECOMMEND_EXCLUDE_OUT_OF_STOCK": True,
    # How many recent history items are tried to explain a pick ("because you ...").
    "RECOMMEND_EXPLAIN_ITEMS": 3,
    # Trending: events of the last N days before the newest event, weighted by kind.
    "TRENDING_DAYS": 14,
    "TRENDING_SIZE": 3000,
    "TRENDING_TTL": 300,
    # Seconds a serving process may trust its view of the active models without
    # asking the database (0 = ask on every call: exact, one primary-key query).
    "SERVING_STATE_TTL": 0.0,
    "SERVING_MODEL_CACHE_SIZE": 4,
    # Impressions (the lists shown): with Redis, queue them and write them in batches
    # (``recommendations.impressions``) once this many are queued, or by the periodic
    # drain task; a queued list's products stay checkable for clicks for SHOWN_TTL s.
    "IMPRESSIONS_QUEUE": True,
    "IMPRESSIONS_DRAIN_AT": 200,
    "IMPRESSIONS_SHOWN_TTL": 3600,
    # Training -----------------------------------------------------------------------
    "TRAIN_DEFAULT_ALGORITHM": "auto",
    "TRAIN_HOLDOUT_DAYS": 14,
    "TRAIN_HOLDOUT_FRACTION": 0.1,
    "TRAIN_HALF_LIFE_DAYS": None,
    "TRAIN_KIND_WEIGHTS": None,  # None: the engine's DEFAULT_KIND_WEIGHTS
    "TRAIN_EVAL_K": 10,
    # The holdout model is fitted on a sample of the training events — whole users,
    # the evaluated ones first — of max(TRAIN_EVAL_MIN_INTERACTIONS, TRAIN_EVAL_FRACTION
    # of all events), and judged on at most TRAIN_EVAL_MAX_USERS users: evaluating
    # costs about a quarter of the final fit on large stores, everything on small ones.
    "TRAIN_EVAL_MAX_USERS": 3_000,
    "TRAIN_EVAL_MIN_INTERACTIONS": 250_000,
    "TRAIN_EVAL_FRACTION": 0.25,
    "TRAIN_SELECTION_BUDGET_S": 600,
    "TRAIN_SOFT_TIME_LIMIT": 3 * 60 * 60,
    "TRAIN_TIME_LIMIT": 3 * 60 * 60 + 300,
    # Keep the artifacts of this many most recent versions per slot (active ones always kept).
    "ARTIFACT_KEEP": 5,
    # Privacy: queue a retraining as soon as a customer whose data a model holds is forgotten.
    "RETRAIN_ON_FORGET": True,
}


def get(name: str) -> Any:
    return getattr(settings, f"AFFINITY_{name}", DEFAULTS[name])
