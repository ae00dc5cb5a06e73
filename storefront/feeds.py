"""Product catalogue feeds for ad and shopping platforms.

Formats (``FORMATS``):
- ``google-xml``: Google Merchant Center RSS 2.0 with the ``g:`` namespace;
- ``google-tsv`` / ``google-csv``: the same attributes as a delimited file;
- ``meta-csv``: a Meta (Facebook/Instagram) catalogue data feed.

Only active products with a price above zero are listed; every item has an id,
title, description, link, image link (the generated PNG when the product has no
picture of its own: the platforms take no SVG), availability, price, condition and
brand -- the attributes both platforms require (`REQUIRED`). The id is the SKU
(Google allows 50 characters; a longer SKU becomes ``p<product id>``).
Rows are streamed: a large catalogue is never held in memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from xml.sax.saxutils import escape

from django.conf import settings

from shop import links, selectors
from shop.models import Product

from .templatetags.storefront import display_name

GOOGLE_NS = "http://base.google.com/ns/1.0"
# Google's attributes, in file order (Meta's: META_COLUMNS)
COLUMNS = (
    "id",
    "title",
    "description",
    "link",
    "image_link",
    "availability",
    "price",
    "condition",
    "brand",
    "identifier_exists",
    "product_type",
)
META_COLUMNS = ("id", "title", "description", "availability", "condition", "price", "link", "image_link", "brand")
REQUIRED = {
    "google": ("id", "title", "description", "link", "image_link", "availability", "price"),
    "meta": ("id", "title", "description", "availability", "condition", "price", "link", "image_link", "brand"),
}
FORMATS = {
    "google-xml": "application/xml; charset=utf-8",
    "google-tsv": "text/tab-separated-values; charset=utf-8",
    "google-csv": "text/csv; charset=utf-8",
    "meta-csv": "text/csv; charset=utf-8",
}
TITLE_MAX, DESCRIPTION_MAX, ID_MAX = 150, 5000, 50


class FeedError(ValueError):
    """An unknown feed format, with a message naming the known ones."""


@dataclass(frozen=True)
class FeedItem:
    id: str
    title: str
    description: str
    link: str
    image_link: str
    in_stock: bool
    price: Decimal
    currency: str
    brand: str
    product_type: str

    def google(self) -> dict[str, str]:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "link": self.link,
            "image_link": self.image_link,
            "availability": "in_stock" if self.in_stock else "out_of_stock",
            "price": f"{self.price:.2f} {self.currency}",
            "condition": "new",
            "brand": self.brand,
            "identifier_exists": "no",  # no GTIN or MPN in this catalogue
            "product_type": self.product_type,
        }

    def meta(self) -> dict[str, str]:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "availability": "in stock" if self.in_stock else "out of stock",
            "condition": "new",
            "price": f"{self.price:.2f} {self.currency}",
            "link": self.link,
            "image_link": self.image_link,
            "brand": self.brand,
        }


def _clean(text: str, limit: int) -> str:
    text = " ".join((text or "").split())  # no tabs or newlines inside a field
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def feed_products():
    """The products a feed lists: active, priced above zero."""
    return selectors.product_list().filter(price__gt=0).order_by("pk")


def feed_items() -> Iterator[FeedItem]:
    brand = settings.PRODUCT_FEED_BRAND
    paths: dict[int, list[selectors.CategoryNode]] = {}  # once per category, not per product (a cache read)
    for p in feed_products().iterator(chunk_size=2000):
        if p.category_id is not None and p.category_id not in paths:
            paths[p.category_id] = selectors.category_path(category_id=p.category_id)
        yield feed_item(p, brand=brand, path=paths.get(p.category_id, []) if p.category_id else [])


def feed_item(p: Product, *, brand: str, path: list[selectors.CategoryNode]) -> FeedItem:
    """``path``: the product's category from the root down (`selectors.category_path`)."""
    title = _clean(display_name(p.name), TITLE_MAX)
    product_type = " > ".join(c.name for c in path)
    description = p.description if p.description and p.description != p.name else ""
    if not description:
        description = f"{title}{f' from our {path[-1].name} range' if path else ''}, by {brand}."
    return FeedItem(
        id=p.sku if len(p.sku) <= ID_MAX else f"p{p.pk}",
        title=title,
        description=_clean(description, DESCRIPTION_MAX),
        link=links.product_page_url(slug=p.slug),
        image_link=links.product_image_url(product_id=p.pk, image_url=p.image_url, png=True),
        in_stock=p.in_stock,
        price=p.price,
        currency=p.currency,
        brand=brand,
        product_type=product_type,
    )


def _delimited(rows: Iterator[dict[str, str]], columns: tuple[str, ...], delimiter: str) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row[c] for c in columns])
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _google_xml(items: Iterator[FeedItem]) -> Iterator[str]:
    site = links.absolute_url("/")
    yield (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<rss version="2.0" xmlns:g="{GOOGLE_NS}">\n<channel>\n'
        f"<title>{escape(settings.PRODUCT_FEED_BRAND)}</title>\n<link>{escape(site)}</link>\n"
        f"<description>{escape(settings.PRODUCT_FEED_BRAND)} product feed</description>\n"
    )
    for item in items:
        fields = "".join(f"<g:{k}>{escape(v)}</g:{k}>" for k, v in item.google().items() if v)
        yield f"<item>{fields}</item>\n"
    yield "</channel>\n</rss>\n"


def feed_stream(fmt: str) -> Iterator[str]:
    """The feed in format ``fmt``, in pieces."""
    if fmt not in FORMATS:
        raise FeedError(f"unknown feed format {fmt!r}: use one of {', '.join(FORMATS)}")
    items = feed_items()
    if fmt == "google-xml":
        return _google_xml(items)
    if fmt == "meta-csv":
        return _delimited((i.meta() for i in items), META_COLUMNS, ",")
    return _delimited((i.google() for i in items), COLUMNS, "\t" if fmt == "google-tsv" else ",")
