"""Warm a web process before its first request.

The first page a fresh process served used to take seconds: the active model's artifact
was read from storage, the category tree and the templates loaded, the trending list
computed. `warm` does that once when the process starts (shop.wsgi calls it, so
`runserver` and gunicorn both do), and then the first shopper waits no longer than the
next one. The store warms its own parts; the other apps listen to
`shop.signals.serving_started` (shop imports none of them). Off with WARM_ON_START=false.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.template.loader import get_template

from . import selectors
from .signals import serving_started

logger = logging.getLogger(__name__)

# the pages a shopper lands on
TEMPLATES = ("base.html", "shop/home.html", "shop/product.html", "shop/category.html", "shop/includes/shelf.html")


def warm() -> float:
    """Load what serving needs; return the seconds it took. Never raises: a process
    whose warm-up failed still serves (the first request then pays, as before)."""
    if not settings.WARM_ON_START:
        return 0.0
    tic = time.perf_counter()
    try:
        selectors.category_nodes()
        for name in TEMPLATES:
            get_template(name)
    except Exception as exc:  # noqa: BLE001 - e.g. no database yet: serve anyway
        logger.warning("warm-up of the store skipped: %s", exc)
        return time.perf_counter() - tic
    for receiver, result in serving_started.send_robust(sender=None):
        if isinstance(result, Exception):
            logger.warning("warm-up step %s failed: %s", getattr(receiver, "__qualname__", receiver), result)
    seconds = time.perf_counter() - tic
    logger.info("warmed up in %.2fs", seconds)
    return seconds
