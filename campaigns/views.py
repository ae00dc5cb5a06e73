"""Tracking endpoints in emails (mounted at /c/): open pixel, click redirect,
one-click unsubscribe. Thin: check the signed token, call one service, respond.

Tokens are signed (see `campaigns.tokens`); a missing, forged or tampered token gets
400 and nothing is recorded. A click only ever redirects to this site: to the page of
the product named in the token, or to a path on this site.
"""

from __future__ import annotations

import base64
import logging

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from shop.models import Product

from . import social, suppressions, tokens, tracking
from .models import Delivery

logger = logging.getLogger(__name__)
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _delivery(delivery_id: int) -> Delivery:
    delivery = Delivery.objects.select_related("user", "campaign").filter(pk=delivery_id).first()
    if delivery is None:
        raise Http404("This email is no longer known.")
    return delivery


def _bad(reason: str) -> HttpResponseBadRequest:
    return HttpResponseBadRequest(f"Invalid link: {reason}.", content_type="text/plain; charset=utf-8")


@never_cache
@require_GET
def open_pixel(request: HttpRequest, token: str) -> HttpResponse:
    try:
        delivery_id = tokens.read_open_token(token)
    except tokens.BadToken as exc:
        return _bad(str(exc))
    tracking.delivery_open_record(delivery=_delivery(delivery_id))
    response = HttpResponse(PIXEL, content_type="image/gif")
    response["Cache-Control"] = "no-store, private"
    return response


@never_cache
@require_GET
def click(request: HttpRequest, token: str) -> HttpResponse:
    try:
        target = tokens.read_click_token(token)
    except tokens.BadToken as exc:
        return _bad(str(exc))
    delivery = _delivery(target.delivery_id)
    if target.product_id is not None:
        product = Product.objects.filter(pk=target.product_id).first()
        if product is None:
            tracking.delivery_click_record(delivery=delivery, path=tokens.home_path())
            return HttpResponseRedirect(tokens.home_path())
        path = tokens.product_path(product_id=product.pk, slug=product.slug)
        tracking.delivery_click_record(delivery=delivery, product=product, path=path)
    else:
        path = target.path
        tracking.delivery_click_record(delivery=delivery, path=path)
    if not tokens.is_local_path(path):  # belt and braces: never leave this site
        return _bad("redirect target is not on this site")
    campaign = social.utm_campaign_value(campaign_id=delivery.campaign_id, name=delivery.campaign.name)
    content = f"product-{target.product_id}" if target.product_id is not None else "link"
    return HttpResponseRedirect(social.with_utm(path, campaign=campaign, content=content))


@csrf_exempt  # RFC 8058: mail providers POST without cookies; the signed token authenticates
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a confirmation button (link scanners must not unsubscribe anyone);
    one POST, from that button or from the mailbox's one-click, unsubscribes at once."""
    try:
        delivery_id = tokens.read_unsubscribe_token(token)
    except tokens.BadToken as exc:
        return _bad(str(exc))
    delivery = _delivery(delivery_id)
    email = delivery.email or (delivery.user.email if delivery.user_id else "")
    if request.method == "POST":
        suppressions.delivery_unsubscribe(delivery=delivery)
        return render(request, "campaigns/unsubscribed.html", {"email": email})
    return render(request, "campaigns/unsubscribe.html", {"email": email, "token": token})
