"""The default cache on Redis, failing soft: an outage costs speed, never a page.

Everything kept in the cache can be recomputed (the category tree, trending lists,
rate-limit counters), so when Redis does not answer an operation behaves as on an
empty cache — a read misses, a write is dropped — and a warning is logged (once per
outage, then at most once a minute), instead of a 500 on every page and API call.
After a failure Redis is left alone for ``retry_seconds`` (``OPTIONS``, default 5), so
that a Redis that hangs does not add a connect timeout to every cache call of every
request; the next call after that tries it again, and the first success logs that the
cache is back. ``ping()`` asks Redis itself and raises (the readiness probe).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

T = TypeVar("T")
LOG_EVERY_SECONDS = 60.0


class FailSoftRedisCache(RedisCache):
    """Django's RedisCache whose failures are logged misses, not exceptions."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        params = dict(params)
        options = dict(params.get("OPTIONS") or {})
        self.retry_seconds = float(options.pop("retry_seconds", 5.0))
        params["OPTIONS"] = options
        super().__init__(server, params)
        self._lock = threading.Lock()
        self._down_since: float | None = None  # monotonic time of the first failure of this outage
        self._retry_at = 0.0
        self._logged_at = 0.0

    # --- the guard ------------------------------------------------------------------
    def _guard(self, operation: str, call: Callable[[], T], fallback: T) -> T:
        if self._down_since is not None and time.monotonic() < self._retry_at:
            return fallback  # still in the pause after a failure: do not wait on Redis again
        try:
            result = call()
        except RedisError as exc:
            self._failed(operation, exc)
            return fallback
        if self._down_since is not None:
            self._recovered()
        return result

    def _failed(self, operation: str, exc: RedisError) -> None:
        now = time.monotonic()
        with self._lock:
            first = self._down_since is None
            if first:
                self._down_since = now
            self._retry_at = now + self.retry_seconds
            log = first or now - self._logged_at >= LOG_EVERY_SECONDS
            if log:
                self._logged_at = now
        if log:
            logger.warning(
                "cache unavailable (%s failed: %s: %s); serving without it",
                operation,
                type(exc).__name__,
                exc,
                exc_info=first,
            )

    def _recovered(self) -> None:
        with self._lock:
            down_since, self._down_since = self._down_since, None
        if down_since is not None:
            logger.warning("cache is back after %.0f s", time.monotonic() - down_since)

    def ping(self) -> None:
        """Raise unless Redis answers (readiness: no soft failure here)."""
        self._cache.get_client(None, write=True).ping()

    # --- the operations ---------------------------------------------------------------
    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard("add", lambda: super(FailSoftRedisCache, self).add(key, value, timeout, version), False)

    def get(self, key, default=None, version=None):
        return self._guard("get", lambda: super(FailSoftRedisCache, self).get(key, default, version), default)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard("set", lambda: super(FailSoftRedisCache, self).set(key, value, timeout, version), None)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard("touch", lambda: super(FailSoftRedisCache, self).touch(key, timeout, version), False)

    def delete(self, key, version=None):
        return self._guard("delete", lambda: super(FailSoftRedisCache, self).delete(key, version), False)

    def get_many(self, keys, version=None):
        return self._guard("get_many", lambda: super(FailSoftRedisCache, self).get_many(keys, version), {})

    def has_key(self, key, version=None):
        return self._guard("has_key", lambda: super(FailSoftRedisCache, self).has_key(key, version), False)

    def incr(self, key, delta=1, version=None):
        missing = object()
        result = self._guard("incr", lambda: super(FailSoftRedisCache, self).incr(key, delta, version), missing)
        if result is missing:  # as for a key not in the cache
            raise ValueError(f"Key '{key}' not found (the cache is unavailable)")
        return result

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._guard(
            "set_many", lambda: super(FailSoftRedisCache, self).set_many(data, timeout, version), list(data)
        )

    def delete_many(self, keys, version=None):
        return self._guard("delete_many", lambda: super(FailSoftRedisCache, self).delete_many(keys, version), None)

    def clear(self):
        return self._guard("clear", lambda: super(FailSoftRedisCache, self).clear(), False)
