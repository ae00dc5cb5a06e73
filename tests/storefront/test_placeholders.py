"""Placeholders tell products apart: a search for "lunch bag" in the bundled dataset
returned 14 identical teal "LB" tiles. Each now shows the words that set it apart and
its own tint of the category colour; the same drawing is served as PNG."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pytest
from django.urls import reverse
from PIL import Image

from storefront import placeholders
from tests.factories import CategoryFactory, ProductFactory

SVG = "{http://www.w3.org/2000/svg}"
# The lunch bags of the bundled Online Retail dataset (one category in the demo store).
LUNCH_BAGS = [
    "LUNCH BAG  BLACK SKULL.",
    "LUNCH BAG ALPHABET DESIGN",
    "LUNCH BAG APPLE DESIGN",
    "LUNCH BAG CARS BLUE",
    "LUNCH BAG DOILEY PATTERN",
    "LUNCH BAG DOLLY GIRL DESIGN",
    "LUNCH BAG PAISLEY PARK",
    "LUNCH BAG PINK POLKADOT",
    "LUNCH BAG RED RETROSPOT",
    "LUNCH BAG RED SPOTTY",
    "LUNCH BAG RED VINTAGE DOILY",
    "LUNCH BAG SPACEBOY DESIGN",
    "LUNCH BAG SUKI DESIGN",
    "LUNCH BAG VINTAGE DOILY",
    "LUNCH BAG VINTAGE LEAF DESIGN",
    "LUNCH BAG WOODLAND",
]


def _texts(svg: str) -> list[str]:
    return [t.text or "" for t in ET.fromstring(svg).iter(f"{SVG}text")]


def test_siblings_in_one_category_are_told_apart():
    drawings = [
        placeholders.design(product_id=100 + i, name=name, colour="#0f766e", label="Bags")
        for i, name in enumerate(LUNCH_BAGS)
    ]
    assert {d.monogram for d in drawings} == {"LB"}  # the initials alone cannot tell them apart ...
    words = [d.words for d in drawings]
    assert len(set(words)) == len(LUNCH_BAGS) and all(words)  # ... their distinctive words do
    assert words[8] == "RED RETROSPOT" and words[1] == "ALPHABET"  # "DESIGN" says nothing
    tints = [d.top for d in drawings]
    assert len(set(tints)) >= len(LUNCH_BAGS) - 1  # and their tints differ
    svgs = [placeholders.product_svg(product_id=100 + i, name=n, colour="#0f766e") for i, n in enumerate(LUNCH_BAGS)]
    assert _texts(svgs[8]) == ["LB", "RED RETROSPOT"]


def test_tints_stay_in_the_category_family_and_readable():
    base = placeholders._rgb("#0f766e")
    for name in LUNCH_BAGS:
        tint = placeholders._rgb(placeholders.product_colour("#0f766e", name=name))
        assert sum(abs(a - b) for a, b in zip(tint, base, strict=True)) < 200
        pal = placeholders.palette(placeholders.product_colour("#0f766e", name=name))
        assert placeholders.contrast_ratio(tint, placeholders._rgb(pal["text"])) >= 4.5


@pytest.mark.parametrize(
    "name, words",
    [
        ("WHITE HANGING HEART T-LIGHT HOLDER", "HEART LIGHT HOLDER"),
        ("mug", ""),
        ("JUMBO BAG RED RETROSPOT", "RETROSPOT"),  # JUMBO is a size: the initials are BR
        ("LUNCH BAG SUPERCALIFRAGILISTICEXPIALIDOCIOUS", "SUPERCALIFRAGILIS…"),
    ],
)
def test_distinctive_words(name, words):
    assert placeholders.distinctive(name) == words


def test_png_is_the_same_drawing_as_a_raster_image():
    png = placeholders.product_png(product_id=7, name="LUNCH BAG RED RETROSPOT", colour="#0f766e", label="Bags")
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (600, 600) and image.mode == "RGB"
    top = placeholders._rgb(placeholders.design(product_id=7, name="LUNCH BAG RED RETROSPOT", colour="#0f766e").top)
    corner = image.getpixel((1, 1))
    assert sum(abs(a - b) for a, b in zip(corner, top, strict=True)) < 60  # the gradient starts at the tint
    assert len(set(image.resize((60, 60)).get_flattened_data())) > 50  # drawn: not one flat colour
    again = placeholders.product_png(product_id=7, name="LUNCH BAG RED RETROSPOT", colour="#0f766e", label="Bags")
    other = placeholders.product_png(product_id=8, name="LUNCH BAG APPLE DESIGN", colour="#0f766e", label="Bags")
    assert again == png and other != png


@pytest.mark.django_db
def test_png_route_caches_with_its_own_etag(client):
    cat = CategoryFactory(name="Bags", slug="bags", colour="#0f766e")
    p = ProductFactory(name="LUNCH BAG WOODLAND", category=cat)
    url = reverse("shop:product_image_png", args=[p.pk])
    assert url == f"/img/p/{p.pk}.png"
    r = client.get(url)
    assert r.status_code == 200 and r["Content-Type"] == "image/png" and r.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert "max-age=86400" in r["Cache-Control"]
    svg_etag = client.get(reverse("shop:product_image", args=[p.pk]))["ETag"]
    assert r["ETag"] != svg_etag  # two representations, two validators
    again = client.get(url, HTTP_IF_NONE_MATCH=r["ETag"])
    assert again.status_code == 304 and again.content == b""
    assert client.get("/img/p/999999.png").status_code == 404
