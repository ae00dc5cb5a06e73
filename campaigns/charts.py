"""Chart specs for the campaign report: plain data that the template emits with
``json_script`` and ``static/admin/js/affinity-charts.js`` draws with the vendored
Chart.js (the spec format is described in ``recommendations/charts.py``)."""

from __future__ import annotations

from typing import Any

from .selectors import CampaignReport

PALETTE = ("#0f6b5c", "#e0a526", "#5b6c8f", "#b5485d", "#6a994e", "#7b5ea7")
HOLDOUT_COLOUR = "#9aa0a6"
STAGES = (
    ("audience", "Audience"),
    ("reached", "Sent / withheld"),
    ("opened", "Opened"),
    ("clicked", "Clicked"),
    ("ordered", "Ordered in window"),
    ("converted", "Attributed orders"),
)
HOLDOUT_NA = ("opened", "clicked", "converted")  # the holdout gets no email: nothing to open or click


def funnel_spec(report: CampaignReport) -> dict[str, Any]:
    """Grouped horizontal bars: one row per funnel stage, one bar per variant (the
    holdout grey, "n/a" where a stage does not apply to it), each labelled with its
    count and % of reached."""
    title = f"Funnel of {report.campaign.name} by variant"
    groups = report.groups
    if not any(g.audience for g in groups):
        return {"title": title, "empty": "No audience yet: the funnel shows once the campaign has started."}
    datasets = []
    colour_index = 0
    for g in groups:
        if g.is_holdout:
            colour = HOLDOUT_COLOUR
        else:
            colour = PALETTE[colour_index % len(PALETTE)]
            colour_index += 1
        data: list[int | None] = []
        texts, tips = [], []
        for key, stage in STAGES:
            if g.is_holdout and key in HOLDOUT_NA:
                data.append(None)
                texts.append("n/a")
                tips.append(f"{g.label} — {stage}: n/a (the holdout gets no email)")
                continue
            value = g.audience if key == "audience" else g.reached if key == "reached" else getattr(g, key)
            share = f" ({100 * value / g.reached:.1f}%)" if g.reached and key not in ("audience", "reached") else ""
            data.append(value)
            texts.append(f"{value:,}{share}")
            tips.append(f"{g.label} — {stage}: {value:,}{share}")
        datasets.append(
            {
                "label": g.label,
                "data": data,
                "valueLabels": texts,
                "tooltips": tips,
                "backgroundColor": colour,
                "borderColor": colour,
                "borderRadius": 2,
                "holdout": g.is_holdout,
            }
        )
    return {
        "type": "bar",
        "title": title,
        "indexAxis": "y",
        "height": 80 + len(STAGES) * (14 + 20 * len(groups)),
        "labels": [stage for _, stage in STAGES],
        "datasets": datasets,
        "x": {
            "title": "Customers (labels: count and % of sent / withheld)",
            "format": "count",
            "min": 0,
            "grace": "22%",
        },
        "y": {"title": "Stage"},
    }


def progress_percent(done: int, total: int) -> float:
    return round(100 * min(done, total) / total, 1) if total else 0.0
