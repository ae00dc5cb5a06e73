"""A customer's predictions in admin, in real headless Chromium: the customer's page
shows them; the prediction runs page queues a new run from its button."""

from __future__ import annotations

import pytest

from recommendations.models import PredictionRun
from shop.models import CustomerPrediction
from tests.browser import Shots
from tests.recommendations.test_predictions import population, run_now

pytestmark = [pytest.mark.e2e]


def test_a_customers_predictions_in_admin(staff_page, request):
    page = staff_page
    shots = Shots(page, request.node.name)
    population(40)
    run = run_now()
    assert run.status == PredictionRun.Status.DONE, run.error
    prediction = CustomerPrediction.objects.select_related("user").order_by("-predicted_value").first()

    page.goto(f"/admin/shop/user/{prediction.user_id}/change/")
    table = page.locator("table#customer-predictions")
    table.wait_for()
    text = table.inner_text()
    assert "Probability active" in text and f"{prediction.probability_alive:.0%}" in text
    assert f"{prediction.expected_purchases_90d:.2f}" in text
    assert f"{prediction.predicted_value:,.2f} GBP" in text and "top 1% of customers" in text
    assert f"run #{run.pk}" in text
    assert page.get_by_role("heading", name="Predictions").is_visible()
    shots("customer predictions")

    page.goto("/admin/recommendations/predictionrun/")
    assert page.get_by_text("done").first.is_visible()
    page.get_by_role("button", name="Compute customer predictions now").click()
    page.get_by_text("queued; this page shows its progress").wait_for()
    assert PredictionRun.objects.filter(status=PredictionRun.Status.QUEUED).count() == 1
    shots("prediction runs")
