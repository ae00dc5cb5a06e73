"""Brute-force protection of the logins (django-axes): who an attempt is counted against.

``settings.AXES_*`` name these functions. An attempt counts against the account (the
email, case-folded as both login forms treat it, so ``ANN@x`` and ``ann@x`` share one
count) and, separately, against the address it came from, read behind the same number
of trusted proxies as the API's rate limits (``API_NUM_PROXIES``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def login_username(request: HttpRequest, credentials: dict[str, Any] | None = None) -> str | None:
    """The account a login attempt names."""
    value = (credentials or {}).get("username")
    if value is None and request is not None:
        value = request.POST.get("username") if request.method == "POST" else None
    if value is None:
        return None
    return str(value).strip().lower()


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or with ``NUM_PROXIES`` trusted proxies the
    entry they added to X-Forwarded-For (as DRF's throttles read it)."""
    remote = request.META.get("REMOTE_ADDR")
    num_proxies = int(settings.REST_FRAMEWORK.get("NUM_PROXIES") or 0)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if num_proxies <= 0 or not forwarded:
        return remote
    addresses = [a.strip() for a in forwarded.split(",") if a.strip()]
    if not addresses:
        return remote
    return addresses[-min(num_proxies, len(addresses))]
