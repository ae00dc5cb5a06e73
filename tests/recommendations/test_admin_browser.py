"""The model versions admin in real headless Chromium: Chart.js draws the metrics
charts from their JSON specs (axes, legend, the active version ringed, tooltips) and
a running training's progress updates live (the page polls its JSON endpoint)."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest

from recommendations.models import ModelVersion
from tests.browser import ARTIFACTS

pytestmark = [pytest.mark.e2e]  # tests/browser.py allows the ORM beside Playwright's loop


def test_live_progress_and_chart(staff_page):
    page = staff_page
    from django.utils import timezone

    now = timezone.now()
    history = [  # a few weeks of runs of two algorithms, for a chart worth looking at
        ("item_knn", 20, 0.071, 0.052),
        ("ease", 16, 0.083, 0.061),
        ("item_knn", 11, 0.079, 0.058),
        ("ease", 6, 0.097, 0.066),
    ]
    for algorithm, days, ndcg, recall in history:
        ModelVersion.objects.create(
            algorithm=algorithm,
            requested_algorithm=algorithm,
            status="succeeded",
            progress=100,
            metrics={"ndcg@10": ndcg, "recall@10": recall},
            finished_at=now - timedelta(days=days),
        )
    done = ModelVersion.objects.create(
        algorithm="ease",
        requested_algorithm="ease",
        status="succeeded",
        progress=100,
        is_active=True,
        metrics={"ndcg@10": 0.11, "recall@10": 0.07},
        finished_at=now,
    )
    running = ModelVersion.objects.create(
        algorithm="als", requested_algorithm="als", status="running", progress=10, stage="fitting als"
    )
    page.goto("/admin/recommendations/modelversion/")
    # Chart.js (vendored, from static/) registered a chart on each canvas, from the JSON beside it
    page.wait_for_function(
        "() => window.Chart && Chart.getChart(document.querySelector('canvas[data-chart=chart-ndcg]'))"
    )
    drawn = page.evaluate(
        """() => [...document.querySelectorAll('canvas[data-chart]')].map(canvas => {
            const chart = Chart.getChart(canvas);
            return chart && {id: canvas.dataset.chart, type: chart.config.type, width: canvas.width,
                datasets: chart.data.datasets.map(d => d.label), xTicks: chart.scales.x.ticks.map(t => t.label),
                yTitle: chart.options.scales.y.title.text, yTicks: chart.scales.y.ticks.map(t => t.label)};
        })"""
    )
    assert [d and d["id"] for d in drawn] == ["chart-ndcg", "chart-recall"]
    ndcg = drawn[0]
    assert ndcg["type"] == "line" and ndcg["datasets"] == ["ease", "item_knn"] and ndcg["width"] > 300
    assert ndcg["yTitle"] == "NDCG@10" and ndcg["yTicks"][0] == "0"
    assert all(len(t) == 10 and t[4] == "-" and t[7] == "-" for t in ndcg["xTicks"]), ndcg["xTicks"]  # YYYY-MM-DD
    # the active version's point is bigger; hovering it shows its tooltip
    point = page.evaluate(
        """() => { const chart = Chart.getChart(document.querySelector('canvas[data-chart=chart-ndcg]'));
            const i = chart.data.datasets.findIndex(d => d.label === 'ease');
            const meta = chart.getDatasetMeta(i), last = meta.data.length - 1;
            return {x: meta.data[last].x, y: meta.data[last].y, radius: meta.data[last].options.radius,
                    other: meta.data[0].options.radius}; }"""
    )
    assert point["radius"] > point["other"]
    box = page.locator("canvas[data-chart=chart-ndcg]").bounding_box()
    page.mouse.move(box["x"] + point["x"], box["y"] + point["y"])
    page.wait_for_function(
        "() => Chart.getChart(document.querySelector('canvas[data-chart=chart-ndcg]')).tooltip.getActiveElements().length > 0"
    )
    tooltip = page.evaluate(
        "Chart.getChart(document.querySelector('canvas[data-chart=chart-ndcg]')).tooltip.body.map(b => b.lines).flat()"
    )
    assert tooltip == [f"ease#{done.pk} (default): ndcg@10 0.1100 — active"]
    shots = ARTIFACTS / "model_version_charts"
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    page.locator(".rec-charts").screenshot(path=str(shots / "01-charts-with-tooltip.png"))
    panel = page.locator("#rec-running")
    panel.get_by_text("10% fitting als").wait_for()
    ModelVersion.objects.filter(pk=running.pk).update(progress=60, stage="fitting als on all data")
    panel.get_by_text("60% fitting als on all data").wait_for()
    ModelVersion.objects.filter(pk=running.pk).update(status="succeeded", progress=100, stage="done")
    # the page reloads once the run is over: the version shows as succeeded, no progress bar left
    page.wait_for_function("() => document.querySelectorAll('#rec-running .rec-job').length === 0")
    page.locator("#result_list").get_by_text(f"als#{running.pk}").wait_for()
    assert page.locator("#result_list progress").count() == 0
