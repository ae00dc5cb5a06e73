"""Rate limits per API client.

A client is its account: a token and a browser session of the same user share one
budget; anonymous callers are counted per IP address (``REST_FRAMEWORK["NUM_PROXIES"]``
says how many trusted proxies put the address in ``X-Forwarded-For``). Rates come from
the environment (``API_THROTTLE_ANON``, ``API_THROTTLE_USER``, ``API_THROTTLE_BULK``,
e.g. ``"1000/min"``) and are read at request time, so a settings change takes effect
without a restart of the class. The bulk events endpoint has its own, higher scope
(``interactions_batch``): a data pipeline sending batches does not eat the budget of
its ordinary requests, and vice versa. The counters live in the default cache (Redis
in production, so every gunicorn process shares them).

A throttled request gets 429 with the error shape, ``retry_after`` and a
``Retry-After`` header. With the counters' store down the limits fail open: the
request is let through and a warning logged (an outage must not take the API down;
the default cache, shop.cache.FailSoftRedisCache, already answers a miss then; this
covers any other cache backend).
"""

from __future__ import annotations

import logging

from django.conf import settings
from redis.exceptions import RedisError
from rest_framework import throttling
from rest_framework.settings import api_settings

logger = logging.getLogger(__name__)


class _RatesAtRequestTime:
    scope: str
    cache_format = "throttle:%(scope)s:%(ident)s"

    def get_rate(self):
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        if rate is None or str(rate).strip().lower() in {"", "off", "none"}:
            return None  # no limit
        return rate

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)  # type: ignore[misc]
        except (RedisError, ConnectionError, TimeoutError) as exc:
            logger.warning("rate limit %s not checked (counters unavailable: %s); request allowed", self.scope, exc)
            return True

    def get_cache_key(self, request, view):
        key = super().get_cache_key(request, view)
        namespace = getattr(settings, "API_THROTTLE_NAMESPACE", "")
        return f"{namespace}:{key}" if key and namespace else key


class AnonThrottle(_RatesAtRequestTime, throttling.AnonRateThrottle):
    """Anonymous callers, per IP address."""

    scope = "anon"


class UserThrottle(_RatesAtRequestTime, throttling.UserRateThrottle):
    """Authenticated clients (token or session), per account."""

    scope = "user"


class BulkEventsThrottle(_RatesAtRequestTime, throttling.UserRateThrottle):
    """``POST /api/v1/interactions/batch``: its own budget per account."""

    scope = "interactions_batch"
