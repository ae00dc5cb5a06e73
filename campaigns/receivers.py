"""Signal receivers: the email provider's tracking webhooks (django-anymail) and the
store's "customer forgotten" signal. Thin: hand the event to a service."""

from __future__ import annotations

import logging

from anymail.signals import tracking
from django.dispatch import receiver

from shop.signals import user_forgotten

from . import privacy, suppressions

logger = logging.getLogger(__name__)


@receiver(tracking, dispatch_uid="campaigns.esp_tracking")
def on_esp_tracking(sender, event, esp_name, **kwargs) -> None:
    """Bounces and complaints reported by the provider become suppressions."""
    suppressions.esp_event_record(
        event_type=event.event_type,
        recipient=event.recipient,
        metadata=event.metadata or {},
        reject_reason=event.reject_reason,
        description=event.description or "",
        esp_name=esp_name,
        at=event.timestamp,
    )


@receiver(user_forgotten, dispatch_uid="campaigns.user_forgotten")
def on_user_forgotten(sender, user_id: int, **kwargs) -> None:
    privacy.user_forget_campaign_data(user_id=user_id)
