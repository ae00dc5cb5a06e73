"""Suspected bots and noise: who is left out of training and trending, and why.

The rules are settings (``AFFINITY_NOISE_*``, defaults in ``NOISE_DEFAULTS``), shown
on the data report (admin › Recommendations › Data report) and recorded on every
model version (``ModelVersion.metrics["excluded"]``). An actor is a customer
(``user_id``) or, for anonymous events, a session (``session_key``). An actor is
excluded when any rule matches:

* ``rate``: more than ``NOISE_MAX_EVENTS_PER_HOUR`` events in one clock hour (a
  scraper, a stuck client replaying events);
* ``breadth``: more than ``NOISE_MAX_PRODUCTS_PER_DAY`` different products in one
  day (a crawler walking the catalogue);
* ``views_only``: at least ``NOISE_VIEW_ONLY_MIN_EVENTS`` events, every one a view
  (nothing carted, bought, rated: reading, not shopping);
* ``round_the_clock``: events in at least ``NOISE_MAX_ACTIVE_HOURS_PER_DAY``
  different hours of one day (people sleep);

  these four behaviour rules spare an actor with a purchase in the window
  (``NOISE_SPARE_BUYERS``): bots do not buy, and a wholesale customer's 500-line
  order is not a crawl;
* ``staff`` (``NOISE_EXCLUDE_STAFF``) and ``test_account`` (the email matches one of
  the ``NOISE_TEST_ACCOUNT_EMAILS`` regular expressions): the shop's own people.

User agents are not stored with events, so there is no user-agent rule: a client
that sends them can map known bots to no event at all at its edge.

Nothing is deleted: ``noise_find`` only names actors; training drops their events
from the matrix it builds (``events_exclude``) and trending leaves them out of its
query (``excluded_q``). ``noise_refresh`` (a beat task every 10 minutes) keeps the
last answer in the cache, so serving paths (``noise_cached``) pay one cache read.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet
from django.db.models.functions import TruncDate, TruncHour

from shop.models import Interaction

from . import serving_aids
from .training_data import Events

logger = logging.getLogger(__name__)

NOISE_DEFAULTS: dict[str, Any] = {
    "NOISE_FILTER": True,  # False: nothing is excluded (the report still shows what would be)
    "NOISE_MAX_EVENTS_PER_HOUR": 200,
    "NOISE_MAX_PRODUCTS_PER_DAY": 300,
    "NOISE_VIEW_ONLY_MIN_EVENTS": 200,
    "NOISE_MAX_ACTIVE_HOURS_PER_DAY": 20,
    "NOISE_SPARE_BUYERS": True,  # an actor with a purchase is never caught by the behaviour rules
    "NOISE_EXCLUDE_STAFF": True,
    "NOISE_TEST_ACCOUNT_EMAILS": (),  # regular expressions, e.g. r"@test\.example$", r"^qa\+"
    "NOISE_CACHE_SECONDS": 3600,  # how long one computation may serve (refreshed every 10 minutes by beat)
}

REASONS = {
    "rate": "more than {NOISE_MAX_EVENTS_PER_HOUR} events in one hour, no purchase",
    "breadth": "more than {NOISE_MAX_PRODUCTS_PER_DAY} different products in one day, no purchase",
    "views_only": "{NOISE_VIEW_ONLY_MIN_EVENTS}+ events, all of them views",
    "round_the_clock": "active in {NOISE_MAX_ACTIVE_HOURS_PER_DAY}+ different hours of one day, no purchase",
    "staff": "a staff account",
    "test_account": "a test account (email matches NOISE_TEST_ACCOUNT_EMAILS)",
}
BEHAVIOUR_RULES = frozenset({"rate", "breadth", "views_only", "round_the_clock"})
NOISE_CACHE_KEY = "affinity:rec:noise:v1"
SAMPLE = 20  # ids kept per reason in what a model version records


def setting(name: str) -> Any:
    return getattr(settings, f"AFFINITY_{name}", NOISE_DEFAULTS[name])


def rules() -> dict[str, Any]:
    """The rules in force (their settings), checked: a bad value raises ``ValueError``
    naming the setting."""
    out = {name: setting(name) for name in NOISE_DEFAULTS}
    for name in (
        "NOISE_MAX_EVENTS_PER_HOUR",
        "NOISE_MAX_PRODUCTS_PER_DAY",
        "NOISE_VIEW_ONLY_MIN_EVENTS",
        "NOISE_MAX_ACTIVE_HOURS_PER_DAY",
    ):
        value = out[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"AFFINITY_{name} must be a whole number of at least 1, got {value!r}")
    if out["NOISE_MAX_ACTIVE_HOURS_PER_DAY"] > 24:
        raise ValueError("AFFINITY_NOISE_MAX_ACTIVE_HOURS_PER_DAY must be at most 24")
    patterns = out["NOISE_TEST_ACCOUNT_EMAILS"]
    if isinstance(patterns, str):
        patterns = (patterns,)
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(
                f"AFFINITY_NOISE_TEST_ACCOUNT_EMAILS: {pattern!r} is not a regular expression ({exc})"
            ) from exc
    out["NOISE_TEST_ACCOUNT_EMAILS"] = tuple(patterns)
    return out


def rule_texts(values: dict[str, Any] | None = None) -> dict[str, str]:
    """Each rule in words, with its threshold."""
    values = values or rules()
    return {key: text.format(**values) for key, text in REASONS.items()}


@dataclass
class Noise:
    """Actors named as noise, each with the reasons (rule keys) that matched."""

    users: dict[int, list[str]] = field(default_factory=dict)
    sessions: dict[str, list[str]] = field(default_factory=dict)
    rules: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    seconds: float = 0.0

    @property
    def user_ids(self) -> list[int]:
        return sorted(self.users) if self.enabled else []

    @property
    def session_keys(self) -> list[str]:
        return sorted(self.sessions) if self.enabled else []

    def by_reason(self) -> dict[str, dict[str, int]]:
        """Reason -> {"customers": n, "sessions": n}."""
        out: dict[str, dict[str, int]] = {key: {"customers": 0, "sessions": 0} for key in REASONS}
        for reasons in self.users.values():
            for reason in reasons:
                out[reason]["customers"] += 1
        for reasons in self.sessions.values():
            for reason in reasons:
                out[reason]["sessions"] += 1
        return {k: v for k, v in out.items() if v["customers"] or v["sessions"]}

    def summary(self, *, events: int | None = None) -> dict[str, Any]:
        """What a model version records: the rules, counts per reason, a sample of ids."""
        samples: dict[str, list[int]] = {}
        for pk in sorted(self.users):
            for reason in self.users[pk]:
                if len(samples.setdefault(reason, [])) < SAMPLE:
                    samples[reason].append(pk)
        out: dict[str, Any] = {
            "enabled": self.enabled,
            "rules": rule_texts(self.rules) if self.rules else {},
            "customers": len(self.users) if self.enabled else 0,
            "sessions": len(self.sessions) if self.enabled else 0,
            "by_reason": self.by_reason(),
            "sample_customer_ids": samples,
        }
        if events is not None:
            out["events"] = int(events)
        return out

    def to_cache(self) -> dict[str, Any]:
        return {"users": self.users, "sessions": self.sessions, "rules": self.rules, "enabled": self.enabled}

    @classmethod
    def from_cache(cls, raw: dict[str, Any]) -> Noise:
        return cls(
            users={int(k): list(v) for k, v in raw["users"].items()},
            sessions=dict(raw["sessions"]),
            rules=dict(raw["rules"]),
            enabled=bool(raw["enabled"]),
        )


def _actor_key(row: dict) -> tuple[str, int | str]:
    return ("user", row["user_id"]) if row["user_id"] is not None else ("session", row["session_key"])


def noise_find(*, since: datetime | None = None, until: datetime | None = None) -> Noise:
    """Name the actors that the rules exclude, from the events in ``[since, until]``
    (all by default): four grouped queries and the staff / test accounts."""
    tic = time.perf_counter()
    values = rules()
    noise = Noise(rules=values, enabled=bool(values["NOISE_FILTER"]))
    qs = Interaction.objects.all()
    if since is not None:
        qs = qs.filter(occurred_at__gte=since)
    if until is not None:
        qs = qs.filter(occurred_at__lte=until)
    actor = ("user_id", "session_key")

    def add(kind: str, pk: int | str, reason: str) -> None:
        target: dict = noise.users if kind == "user" else noise.sessions
        reasons = target.setdefault(pk, [])
        if reason not in reasons:
            reasons.append(reason)

    hourly = (
        qs.annotate(hour=TruncHour("occurred_at", tzinfo=UTC))
        .values(*actor, "hour")
        .annotate(n=Count("id"))
        .filter(n__gt=values["NOISE_MAX_EVENTS_PER_HOUR"])
        .values(*actor)
        .distinct()
    )
    for row in hourly:
        add(*_actor_key(row), "rate")
    daily = (
        qs.annotate(day=TruncDate("occurred_at", tzinfo=UTC))
        .values(*actor, "day")
        .annotate(
            products=Count("product_id", distinct=True),
            hours=Count(TruncHour("occurred_at", tzinfo=UTC), distinct=True),
        )
        .filter(
            Q(products__gt=values["NOISE_MAX_PRODUCTS_PER_DAY"])
            | Q(hours__gte=values["NOISE_MAX_ACTIVE_HOURS_PER_DAY"])
        )
        .values_list(*actor, "products", "hours")
    )
    for user_id, session_key, products, hours in daily:
        key = _actor_key({"user_id": user_id, "session_key": session_key})
        if products > values["NOISE_MAX_PRODUCTS_PER_DAY"]:
            add(*key, "breadth")
        if hours >= values["NOISE_MAX_ACTIVE_HOURS_PER_DAY"]:
            add(*key, "round_the_clock")
    views_only = (
        qs.values(*actor)
        .annotate(n=Count("id"), top_kind=Max("kind"))
        .filter(n__gte=values["NOISE_VIEW_ONLY_MIN_EVENTS"], top_kind=Interaction.Kind.VIEW)
        .values(*actor)
    )
    for row in views_only:
        add(*_actor_key(row), "views_only")
    if values["NOISE_SPARE_BUYERS"]:
        _spare_buyers(qs, noise)
    if values["NOISE_EXCLUDE_STAFF"]:
        for pk in qs.filter(user__is_staff=True).values_list("user_id", flat=True).distinct():
            add("user", pk, "staff")
    patterns = values["NOISE_TEST_ACCOUNT_EMAILS"]
    if patterns:
        combined = "|".join(f"(?:{p})" for p in patterns)
        for pk in qs.filter(user__email__iregex=combined).values_list("user_id", flat=True).distinct():
            add("user", pk, "test_account")
    noise.seconds = time.perf_counter() - tic
    logger.info(
        "noise: %d customers and %d sessions excluded in %.2fs", len(noise.users), len(noise.sessions), noise.seconds
    )
    return noise


def _spare_buyers(qs: QuerySet, noise: Noise) -> None:
    """Drop the behaviour rules' matches of actors who bought something in the window."""
    purchases = qs.filter(kind=Interaction.Kind.PURCHASE)
    users = list(noise.users)
    for start in range(0, len(users), 5000):
        chunk = users[start : start + 5000]
        for pk in purchases.filter(user_id__in=chunk).values_list("user_id", flat=True).distinct():
            noise.users[pk] = [r for r in noise.users[pk] if r not in BEHAVIOUR_RULES]
    sessions = list(noise.sessions)
    for start in range(0, len(sessions), 5000):
        keys = sessions[start : start + 5000]
        found = purchases.filter(user_id__isnull=True, session_key__in=keys).values_list("session_key", flat=True)
        for key in found.distinct():
            noise.sessions[key] = [r for r in noise.sessions[key] if r not in BEHAVIOUR_RULES]
    noise.users = {k: v for k, v in noise.users.items() if v}
    noise.sessions = {k: v for k, v in noise.sessions.items() if v}


