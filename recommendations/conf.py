"""Settings of the recommendations app, with their defaults.

Every value can be overridden in Django settings (``AFFINITY_<NAME>``); the
defaults below are what the app does out of the box. Settings keyed by
interaction kind take kind names ("purchase", "add_to_cart"); ``kinds_parse``
turns them into the stored codes, once per value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings

from shop.models import Interaction

DEFAULTS: dict[str, Any] = {
    # Serving ------------------------------------------------------------------------
    # How many of a shopper's most recent events are folded in at request time.
    "RECOMMEND_HISTORY_LIMIT": 200,
    # The kinds that mean "the customer has this": their products are never recommended
    # back (store pages, API, emails, the export) and offline evaluation scores what is
    # left, so what is measured is what is served.
    "CONSUMED_KINDS": ("purchase", "rating"),
    # Kinds whose products are held back for a while after the event, in days: just
    # viewed -> not for a day; put in the cart -> not for a week.
    "RECOMMEND_RECENT_EXCLUDE_DAYS": {"view": 1, "click": 1, "add_to_cart": 7},
    # At most this many picks of one category per list (diversity); 0 disables.
    "RECOMMEND_MAX_PER_CATEGORY": 3,
    "RECOMMEND_EXCLUDE_OUT_OF_STOCK": True,
    # How many recent history items are tried to explain a pick ("because you ...").
    "RECOMMEND_EXPLAIN_ITEMS": 3,
    # Stated interests blend into a shopper's list with the weight of this many history
    # items: their share of the list is p / (p + distinct products in the history).
    "RECOMMEND_INTERESTS_PRIOR": 3,
    # Trending (``trending``): events of the last N days before the newest event, weighted
    # by kind, each shopper counted once per product and kind; when those days hold fewer
    # than MIN_WINDOW_EVENTS events, the N days before the MIN_WINDOW_EVENTS-th newest
    # event and everything since; a product needs MIN_SUPPORT distinct shoppers and its
    # score is shrunk by s / (s + SMOOTHING).
    "TRENDING_DAYS": 14,
    "TRENDING_MIN_WINDOW_EVENTS": 500,
    "TRENDING_MIN_SUPPORT": 3,
    "TRENDING_SMOOTHING": 5.0,
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
    "TRAIN_KIND_WEIGHTS": None,  # kind name -> weight; None: the engine's DEFAULT_KIND_WEIGHTS
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
    # A running training writes ModelVersion.heartbeat_at every TRAIN_HEARTBEAT_SECONDS; a run
    # silent for TRAIN_HEARTBEAT_TIMEOUT seconds is marked failed (its worker was killed) by the
    # periodic sweep and at the start of every training. The timeout must be well above the interval.
    "TRAIN_HEARTBEAT_SECONDS": 15.0,
    "TRAIN_HEARTBEAT_TIMEOUT": 300.0,
    # Keep the artifacts of this many most recent versions per slot (active ones always kept).
    "ARTIFACT_KEEP": 5,
    # Privacy: queue a retraining as soon as a customer whose data a model holds is forgotten.
    "RETRAIN_ON_FORGET": True,
    # Customer predictions (``predictions``): the transactions model ("mbgnbd": one-time
    # buyers can churn too; "bgnbd": the original), the horizon of the expected purchases,
    # the months of predicted value and their monthly discount rate, and the probability of
    # being active below which a customer is due a win-back email (``inactive_at``).
    "PREDICTION_MODEL": "mbgnbd",
    "PREDICTION_PURCHASES_DAYS": 90,
    "PREDICTION_VALUE_MONTHS": 12,
    "PREDICTION_DISCOUNT_MONTHLY": 0.01,
    "PREDICTION_WINBACK_BELOW": 0.5,
    "PREDICTION_PENALIZER": 0.0,
    # A history whose newest purchase is older than this many days is a historic data set
    # (the 2011 demo store): predictions are made as of its newest purchase, not today.
    "PREDICTION_HISTORIC_AFTER_DAYS": 30,
}


def get(name: str) -> Any:
    return getattr(settings, f"AFFINITY_{name}", DEFAULTS[name])


KIND_CODES: dict[str, int] = {label.replace(" ", "_"): code for code, label in Interaction.Kind.choices}
"""Interaction kind name ("add_to_cart") -> stored code."""

_parsed: dict[tuple[str, str], tuple[object, dict]] = {}


def kinds_parse(value: Mapping | None, *, what: str) -> dict[int, Any]:
    """A mapping keyed by kind names (stored codes are accepted too) keyed by code;
    ``ValueError`` names an unknown kind."""
    out: dict[int, Any] = {}
    for key, item in (value or {}).items():
        text = str(key).lower()
        code = int(text) if text.lstrip("-").isdigit() else KIND_CODES.get(text)
        if code not in Interaction.Kind.values:
            raise ValueError(f"unknown interaction kind {key!r} in {what}; use {sorted(KIND_CODES)}")
        out[int(code)] = item
    return out


def consumed_kinds() -> list[int]:
    """``CONSUMED_KINDS`` as stored kind codes, sorted (``ValueError`` names an unknown kind)."""
    value = tuple(get("CONSUMED_KINDS") or ())
    return sorted(kinds_parse(dict.fromkeys(value), what="AFFINITY_CONSUMED_KINDS"))


def exclude_kinds() -> tuple[list[int], dict[int, float]]:
    """What serving holds back: (the consumed kinds' codes, excluded for ever, sorted;
    kind code -> window in seconds from ``RECOMMEND_RECENT_EXCLUDE_DAYS``), converted
    once per settings value. A consumed kind is never also windowed."""
    consumed = tuple(get("CONSUMED_KINDS") or ())
    recent = get("RECOMMEND_RECENT_EXCLUDE_DAYS") or {}
    key = ("EXCLUDE", repr((consumed, recent)))
    cached = _parsed.get(key)
    if cached is None:
        forever = consumed_kinds()
        rules = kinds_parse(recent, what="AFFINITY_RECOMMEND_RECENT_EXCLUDE_DAYS")
        windows = {code: float(days) * 86400 for code, days in rules.items() if code not in forever}
        cached = (key, (forever, windows))
        _parsed.clear()
        _parsed[key] = cached
    forever, windows = cached[1]
    return list(forever), dict(windows)
