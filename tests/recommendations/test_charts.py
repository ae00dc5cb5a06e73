"""Chart specs for the admin (recommendations.charts): plain data, checked without a
browser; tests/recommendations/test_admin_browser.py checks Chart.js draws them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from recommendations.charts import Interval, Point, intervals_spec, metric_lines_spec

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_metric_lines_spec_one_line_per_algorithm_with_the_active_point_marked(settings):
    settings.TIME_ZONE = "UTC"
    series = {
        "item_knn": [
            Point(
                at=T0 + timedelta(days=5), value=0.2, label="item_knn#2 (default): ndcg@10 0.2000 — active", active=True
            ),
            Point(at=T0, value=0.1, label="item_knn#1 (default): ndcg@10 0.1000"),
        ],
        "ease": [Point(at=T0 + timedelta(days=2), value=0.15, label="ease#3 (default): ndcg@10 0.1500")],
    }
    spec = metric_lines_spec(series, title="NDCG@10 over time", metric="NDCG@10")
    json.dumps(spec)  # plain data, ready for json_script
    assert spec["type"] == "line" and spec["title"] == "NDCG@10 over time" and "empty" not in spec
    assert [d["label"] for d in spec["datasets"]] == ["ease", "item_knn"]  # sorted, one colour each
    assert spec["datasets"][0]["borderColor"] != spec["datasets"][1]["borderColor"]
    knn = spec["datasets"][1]
    assert [p["y"] for p in knn["data"]] == [0.1, 0.2]  # in time order
    assert knn["data"][0]["x"] == int(T0.timestamp() * 1000)
    assert knn["tooltips"] == ["item_knn#1 (default): ndcg@10 0.1000", "item_knn#2 (default): ndcg@10 0.2000 — active"]
    assert knn["active"] == [False, True]
    assert knn["pointRadius"][1] > knn["pointRadius"][0] and knn["pointBorderColor"][1] == "#000"
    assert knn["pointBorderWidth"][1] > knn["pointBorderWidth"][0]
    assert spec["x"] == {"type": "linear", "title": "Finished", "format": "date"}  # five days: YYYY-MM-DD ticks
    assert spec["y"] == {"title": "NDCG@10", "format": "number", "min": 0}


def test_metric_lines_spec_times_are_the_sites_wall_clock_and_short_spans_show_hours(settings):
    settings.TIME_ZONE = "Europe/Paris"  # UTC+1 in March
    spec = metric_lines_spec(
        {"ease": [Point(at=T0, value=0.1, label="a"), Point(at=T0 + timedelta(hours=3), value=0.2, label="b")]},
        title="t",
        metric="NDCG@10",
    )
    assert spec["datasets"][0]["data"][0]["x"] == int((T0 + timedelta(hours=1)).timestamp() * 1000)
    assert spec["x"]["format"] == "datetime"


def test_metric_lines_spec_empty():
    spec = metric_lines_spec({}, title="Recall@10", metric="Recall@10")
    assert spec == {"title": "Recall@10", "empty": "No Recall@10 yet: train a model to see it here."}


def test_intervals_spec_floating_bars_low_high_and_the_value_in_the_tooltip():
    rows = [
        Interval("control", 0.05, 0.02, 0.11),
        Interval("model", 0.25, 0.15, 0.38),
        Interval("new", None, None, None),
    ]
    spec = intervals_spec(rows, title="Click-through, 95% Wilson interval", axis="Click-through")
    json.dumps(spec)
    assert spec["type"] == "bar" and spec["indexAxis"] == "y"
    assert spec["labels"] == ["control", "model", "new (no lists shown)"]
    bars, points = spec["datasets"]
    assert bars["type"] == "bar" and bars["data"] == [[0.02, 0.11], [0.15, 0.38], None]
    assert points["type"] == "line" and points["showLine"] is False and points["data"] == [0.05, 0.25, None]
    assert bars["tooltips"][1] == "model: 25.00% (95% CI 15.00% – 38.00%)" == points["tooltips"][1]
    assert bars["tooltips"][2] == "new: no lists shown"
    assert spec["x"] == {"title": "Click-through", "format": "percent", "min": 0}


def test_intervals_spec_empty_when_no_variant_was_shown():
    spec = intervals_spec([Interval("control", None, None, None)], title="Conversion", axis="Conversion")
    assert spec == {"title": "Conversion", "empty": "No data for Conversion yet."}
