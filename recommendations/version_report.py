"""A model version's page in admin, in words and charts: the model selection read as
a sentence (what was tried, what won and by how much, what was skipped), parameters
as text rather than JSON, and chart specs (`recommendations.charts` conventions,
drawn by static/admin/js/affinity-charts.js): the candidates' validation NDCG@10, and
this version's holdout metrics beside the active version of its slot."""

from __future__ import annotations

import json
from typing import Any

from .charts import PALETTE, Spec, empty_spec
from .models import ModelVersion

METRICS = (("ndcg@10", "NDCG@10"), ("precision@10", "Precision@10"), ("recall@10", "Recall@10"), ("map@10", "MAP@10"))
WINNER_COLOUR = "#0f6b5c"
OTHER_COLOUR = "#9aa0a6"


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (int, str)):
        return str(value)
    return json.dumps(value, sort_keys=True)


def params_text(params: dict | None) -> str:
    """``factors 64 · regularization 0.01``: a model's parameters, read as text."""
    if not params:
        return "defaults"
    return " · ".join(f"{key.replace('_', ' ')} {_number(value)}" for key, value in sorted(params.items()))


def selection_rows(version: ModelVersion) -> list[dict]:
    rows = (version.metrics or {}).get("selection") or []
    return [r for r in rows if isinstance(r, dict)]


def _fitted(rows: list[dict]) -> list[dict]:
    """The candidates that were fitted and scored, best NDCG first."""
    fitted = [r for r in rows if r.get("status") == "ok" and isinstance(r.get("ndcg"), (int, float))]
    return sorted(fitted, key=lambda r: -r["ndcg"])


def _winner(version: ModelVersion, rows: list[dict]) -> dict | None:
    fitted = _fitted(rows)
    if not fitted:
        return None
    same = [r for r in fitted if r.get("algorithm") == version.algorithm]
    return max(same or fitted, key=lambda r: r["ndcg"])


def selection_summary(version: ModelVersion) -> str:
    """The model selection in one or two sentences (empty when there was none)."""
    rows = selection_rows(version)
    if not rows:
        return ""
    fitted = _fitted(rows)
    algorithms = sorted({str(r.get("algorithm")) for r in rows})
    text = f"{len(rows)} candidate{'s' if len(rows) != 1 else ''} of {len(algorithms)} algorithm"
    text += f"{'s' if len(algorithms) != 1 else ''} ({', '.join(algorithms)}) were tried on the validation window"
    winner = _winner(version, rows)
    if winner is None:
        return text + "; none could be fitted."
    text += f"; {winner['algorithm']} won with NDCG@10 {winner['ndcg']:.4f} ({params_text(winner.get('params'))})"
    others = [r for r in fitted if r is not winner]
    if others:
        runner = others[0]
        if runner["ndcg"] > 0:
            gain = (winner["ndcg"] - runner["ndcg"]) / runner["ndcg"]
            text += f", {gain:+.1%} over the runner-up {runner['algorithm']} ({runner['ndcg']:.4f})"
        else:
            text += f", ahead of {runner['algorithm']} ({runner['ndcg']:.4f})"
    text += "."
    skipped = [r for r in rows if r.get("status") == "skipped"]
    failed = [r for r in rows if r.get("status") == "failed"]
    for word, group in (("Skipped", skipped), ("Failed", failed)):
        if group:
            text += (
                f" {word}: " + ", ".join("{} ({})".format(r.get("algorithm"), r.get("reason", "")) for r in group) + "."
            )
    return text


def selection_chart(version: ModelVersion) -> Spec:
    """One bar per fitted candidate: its NDCG@10 on the validation window; the winner green."""
    title = "Model selection: NDCG@10 of each candidate on the validation window"
    rows = selection_rows(version)
    fitted = _fitted(rows)
    if not fitted:
        return empty_spec(title, "No model selection for this version (it was trained with a chosen algorithm).")
    winner = _winner(version, rows)
    labels = [f"{r['algorithm']} ({params_text(r.get('params'))})"[:70] for r in fitted]
    return {
        "type": "bar",
        "title": title,
        "indexAxis": "y",
        "height": 110 + 30 * len(fitted),
        "labels": labels,
        "datasets": [
            {
                "label": "NDCG@10 on validation",
                "data": [r["ndcg"] for r in fitted],
                "tooltips": [
                    f"{label}: NDCG@10 {r['ndcg']:.4f}"
                    + (f", fitted in {r['train_seconds']:.1f} s" if isinstance(r.get("train_seconds"), float) else "")
                    + (" — chosen" if r is winner else "")
                    for label, r in zip(labels, fitted, strict=True)
                ],
                "valueLabels": [f"{r['ndcg']:.4f}" + (" ✓" if r is winner else "") for r in fitted],
                "backgroundColor": [WINNER_COLOUR if r is winner else OTHER_COLOUR for r in fitted],
                "barPercentage": 0.7,
            }
        ],
        "x": {"title": "NDCG@10 (validation)", "format": "number", "min": 0, "grace": "12%"},
        "y": {"title": "Candidate"},
    }


def metrics_chart(version: ModelVersion, active: ModelVersion | None) -> Spec:
    """This version's holdout metrics, beside those of its slot's active version."""
    title = "Holdout metrics (top 10)" + (f": {version.label} and the active {active.label}" if active else "")
    metrics = version.metrics or {}
    present = [(key, label) for key, label in METRICS if isinstance(metrics.get(key), (int, float))]
    if not present:
        return empty_spec(title, "No holdout metrics for this version.")
    versions = [version] + ([active] if active is not None and active.pk != version.pk else [])
    datasets = []
    for index, v in enumerate(versions):
        values = [(v.metrics or {}).get(key) for key, _ in present]
        name = f"{v.label} ({v.algorithm})" + (" — active" if v.is_active else "")
        datasets.append(
            {
                "label": name,
                "data": [x if isinstance(x, (int, float)) else None for x in values],
                "tooltips": [
                    f"{name}: {label} {x:.4f}" if isinstance(x, (int, float)) else f"{name}: {label} not measured"
                    for (_, label), x in zip(present, values, strict=True)
                ],
                "valueLabels": [f"{x:.4f}" if isinstance(x, (int, float)) else "" for x in values],
                "backgroundColor": PALETTE[index % len(PALETTE)],
            }
        )
    return {
        "type": "bar",
        "title": title,
        "height": 280,
        "labels": [label for _, label in present],
        "datasets": datasets,
        "x": {"title": "Metric"},
        "y": {"title": "Score on the holdout", "format": "number", "min": 0, "grace": "12%"},
    }


def version_page(version: ModelVersion) -> dict:
    """What the version's admin page adds to its fields: the summary and two charts."""
    active = (
        ModelVersion.objects.filter(slot=version.slot, is_active=True).exclude(pk=version.pk).first()
        if not version.is_active
        else None
    )
    return {
        "selection_summary": selection_summary(version),
        "selection_chart": selection_chart(version),
        "metrics_chart": metrics_chart(version, active),
        "active_version": active,
    }
