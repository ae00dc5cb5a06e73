"""Reads of the store's domain."""
from __future__ import annotations

from django.db.models import QuerySet

from .models import Product


def product_list(*, category_id: int | None = None, include_inactive: bool = False) -> QuerySet[Product]:
    qs = Product.objects.select_related("category")
    if not include_inactive:
        qs = qs.filter(is_active=True)
    if category_id is not None:
        qs = qs.filter(category_id=category_id)
    return qs
