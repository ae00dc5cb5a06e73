"""Generated product pictures: the SVG drawing (pure) and its cached view."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from django.urls import reverse

from storefront import placeholders
from tests.factories import CategoryFactory, ProductFactory

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("WHITE HANGING HEART T-LIGHT HOLDER", "WH"),
        ("SET OF 3 CAKE TINS PANTRY DESIGN", "CT"),
        ("12 PENCILS SMALL TUBE RED RETROSPOT", "PT"),
        ("mug", "M"),
        ("3 4 5", "?"),
        ("Ünïcode Ørnament", "ÜØ"),
    ],
)
def test_initials(name, expected):
    assert placeholders.initials(name) == expected


@pytest.mark.parametrize("colour", ["#ffffff", "#f5e663", "#000000", "#0f6b5c", "#c2410c", "#5b6c8f", "bogus"])
def test_text_colour_contrasts_with_the_background(colour):
    pal = placeholders.palette(colour)
    base = placeholders._rgb(colour)
    text = placeholders._rgb(pal["text"])
    assert placeholders.contrast_ratio(base, text) >= 4.5


def test_svg_is_well_formed_escaped_and_differs_per_product():
    svg = placeholders.product_svg(product_id=7, name='Tom & Jerry "<mug>"', colour="#c2410c", label="Kitchen & Co")
    root = ET.fromstring(svg)  # parses: everything is escaped
    assert root.tag == f"{SVG}svg" and root.get("viewBox") == "0 0 400 400"
    assert root.get("aria-label") == 'Tom & Jerry "<mug>"'
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert texts == ["TJ", "MUG", "KITCHEN & CO"]  # initials, what sets it apart, category
    other = placeholders.product_svg(product_id=8, name='Tom & Jerry "<mug>"', colour="#c2410c", label="Kitchen & Co")
    assert other != svg
    assert (
        placeholders.product_svg(product_id=7, name='Tom & Jerry "<mug>"', colour="#c2410c", label="Kitchen & Co")
        == svg
    )  # deterministic
    assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")  # nothing fetched


@pytest.mark.django_db
def test_image_view_caches_with_etag(client, django_assert_max_num_queries):
    cat = CategoryFactory(name="Kitchen", slug="kitchen", colour="#0369a1")
    p = ProductFactory(name="ENAMEL MUG", category=cat)
    url = reverse("shop:product_image", args=[p.pk])
    assert url == f"/img/p/{p.pk}.svg"
    with django_assert_max_num_queries(1):
        r = client.get(url)
    assert r.status_code == 200
    assert r["Content-Type"] == "image/svg+xml; charset=utf-8"
    assert "max-age=86400" in r["Cache-Control"] and "public" in r["Cache-Control"]
    assert 'fill="#' in r.content.decode() and ">EM<" in r.content.decode()
    etag = r["ETag"]
    again = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b"" and again["ETag"] == etag
    cat.colour = "#b91c1c"
    cat.save()
    changed = client.get(url, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag


@pytest.mark.django_db
def test_image_view_for_a_product_without_category_and_unknown_ids(client):
    p = ProductFactory(name="LOOSE THING", category=None)
    r = client.get(reverse("shop:product_image", args=[p.pk]))
    assert r.status_code == 200
    tint = placeholders.product_colour(placeholders.DEFAULT_COLOUR, name="LOOSE THING")
    assert placeholders.palette(tint)["top"] in r.content.decode()
    assert client.get("/img/p/999999.svg").status_code == 404
