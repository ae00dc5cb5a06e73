"""The data report in real headless Chromium: the findings of a store with known
faults, every chart drawn by the vendored Chart.js under the page's CSP, and the
report of one training run."""

from __future__ import annotations

import shutil

import pytest

from tests.browser import ARTIFACTS
from tests.recommendations.test_data_quality import dirty, noise_rules  # noqa: F401 - fixtures

from .conftest import train

pytestmark = [pytest.mark.e2e]


def test_the_data_report_opens_with_its_findings_and_charts(staff_page, dirty):  # noqa: F811 - the fixture
    page = staff_page
    version = train("item_knn", {"k": 10})
    assert version.status == "succeeded", version.error
    page.goto("/admin/recommendations/modelversion/data-report/")
    page.get_by_role("heading", name="Findings").wait_for()
    assert page.locator("#finding-duplicates").get_attribute("data-severity") == "warning"
    assert "3 extra copies of 2 events" in page.locator("#finding-duplicates").inner_text()
    assert "2026-03-06" in page.locator("#finding-stream").inner_text()  # the gap
    assert "To do" in page.locator("#finding-bots").inner_text()
    page.wait_for_function(
        "() => window.Chart && [...document.querySelectorAll('canvas[data-chart]')].every(c => Chart.getChart(c))"
    )
    drawn = page.evaluate(
        """() => [...document.querySelectorAll('canvas[data-chart]')].map(canvas => {
            const chart = Chart.getChart(canvas);
            return {id: canvas.dataset.chart, type: chart.config.type, points: chart.data.datasets[0].data.length,
                    width: canvas.width};
        })"""
    )
    ids = {d["id"]: d for d in drawn}
    assert set(ids) == {
        "chart-daily",
        "chart-popularity",
        "chart-kinds",
        "chart-ratings",
        "chart-noise",
        "chart-catalogue",
    }
    assert ids["chart-daily"]["type"] == "bar" and ids["chart-daily"]["points"] == 10  # ten days, the gap at 0
    assert ids["chart-popularity"]["type"] == "line" and all(d["width"] > 200 for d in drawn)
    assert page.locator("#noise-rules").get_by_text("more than 50 events in one hour").count() == 1
    shots = ARTIFACTS / "data_report"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    page.screenshot(path=str(shots / "01-store.png"), full_page=True)
    # one training run's report, from the run's page
    page.goto(f"/admin/recommendations/modelversion/{version.pk}/change/")
    page.get_by_role("link", name="The data report of this run").click()
    page.get_by_text("This run left out 3 customers").wait_for()
    page.screenshot(path=str(shots / "02-run.png"), full_page=True)
