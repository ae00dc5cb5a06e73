"""Chart specs for the admin: plain data (dicts, lists, numbers, strings) that the
templates emit with ``json_script`` and ``static/admin/js/affinity-charts.js`` draws
with the vendored Chart.js. No HTML, no JavaScript here: each builder is a pure
function, testable without a browser.

A spec: ``type`` (line / bar), ``title``, optional ``labels`` (category axis),
``datasets`` (Chart.js dataset options plus ``tooltips``: one text per point),
``x`` / ``y`` axes (``title``, ``format``: number / percent / count / date / datetime,
``type``, ``min``, ``max``), optional ``indexAxis``, ``height`` in px, and ``empty``:
the message to show instead of a chart when there is nothing to draw."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]
INTERVAL_COLOUR = "rgba(31, 119, 180, 0.35)"
POINT_COLOUR = "#0b3d66"
EPOCH = datetime(1970, 1, 1)
DAY_MS = 86_400_000

Spec = dict[str, Any]


@dataclass(frozen=True)
class Point:
    at: datetime
    value: float
    label: str  # tooltip
    active: bool = False


def _local_ms(at: datetime) -> int:
    """Milliseconds since the epoch of the wall-clock time in the site's zone, so the
    browser formats it with UTC getters and shows the server's dates whatever its own zone."""
    local = timezone.localtime(at) if timezone.is_aware(at) else at
    return round((local.replace(tzinfo=None) - EPOCH).total_seconds() * 1000)


def empty_spec(title: str, message: str) -> Spec:
    return {"title": title, "empty": message}


def metric_lines_spec(series: dict[str, Sequence[Point]], *, title: str, metric: str) -> Spec:
    """One line per series (e.g. algorithm) of a metric over time on a linear time
    axis; the active versions' points are bigger and ringed in black."""
    points = [p for s in series.values() for p in s]
    if not points:
        return empty_spec(title, f"No {title} yet: train a model to see it here.")
    span = _local_ms(max(p.at for p in points)) - _local_ms(min(p.at for p in points))
    datasets = []
    for index, (name, pts) in enumerate(sorted(series.items())):
        colour = PALETTE[index % len(PALETTE)]
        pts = sorted(pts, key=lambda p: p.at)
        datasets.append(
            {
                "label": name,
                "data": [{"x": _local_ms(p.at), "y": p.value} for p in pts],
                "tooltips": [p.label for p in pts],
                "active": [p.active for p in pts],
                "borderColor": colour,
                "backgroundColor": colour,
                "pointBackgroundColor": colour,
                "pointRadius": [7 if p.active else 3.5 for p in pts],
                "pointHoverRadius": [9 if p.active else 5 for p in pts],
                "pointBorderColor": ["#000" if p.active else colour for p in pts],
                "pointBorderWidth": [3 if p.active else 1 for p in pts],
                "borderWidth": 2,
                "tension": 0,
                "clip": False,  # an active point at the edge keeps its whole ring
            }
        )
    return {
        "type": "line",
        "title": title,
        "height": 280,
        "datasets": datasets,
        "x": {"type": "linear", "title": "Finished", "format": "date" if span >= 3 * DAY_MS else "datetime"},
        "y": {"title": metric, "format": "number", "min": 0},
        "note": "Bigger, black-ringed points: the active version of a slot.",
    }


@dataclass(frozen=True)
class Interval:
    label: str
    value: float | None
    low: float | None
    high: float | None


def intervals_spec(rows: Sequence[Interval], *, title: str, axis: str) -> Spec:
    """Per row (e.g. experiment variant): its confidence interval as a floating bar
    ``[low, high]`` and its observed rate as a point, on a percent axis."""
    if not any(r.value is not None for r in rows):
        return empty_spec(title, f"No data for {title} yet.")
    labels, bars, values, tips = [], [], [], []
    for r in rows:
        if r.value is None:
            labels.append(f"{r.label} (no lists shown)")
            bars.append(None)
            values.append(None)
            tips.append(f"{r.label}: no lists shown")
            continue
        low = r.value if r.low is None else r.low
        high = r.value if r.high is None else r.high
        labels.append(r.label)
        bars.append([low, high])
        values.append(r.value)
        tips.append(f"{r.label}: {r.value:.2%} (95% CI {low:.2%} – {high:.2%})")
    return {
        "type": "bar",
        "title": title,
        "indexAxis": "y",
        "height": 130 + 46 * len(rows),
        "labels": labels,
        "datasets": [
            {
                "type": "bar",
                "label": "95% interval",
                "data": bars,
                "tooltips": tips,
                "backgroundColor": INTERVAL_COLOUR,
                "borderColor": PALETTE[0],
                "borderWidth": 1,
                "barPercentage": 0.5,
                "order": 2,
            },
            {
                "type": "line",
                "label": "observed rate",
                "data": values,
                "tooltips": tips,
                "showLine": False,
                "pointStyle": "circle",
                "pointRadius": 6,
                "pointHoverRadius": 8,
                "backgroundColor": POINT_COLOUR,
                "borderColor": POINT_COLOUR,
                "order": 1,
            },
        ],
        "x": {"title": axis, "format": "percent", "min": 0},
        "y": {"title": "Variant"},
    }
