"""Merchandising in real headless Chromium: a merchandiser edits a rule in admin,
previews it for a placement, and the store's shelf obeys it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from recommendations.models import MerchandisingRule, Placement
from recommendations.placements import placements_seed
from shop.models import Interaction
from shop.services.interactions import interactions_bulk_insert
from tests.factories import CategoryFactory, ProductFactory

pytestmark = [pytest.mark.e2e]  # tests/browser.py allows the ORM beside Playwright's loop


def test_a_rule_edited_in_admin_is_previewed_and_obeyed_by_the_store(staff_page):
    page = staff_page
    placements_seed()  # a flushed test database lost the seeded rows
    lamps = CategoryFactory(name="Lamps", slug="lamps")
    products = [
        ProductFactory(sku=f"LAMP{i}", name=f"Lamp {i}", slug=f"lamp-{i}", category=lamps, price=Decimal("9.00"))
        for i in range(10)
    ]
    lantern = ProductFactory(sku="LANTERN", name="Garden Lantern", slug="garden-lantern", category=lamps, stock=20)
    now = timezone.now()
    interactions_bulk_insert(
        rows=[
            Interaction(
                session_key=f"shopper-{s}",
                product=p,
                kind=Interaction.Kind.PURCHASE,
                value=1.0,
                occurred_at=now - timedelta(hours=s + 1),
            )
            for s in range(8)
            for p in products[: 8 - s]
        ]
    )
    rule = MerchandisingRule.objects.create(
        name="Feature the lantern", action="pin", product=lantern, position=4, is_active=False
    )
    # before: the lantern is not on the store's trending shelf
    page.goto("/")
    shelf = page.locator('section[data-shelf="trending"]')
    shelf.wait_for()
    assert "Garden Lantern" not in shelf.inner_text()

    # edit the rule in admin: first place, on the home page's trending shelf, switched on
    page.goto(f"/admin/recommendations/merchandisingrule/{rule.pk}/change/")
    page.fill("#id_position", "1")
    page.check("#id_is_active")
    page.get_by_label(str(Placement.objects.get(key="home-trending"))).check()
    page.click('input[name="_continue"]')
    page.locator(".messagelist .success").wait_for()
    rule.refresh_from_db()
    assert rule.position == 1 and rule.is_active
    assert list(rule.placements.values_list("key", flat=True)) == ["home-trending"]

    # preview it: with the rule the lantern is first, without it it is absent
    page.click("#rule-preview-link")
    page.select_option("#preview-placement", "home-trending")
    page.click('#rule-preview-form input[type="submit"]')
    first = page.locator("#preview-with tbody tr").first
    first.wait_for()
    assert first.get_attribute("data-product") == str(lantern.pk)
    assert "pin" in first.inner_text() and "Garden Lantern" in first.inner_text()
    assert page.locator(f'#preview-without tr[data-product="{lantern.pk}"]').count() == 0

    # the store obeys it
    page.goto("/")
    card = page.locator('section[data-shelf="trending"] a.card-link').first
    card.wait_for()
    assert card.get_attribute("href").startswith("/product/garden-lantern/")
