"""The social side of the product page: share links, Open Graph facts and social
proof. Share links are plain links (no third-party script): the platforms' own share
URLs, a mailto: link and a copy button (static/shop/share.js). A logged-in
customer's links carry their signed reference (`campaigns.social.share_token`), so
visits, sign-ups and orders through them are credited to them.

Social proof counts real orders only ("12 people bought this in the last 24 hours"):
distinct customers of orders placed within the window before now, not cancelled;
nothing is shown below the threshold (``SOCIAL_PROOF_MIN_BUYERS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote, urlencode

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Q
from django.http import HttpRequest
from django.utils import timezone

from campaigns.social import SHARE_PARAM, share_token, utm_query, with_query
from shop import links
from shop.models import Order, OrderLine, Product

from .templatetags.storefront import display_name


@dataclass(frozen=True)
class ShareLink:
    channel: str
    label: str
    href: str


# (channel, label, the platform's share URL with {url} and {text})
PLATFORMS = (
    ("facebook", "Facebook", "https://www.facebook.com/sharer/sharer.php?u={url}"),
    ("x", "X", "https://x.com/intent/post?url={url}&text={text}"),
    (
        "pinterest",
        "Pinterest",
        "https://www.pinterest.com/pin/create/button/?url={url}&media={image}&description={text}",
    ),
    ("whatsapp", "WhatsApp", "https://wa.me/?text={text}%20{url}"),
    ("linkedin", "LinkedIn", "https://www.linkedin.com/sharing/share-offsite/?url={url}"),
)


def _shared_url(page_url: str, ref_query: str, channel: str) -> str:
    """The product's address as shared on ``channel``: UTM-tagged, plus the sharer's
    signed reference (``ref_query``, "" for a visitor who is not logged in)."""
    medium = "social" if channel not in {"email", "copy"} else channel
    query = utm_query(source=channel, medium=medium, campaign="share") + ref_query
    return with_query(page_url, query)


def share_links(*, product: Product, request: HttpRequest) -> dict:
    name = display_name(product.name)
    image = links.product_image_url(product_id=product.pk, image_url=product.image_url, png=True, request=request)
    page_url = links.product_page_url(slug=product.slug, request=request)
    ref_query = ""
    if request.user.is_authenticated:  # signed once for all the page's links
        ref_query = "&" + urlencode({SHARE_PARAM: share_token(user_id=request.user.pk)})
    out = []
    for channel, label, pattern in PLATFORMS:
        url = _shared_url(page_url, ref_query, channel)
        out.append(
            ShareLink(
                channel, label, pattern.format(url=quote(url, safe=""), text=quote(name), image=quote(image, safe=""))
            )
        )
    email_url = _shared_url(page_url, ref_query, "email")
    mailto = "mailto:?" + urlencode({"subject": name, "body": f"{name}\n{email_url}"}, quote_via=quote)
    out.insert(0, ShareLink("email", "Email", mailto))
    return {"copy_url": _shared_url(page_url, ref_query, "copy"), "links": out}


def open_graph(*, product: Product, request: HttpRequest) -> dict:
    """What Open Graph and Twitter cards show: absolute page and PNG image URLs."""
    return {
        "url": links.product_page_url(slug=product.slug, request=request),
        "image": links.product_image_url(product_id=product.pk, image_url=product.image_url, png=True, request=request),
        "image_is_generated": not product.image_url,
    }


def buyers_count(*, product_id: int, since: datetime) -> int:
    """Distinct customers who ordered the product since ``since`` (guest orders count
    once each), cancelled orders left out."""
    counts = (
        OrderLine.objects.filter(product_id=product_id, order__placed_at__gte=since)
        .exclude(order__status=Order.Status.CANCELLED)
        .aggregate(
            users=Count("order__user", distinct=True),
            guests=Count("order", distinct=True, filter=Q(order__user__isnull=True)),
        )
    )
    return counts["users"] + counts["guests"]


def social_proof(*, product_id: int, now: datetime | None = None) -> str:
    """ "12 people bought this in the last 24 hours", or "" below the threshold.
    Cached for a minute per product (a product page is hot, the count moves slowly)."""
    hours = settings.SOCIAL_PROOF_HOURS
    key = f"storefront:proof:{product_id}:{hours}"
    count = cache.get(key) if now is None else None
    if count is None:
        since = (now or timezone.now()) - timedelta(hours=hours)
        count = buyers_count(product_id=product_id, since=since)
        if now is None:
            cache.set(key, count, 60)
    if count < settings.SOCIAL_PROOF_MIN_BUYERS:
        return ""
    window = "24 hours" if hours == 24 else f"{hours} hours"
    return f"{count} people bought this in the last {window}"
