"""What every storefront page needs: the category navigation and the cart's size.

Both are lazy (templates call them only when they render them), so admin pages and
JSON views pay nothing; the categories come from the cache, the cart count costs one
query.
"""

from __future__ import annotations

from functools import cache

from django.http import HttpRequest

from shop import selectors


def storefront(request: HttpRequest) -> dict:
    @cache
    def cart_count() -> int:
        if request.user.is_authenticated:
            return selectors.cart_item_count(user=request.user)
        return selectors.cart_item_count(session_key=request.session.session_key or "")

    return {
        "nav_categories": selectors.category_top_level,
        "cart_count": cart_count,
    }
