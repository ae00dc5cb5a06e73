"""Absolute URLs of the store: THE place that turns a path into a link that works
outside the page it was made on (emails, the API, feeds, Open Graph tags).

The base is ``SITE_URL``. When SITE_URL is not configured and a request is at hand,
the request's own scheme, host and port are used instead, so a store started with
plain ``runserver 8101`` still links to itself (``runstore`` passes the address it
serves as SITE_URL to all its processes, so emails sent by the worker follow too).
Routes are reversed by name only (``shop:product``, ``shop:product_image``...): the
storefront serves them, the shop app imports nothing from it.
"""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

_MARK = "0x0ARG0x0"


def site_url(request: HttpRequest | None = None) -> str:
    """The store's public base address, without a trailing slash."""
    if request is not None and not settings.SITE_URL_SET:
        return f"{request.scheme}://{request.get_host()}"
    return settings.SITE_URL


def absolute_url(path: str, request: HttpRequest | None = None) -> str:
    """``/product/mug/`` -> ``https://shop.example.com/product/mug/``; a URL that is
    already absolute is returned as it is."""
    if path.startswith(("http://", "https://")):
        return path
    if not path.startswith("/"):
        path = "/" + path
    return f"{site_url(request)}{path}"


@lru_cache(maxsize=32)
def _pattern(name: str, arg: str) -> str | None:
    """The path of route ``name`` with a marker where its one argument goes (reversed
    once: feeds and API pages link thousands of products)."""
    for value in (_MARK, 987654321):
        try:
            return reverse(name, kwargs={arg: value}).replace(str(value), _MARK)
        except NoReverseMatch:
            continue
    return None


def _route(name: str, arg: str, value: object) -> str | None:
    pattern = _pattern(name, arg)
    return pattern.replace(_MARK, str(value)) if pattern else None


def product_image_url(
    *, product_id: int, image_url: str = "", png: bool = False, request: HttpRequest | None = None
) -> str:
    """The product's picture as an absolute URL: its own image when it has one, else
    the generated placeholder (SVG for pages; ``png=True`` for places that need a
    raster image: emails, Open Graph, ad platforms). "" only if the store serves no
    placeholder route."""
    if image_url:
        return absolute_url(image_url, request)
    path = _route("shop:product_image_png" if png else "shop:product_image", "pk", product_id)
    return absolute_url(path, request) if path else ""


def product_page_url(*, slug: str, request: HttpRequest | None = None) -> str:
    path = _route("shop:product", "slug", slug)
    return absolute_url(path or "/", request)
