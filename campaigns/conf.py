"""Settings of the campaigns app, with their defaults.

Each can be set in Django settings as ``CAMPAIGNS_<NAME>`` (shop/settings.py reads
the ones operators change from the environment). Read through `get` at call time,
so tests can override them.
"""

from __future__ import annotations

from typing import Any

from anymail.utils import get_anymail_setting
from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Frequency cap: at most CAP marketing emails per customer per PERIOD_DAYS (0: off).
    "FREQUENCY_CAP": 3,
    "FREQUENCY_PERIOD_DAYS": 7,
    # Sending: rows claimed per transaction (their recommendations are computed together:
    # the bigger, the cheaper per email), rows checked again, sent and reported together
    # (a pause or an error rate takes effect between batches), rows per send task,
    # lease of a claim.
    "SEND_CLAIM_SIZE": 1000,
    "SEND_BATCH_SIZE": 100,
    "SEND_CHUNK_SIZE": 1000,
    "SEND_LEASE_SECONDS": 300,
    # Accepted messages are marked "sent" in groups: at most MARK_EVERY rows, or after
    # MARK_SECONDS, whichever comes first. MARK_EVERY bounds what a killed sender leaves
    # in doubt (accepted by the server, not yet marked): see campaigns.sending.
    "SEND_MARK_EVERY": 20,
    "SEND_MARK_SECONDS": 1.0,
    "SEND_MAX_ATTEMPTS": 5,
    "RETRY_BASE_SECONDS": 30,
    "RETRY_MAX_SECONDS": 3600,
    # Error-rate pause needs at least this many attempts before it judges.
    "ERROR_RATE_MIN_ATTEMPTS": 20,
    # A running campaign whose senders made no progress for this long is picked up again.
    "STALE_SECONDS": None,  # None: the lease
    # Triggered campaigns look back this far for events they have not handled.
    "TRIGGER_LOOKBACK_DAYS": 7,
    # Browse abandonment: a visit is the views within this many minutes before the last one.
    "BROWSE_VISIT_MINUTES": 60,
    # Back in stock / price drop: interest (views, carts, wishes) counts this far back.
    "PRODUCT_INTEREST_DAYS": 30,
    # Real-time triggers: a campaign that waits after the event (trigger_delay_hours) is
    # evaluated again when the event is due if that is at most this far away (a delayed
    # task); further away the periodic sweep finds it.
    "TRIGGER_LOOK_AGAIN_MAX_SECONDS": 3600,
    # A mailto address for List-Unsubscribe (blank: https one-click only).
    "UNSUBSCRIBE_MAILTO": "",
    # An order placed this many days after a visit through a shared link is credited
    # to the customer who shared it (last shared visit before the order).
    "SHARE_ATTRIBUTION_DAYS": 30,
}


def get(name: str) -> Any:
    value = getattr(settings, f"CAMPAIGNS_{name}", DEFAULTS[name])
    if name == "STALE_SECONDS" and value is None:
        return get("SEND_LEASE_SECONDS")
    return value


def esp_webhook_secrets() -> list[str]:
    """The basic-auth ``user:password`` strings the email provider's webhooks accept:
    ``ANYMAIL["WEBHOOK_SECRET"]`` (or ``ANYMAIL_WEBHOOK_SECRET``), read as anymail reads it."""
    secret = get_anymail_setting("webhook_secret", default=[])
    if isinstance(secret, str):
        return [secret] if secret else []
    return [s for s in secret if s]


def esp_webhook_secret_required() -> bool:
    """In production a webhook without a secret refuses every request."""
    return bool(getattr(settings, "PRODUCTION", False))
