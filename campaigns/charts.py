"""Server-side SVG charts for admin reports (no JavaScript, no network)."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

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


def funnel_svg(report: CampaignReport, *, width: int = 760) -> SafeString:
    """A grouped horizontal bar chart: one row per funnel stage, one bar per variant
    (and the holdout, which has no opens or clicks), with counts and % of reached."""
    groups = report.groups
    if not groups:
        return mark_safe("")
    label_w, bar_h, gap, pad = 150, 16, 4, 10
    legend_h = 26
    row_h = len(groups) * (bar_h + gap) + 12
    height = legend_h + len(STAGES) * row_h + pad
    peak = max([g.audience for g in groups] + [1])
    plot_w = width - label_w - 150
    colours = {}
    i = 0
    for g in groups:
        if g.is_holdout:
            colours[g.label] = HOLDOUT_COLOUR
        else:
            colours[g.label] = PALETTE[i % len(PALETTE)]
            i += 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="Funnel of {escape(report.campaign.name)} by variant" '
        f'style="max-width:{width}px;font:12px system-ui,-apple-system,Segoe UI,Roboto,sans-serif">',
        f"<title>Funnel of {escape(report.campaign.name)}</title>",
    ]
    x = label_w
    for g in groups:
        parts.append(
            f'<rect x="{x}" y="6" width="12" height="12" fill="{colours[g.label]}"/>'
            f'<text x="{x + 16}" y="16" fill="#333">{escape(g.label)}</text>'
        )
        x += 24 + 7 * len(g.label)
    y = legend_h
    for key, title in STAGES:
        parts.append(f'<text x="0" y="{y + 14}" fill="#222" font-weight="600">{escape(title)}</text>')
        by = y
        for g in groups:
            value = g.audience if key == "audience" else g.reached if key == "reached" else getattr(g, key)
            applicable = not (g.is_holdout and key in ("opened", "clicked", "converted"))
            w = max(1.0, plot_w * value / peak) if value else 0
            share = f" ({100 * value / g.reached:.1f}%)" if g.reached and key not in ("audience", "reached") else ""
            text = f"{value:,}{share}" if applicable else "n/a"
            parts.append(
                f"<g><title>{escape(g.label)} — {escape(title)}: {escape(text)}</title>"
                f'<rect x="{label_w}" y="{by}" width="{w:.1f}" height="{bar_h}" rx="2" fill="{colours[g.label]}"/>'
                f'<text x="{label_w + w + 6:.1f}" y="{by + bar_h - 4}" fill="#333">{escape(text)}</text></g>'
            )
            by += bar_h + gap
        y += row_h
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every value above is escaped or numeric


def progress_svg(done: int, total: int, *, width: int = 320) -> SafeString:
    pct = 100 * done / total if total else 0
    return mark_safe(  # noqa: S308 - numbers only
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} 14" width="{width}" role="img" '
        f'aria-label="{pct:.0f}% done"><rect width="{width}" height="14" rx="3" fill="#e5e7eb"/>'
        f'<rect width="{width * pct / 100:.1f}" height="14" rx="3" fill="#0f6b5c"/></svg>'
    )
