"""The admin start page and the performance dashboard in real headless Chromium: the
key figures show, the dashboard's charts are drawn by Chart.js from their JSON specs,
and the strict Content-Security-Policy is never violated (no inline script)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from recommendations.models import Impression, ModelVersion
from shop.models import Interaction
from tests.factories import OrderFactory, OrderLineFactory, ProductFactory, UserFactory, interaction_make

pytestmark = [pytest.mark.e2e]


def some_lists() -> None:
    now = timezone.now()
    version = ModelVersion.objects.create(algorithm="als", status="succeeded", metrics={"ndcg@10": 0.21})
    products = [ProductFactory(price=Decimal("4.00")) for _ in range(4)]
    shopper = UserFactory()
    for day in range(5):
        at = now - timedelta(days=day, hours=1)
        shown = Impression.objects.create(
            created_at=at,
            context="home",
            placement="home",
            strategy=f"model:als#{version.pk}",
            model_version=version,
            product_ids=[p.pk for p in products[:3]],
        )
        Impression.objects.create(
            created_at=at, context="cart", placement="cart", strategy="trending", product_ids=[products[3].pk]
        )
        if day % 2 == 0:
            interaction_make(
                user=shopper, product=products[0], kind=Interaction.Kind.CLICK, rec_list_id=shown.id, occurred_at=at
            )
            OrderLineFactory(
                order=OrderFactory(user=shopper, placed_at=at),
                product=products[0],
                unit_price=Decimal("4.00"),
                rec_list_id=shown.id,
            )


def test_start_page_and_dashboard_draw_their_charts_under_the_csp(staff_page):
    some_lists()
    page = staff_page
    page.goto("/admin/")
    assert page.locator("#key-figures h2").inner_text() == "Last 7 days"
    assert page.locator('[data-figure="orders"] .affinity-figure-value').inner_text() == "3"
    assert page.locator('[data-figure="recommended-share"] .affinity-figure-value').inner_text() == "100.0%"
    assert page.locator("#common-tasks a", has_text="Recommendation performance").count() == 1
    assert page.locator(".app-recommendations").count() == 1  # the app list is still there
    assert page.evaluate("window.__csp") == []

    page.locator("#common-tasks a", has_text="Recommendation performance").click()
    page.wait_for_url("**/admin/performance/")
    page.wait_for_function(
        "() => typeof Chart !== 'undefined' && [...document.querySelectorAll('canvas[data-chart]')]"
        ".every((c) => Chart.getChart(c))"
    )
    drawn = page.evaluate(
        "() => [...document.querySelectorAll('canvas[data-chart]')].map((c) => "
        "[c.dataset.chart, Chart.getChart(c).data.datasets.length, c.width > 0])"
    )
    assert {d[0] for d in drawn} == {
        "chart-ctr",
        "chart-add_to_cart_rate",
        "chart-conversion",
        "chart-revenue",
        "chart-model",
    }
    assert all(count >= 1 and wide for _, count, wide in drawn), drawn
    home_row = page.locator("#performance-table tbody tr", has_text="(home)")
    assert home_row.locator('[data-metric="ctr"]').inner_text() == "60.0%"  # 3 of 5 lists clicked
    # another dimension, another table
    page.get_by_role("link", name="model version", exact=True).click()
    page.wait_for_url("**by=model")
    assert page.locator("#performance-table tbody tr", has_text="als#").count() == 1
    assert page.evaluate("window.__csp") == []
