"""Background jobs of the campaigns app. Thin: take ids, call one function of the
app, queue the work it leads to (after commit), and are safe to run twice (claims,
unique constraints and conditional state changes make a repeated or concurrent run
harmless).

This module imports only the modules that queue nothing (`lifecycle`, `tick`,
`triggers`, `sending`); the services and receivers that queue work import it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from datetime import datetime
from functools import partial

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from . import lifecycle, sending, tick, triggers

logger = logging.getLogger(__name__)


def _after_commit(task, *args) -> None:
    """Queue ``task`` once the current transaction commits (at once without one)."""
    transaction.on_commit(partial(task.delay, *args))


def campaign_launch_enqueue(*, campaign_id: int) -> None:
    _after_commit(campaign_launch_task, campaign_id)


def deliveries_fan_out(*, campaign_id: int, chunk_size: int | None = None) -> int:
    """Queue one send task per chunk of the campaign's open deliveries (after commit).
    Returns the number of tasks."""
    ranges = lifecycle.send_ranges(campaign_id=campaign_id, chunk_size=chunk_size)
    for lo, hi in ranges:
        _after_commit(deliveries_send_task, campaign_id, lo, hi)
    return len(ranges)


def triggers_react_enqueue(*, kinds, user_ids=(), change_ids=(), at: datetime | None = None) -> None:
    """When the current transaction commits, queue the evaluation of the campaigns of
    ``kinds`` that are running for a store event's customers (``user_ids``) or product
    changes (``change_ids``); ``at``: when the event happened (default: now). Never
    fails the store's request: a broker that is down is logged, and the periodic
    sweep finds the events later."""
    kinds, user_ids, change_ids = set(kinds), sorted(set(user_ids)), sorted(set(change_ids))
    if not kinds or not (user_ids or change_ids):
        return
    event_at = (at or timezone.now()).timestamp()

    def queue() -> None:
        global _publish_retry_at
        if time.monotonic() < _publish_retry_at:
            return  # the broker failed a moment ago: do not make every request wait on it
        try:
            listening = triggers.kinds_listening(kinds)
            if listening:
                _publish_fast(triggers_react_task, (sorted(listening), user_ids, change_ids, True, event_at))
        except Exception as exc:  # noqa: BLE001 - the sweep is the safety net
            _publish_retry_at = time.monotonic() + PUBLISH_RETRY_SECONDS
            logger.warning(
                "could not queue the real-time trigger evaluation (%s: %s); the periodic sweep will find "
                "the events, and nothing is queued for %.0f s",
                type(exc).__name__,
                exc,
                PUBLISH_RETRY_SECONDS,
            )

    transaction.on_commit(queue)


# The store's requests publish real-time evaluations over a broker connection of their
# own per process and thread that fails fast (one attempt, a short connect timeout)
# instead of the pool's retries for several seconds; after a failure nothing is
# published for PUBLISH_RETRY_SECONDS.
PUBLISH_RETRY_SECONDS = 5.0
PUBLISH_CONNECT_TIMEOUT = 2.0
_publish_retry_at = 0.0
_publish_local = threading.local()


def _publish_fast(task, args: tuple) -> None:
    key = (os.getpid(), str(task.app.conf.broker_url))
    conn = getattr(_publish_local, "connections", {}).get(key)
    if conn is None:
        options = {**(task.app.conf.broker_transport_options or {}), "max_retries": 0}
        conn = task.app.connection_for_write(connect_timeout=PUBLISH_CONNECT_TIMEOUT, transport_options=options)
        _publish_local.connections = {key: conn}
    try:
        task.apply_async(args=args, connection=conn, retry=False)
    except Exception:
        _publish_local.connections = {}
        try:
            conn.release()
        except Exception:  # noqa: BLE001 - closing a broken connection
            logger.debug("closing the broker connection failed", exc_info=True)
        raise


@shared_task(name="campaigns.triggers_react", soft_time_limit=120, time_limit=150)
def triggers_react_task(
    kinds: list[str], user_ids: list[int], change_ids: list[int], look_again: bool = True, at: float | None = None
) -> dict:
    """A store event (at epoch ``at``) committed: evaluate the running campaigns it
    can fire for its customers or product changes, and send what that created at
    once. A campaign that waits after the event is looked at again when it is due."""
    at = at if at is not None else time.time()
    reactions = triggers.triggers_react(
        kinds=kinds,
        user_ids=user_ids or None,
        change_ids=change_ids or None,
        look_again=look_again,
    )
    look_again_in: dict[float, set[str]] = defaultdict(set)  # seconds from now -> kinds due then
    for r in reactions:
        if r.created:
            for lo, hi in triggers.due_send_ranges(campaign_id=r.campaign_id):
                _after_commit(deliveries_send_task, r.campaign_id, lo, hi)
        if r.look_again_in is not None:
            look_again_in[round(max(0.0, at + r.look_again_in - time.time()), 1)].add(r.kind)
    for seconds, due_kinds in look_again_in.items():
        again = partial(
            triggers_react_task.apply_async,
            args=(sorted(due_kinds), user_ids, change_ids, False, at),
            countdown=seconds + 1,  # the event is due a moment after `seconds`
        )
        transaction.on_commit(again)
    return {"campaigns": len(reactions), "created": sum(r.created for r in reactions)}


@shared_task(name="campaigns.tick", soft_time_limit=240, time_limit=300)
def campaigns_tick_task() -> dict:
    """Every few minutes (django-celery-beat): launch due campaigns, evaluate
    triggers, pick up stalled sending, complete campaigns, attribute orders."""
    result = tick.campaigns_tick()
    for campaign_id in result.to_launch:
        campaign_launch_enqueue(campaign_id=campaign_id)
    for campaign_id in result.to_fan_out:
        deliveries_fan_out(campaign_id=campaign_id)
    return result.counts()


@shared_task(name="campaigns.launch", soft_time_limit=1800, time_limit=1900)
def campaign_launch_task(campaign_id: int) -> int:
    """Build a due campaign's audience and fan the sending out."""
    launch = lifecycle.campaign_launch(campaign_id=campaign_id)
    if launch.fan_out:
        deliveries_fan_out(campaign_id=campaign_id)
    return launch.size


@shared_task(name="campaigns.send", soft_time_limit=900, time_limit=960)
def deliveries_send_task(campaign_id: int, min_id: int, max_id: int) -> dict:
    """Send a campaign's open deliveries with ids in [min_id, max_id] over one
    connection. Rows waiting for a retry are sent by a later run of the same range."""
    stats = sending.deliveries_send_range(campaign_id=campaign_id, min_id=min_id, max_id=max_id)
    if stats.retry_in and not stats.stopped.startswith("campaign "):
        deliveries_send_task.apply_async(args=(campaign_id, min_id, max_id), countdown=stats.retry_in)
    lifecycle.campaign_complete_if_done(campaign_id=campaign_id)
    logger.info(
        "campaign %s [%s..%s]: sent %d, withheld %d, skipped %d, failed %d, retry %d%s",
        campaign_id,
        min_id,
        max_id,
        stats.sent,
        stats.withheld,
        stats.skipped,
        stats.failed,
        stats.retried,
        f" ({stats.stopped})" if stats.stopped else "",
    )
    return {
        "sent": stats.sent,
        "withheld": stats.withheld,
        "skipped": stats.skipped,
        "failed": stats.failed,
        "retried": stats.retried,
        "stopped": stats.stopped,
    }
