"""The importer's category inference, judged as a reviewer would on random samples of
the demo catalogue (shop.importers.catalogue.categorise).

`data/category_sample.csv`: 200 products drawn at random (seed 20261206) from the
3,787 the Online Retail importer makes; each row lists the categories a reviewer accepts
(several where the tree allows more than one honest answer: a doormat is a textile or
a piece of home furniture). The rules before this sample was judged put 182 of 200
(91.0%) where a reviewer accepts them; after the review, 200 of 200.
`data/category_sample_fresh.csv`: 100 more, drawn after those fixes (seed 7) as a check
on data the fixes had not seen: 90 of 100 before its own review, 98 of 100 after.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from shop.importers.catalogue import categorise

DATA = Path(__file__).parent / "data"


def _judged(name: str) -> list[tuple[str, str, list[str]]]:
    with open(DATA / name, newline="", encoding="utf-8") as f:
        return [(r["name"], categorise(r["name"]), r["accepted"].split("|")) for r in csv.DictReader(f)]


@pytest.mark.parametrize(
    ("fixture", "size", "at_least"), [("category_sample.csv", 200, 0.98), ("category_sample_fresh.csv", 100, 0.95)]
)
def test_a_reviewer_accepts_the_category_of_nearly_every_sampled_product(fixture, size, at_least):
    judged = _judged(fixture)
    assert len(judged) == size
    misses = [(name, got, accepted) for name, got, accepted in judged if got not in accepted]
    share = 1 - len(misses) / len(judged)
    assert share >= at_least, "\n".join(f"{n!r}: {g} (accepted: {' | '.join(a)})" for n, g, a in misses)


@pytest.mark.parametrize(
    ("name", "path"),
    [
        # the products the first-hour review found in the wrong place
        ("Bag 125g Swirly Marbles", "Toys & Games > Games & Puzzles"),
        ("Bag of Silver Stones", "Home > Decorations"),
        ("Blue Glass Gems in Bag", "Home > Decorations"),
        ("Gardeners Kneeling Pad Keep Calm", "Garden > Gardening"),
        ("Vintage Doily Travel Sewing Kit", "Stationery > Arts & Crafts"),
        # an object noun wins over the words around it
        ("New England Mug W Gift Box", "Kitchen > Tableware"),
        ("Lavender Scent Cake Candle", "Home > Candles & Lights"),
        ("Ceramic Strawberry Cake Money Bank", "Gifts > Keepsakes & Novelties"),
        ("Glass and Painted Beads Bracelet to", "Jewellery & Accessories > Jewellery"),
        ("Easter Bunny Wreath", "Home > Decorations"),
        ("Baking Mould Easter Egg White Choc", "Kitchen > Cake & Baking"),
    ],
)
def test_named_products_land_where_a_shopper_looks_for_them(name, path):
    assert categorise(name) == path
