"""The model versions admin as a marketer sees it, in real headless Chromium: a version's
page with its charts and the model selection in words, and the versions list holding
its layout from 1280 to 1920 px (no button over a chart, no table wider than the
window, no point on a chart's edge). Screenshots go to test-artifacts/."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from recommendations.models import ModelVersion
from tests.browser import ROOT

pytestmark = pytest.mark.e2e

SELECTION = [
    {"algorithm": "ease", "params": {"lam": 400.0}, "status": "ok", "ndcg": 0.1034, "train_seconds": 1.2},
    {"algorithm": "ease", "params": {"lam": 100.0}, "status": "ok", "ndcg": 0.0951, "train_seconds": 1.1},
    {"algorithm": "item_knn", "params": {"k": 50}, "status": "ok", "ndcg": 0.0890, "train_seconds": 0.4},
    {"algorithm": "als", "params": {"factors": 64, "regularization": 0.01}, "status": "ok", "ndcg": 0.0712},
    {"algorithm": "content", "params": {}, "status": "skipped", "reason": "the store has no product names"},
]


def log_in(page, live_server, user) -> None:
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )


def versions() -> tuple[ModelVersion, ModelVersion]:
    now = timezone.now()
    for algorithm, days, ndcg in (("item_knn", 20, 0.071), ("ease", 14, 0.083), ("item_knn", 9, 0.079)):
        ModelVersion.objects.create(
            algorithm=algorithm,
            status="succeeded",
            progress=100,
            metrics={"ndcg@10": ndcg, "recall@10": ndcg * 0.7},
            finished_at=now - timedelta(days=days),
        )
    active = ModelVersion.objects.create(
        algorithm="item_knn",
        status="succeeded",
        progress=100,
        is_active=True,
        metrics={"ndcg@10": 0.081, "precision@10": 0.031, "recall@10": 0.06, "map@10": 0.04},
        finished_at=now - timedelta(days=4),
    )
    chosen = ModelVersion.objects.create(
        algorithm="ease",
        requested_algorithm="auto",
        params={"lam": 400.0},
        status="succeeded",
        progress=100,
        n_users=1200,
        n_items=800,
        n_interactions=54000,
        training_seconds=12.5,
        timings={"read": 1.5, "evaluate": 8.0, "fit": 2.0, "total": 12.5},
        metrics={
            "ndcg@10": 0.1002,
            "precision@10": 0.038,
            "recall@10": 0.072,
            "map@10": 0.051,
            "protocol": "temporal",
            "selection": SELECTION,
        },
        finished_at=now,
    )
    return active, chosen


def test_a_model_version_page_has_its_charts_and_the_selection_in_words(page, live_server, staff_user):
    active, chosen = versions()
    log_in(page, live_server, staff_user)
    page.set_viewport_size({"width": 1440, "height": 1000})
    page.goto(f"/admin/recommendations/modelversion/{chosen.pk}/change/")
    assert page.title().endswith("| Affinity")
    page.wait_for_function(
        "() => window.Chart && Chart.getChart(document.querySelector('canvas[data-chart=chart-version-selection]'))"
    )
    summary = page.get_by_test_id("selection-summary").inner_text()
    assert "5 candidates of 4 algorithms" in summary and "ease won with NDCG@10 0.1034 (lam 400)" in summary
    assert (
        "+8.7% over the runner-up ease (0.0951)" in summary
        and "Skipped: content (the store has no product names)" in summary
    )
    charts = page.evaluate(
        """() => [...document.querySelectorAll('canvas[data-chart]')].map(c => {
            const chart = Chart.getChart(c);
            return {id: c.dataset.chart, labels: chart.data.labels, sets: chart.data.datasets.map(d => d.label),
                    colours: chart.data.datasets[0].backgroundColor}; })"""
    )
    metrics, selection = charts
    assert metrics["labels"] == ["NDCG@10", "Precision@10", "Recall@10", "MAP@10"]
    assert metrics["sets"] == [f"{chosen.label} (ease)", f"{active.label} (item_knn) — active"]
    assert selection["labels"][0] == "ease (lam 400)" and len(selection["labels"]) == 4  # fitted only
    assert selection["colours"][0] != selection["colours"][1]  # the winner stands out
    content = page.locator("#content").inner_text()
    assert "{" not in content, "no raw JSON on the version's page"
    assert "lam 400" in page.locator(".field-params_pretty").inner_text()
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    page.screenshot(path=str(ROOT / "test-artifacts" / "model-version.png"), full_page=True)


@pytest.mark.parametrize("width", [1280, 1440, 1920])
def test_the_versions_list_holds_its_layout(page, live_server, staff_user, width):
    versions()
    log_in(page, live_server, staff_user)
    page.set_viewport_size({"width": width, "height": 900})
    page.goto("/admin/recommendations/modelversion/")
    page.wait_for_function(
        "() => window.Chart && Chart.getChart(document.querySelector('canvas[data-chart=chart-recall]'))"
    )
    layout = page.evaluate(
        """() => {
            const box = el => el.getBoundingClientRect();
            const overlap = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
            const tools = [...document.querySelectorAll('.object-tools a')].map(box);
            const charts = [...document.querySelectorAll('.rec-charts figure')].map(box);
            const points = [...document.querySelectorAll('canvas[data-chart]')].flatMap(c => {
                const chart = Chart.getChart(c), area = chart.chartArea;
                return chart.data.datasets.flatMap((d, i) => chart.getDatasetMeta(i).data.map(p =>
                    Math.min(p.x - area.left, area.right - p.x, p.y - area.top)));
            });
            return {overlaps: tools.some(t => charts.some(c => overlap(t, c))),
                    pageWidth: document.documentElement.scrollWidth, window: window.innerWidth,
                    table: box(document.querySelector('#result_list')).right,
                    content: box(document.querySelector('#content')).right, nearest: Math.min(...points),
                    columns: [...document.querySelectorAll('#result_list thead th')].map(
                        th => th.className + ' ' + Math.round(box(th).width))};
        }"""
    )
    page.shots(f"versions-{width}")
    assert not layout["overlaps"], "a button sits over a chart"
    assert layout["pageWidth"] <= layout["window"], layout
    assert layout["table"] <= layout["content"] + 1, str(layout)
    assert layout["nearest"] >= 6, "a point sits on a chart's edge"
