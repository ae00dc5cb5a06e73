"""What serving reads but must never compute in a request: the suspected bots and noise
(``noise``) and the products' popularity groups (``long_tail``).

Both come from grouped queries over every event (seconds at a million events). The beat
task "recommendations.noise_refresh" computes them and stores each twice: in the shared
cache (a cheap read) and as a row of ``ServingAid`` in the database, which every process
reads the same way, without Redis, after a cache outage or a restart (and which belongs
to its database: a file would outlive it). A serving process that finds neither has
never had them computed:
it serves without them (nothing excluded, no popularity groups) and queues the task
(once per ``QUEUE_AGAIN_SECONDS``), instead of making a shopper wait a minute.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import current_app
from django.core.cache import cache
from django.utils import timezone

from .models import ServingAid

logger = logging.getLogger(__name__)

REFRESH_TASK = "recommendations.noise_refresh"
TRENDING_TASK = "recommendations.trending_refresh"
QUEUED_KEY = "affinity:rec:serving_aids:queued"
QUEUE_AGAIN_SECONDS = 300


def aid_store(name: str, payload: Any, *, cache_key: str, ttl: int) -> None:
    """Keep ``payload`` (JSON-able) for every process: the cache and its row."""
    try:
        cache.set(cache_key, payload, timeout=max(int(ttl), 1))
    except Exception:  # noqa: BLE001 - a cache outage must not break serving
        logger.warning("cache unavailable for %s", name, exc_info=True)
    ServingAid.objects.update_or_create(name=name, defaults={"payload": payload})


def aid_read(name: str, *, cache_key: str, ttl: int, task: str = REFRESH_TASK) -> Any | None:
    """The last stored ``payload``, from the cache or else its row (put back in the
    cache); None when it was never computed (and ``task``, its refresh, is queued)."""
    try:
        raw = cache.get(cache_key)
        if raw is not None:
            return raw
    except Exception:  # noqa: BLE001
        logger.warning("cache unavailable for %s", name, exc_info=True)
    payload = ServingAid.objects.filter(name=name).values_list("payload", flat=True).first()
    if payload is None:
        refresh_queue(task)
        return None
    try:
        cache.set(cache_key, payload, timeout=max(int(ttl), 1))
    except Exception:  # noqa: BLE001
        logger.warning("cache unavailable for %s", name, exc_info=True)
    return payload


def computed_within(name: str, seconds: float) -> bool:
    """Whether ``name`` was stored less than ``seconds`` ago: the refresh tasks skip a
    run that another process's request queued for nothing (without Redis each process
    queues its own)."""
    since = timezone.now() - timedelta(seconds=seconds)
    return ServingAid.objects.filter(name=name, computed_at__gte=since).exists()


def refresh_queue(task: str = REFRESH_TASK, *, again_after: int = QUEUE_AGAIN_SECONDS) -> None:
    """Queue ``task``, at most once per ``again_after`` seconds (a broker outage is a
    log line: serving goes on with what it has)."""
    try:
        if not cache.add(f"{QUEUED_KEY}:{task}", 1, timeout=again_after):
            return
    except Exception:  # noqa: BLE001
        logger.warning("cache unavailable: queueing %s anyway", task, exc_info=True)
    try:
        current_app.send_task(task)
        logger.info("%s queued for serving", task)
    except Exception:  # noqa: BLE001 - the broker is down: the beat entry or the next request will
        logger.warning("cannot queue %s", task, exc_info=True)


def clear(*names: str) -> None:
    """Forget the stored rows (a forgotten customer's trending; tests) and the queue marks."""
    ServingAid.objects.filter(name__in=names).delete()
    queue_marks_clear()


def queue_marks_clear() -> None:
    """Forget that the refreshes were queued (tests: the cache outlives their databases)."""
    try:
        cache.delete_many([f"{QUEUED_KEY}:{REFRESH_TASK}", f"{QUEUED_KEY}:{TRENDING_TASK}"])
    except Exception:  # noqa: BLE001
        logger.warning("cache unavailable", exc_info=True)
