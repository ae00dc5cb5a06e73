"""Generated product pictures: a drawing in a tint of the category's colour with the
product's initials, the words that set it apart from its neighbours ("RED RETROSPOT"
under the "LB" of every lunch bag) and a pattern of its own, so a catalogue without
photos still looks deliberate and products can be told apart. One design
(`design`), two renderings: SVG for pages, PNG for the places that need a raster
image (Open Graph and Twitter cards, emails, ad platforms). Pure functions (no
Django, no network); the view adds caching headers.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import re
from dataclasses import dataclass
from functools import lru_cache
from xml.sax.saxutils import escape

from PIL import Image, ImageDraw, ImageFont

VERSION = "3"  # bump when the drawing changes: it is part of the ETag
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
    "PATTERN",
    "STYLE",
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


def _words(name: str) -> list[str]:
    words = re.findall(r"[^\W\d_]+", name.upper())
    return [w for w in words if w not in _STOP and len(w) > 1]


def distinctive(name: str, *, limit: int = 18) -> str:
    """The words after the two the initials stand for ("LUNCH BAG RED RETROSPOT" ->
    "RED RETROSPOT"): what tells a product from its siblings that share initials.
    Cut at a word boundary to at most ``limit`` characters; "" when nothing is left."""
    rest = _words(name)[2:]
    out = ""
    for word in rest:
        candidate = f"{out} {word}".strip()
        if len(candidate) > limit:
            break
        out = candidate
    if not out and rest:
        out = rest[0][: limit - 1] + "…"
    return out


def product_colour(colour: str, *, name: str) -> str:
    """The product's own tint of its category colour: the hue turned by up to 40
    degrees and the lightness moved by up to 0.12, both derived from the name, so
    siblings differ while the category still reads as one family."""
    r, g, b = (c / 255 for c in _rgb(colour))
    h, lightness, s = colorsys.rgb_to_hls(r, g, b)
    seed = _digest("tint", name.strip().upper())
    h = (h + (seed[0] / 255 - 0.5) * (80 / 360)) % 1.0
    lightness = min(0.72, max(0.22, lightness + (seed[1] / 255 - 0.5) * 0.24))
    s = min(1.0, max(0.25, s))
    light, dark = (255, 255, 255), (17, 24, 39)
    while True:  # darken a mid-tone until white or near-black text reads on it (4.5:1)
        rgb = tuple(c * 255 for c in colorsys.hls_to_rgb(h, lightness, s))
        if lightness <= 0.05 or max(contrast_ratio(rgb, light), contrast_ratio(rgb, dark)) >= 4.5:  # type: ignore[arg-type]
            return _hex(rgb)  # type: ignore[arg-type]
        lightness -= 0.02


def etag_for(*, product_id: int, name: str, colour: str, label: str = "") -> str:
    return hashlib.sha1(_digest(VERSION, product_id, name, colour, label)).hexdigest()[:20]


@dataclass(frozen=True)
class Circle:
    x: float
    y: float
    r: float
    fill: str
    opacity: float
    stroke: float = 0.0  # > 0: a ring of that width, not a disc


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    colour: str
    width: float
    opacity: float


@dataclass(frozen=True)
class Design:
    """What a placeholder shows, on a 400 x 400 canvas."""

    top: str
    bottom: str
    text_colour: str
    shapes: tuple[Circle | Line, ...]
    monogram: str
    words: str
    caption: str
    name: str


def design(*, product_id: int, name: str, colour: str, label: str = "") -> Design:
    """The drawing of one product: a gradient in its tint, a pattern drawn from the
    product id (so neighbours differ), the initials, its distinctive words and a
    small category label."""
    pal = palette(product_colour(colour, name=name))
    seed = _digest("pattern", product_id)
    shapes: list[Circle | Line] = []
    for i in range(3):
        x, y = 40 + seed[i * 3] * 320 // 255, 40 + seed[i * 3 + 1] * 320 // 255
        r = 60 + seed[i * 3 + 2] % 110
        fill = pal["shape"] if i % 2 == 0 else pal["shape_dark"]
        shapes.append(Circle(x, y, r, fill, 0.22 + i * 0.06))
    style = seed[10] % 3
    if style == 0:  # diagonal stripes across one corner
        shapes += [Line(k, 400, 400, k, pal["shape"], 14, 0.25) for k in range(180, 400, 40)]
    elif style == 1:  # a dotted grid
        shapes += [Circle(28 + 36 * c, 28 + 36 * r, 4, pal["shape"], 0.35) for r in range(3) for c in range(4)]
    else:  # concentric rings
        cx, cy = 300 + seed[11] % 60, 300 + seed[12] % 60
        shapes += [Circle(cx, cy, r, pal["shape"], 0.3, stroke=10) for r in (40, 80, 120)]
    shapes.append(Circle(200, 175, 92, pal["text"], 0.12))
    return Design(
        top=pal["top"],
        bottom=pal["bottom"],
        text_colour=pal["text"],
        shapes=tuple(shapes),
        monogram=initials(name),
        words=distinctive(name),
        caption=label.upper()[:28],
        name=name,
    )


_FONT = "system-ui,-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif"


def product_svg(*, product_id: int, name: str, colour: str, label: str = "") -> str:
    """The placeholder as a 400x400 SVG (pages)."""
    d = design(product_id=product_id, name=name, colour=colour, label=label)
    parts: list[str] = []
    for shape in d.shapes:
        if isinstance(shape, Line):
            parts.append(
                f'<line x1="{shape.x1}" y1="{shape.y1}" x2="{shape.x2}" y2="{shape.y2}" '
                f'stroke="{shape.colour}" stroke-width="{shape.width}" opacity="{shape.opacity:g}"/>'
            )
        elif shape.stroke:
            parts.append(
                f'<circle cx="{shape.x}" cy="{shape.y}" r="{shape.r}" fill="none" stroke="{shape.fill}" '
                f'stroke-width="{shape.stroke:g}" opacity="{shape.opacity:g}"/>'
            )
        else:
            parts.append(
                f'<circle cx="{shape.x}" cy="{shape.y}" r="{shape.r}" fill="{shape.fill}" opacity="{shape.opacity:g}"/>'
            )
    gid = f"g{product_id}"
    texts = [
        f'<text x="200" y="175" text-anchor="middle" dominant-baseline="central" font-family="{_FONT}" '
        f'font-size="96" font-weight="700" letter-spacing="4" fill="{d.text_colour}">{escape(d.monogram)}</text>'
    ]
    if d.words:
        texts.append(
            f'<text x="200" y="292" text-anchor="middle" font-family="{_FONT}" font-size="26" font-weight="700" '
            f'letter-spacing="1" fill="{d.text_colour}">{escape(d.words)}</text>'
        )
    if d.caption:
        texts.append(
            f'<text x="200" y="358" text-anchor="middle" font-family="{_FONT}" font-size="18" font-weight="600" '
            f'letter-spacing="3" fill="{d.text_colour}" opacity="0.8">{escape(d.caption)}</text>'
        )
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 400" width="400" height="400" '
        f'role="img" aria-label="{escape(name, {chr(34): "&quot;"})}">'
        f'<defs><linearGradient id="{gid}" x1="0" y1="0" x2="1" y2="1">'
        f'<stop offset="0" stop-color="{d.top}"/><stop offset="1" stop-color="{d.bottom}"/>'
        "</linearGradient></defs>"
        f'<rect width="400" height="400" fill="url(#{gid})"/>' + "".join(parts) + "".join(texts) + "</svg>"
    )


PNG_SIZE = 600


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _rgba(colour: str, opacity: float) -> tuple[int, int, int, int]:
    r, g, b = _rgb(colour)
    return r, g, b, round(255 * opacity)


def product_png(*, product_id: int, name: str, colour: str, label: str = "", size: int = PNG_SIZE) -> bytes:
    """The same placeholder as a square PNG (``size`` pixels): for Open Graph and
    Twitter cards, emails and ad platforms, which do not take SVG."""
    d = design(product_id=product_id, name=name, colour=colour, label=label)
    k = size / 400
    top, bottom = _rgb(d.top), _rgb(d.bottom)
    # the diagonal gradient: a 2x2 image stretched smoothly over the canvas
    corners = Image.new("RGB", (2, 2))
    mid = tuple(round((a + b) / 2) for a, b in zip(top, bottom, strict=True))
    corners.putdata([top, mid, mid, bottom])
    image = corners.resize((size, size), Image.Resampling.BILINEAR).convert("RGBA")
    for shape in d.shapes:
        layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        pen = ImageDraw.Draw(layer)
        if isinstance(shape, Line):
            pen.line(
                [(shape.x1 * k, shape.y1 * k), (shape.x2 * k, shape.y2 * k)],
                fill=_rgba(shape.colour, shape.opacity),
                width=max(1, round(shape.width * k)),
            )
        else:
            box = [(shape.x - shape.r) * k, (shape.y - shape.r) * k, (shape.x + shape.r) * k, (shape.y + shape.r) * k]
            if shape.stroke:
                pen.ellipse(box, outline=_rgba(shape.fill, shape.opacity), width=max(1, round(shape.stroke * k)))
            else:
                pen.ellipse(box, fill=_rgba(shape.fill, shape.opacity))
        image = Image.alpha_composite(image, layer)
    text_layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    pen = ImageDraw.Draw(text_layer)
    pen.text((200 * k, 175 * k), d.monogram, font=_font(round(96 * k)), fill=_rgba(d.text_colour, 1), anchor="mm")
    if d.words:
        pen.text((200 * k, 292 * k), d.words, font=_font(round(26 * k)), fill=_rgba(d.text_colour, 1), anchor="ms")
    if d.caption:
        pen.text((200 * k, 358 * k), d.caption, font=_font(round(18 * k)), fill=_rgba(d.text_colour, 0.8), anchor="ms")
    image = Image.alpha_composite(image, text_layer).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
