"""Liveness and readiness endpoints for load balancers and orchestrators.

Both answer over plain HTTP in production too (``SECURE_REDIRECT_EXEMPT``): a probe
talks to the process directly, not through the TLS-terminating proxy. The public
answer names the component that is down ("database", "broker", "cache"), never the
exception text; the details go to the log.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .cache import FailSoftRedisCache
from .celery import app

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def live(request: HttpRequest) -> JsonResponse:
    """The process is up and serving requests."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_broker() -> None:
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def _check_cache() -> None:
    """Redis itself (shop.cache.FailSoftRedisCache would hide an outage as a miss),
    else a write and a read."""
    backend = caches[DEFAULT_CACHE_ALIAS]
    if isinstance(backend, FailSoftRedisCache):
        backend.ping()
        return
    key = f"affinity:health:{uuid.uuid4().hex}"
    backend.set(key, "1", 10)
    if backend.get(key) != "1":
        raise RuntimeError("cache did not return the value just written")
    backend.delete(key)


CHECKS: dict[str, Callable[[], None]] = {
    "database": _check_database,
    "broker": _check_broker,
    "cache": _check_cache,
}


def _run(name: str, check: Callable[[], None]) -> bool:
    try:
        check()
    except Exception:  # noqa: BLE001 - any failure means not ready
        logger.warning("readiness: %s is unavailable", name, exc_info=True)
        return False
    return True


@never_cache
@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    """The database, the Celery broker and the cache answer; 503 names what does not."""
    results = {name: _run(name, check) for name, check in CHECKS.items()}
    down = [name for name, ok in results.items() if not ok]
    body = {
        "status": "ok" if not down else "unavailable",
        "checks": {name: "ok" if ok else "unavailable" for name, ok in results.items()},
        "down": down,
        "broker": settings.CELERY_BROKER_URL.split("://", 1)[0],
    }
    return JsonResponse(body, status=200 if not down else 503)
