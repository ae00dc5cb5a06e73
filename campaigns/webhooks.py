"""The email provider's webhooks (django-anymail), mounted at /c/esp/<provider>/tracking/.

Anymail authenticates them: the shared basic-auth secret (``ANYMAIL["WEBHOOK_SECRET"]``,
checked on every provider's webhook) and, where the provider signs its webhooks and
anymail verifies it, the provider's signature (e.g. ``MAILGUN_WEBHOOK_SIGNING_KEY``). A
request that fails either gets 400 and no event is sent on. Without a secret anymail
accepts anyone's POST; in production (`conf.esp_webhook_secret_required`) every route
here refuses every request instead (403), and ``manage.py check --deploy`` warns
(`campaigns.checks`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from anymail.urls import urlpatterns as anymail_urlpatterns
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.urls import URLPattern

from . import conf

logger = logging.getLogger(__name__)

REFUSED = (
    "Email provider webhooks are disabled: ANYMAIL['WEBHOOK_SECRET'] is not set "
    "(required in production; see 'Securing webhooks' in the anymail docs)."
)


def secret_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``view`` refuses every request while a secret is required and none is configured.
    (``functools.wraps`` keeps anymail's ``csrf_exempt`` / ``login_not_required`` marks.)"""

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if conf.esp_webhook_secret_required() and not conf.esp_webhook_secrets():
            logger.warning("refused an email provider webhook to %s: no webhook secret is configured", request.path)
            return HttpResponseForbidden(REFUSED, content_type="text/plain; charset=utf-8")
        return view(request, *args, **kwargs)

    return guarded


BAD_BODY = "The webhook's body is empty or is not what the email provider sends."

# What a provider's parser raises on a body of the wrong shape ("[]" where an object
# belongs, "null", a cut-off document, nesting too deep): the sender's fault, a 400.
MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError)


def bad_body_refused(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """``view`` answers 400 to a POST whose body is empty (a chunked body the server did
    not pass on reads as empty too), holds a NUL byte, or is not of the provider's shape,
    instead of the traceback its parser would raise. Other errors (the database's, a
    receiver's) still propagate: the provider retries those."""

    @functools.wraps(view)
    def guarded(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "POST" and (not request.body.strip() or b"\x00" in request.body):
            return HttpResponseBadRequest(BAD_BODY, content_type="text/plain; charset=utf-8")
        try:
            return view(request, *args, **kwargs)
        except MALFORMED:
            logger.warning("refused an email provider webhook to %s: malformed body", request.path, exc_info=True)
            return HttpResponseBadRequest(BAD_BODY, content_type="text/plain; charset=utf-8")

    return guarded


urlpatterns = [
    URLPattern(pattern.pattern, secret_required(bad_body_refused(pattern.callback)), pattern.default_args, pattern.name)
    for pattern in anymail_urlpatterns
    if isinstance(pattern, URLPattern)
]
