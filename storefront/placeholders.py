"""Generated product pictures: an SVG in the category's colour with the product's
initials and a pattern of its own, so a catalogue without photos still looks
deliberate. Pure functions (no Django, no network); the view adds caching headers.
"""

from __future__ import annotations

import hashlib
import re
from xml.sax.saxutils import escape

VERSION = "2"  # bump when the drawing changes: it is part of the ETag
DEFAULT_COLOUR = "#5b6c8f"
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
# Words that say little about the product: skipped when choosing initials.
_STOP = {
    "A",
    "AN",
    "AND",
    "THE",
    "OF",
    "WITH",
    "IN",
    "ON",
    "FOR",
    "TO",
    "SET",
    "PACK",
    "BOX",
    "BOXES",
    "SMALL",
    "LARGE",
    "MINI",
    "JUMBO",
    "BIG",
    "NEW",
    "ASSORTED",
    "DESIGN",
    "PC",
    "PCS",
    "S",
    "T",
}


def _rgb(colour: str) -> tuple[int, int, int]:
    colour = colour if _HEX.match(colour or "") else DEFAULT_COLOUR
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c))):02x}" for c in rgb)


def _mix(rgb: tuple[int, int, int], other: tuple[int, int, int], t: float) -> tuple[float, float, float]:
    return tuple(a + (b - a) * t for a, b in zip(rgb, other, strict=True))  # type: ignore[return-value]


def relative_luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour."""

    def channel(c: float) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def initials(name: str, *, letters: int = 2) -> str:
    """Up to two letters that stand for the product: the first letters of its first
    meaningful words ("WHITE HANGING HEART T-LIGHT HOLDER" -> "WH")."""
    words = re.findall(r"[^\W\d_]+", name.upper())
    chosen = [w for w in words if w not in _STOP and len(w) > 1] or words
    out = "".join(w[0] for w in chosen[:letters])
    return out or "?"


def palette(colour: str) -> dict[str, str]:
    """Background, pattern and text colours derived from a category colour.

    The text colour is white or near-black, whichever contrasts more with the
    background (at least 4.5:1 for mid-tones).
    """
    base = _rgb(colour)
    light, dark = (255, 255, 255), (17, 24, 39)
    text = light if contrast_ratio(base, light) >= contrast_ratio(base, dark) else dark
    return {
        "top": _hex(_mix(base, light, 0.18)),
        "bottom": _hex(_mix(base, dark, 0.22)),
        "shape": _hex(_mix(base, light, 0.45)),
        "shape_dark": _hex(_mix(base, dark, 0.35)),
        "text": _hex(text),
    }


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()


def etag_for(*, product_id: int, name: str, colour: str, label: str = "") -> str:
    return hashlib.sha1(_digest(VERSION, product_id, name, colour, label)).hexdigest()[:20]


def product_svg(*, product_id: int, name: str, colour: str, label: str = "") -> str:
    """A 400x400 SVG: a gradient in the category colour, a pattern drawn from the
    product id (so neighbours differ), the initials, and a small category label."""
    pal = palette(colour)
    seed = _digest("pattern", product_id)
    shapes: list[str] = []
    for i in range(3):
        x, y = 40 + seed[i * 3] * 320 // 255, 40 + seed[i * 3 + 1] * 320 // 255
        r = 60 + seed[i * 3 + 2] % 110
        fill = pal["shape"] if i % 2 == 0 else pal["shape_dark"]
        shapes.append(f'<circle cx="{x}" cy="{y}" r="{r}" fill="{fill}" opacity="0.{22 + i * 6}"/>')
    style = seed[10] % 3
    if style == 0:  # diagonal stripes across one corner
        shapes.append(
            f'<g stroke="{pal["shape"]}" stroke-width="14" opacity="0.25">'
            + "".join(f'<line x1="{k}" y1="400" x2="400" y2="{k}"/>' for k in range(180, 400, 40))
            + "</g>"
        )
    elif style == 1:  # a dotted grid
        shapes.append(
            f'<g fill="{pal["shape"]}" opacity="0.35">'
            + "".join(f'<circle cx="{28 + 36 * c}" cy="{28 + 36 * r}" r="4"/>' for r in range(3) for c in range(4))
            + "</g>"
        )
    else:  # concentric rings
        cx, cy = 300 + seed[11] % 60, 300 + seed[12] % 60
        shapes.append(
            f'<g fill="none" stroke="{pal["shape"]}" stroke-width="10" opacity="0.3">'
            + "".join(f'<circle cx="{cx}" cy="{cy}" r="{r}"/>' for r in (40, 80, 120))
            + "</g>"
        )
    text = escape(initials(name))
    caption = escape(label.upper()[:28])
    gid = f"g{product_id}"
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 400" width="400" height="400" '
        f'role="img" aria-label="{escape(name, {chr(34): "&quot;"})}">'
        f'<defs><linearGradient id="{gid}" x1="0" y1="0" x2="1" y2="1">'
        f'<stop offset="0" stop-color="{pal["top"]}"/><stop offset="1" stop-color="{pal["bottom"]}"/>'
        "</linearGradient></defs>"
        f'<rect width="400" height="400" fill="url(#{gid})"/>'
        + "".join(shapes)
        + f'<circle cx="200" cy="190" r="92" fill="{pal["text"]}" opacity="0.12"/>'
        f'<text x="200" y="190" text-anchor="middle" dominant-baseline="central" '
        f'font-family="system-ui,-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif" '
        f'font-size="96" font-weight="700" letter-spacing="4" fill="{pal["text"]}">{text}</text>'
        + (
            f'<text x="200" y="352" text-anchor="middle" '
            f'font-family="system-ui,-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif" '
            f'font-size="20" font-weight="600" letter-spacing="3" fill="{pal["text"]}" '
            f'opacity="0.85">{caption}</text>'
            if caption
            else ""
        )
        + "</svg>"
    )