def noise_refresh() -> Noise:
    """``noise_find`` over all events, stored in the cache for ``NOISE_CACHE_SECONDS``
    (the beat task "recommendations.noise_refresh" runs it every 10 minutes, so
    serving paths find it there)."""
    noise = noise_find()
    serving_aids.aid_store(
        "noise", noise.to_cache(), cache_key=NOISE_CACHE_KEY, ttl=int(setting("NOISE_CACHE_SECONDS"))
    )
    return noise


def noise_cached() -> Noise:
    """The last ``noise_refresh`` (the cache, else its stored row): never computed
    here, in a shopper's request. Never computed at all yet: nothing is excluded and
    the refresh is queued (``serving_aids``)."""
    raw = serving_aids.aid_read("noise", cache_key=NOISE_CACHE_KEY, ttl=int(setting("NOISE_CACHE_SECONDS")))
    return Noise.from_cache(raw) if raw is not None else Noise(rules=rules())


def noise_stored() -> Noise | None:
    """The last ``noise_refresh`` over all events, or None when there is none yet
    (for readers that would otherwise compute the same thing again: the data report)."""
    raw = serving_aids.aid_read("noise", cache_key=NOISE_CACHE_KEY, ttl=int(setting("NOISE_CACHE_SECONDS")))
    return Noise.from_cache(raw) if raw is not None else None


