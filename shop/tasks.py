"""Background jobs of the store. Thin: take ids or plain values, call a service."""

from __future__ import annotations

import logging

from celery import shared_task

from .services.carts import carts_expire

logger = logging.getLogger(__name__)


@shared_task(name="shop.carts_expire", soft_time_limit=300, time_limit=360)
def carts_expire_task(days: int = 30) -> int:
    """Delete anonymous carts untouched for ``days`` days (safe to run twice)."""
    deleted = carts_expire(days=days)
    logger.info("carts_expire: deleted %d anonymous cart(s) older than %d days", deleted, days)
    return deleted
