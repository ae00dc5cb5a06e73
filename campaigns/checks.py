"""System checks of the campaigns app (registered in `CampaignsConfig.ready`)."""

from __future__ import annotations

import warnings

from anymail.exceptions import AnymailInsecureWebhookWarning
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.urls import NoReverseMatch, Resolver404, resolve, reverse

from . import conf

ANYMAIL_BACKEND_PREFIX = "anymail.backends."


def _provider_webhook_error(esp: str) -> str:
    """What anymail says about the provider's tracking webhook as configured (e.g. a
    signing key it needs to verify the provider's signature), or ``""``."""
    try:
        match = resolve(reverse(f"campaigns:anymail:{esp}_tracking_webhook"))
    except (NoReverseMatch, Resolver404):
        return ""
    view_class = getattr(match.func, "view_class", None)
    if view_class is None:
        return ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AnymailInsecureWebhookWarning)
            view_class(**getattr(match.func, "view_initkwargs", {}))
    except (ImproperlyConfigured, ValueError) as exc:
        return str(exc)
    return ""


def esp_webhooks_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Deploy check: the email provider's webhooks (/c/esp/<provider>/tracking/) have a
    secret, and the provider in use has what anymail needs to verify its signature."""
    found: list[checks.CheckMessage] = []
    if not conf.esp_webhook_secrets():
        found.append(
            checks.Warning(
                "The email provider webhooks (/c/esp/<provider>/tracking/) have no secret: "
                "ANYMAIL['WEBHOOK_SECRET'] is not set, so in production they refuse every request "
                "(and anywhere else anyone could post bounces and unsubscribes).",
                hint='Set ANYMAIL=\'{"WEBHOOK_SECRET": "<random user>:<random password>"}\' and give the '
                "provider the webhook URL with those credentials (https://user:password@host/c/esp/...).",
                id="campaigns.W001",
            )
        )
    backend = getattr(settings, "EMAIL_BACKEND", "")
    if backend.startswith(ANYMAIL_BACKEND_PREFIX):
        esp = backend.removeprefix(ANYMAIL_BACKEND_PREFIX).split(".")[0]
        error = _provider_webhook_error(esp)
        if error:
            found.append(
                checks.Warning(
                    f"The {esp} webhook cannot verify the provider's requests: {error}",
                    hint="Set the provider's webhook signing key in ANYMAIL (see anymail's docs for the provider).",
                    id="campaigns.W002",
                )
            )
    return found
