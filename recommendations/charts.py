"""Small server-side SVG charts for admin (no JavaScript library, no CDN)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]


@dataclass(frozen=True)
class Point:
    at: datetime
    value: float
    label: str  # tooltip
    active: bool = False


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    for step in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0):
        if value <= step * 5:
            return step * 5 if value > step * 4 else step * max(1, int(value / step) + 1)
    return value * 1.1


def metric_lines_svg(
    series: dict[str, Sequence[Point]], *, title: str, width: int = 760, height: int = 260
) -> SafeString:
    """One line per series (e.g. algorithm) of a metric over time; active points ringed."""
    points = [p for s in series.values() for p in s]
    if not points:
        return mark_safe(f'<p class="help">No {escape(title)} yet: train a model to see it here.</p>')
    left, right, top, bottom = 52, 150, 24, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    t0 = min(p.at for p in points).timestamp()
    t1 = max(p.at for p in points).timestamp()
    span = max(t1 - t0, 1.0)
    y_max = _nice_max(max(p.value for p in points))

    def x(p: Point) -> float:
        return left + (p.at.timestamp() - t0) / span * plot_w if t1 > t0 else left + plot_w / 2

    def y(v: float) -> float:
        return top + plot_h - (v / y_max) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px;font:11px sans-serif">',
        f'<text x="{left}" y="14" font-weight="bold">{escape(title)}</text>',
    ]
    for i in range(5):
        v = y_max * i / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#555">{v:.3g}</text>')
    parts.append(
        f'<text x="{left}" y="{height - 8}" fill="#555">{escape(min(p.at for p in points).strftime("%Y-%m-%d %H:%M"))}</text>'
    )
    parts.append(
        f'<text x="{left + plot_w}" y="{height - 8}" text-anchor="end" fill="#555">'
        f"{escape(max(p.at for p in points).strftime('%Y-%m-%d %H:%M'))}</text>"
    )
    for index, (name, pts) in enumerate(sorted(series.items())):
        colour = PALETTE[index % len(PALETTE)]
        pts = sorted(pts, key=lambda p: p.at)
        if len(pts) > 1:
            path = " ".join(f"{x(p):.1f},{y(p.value):.1f}" for p in pts)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        for p in pts:
            ring = ' stroke="#000" stroke-width="2"' if p.active else ""
            parts.append(
                f'<circle cx="{x(p):.1f}" cy="{y(p.value):.1f}" r="{5 if p.active else 3.5}" fill="{colour}"{ring}>'
                f"<title>{escape(p.label)}</title></circle>"
            )
        ly = top + 14 * index + 6
        parts.append(f'<rect x="{left + plot_w + 14}" y="{ly - 8}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{left + plot_w + 28}" y="{ly + 1}">{escape(name)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


@dataclass(frozen=True)
class Interval:
    label: str
    value: float | None
    low: float | None
    high: float | None


def intervals_svg(rows: Sequence[Interval], *, title: str, width: int = 560) -> SafeString:
    """Horizontal point + confidence-interval bars (e.g. click-through per variant)."""
    shown = [r for r in rows if r.value is not None]
    if not shown:
        return mark_safe(f'<p class="help">No data for {escape(title)} yet.</p>')
    left, right, top, row_h = 120, 70, 24, 26
    height = top + row_h * len(rows) + 22
    plot_w = width - left - right
    hi = _nice_max(max((r.high or r.value or 0) for r in shown))

    def x(v: float) -> float:
        return left + v / hi * plot_w

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}" '
        f'viewBox="0 0 {width} {height}" width="100%" style="max-width:{width}px;font:11px sans-serif">',
        f'<text x="0" y="14" font-weight="bold">{escape(title)}</text>',
    ]
    for i in range(5):
        v = hi * i / 4
        parts.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{top}" y2="{height - 20}" stroke="#eee"/>')
        parts.append(f'<text x="{x(v):.1f}" y="{height - 6}" text-anchor="middle" fill="#555">{v:.1%}</text>')
    for index, r in enumerate(rows):
        cy = top + row_h * index + row_h / 2
        colour = PALETTE[index % len(PALETTE)]
        parts.append(f'<text x="{left - 8}" y="{cy + 4:.1f}" text-anchor="end">{escape(r.label)}</text>')
        if r.value is None:
            parts.append(f'<text x="{left}" y="{cy + 4:.1f}" fill="#888">no lists shown</text>')
            continue
        if r.low is not None and r.high is not None:
            parts.append(
                f'<line x1="{x(r.low):.1f}" x2="{x(r.high):.1f}" y1="{cy:.1f}" y2="{cy:.1f}" '
                f'stroke="{colour}" stroke-width="3"/>'
            )
        parts.append(
            f'<circle cx="{x(r.value):.1f}" cy="{cy:.1f}" r="5" fill="{colour}"><title>'
            f"{escape(r.label)}: {r.value:.2%} (95% CI {r.low or 0:.2%} – {r.high or 0:.2%})</title></circle>"
        )
        parts.append(f'<text x="{width - right + 6}" y="{cy + 4:.1f}">{r.value:.2%}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))
