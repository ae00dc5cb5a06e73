"""Shelves: the rows of products on the store's pages.

A shelf is a recommendation list (with its id, so a click on a product is attributed
to it, and a reason per pick) or a plain list such as "recently viewed". The
recommended shelves are *placements* (``recommendations.models.Placement``, edited by
staff in admin): this module asks ``recommendations.services.placement_serve`` for the
placement's list -- its strategy, size, fallback chain and merchandising rules --,
turns it into a shelf titled by the placement, and keeps a page free of repeats. The recommender is meant never to fail for a shopper;
if it does anyway, the page is served without that shelf and the error is logged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from recommendations import services as recommendations
from shop.models import Category, Product, User

from .templatetags.storefront import display_name

logger = logging.getLogger(__name__)

SHELF_SIZE = 8
# The shelf (its key on the page: ``data-shelf``) of each placement the store shows.
PLACEMENT_SHELVES = {
    "home": "for-you",
    "home-trending": "trending",
    "because-viewed": "because-viewed",
    "product-also-bought": "also-bought",
    "product-similar": "similar",
    "cart": "cart-recs",
}


@dataclass
class ShelfItem:
    product: Product
    reason: str = ""
    reason_code: str = ""


@dataclass
class Shelf:
    """A row of products on a page: a recommendation list (with its id and a reason per
    pick) or a plain list such as "recently viewed"."""

    key: str
    title: str
    items: list[ShelfItem] = field(default_factory=list)
    list_id: uuid.UUID | None = None
    strategy: str = ""
    subtitle: str = ""


def _recommended(key: str, title: str, recommend: Callable, *, subtitle: str = "", **kwargs) -> Shelf | None:
    """``recommend(**kwargs)``'s list as a shelf; None if it is empty or the call fails."""
    try:
        rec_list = recommend(**kwargs)
    except Exception:  # noqa: BLE001 - recommendations are never worth a broken page
        logger.exception("recommendations: %s failed for %s", recommend.__name__, kwargs.get("context", key))
        return None
    if not rec_list.picks:
        return None
    return Shelf(
        key=key,
        title=title,
        subtitle=subtitle,
        list_id=rec_list.id,
        strategy=rec_list.strategy,
        items=[ShelfItem(product=p.product, reason=p.reason, reason_code=p.reason_code) for p in rec_list.picks],
    )


def _placement(key: str, *, title: str | None = None, subtitle: str = "", **kwargs) -> Shelf | None:
    """Placement ``key``'s list as a shelf (titled by the placement unless ``title``);
    None if it is empty, the placement is switched off, or the call fails."""
    try:
        name = recommendations.placements_all()[key].name
    except Exception:  # noqa: BLE001 - a missing placement is never worth a broken page
        logger.exception("recommendations: placement %s is not available", key)
        return None

    def placement_serve(**kw):
        return recommendations.placement_serve(key, **kw)

    return _recommended(
        PLACEMENT_SHELVES.get(key, key),
        title if title is not None else name,
        placement_serve,
        subtitle=subtitle,
        **kwargs,
    )


def _without(shelf: Shelf | None, product_ids: set[int], *, at_least: int = 3) -> Shelf | None:
    """The shelf minus products the page already shows (or the shopper just saw);
    None if too little is left to be worth a row.

    `similar_products` takes no exclusions, so its list may hold a product shown
    elsewhere on the page; dropping it here keeps the page free of repeats (the
    list's impression then names a product or two that was not displayed).
    """
    if shelf is None:
        return None
    shelf.items = [it for it in shelf.items if it.product.pk not in product_ids]
    return shelf if len(shelf.items) >= at_least else None


def _plain(key: str, title: str, products: list[Product], subtitle: str = "") -> Shelf | None:
    if not products:
        return None
    return Shelf(key=key, title=title, subtitle=subtitle, items=[ShelfItem(product=p) for p in products])


def home_shelves(*, user: User | None, session_key: str, viewed: list[Product]) -> list[Shelf]:
    """The home page: picks for the shopper, "because you viewed" their last product,
    trending, and what they ``viewed`` (newest first)."""
    who: dict[str, Any] = {"user": user, "session_key": session_key}
    shelves: list[Shelf] = []
    personal = _placement("home", **who)
    # A shopper we know nothing about gets the trending list once, not twice.
    if personal and not personal.strategy.startswith("trending"):
        personal.subtitle = (
            f"Picked for you, {user.get_short_name()}"
            if user is not None and user.first_name
            else "Picked from what you like and what you looked at"
        )
        shelves.append(personal)
    if viewed:
        last = viewed[0]
        title = f"Because you viewed {display_name(last.name)}"
        because = _placement("because-viewed", title=title, product=last, **who)
        because = _without(because, {p.pk for p in viewed})
        if because:
            shelves.append(because)
    trending = _placement("home-trending", subtitle="What many shoppers looked at and bought lately")
    if trending:
        shelves.append(trending)
    recent = _plain("recently-viewed", "Recently viewed", viewed)
    if recent:
        shelves.append(recent)
    return shelves


def category_shelf(*, category: Category) -> Shelf | None:
    """What sells in a category (and below it)."""
    return _recommended(
        "popular-in-category",
        f"Popular in {category.name}",
        recommendations.trending_products,
        category=category,
        n=SHELF_SIZE,
    )


def search_fallback_shelf() -> Shelf | None:
    """For a search that found nothing."""
    return _recommended("trending", "Popular right now", recommendations.trending_products, n=SHELF_SIZE)


def product_shelves(*, product: Product, user: User | None, session_key: str) -> list[Shelf]:
    """A product page: what its buyers also bought, then similar products (minus those)."""
    who: dict[str, Any] = {"user": user, "session_key": session_key}
    also = _placement("product-also-bought", product=product, **who)
    similar = _placement("product-similar", product=product, **who)
    if also is not None:  # without a model both lists may fall back to the same products
        similar = _without(similar, {it.product.pk for it in also.items})
    return [s for s in (also, similar) if s]


def cart_shelf(*, user: User | None, session_key: str, exclude_product_ids: list[int]) -> Shelf | None:
    """Picks for the shopper, minus what is in their cart."""
    return _placement("cart", exclude_product_ids=exclude_product_ids, user=user, session_key=session_key)