def excluded_q(noise: Noise | None = None) -> Q:
    """A ``Q`` matching the excluded actors' interactions: ``qs.exclude(excluded_q())``
    (``Q(pk__in=[])``, matching nothing, when nothing is excluded)."""
    noise = noise if noise is not None else noise_cached()
    users, sessions = noise.user_ids, noise.session_keys
    q = Q(pk__in=[])
    if users:
        q |= Q(user_id__in=users)
    if sessions:
        q |= Q(user_id__isnull=True, session_key__in=sessions)
    return q


def interactions_kept(qs: QuerySet | None = None, noise: Noise | None = None) -> QuerySet:
    """``qs`` (all interactions by default) without the excluded actors' events."""
    qs = qs if qs is not None else Interaction.objects.all()
    noise = noise if noise is not None else noise_cached()
    if not (noise.user_ids or noise.session_keys):
        return qs
    return qs.exclude(excluded_q(noise))


def events_exclude(events: Events, noise: Noise) -> tuple[Events, int]:
    """The training events without the excluded customers' (the raw rows stay in
    the database): (the kept events, how many were dropped)."""
    if not noise.user_ids or len(events) == 0:
        return events, 0
    drop = np.isin(events.users, np.asarray(noise.user_ids, dtype=np.int64))
    dropped = int(drop.sum())
    if not dropped:
        return events, 0
    kept = events.select(~drop)
    kept.read_seconds = events.read_seconds
    return kept, dropped
