"""import_online_retail: the cleaning rules (pure) and the import against the database.

The fixture tests/shop/data/online_retail_quirks.csv holds every quirk of the real
file: a float CustomerID, a guest checkout, several spellings of one product, an
"Unknown" description, non-product codes (POST, DOT, M, C2, BANK CHARGES, AMAZONFEE,
CRUK, PADS, S, B, gift vouchers, DCGS...), a service line with a product-like code,
cancellations, a stock adjustment, zero and negative prices, a code in two cases, a
huge wholesale quantity, a duplicate line, an invoice split in two places, a
malformed row. The expected numbers below are counted by hand from that file.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Max, Min

from shop.importers import catalogue
from shop.importers import online_retail as orr
from shop.importers.online_retail_load import online_retail_import
from shop.models import Category, ConsentChange, Interaction, Order, OrderLine, Product, User

DATA = Path(__file__).parent / "data"
QUIRKS = DATA / "online_retail_quirks.csv"
UTC = UTC


# --- pure rules ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, expected",
    [
        ("WHITE HANGING HEART T-LIGHT HOLDER", "White Hanging Heart T-Light Holder"),
        ("SET OF 3 CAKE TINS PANTRY DESIGN ", "Set of 3 Cake Tins Pantry Design"),
        ("DOLLY GIRL'S LED NIGHT LIGHT", "Dolly Girl's LED Night Light"),
        ("ROUND SNACK BOXES SET OF4 WOODLAND ", "Round Snack Boxes Set of4 Woodland"),
        ("PAPER CRAFT , LITTLE BIRDIE", "Paper Craft, Little Birdie"),
        ("POLYESTER FILLER PAD 40x40cm", "Polyester Filler Pad 40x40cm"),
        ("60CM STAR GARLAND", "60cm Star Garland"),
        ("SET/6 RED SPOTTY PAPER CUPS", "Set/6 Red Spotty Paper Cups"),
        ("  SET 2 TEA TOWELS  I LOVE LONDON ", "Set 2 Tea Towels I Love London"),
    ],
)
def test_title_case(raw, expected):
    assert catalogue.title_case(raw) == expected


@pytest.mark.parametrize(
    "name, path",
    [
        ("White Hanging Heart T-Light Holder", "Home > Candles & Lights"),
        ("Paper Chain Kit 50's Christmas", "Christmas > Christmas Cards & Wrap"),
        ("Christmas Lights 10 Reindeer", "Christmas > Christmas Lights & Candles"),
        ("Set of 4 Knick Knack Tins Doiley", "Kitchen > Kitchen Storage"),
        ("Baking Set 9 Piece Retrospot", "Kitchen > Cake & Baking"),
        ("Lunch Bag Red Retrospot", "Bags > Shopping & Travel Bags"),
        ("Jumbo Bag Pink Polkadot", "Bags > Shopping & Travel Bags"),
        ("Pack of 72 Retrospot Cake Cases", "Kitchen > Cake & Baking"),
        ("Red Retrospot Tea Towel", "Kitchen > Kitchen Textiles"),
        ("Hot Water Bottle Tea and Sympathy", "Home > Cushions & Textiles"),
        ("Ivory Retro Kitchen Wall Clock", "Home > Clocks, Frames & Mirrors"),
        ("Glass Bead Hoop Earrings Amethyst", "Jewellery & Accessories > Jewellery"),
        ("Letter 'H' Bling Key Ring", "Jewellery & Accessories > Fashion Accessories"),
        ("Childs Garden Spade Blue", "Garden > Gardening"),
        ("Vintage Seaside Jigsaw Puzzles", "Toys & Games > Games & Puzzles"),
        ("Spaceboy Birthday Card", "Stationery > Cards"),
        ("Coffee Mug Apples Design", "Kitchen > Tableware"),
        ("Xyzzy Plugh", catalogue.CATCH_ALL),
    ],
)
def test_categorise(name, path):
    assert catalogue.categorise(name) == path


def test_every_rule_targets_a_category_and_colours_are_distinct_hex():
    paths = set(catalogue.category_paths())
    assert {rule.path for rule in catalogue.RULES} <= paths
    colours = catalogue.category_colours()
    assert set(colours) == paths | set(catalogue.CATEGORY_TREE)
    assert len(set(colours.values())) == len(colours)
    for c in colours.values():
        assert len(c) == 7 and c[0] == "#" and int(c[1:], 16) >= 0

    def rgb(h):
        return [int(h[i : i + 2], 16) for i in (1, 3, 5)]

    closest = min(
        sum((a - b) ** 2 for a, b in zip(rgb(x), rgb(y))) ** 0.5
        for i, x in enumerate(colours.values())
        for y in list(colours.values())[i + 1 :]
    )
    assert closest > 20  # no two categories share a near-identical colour


def test_describe_is_deterministic_and_uses_name_and_category():
    a = catalogue.describe(name="Set of 3 Wooden Heart Decorations", category_path="Home > Decorations", key="21733")
    assert a == catalogue.describe(
        name="Set of 3 Wooden Heart Decorations", category_path="Home > Decorations", key="21733"
    )
    assert a.startswith("Set of 3 Wooden Heart Decorations.")
    assert "Made of wood." in a and "set of 3" in a and "Decorations collection" in a


@pytest.mark.parametrize("raw, expected", [("17850.0", "17850"), ("12346", "12346"), ("", None), (" ", None)])
def test_customer_id_clean(raw, expected):
    assert orr.customer_id_clean(raw) == expected


@pytest.mark.parametrize("raw", ["17850.5", "abc", "-3.0", "0"])
def test_customer_id_clean_rejects(raw):
    with pytest.raises(orr.MalformedRow):
        orr.customer_id_clean(raw)


def test_london_time_is_aware_and_follows_summer_time():
    assert orr.london_time("2010-12-01 08:26:00") == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)
    assert orr.london_time("2011-06-01 10:00:00") == datetime(2011, 6, 1, 9, 0, tzinfo=UTC)
    with pytest.raises(orr.MalformedRow, match="InvoiceDate"):
        orr.london_time("01/12/2010 08:26")


@pytest.mark.parametrize(
    "code, ok",
    [
        ("85123A", True),
        ("15056BL", True),
        ("22752", True),
        ("POST", False),
        ("C2", False),
        ("BANK CHARGES", False),
        ("DCGS0003", False),
        ("M", False),
        ("GIFT_0001_10", False),
        ("1234", False),
    ],
)
def test_product_code_rule(code, ok):
    assert orr.is_product_code(code) is ok


def test_canonical_name_ignores_unknown_and_staff_notes_and_prefers_the_most_frequent():
    from collections import Counter

    names = Counter(
        {
            "WHITE HANGING HEART T-LIGHT HOLDER": 5,
            "CREAM HANGING HEART T-LIGHT HOLDER": 2,
            "Unknown": 40,
            "?": 9,
            "damaged": 12,
            "wrongly marked carton 22804": 30,
        }
    )
    assert orr.OnlineRetailScan.canonical_name(names, "85123A") == "White Hanging Heart T-Light Holder"
    assert orr.OnlineRetailScan.canonical_name(Counter({"Unknown": 3}), "99999") == "Item 99999"


def test_browsing_events_funnel_is_ordered_and_deterministic():
    placed = datetime(2011, 5, 3, 14, 0, tzinfo=UTC)
    lines = [(1, 6, "A > B"), (2, 12, "A > B"), (3, 1, "C > D")]
    pool = {"A > B": [1, 2, 10, 11], "C > D": [3, 30]}

    def related(cat, rng):
        return rng.choice(pool[cat])

    events = orr.browsing_events(invoice="536365", placed_at=placed, lines=lines, related=related)
    assert events == orr.browsing_events(invoice="536365", placed_at=placed, lines=lines, related=related)
    assert events != orr.browsing_events(invoice="536366", placed_at=placed, lines=lines, related=related)
    for product, qty, _ in lines:
        mine = [e for e in events if e[0] == product]
        views = [t for _, k, _, t in mine if k == orr.VIEW]
        carts = [(t, v) for _, k, v, t in mine if k == orr.ADD_TO_CART]
        buys = [(t, v) for _, k, v, t in mine if k == orr.PURCHASE]
        assert 1 <= len(views) <= 3 and len(carts) == 1 and buys == [(placed, float(qty))]
        assert max(views) < carts[0][0] < placed and carts[0][1] == qty
        assert placed - min(views) <= timedelta(days=2, hours=4)
    browsed = {e[0] for e in events} - {1, 2, 3}
    assert browsed <= {10, 11, 30}
    assert all(k == orr.VIEW for p, k, _, _ in events if p in browsed)


def test_read_rows_limit_finishes_the_invoice_in_progress():
    rows = list(orr.read_rows(QUIRKS, limit=3))
    assert [fields[0] for _, fields in rows] == ["536365"] * 5
    assert rows[0][0] == 2 and rows[-1][0] == 6  # file line numbers


# --- the import -------------------------------------------------------------------------------
def run(*args: str) -> str:
    out = StringIO()
    call_command("import_online_retail", "--file", str(QUIRKS), "--no-progress", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_quirks_file_report_counts_every_reason():
    report = online_retail_import(path=QUIRKS)
    assert report.rows_read == 36
    assert report.sale_rows == 16
    assert dict(report.skipped) == {
        orr.R_MALFORMED: 1,
        orr.R_CANCELLATION: 3,
        orr.R_NOT_PRODUCT: 12,
        orr.R_ADJUSTMENT: 1,
        orr.R_BAD_PRICE: 2,
        orr.R_SERVICE: 1,
    }
    assert dict(report.non_product_codes) == dict.fromkeys(
        ["POST", "DOT", "B", "M", "C2", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS", "S", "GIFT_0001_10", "DCGSSBOY"], 1
    )
    assert report.service_codes == {"23444": ("Next Day Carriage", 1)}
    assert report.malformed_examples == ["line 37: Quantity 'abc' is not a whole number"]
    assert report.cancelled_invoices == 3
    assert report.guest_invoices == 1
    assert report.unknown_description_rows == 2
    assert report.products_with_several_spellings == 1
    assert report.case_merged_codes == 1
    assert report.huge_lines == 1
    assert report.merged_duplicate_lines == 1
    assert dict(report.created) == {
        "categories": 40,
        "products": 11,
        "customers": 6,
        "consent records": 6,
        "orders": 10,
        "order lines": 15,
        "view": report.created["view"],
        "add_to_cart": 15,
        "purchase": 15,
    }
    assert report.created["view"] >= 15
    text = "\n".join(report.lines())
    assert "zero or negative unit price (not a sale)" in text and "POST (1)" in text


@pytest.mark.django_db
def test_quirks_file_builds_a_clean_catalogue():
    run()
    assert set(Product.objects.values_list("sku", flat=True)) == {
        "85123A",
        "71053",
        "22752",
        "22633",
        "84879",
        "22326",
        "15056BL",
        "23843",
        "21730",
        "22960",
        "22961",
    }
    heart = Product.objects.select_related("category__parent").get(sku="85123A")
    assert heart.name == "White Hanging Heart T-Light Holder"  # 2 of 3 sales spelled it so
    assert heart.price == Decimal("2.55")  # the most common price
    assert (heart.category.parent.name, heart.category.name) == ("Home", "Candles & Lights")
    assert heart.description.startswith("White Hanging Heart T-Light Holder.")
    assert heart.is_active and heart.stock >= 0
    assert heart.created_at == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)
    assert Product.objects.get(sku="71053").name == "White Metal Lantern"  # not "Unknown"
    assert Product.objects.get(sku="22633").price == Decimal("2.10")  # 1.85 and 2.10 once each: the latest
    assert Product.objects.get(sku="22326").name == "Round Snack Boxes Set of4 Woodland"
    assert Product.objects.filter(sku__in=["POST", "DOT", "M", "23444", "B", "15056bl"]).count() == 0
    # A two-level tree, every product in a leaf, colours as given.
    assert Category.objects.filter(parent=None).count() == len(catalogue.CATEGORY_TREE)
    assert not Product.objects.filter(category__parent=None).exists()
    leaf = Category.objects.get(slug="home-candles-lights")
    assert leaf.colour == catalogue.CATEGORY_COLOURS["Home > Candles & Lights"]


@pytest.mark.django_db
def test_quirks_file_customers_and_consent():
    run()
    users = User.objects.order_by("external_id")
    assert list(users.values_list("external_id", flat=True)) == ["12347", "12583", "13047", "14911", "16446", "17850"]
    domain = settings.AFFINITY_DEMO_EMAIL_DOMAIN
    for u in users:
        assert u.email.endswith(f".{u.external_id}@{domain}") and u.first_name and u.last_name
        assert not u.has_usable_password()
        assert u.marketing_consent is orr.consent_given(u.external_id)
        change = ConsentChange.objects.get(user=u)
        assert change.source == ConsentChange.Source.IMPORT and change.consent is u.marketing_consent
        assert change.changed_at == u.date_joined == u.consent_changed_at
    assert users.get(external_id="14911").country == "Ireland"  # EIRE
    assert users.get(external_id="12583").country == "France"
    first = users.get(external_id="17850")
    assert first.date_joined == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)


def test_consent_share_is_about_sixty_percent():
    share = sum(orr.consent_given(str(i)) for i in range(12000, 18000)) / 6000
    assert 0.55 < share < 0.65


def test_generated_names_are_deterministic_per_customer():
    a, b = orr.CustomerNamer(), orr.CustomerNamer()
    assert a.name("17850", "United Kingdom") == b.name("17850", "United Kingdom")
    assert a.name("17850", "Germany") != a.name("12347", "Germany")
    assert orr.CustomerNamer.email("Zoë", "Müller", "12", "x.example") == "zoe.muller.12@x.example"


@pytest.mark.django_db
def test_quirks_file_orders_lines_and_interactions():
    run()
    assert Order.objects.count() == 10
    assert not Order.objects.filter(external_id__startswith="C").exists()  # cancellations
    first = Order.objects.get(external_id="536365")
    assert first.user.external_id == "17850"
    assert first.total == Decimal("66.24") and first.status == Order.Status.SHIPPED
    assert first.placed_at == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)
    lines = {l.product.sku: (l.quantity, l.unit_price) for l in first.lines.select_related("product")}
    assert lines == {"85123A": (12, Decimal("2.55")), "71053": (6, Decimal("3.39")), "22752": (2, Decimal("7.65"))}
    split = Order.objects.get(external_id="536800")  # its rows are not next to each other
    assert sorted(split.lines.values_list("product__sku", flat=True)) == ["21730", "22961"]
    assert Order.objects.get(external_id="581483").lines.get().quantity == 80995  # wholesale, kept
    summer = Order.objects.get(external_id="536700")
    assert summer.placed_at == datetime(2011, 6, 1, 9, 0, tzinfo=UTC)  # 10:00 BST
    assert OrderLine.objects.count() == 15

    guest = Order.objects.get(external_id="536367")
    assert guest.user is None and guest.country == "United Kingdom"
    guest_events = Interaction.objects.filter(session_key="guest-536367")
    assert guest_events.filter(user__isnull=False).count() == 0
    assert list(guest_events.filter(kind=Interaction.Kind.PURCHASE).values_list("product__sku", "value")) == [
        ("84879", 32.0)
    ]

    purchases = Interaction.objects.filter(kind=Interaction.Kind.PURCHASE)
    assert purchases.count() == 15
    assert set(purchases.values_list("source", flat=True)) == {Interaction.Source.IMPORT}
    p = purchases.get(user__external_id="17850", product__sku="85123A", occurred_at=first.placed_at)
    assert p.value == 12.0
    # view <= add_to_cart <= purchase for every customer and product bought.
    for user_id, session, product_id in purchases.values_list("user_id", "session_key", "product_id"):
        mine = Interaction.objects.filter(user_id=user_id, session_key=session, product_id=product_id)
        first_of = {r["kind"]: r["t"] for r in mine.values("kind").annotate(t=Min("occurred_at"))}
        assert (
            first_of[Interaction.Kind.VIEW]
            < first_of[Interaction.Kind.ADD_TO_CART]
            < first_of[Interaction.Kind.PURCHASE]
        )
    assert Interaction.objects.aggregate(t=Max("occurred_at"))["t"] <= datetime(2011, 12, 9, 9, 15, tzinfo=UTC)


@pytest.mark.django_db
def test_a_file_too_big_to_keep_in_memory_is_read_twice_with_the_same_result(monkeypatch):
    from shop.importers import online_retail_load

    monkeypatch.setattr(online_retail_load, "MAX_KEPT_SALE_ROWS", 3)  # pass 2 re-reads the file
    report = online_retail_import(path=QUIRKS)
    assert (report.created["orders"], report.created["order lines"], report.created["purchase"]) == (10, 15, 15)
    assert report.merged_duplicate_lines == 1
    assert sorted(Order.objects.get(external_id="536800").lines.values_list("product__sku", flat=True)) == [
        "21730",
        "22961",
    ]


@pytest.mark.django_db
def test_second_run_creates_nothing_and_changes_nothing():
    run()
    before = {
        m.__name__: m.objects.count() for m in (Product, Category, User, ConsentChange, Order, OrderLine, Interaction)
    }
    names = dict(Product.objects.values_list("sku", "name"))
    report = online_retail_import(path=QUIRKS)
    assert report.total_created == 0
    assert report.existing["products"] == 11 and report.existing["customers"] == 6
    assert report.existing["orders"] == 10
    after = {
        m.__name__: m.objects.count() for m in (Product, Category, User, ConsentChange, Order, OrderLine, Interaction)
    }
    assert after == before
    assert dict(Product.objects.values_list("sku", "name")) == names
    assert "(total 0)" in run()


@pytest.mark.django_db
def test_limit_imports_whole_invoices_and_a_later_full_run_completes_the_rest():
    report = online_retail_import(path=QUIRKS, limit=3)
    assert report.rows_read == 5  # the first invoice's five rows, not cut at three
    assert list(Order.objects.values_list("external_id", flat=True)) == ["536365"]
    assert Order.objects.get().lines.count() == 3
    report = online_retail_import(path=QUIRKS)
    assert report.created["orders"] == 9 and report.existing["orders"] == 1
    assert Order.objects.get(external_id="536365").lines.count() == 3
    assert Order.objects.count() == 10


@pytest.mark.django_db
def test_existing_rows_are_left_as_staff_edited_them():
    run("--limit", "3")
    Product.objects.filter(sku="85123A").update(name="Heart Holder (staff edit)", price=Decimal("9.99"))
    run()
    p = Product.objects.get(sku="85123A")
    assert (p.name, p.price) == ("Heart Holder (staff edit)", Decimal("9.99"))


@pytest.mark.django_db
def test_command_errors_are_clear(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("import_online_retail", "--file", str(tmp_path / "missing.csv"), "--no-progress")
    bad = tmp_path / "bad.csv"
    bad.write_text("Invoice,Code\n1,2\n")
    with pytest.raises(CommandError, match="unexpected header"):
        call_command("import_online_retail", "--file", str(bad), "--no-progress")
    with pytest.raises(CommandError, match="--limit"):
        call_command("import_online_retail", "--limit", "0", "--no-progress")
    assert not Product.objects.exists()


@pytest.mark.django_db
def test_xz_compressed_file_is_read(tmp_path):
    import lzma

    packed = tmp_path / "quirks.csv.xz"
    packed.write_bytes(lzma.compress(QUIRKS.read_bytes()))
    report = online_retail_import(path=packed)
    assert report.created["orders"] == 10


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.django_db
def test_the_bundled_file_imports_whole():
    """The default the demo bootstrap uses: the full bundled file."""
    report = online_retail_import()
    assert report.rows_read == 541_909
    assert report.created["orders"] == 19_770
    assert report.created["customers"] == 4_334 and report.created["products"] == 3_787
    assert report.catch_all_products / report.catalogue_products < 0.05
    assert Interaction.objects.filter(kind=Interaction.Kind.PURCHASE).count() == report.created["purchase"]
    # Every skipped row has a reason; nothing is lost silently.
    assert report.sale_rows + sum(report.skipped.values()) == report.rows_read
    # The bulk path rebuilt the indexes it dropped.
    from django.db import connection

    with connection.cursor() as cur:
        names = {
            n
            for n, c in connection.introspection.get_constraints(cur, Interaction._meta.db_table).items()
            if c["index"]
        }
    assert {"interaction_user_time", "interaction_product_kind", "interaction_time"} <= names


def test_random_rows_never_crash_the_scan():
    """Fuzz the row classifier with mangled rows: each is a sale or has a reason."""
    rng = random.Random(5)
    header_rows = [l.split(",") for l in QUIRKS.read_text().splitlines()[1:] if '"' not in l]
    scan = orr.OnlineRetailScan()
    for i in range(2000):
        fields = list(rng.choice(header_rows))
        j = rng.randrange(len(fields))
        fields[j] = rng.choice(["", " ", "x", "-1", "1e9", "nan", "2011-13-01 00:00:00", "C", "0.0"])
        if rng.random() < 0.1:
            fields = fields[: rng.randrange(len(fields))]
        scan.add(i + 2, fields)
    assert scan.rows == 2000
    assert scan.sale_rows + sum(scan.skipped.values()) == 2000
