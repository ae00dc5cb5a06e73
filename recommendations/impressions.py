"""Recording the lists shown (``Impression`` rows) without a database write per page.

Every list served gets an impression, so this runs as often as serving itself. With
Redis configured (``REDIS_URL``, the production and benchmark setup) a list is
*queued*: one Redis round trip appends it to a list and keeps its product ids
under its own key until it is written (at most ``SHOWN_TTL`` seconds), so a click
on it is checked at once (``shown_products``) even before the row reaches PostgreSQL. ``drain`` moves the
queue into the database in batches (one COPY each):

* by the serving process whose append made the queue reach
  ``IMPRESSIONS_DRAIN_AT`` entries (the cost shared by that many pages), once that
  request's response has been handed to the server (``request_finished``), or at
  once outside a request, and
* every few seconds by the ``recommendations.impressions_drain`` task, so that a
  quiet shop's last lists arrive too.

A drain holds a Redis lock, reads a batch without removing it, inserts it (rows
already there are skipped: the id is the primary key) and only then trims it off
the queue. A drainer that dies between the two leaves the batch queued, and the
next drain inserts what is missing: nothing is lost or written twice. Rows of a
customer forgotten meanwhile are dropped, and references to model versions or
experiments deleted meanwhile are cleared, so a late row never breaks a batch.

What is given up: a list reaches the admin reports a few seconds later, and the
lists of the last seconds before a Redis restart (Redis here keeps nothing on
disk) are lost — impressions are analytics; clicks and orders are written
directly. Without Redis (the embedded mode) or with
``AFFINITY_IMPRESSIONS_QUEUE = False`` every list is one INSERT, as before.

When Redis does not answer, a list is written directly (one INSERT) and a warning
logged; the queue is then left alone for ``QUEUE_RETRY_SECONDS`` (lists keep going
straight to the database), so that a Redis that hangs does not add its timeout to
every page; the first list after that tries the queue again.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from datetime import UTC, datetime

import redis
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.urls import get_urlconf

from shop.bulk import rows_bulk_insert

from . import conf
from .models import Experiment, ForgottenUser, Impression, ModelVersion

logger = logging.getLogger(__name__)

QUEUE_KEY = "affinity:rec:impressions"
SHOWN_KEY = "affinity:rec:shown:{id}"
LOCK_KEY = "affinity:rec:impressions:drain"
LOCK_SECONDS = 60
BATCH = 1000
QUEUE_RETRY_SECONDS = 5.0

_queue_retry_at = 0.0  # monotonic time before which the queue is not tried (after a failure)


@functools.cache
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


def _client() -> redis.Redis | None:
    url = getattr(settings, "REDIS_URL", "")
    if not url or not conf.get("IMPRESSIONS_QUEUE"):
        return None
    return _client_for(url)


@functools.cache
def _enqueue(client: redis.Redis):
    return client.register_script(
        "redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3]) return redis.call('RPUSH', KEYS[2], ARGV[2])"
    )


def queued() -> bool:
    """Whether lists are queued in Redis (else written one by one)."""
    return _client() is not None


def record(row: Impression) -> None:
    """Record a list as shown. Never raises: a lost impression must not cost the
    shopper their page (the failure is logged)."""
    global _queue_retry_at
    client = _client()
    if client is None or time.monotonic() < _queue_retry_at:
        _insert_one(row)
        return
    payload = json.dumps(
        {
            "id": str(row.id),
            "at": row.created_at.timestamp(),
            "user_id": row.user_id,
            "session_key": row.session_key,
            "context": row.context,
            "strategy": row.strategy,
            "model_version_id": row.model_version_id,
            "experiment_id": row.experiment_id,
            "variant": row.variant,
            "product_ids": row.product_ids,
            "reason_codes": row.reason_codes,
            "placement": row.placement,
            "rule_ids": row.rule_ids,
        },
        separators=(",", ":"),
    )
    try:  # one round trip: the shown copy (for clicks) and the queue entry
        length = _enqueue(client)(
            keys=[SHOWN_KEY.format(id=row.id), QUEUE_KEY],
            args=[json.dumps(row.product_ids), payload, int(conf.get("IMPRESSIONS_SHOWN_TTL"))],
        )
    except redis.RedisError as exc:
        _queue_retry_at = time.monotonic() + QUEUE_RETRY_SECONDS
        logger.warning(
            "impression queue unavailable (%s: %s); writing lists directly for %.0f s",
            type(exc).__name__,
            exc,
            QUEUE_RETRY_SECONDS,
        )
        _insert_one(row)
        return
    threshold = int(conf.get("IMPRESSIONS_DRAIN_AT"))
    if length >= threshold:
        global _drain_due
        _drain_due = True
        if length >= 10 * threshold or not _in_request():  # no request to wait for (or far behind)
            drain_if_due()


_drain_due = False


def _in_request() -> bool:
    """Whether a web request is being handled in this thread (its end drains)."""
    return get_urlconf() is not None


def drain_if_due(**_signal) -> None:
    """Drain if a ``record`` found the queue past ``IMPRESSIONS_DRAIN_AT`` (connected to
    ``request_finished``: the shopper already has the page when this runs)."""
    global _drain_due
    if not _drain_due:
        return
    _drain_due = False
    try:
        drain()
    except (redis.RedisError, DatabaseError):
        logger.exception("could not drain the impression queue (it stays queued)")


def shown_products(list_id: uuid.UUID) -> list[int] | None:
    """The product ids a list showed, or None for a list never shown: the database
    row, else the queued copy (a click may come before the row is written)."""
    shown = Impression.objects.filter(pk=list_id).values_list("product_ids", flat=True).first()
    if shown is not None:
        return shown
    client = _client()
    if client is None or time.monotonic() < _queue_retry_at:
        return None
    try:
        raw = client.get(SHOWN_KEY.format(id=list_id))
    except redis.RedisError:
        logger.warning("impression queue unavailable; list %s looked up in the database only", list_id)
        return None
    return json.loads(raw) if raw is not None else None


def pending() -> int:
    """Lists queued and not yet in the database."""
    client = _client()
    return int(client.llen(QUEUE_KEY)) if client is not None else 0


def drain(*, max_batches: int | None = None) -> int:
    """Move queued lists into the database; returns how many rows were inserted.
    Safe to call from many processes at once (one drains, the others return 0)."""
    client = _client()
    if client is None:
        return 0
    token = uuid.uuid4().hex
    if not client.set(LOCK_KEY, token, nx=True, ex=LOCK_SECONDS):
        return 0
    inserted, batches = 0, 0
    try:
        while max_batches is None or batches < max_batches:
            raw = client.lrange(QUEUE_KEY, 0, BATCH - 1)
            if not raw:
                break
            items = [json.loads(r) for r in raw]
            inserted += _insert_batch_or_each(items)
            # off the queue; the written lists' shown copies are no longer needed (the rows answer clicks)
            client.pipeline(transaction=False).ltrim(QUEUE_KEY, len(raw), -1).delete(
                *(SHOWN_KEY.format(id=i["id"]) for i in items)
            ).execute()
            batches += 1
            if len(raw) < BATCH:
                break
    finally:
        # release only our own lock (compare-and-delete in one step)
        client.eval(
            "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0",
            1,
            LOCK_KEY,
            token,
        )
    return inserted


def _insert_batch_or_each(items: list[dict]) -> int:
    """The batch in one go; if the database refuses it, row by row, so that one bad
    entry is logged and dropped instead of blocking the queue for good."""
    try:
        return _insert_batch(items)
    except DatabaseError:
        logger.exception("impression batch refused; retrying its %s rows one by one", len(items))
    inserted = 0
    for item in items:
        try:
            inserted += _insert_batch([item])
        except DatabaseError:
            logger.exception("dropped a queued impression the database refuses: %s", item.get("id"))
    return inserted


_FIELDS = (
    "id",
    "created_at",
    "user_id",
    "session_key",
    "context",
    "strategy",
    "model_version_id",
    "experiment_id",
    "variant",
    "product_ids",
    "reason_codes",
    "placement",
    "rule_ids",
)


def _insert_batch(items: list[dict]) -> int:
    """Insert the queued lists not yet in the database (one transaction: the lookups
    and a COPY of the new rows)."""
    users = {i["user_id"] for i in items if i["user_id"] is not None}
    versions = {i["model_version_id"] for i in items if i["model_version_id"] is not None}
    experiments = {i["experiment_id"] for i in items if i["experiment_id"] is not None}
    with transaction.atomic():
        forgotten = (
            set(ForgottenUser.objects.filter(user_id__in=users).values_list("user_id", flat=True)) if users else set()
        )
        known_versions = (
            set(ModelVersion.objects.filter(pk__in=versions).values_list("pk", flat=True)) if versions else set()
        )
        known_experiments = (
            set(Experiment.objects.filter(pk__in=experiments).values_list("pk", flat=True)) if experiments else set()
        )
        fresh = {uuid.UUID(i["id"]): i for i in items if i["user_id"] not in forgotten}
        # a drainer that died after inserting and before trimming left some in already
        fresh_ids = list(fresh)
        for pk in Impression.objects.filter(pk__in=fresh_ids).values_list("pk", flat=True):
            fresh.pop(pk, None)
        rows = [
            (
                pk,
                datetime.fromtimestamp(i["at"], tz=UTC),
                i["user_id"],
                i["session_key"],
                i["context"],
                i["strategy"],
                i["model_version_id"] if i["model_version_id"] in known_versions else None,
                i["experiment_id"] if i["experiment_id"] in known_experiments else None,
                i["variant"],
                i["product_ids"],
                i["reason_codes"],
                i.get("placement", ""),  # queued before placements existed: none
                i.get("rule_ids", []),
            )
            for pk, i in fresh.items()
        ]
        return rows_bulk_insert(model=Impression, fields=_FIELDS, rows=rows) if rows else 0


def forget_user(user_id: int) -> None:
    """Privacy: no queued list of a forgotten customer reaches the database (called
    after the forgetting commits: drain what is queued, which now skips them, and
    delete anything a drain running meanwhile wrote)."""
    try:
        drain()
    except (redis.RedisError, DatabaseError):
        logger.exception("could not drain the impression queue while forgetting customer %s", user_id)
    Impression.objects.filter(user_id=user_id).delete()


# --- the direct path -------------------------------------------------------------------
def _insert_one(row: Impression) -> None:
    """One list, one round trip. On PostgreSQL outside a transaction it commits with
    ``synchronous_commit`` off for this transaction only (an impression is
    analytics: a crash may lose the last fraction of a second of them, never an
    order), so the page does not wait for the WAL flush."""
    try:
        if _fast_insert_ok():
            _insert_async_commit(row)
        else:
            with transaction.atomic():
                row.save(force_insert=True)
    except DatabaseError:  # an impression lost must not cost the shopper their page
        logger.exception("could not record impression %s", row.id)


def _fast_insert_ok() -> bool:
    return (
        connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and not connection.settings_dict.get("OPTIONS", {}).get("server_side_binding")
    )


def _insert_async_commit(row: Impression) -> None:
    fields = list(Impression._meta.concrete_fields)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    values = [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields]
    table = connection.ops.quote_name(Impression._meta.db_table)
    statement = (
        f"BEGIN; SET LOCAL synchronous_commit TO OFF; INSERT INTO {table} ({columns}) "
        f"VALUES ({', '.join(['%s'] * len(fields))}); COMMIT"
    )
    with connection.cursor() as cursor:
        try:
            cursor.execute(statement, values)
        except DatabaseError:
            cursor.execute("ROLLBACK")  # leave the connection usable
            raise


def clear() -> None:
    """Drop the queue without writing it and forget an outage (tests: a rolled-back
    database)."""
    global _queue_retry_at
    _queue_retry_at = 0.0
    client = _client()
    if client is not None:
        client.delete(QUEUE_KEY, LOCK_KEY)


def wait_drained(timeout: float = 10.0) -> None:
    """Drain until the queue is empty (tests, management commands)."""
    deadline = time.monotonic() + timeout
    while pending() and time.monotonic() < deadline:
        if not drain():
            time.sleep(0.05)
