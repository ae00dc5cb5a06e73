"""Catalogue feeds for ad and shopping platforms: checked against the formats'
required attributes and value rules (Google Merchant Center product data
specification; Meta catalogue data feed), behind their token, and as a command."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from django.core.management import call_command

from storefront import feeds
from tests.factories import CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db
G = "{http://base.google.com/ns/1.0}"
TOKEN = "feed-token-0123456789"
PRICE = re.compile(r"^\d+\.\d{2} [A-Z]{3}$")  # "2.55 GBP": both platforms


@pytest.fixture
def catalogue(settings):
    settings.PRODUCT_FEED_TOKEN = TOKEN
    settings.SITE_URL, settings.SITE_URL_SET = "https://shop.example.com", True
    parent = CategoryFactory(name="Home", slug="home")
    cat = CategoryFactory(name="Candles", slug="candles", parent=parent)
    return {
        "plain": ProductFactory(sku="85123A", name="WHITE HANGING HEART T-LIGHT HOLDER", category=cat, description=""),
        "photo": ProductFactory(
            sku="22423",
            name="Regency cakestand",
            category=cat,
            description="Three tiers,\tbone china.\nBoxed.",
            image_url="https://cdn.example.com/stand.jpg",
            price=Decimal("12.75"),
        ),
        "sold_out": ProductFactory(sku="SOLD", name="Sold out lamp", category=None, stock=0),
        "untracked": ProductFactory(sku="UNTRACKED", name="Always there", stock=None),
        "long_sku": ProductFactory(sku="X" * 60, name="Long code thing"),
        "inactive": ProductFactory(sku="GONE", name="Retired", is_active=False),
        "free": ProductFactory(sku="FREE", name="Free sample", price=Decimal("0")),
    }


def _get(client, fmt: str, **extra):
    response = client.get(f"/feeds/{fmt}", **extra)
    body = b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()
    return response, body


def test_feeds_need_their_token(client, catalogue, settings):
    assert client.get("/feeds/google-xml").status_code == 403
    assert client.get("/feeds/google-xml?token=wrong").status_code == 403
    assert _get(client, "google-xml", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")[0].status_code == 200
    assert client.get(f"/feeds/nonsense?token={TOKEN}").status_code == 404
    settings.PRODUCT_FEED_TOKEN = ""
    assert client.get(f"/feeds/google-xml?token={TOKEN}").status_code == 404  # no token configured: no feed


def test_google_merchant_xml_has_every_required_attribute(client, catalogue):
    response, body = _get(client, f"google-xml?token={TOKEN}")
    assert response["Content-Type"] == "application/xml; charset=utf-8"
    root = ET.fromstring(body)
    assert root.tag == "rss" and root.get("version") == "2.0"
    channel = root.find("channel")
    assert channel.findtext("title") and channel.findtext("link") == "https://shop.example.com/"
    items = {i.findtext(f"{G}id"): i for i in channel.findall("item")}
    assert set(items) == {"85123A", "22423", "SOLD", "UNTRACKED", f"p{catalogue['long_sku'].pk}"}
    for item in items.values():
        for attr in feeds.REQUIRED["google"]:
            assert (item.findtext(f"{G}{attr}") or "").strip(), attr
        assert len(item.findtext(f"{G}id")) <= 50 and len(item.findtext(f"{G}title")) <= 150
        assert item.findtext(f"{G}availability") in {"in_stock", "out_of_stock", "preorder", "backorder"}
        assert PRICE.match(item.findtext(f"{G}price"))
        assert item.findtext(f"{G}condition") == "new"
        assert item.findtext(f"{G}link").startswith("https://shop.example.com/product/")
        assert item.findtext(f"{G}image_link").startswith("https://")
    plain = items["85123A"]
    assert plain.findtext(f"{G}title") == "White Hanging Heart T-Light Holder"
    assert plain.findtext(f"{G}image_link") == f"https://shop.example.com/img/p/{catalogue['plain'].pk}.png"
    assert plain.findtext(f"{G}link") == f"https://shop.example.com/product/{catalogue['plain'].slug}/"
    assert plain.findtext(f"{G}product_type") == "Home > Candles"
    assert plain.findtext(f"{G}price") == "9.99 GBP"
    assert items["22423"].findtext(f"{G}image_link") == "https://cdn.example.com/stand.jpg"
    assert items["22423"].findtext(f"{G}description") == "Three tiers, bone china. Boxed."
    assert items["SOLD"].findtext(f"{G}availability") == "out_of_stock"
    assert items["UNTRACKED"].findtext(f"{G}availability") == "in_stock"


@pytest.mark.parametrize("fmt, delimiter", [("google-tsv", "\t"), ("google-csv", ",")])
def test_google_delimited_feeds(client, catalogue, fmt, delimiter):
    response, body = _get(client, f"{fmt}?token={TOKEN}")
    rows = list(csv.DictReader(io.StringIO(body), delimiter=delimiter))
    assert tuple(rows[0].keys()) == feeds.COLUMNS
    assert len(rows) == 5
    for row in rows:
        assert all(row[a].strip() for a in feeds.REQUIRED["google"])
        assert PRICE.match(row["price"]) and row["availability"] in {"in_stock", "out_of_stock"}
    assert {r["id"] for r in rows} >= {"85123A", "22423"}


def test_meta_catalogue_csv(client, catalogue):
    response, body = _get(client, f"meta-csv?token={TOKEN}")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(body)))
    assert tuple(rows[0].keys()) == feeds.META_COLUMNS
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {"85123A", "22423", "SOLD", "UNTRACKED", f"p{catalogue['long_sku'].pk}"}
    for row in rows:
        assert all(row[a].strip() for a in feeds.REQUIRED["meta"])  # Meta requires brand and condition too
        assert row["availability"] in {"in stock", "out of stock"} and row["condition"] == "new"
        assert PRICE.match(row["price"])
    assert by_id["SOLD"]["availability"] == "out of stock" and by_id["22423"]["price"] == "12.75 GBP"
    assert by_id["85123A"]["brand"] == "Affinity"


def test_the_command_writes_the_same_feed(catalogue, tmp_path, client, capsys):
    out = tmp_path / "feed.xml"
    call_command("product_feed", "--format", "google-xml", "--output", str(out))
    assert out.read_text() == _get(client, f"google-xml?token={TOKEN}")[1]
    assert "5 product(s) in the google-xml feed" in capsys.readouterr().err
    with pytest.raises(Exception, match="does not exist"):
        call_command("product_feed", "--output", str(tmp_path / "missing" / "feed.xml"))


def test_unknown_format_is_named():
    with pytest.raises(feeds.FeedError, match="unknown feed format 'rss': use one of google-xml"):
        feeds.feed_stream("rss")
