"""shop.services.catalogue: bulk upsert by SKU under a concurrent writer."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shop.models import Product
from shop.services import catalogue
from shop.services.catalogue import ProductRow, products_upsert

pytestmark = pytest.mark.django_db


def test_a_product_created_meanwhile_by_another_writer_is_updated_not_a_crash(monkeypatch):
    # Another client creates SKU-NEW after this upsert read the catalogue and before it
    # writes: the first write fails on the unique SKU, the run is repeated and finds it.
    Product.objects.create(sku="SKU-NEW", name="From the other client", slug="from-the-other-client", price=1)
    reads = {"n": 0}
    real_existing = catalogue._existing

    def existing_missing_the_concurrent_row_at_first(skus):
        reads["n"] += 1
        return {} if reads["n"] == 1 else real_existing(skus)

    monkeypatch.setattr(catalogue, "_existing", existing_missing_the_concurrent_row_at_first)
    rows = [ProductRow(index=0, sku="SKU-NEW", values={"name": "Ours", "price": Decimal("2.50")})]

    result = products_upsert(rows=rows)

    assert reads["n"] == 2
    assert (result.created, result.updated) == (0, 1)
    assert [(o.sku, o.status) for o in result.outcomes] == [("SKU-NEW", "updated")]
    product = Product.objects.get(sku="SKU-NEW")
    assert (product.name, product.price) == ("Ours", Decimal("2.50"))
    assert Product.objects.count() == 1
