"""import_catalogue: any shop's products from CSV, TSV or JSON lines, upserted by SKU."""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from shop.importers import catalogue_file as cfile
from shop.importers.catalogue_load import CatalogueFileRejected, catalogue_file_import
from shop.models import Category, Product
from shop.services.catalogue import ProductRow, product_row_check
from tests.factories import CategoryFactory, ProductFactory

CSV = """sku,name,description,category,price,currency,stock,active,image_url,colour
A1,Red mug,A red mug,Kitchen > Mugs,4.50,gbp,10,yes,https://img.example.com/a1.jpg,red
A2,Blue mug,,Kitchen > Mugs,4.5,,,1,,blue
B1,Box,,Kitchen > Storage,12,EUR,0,no,,
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(*args: str) -> str:
    out = StringIO()
    call_command("import_catalogue", *args, "--no-progress", stdout=out, stderr=StringIO())
    return out.getvalue()


def snapshot() -> list[tuple]:
    return list(
        Product.objects.order_by("sku").values_list(
            "sku",
            "name",
            "description",
            "category_id",
            "price",
            "currency",
            "stock",
            "is_active",
            "image_url",
            "attributes",
            "slug",
            "updated_at",
        )
    )


# --- the row validator (pure) --------------------------------------------------------------------
def test_row_check_reads_every_field():
    row = product_row_check(
        {
            "sku": " A1 ",
            "name": "Mug",
            "category": "Kitchen >  Mugs",
            "price": "4.5",
            "currency": "gbp",
            "stock": "",
            "active": "No",
            "image_url": "",
        },
        index=2,
        attributes={"colour": "red"},
    )
    assert isinstance(row, ProductRow)
    assert row.sku == "A1" and row.index == 2
    assert row.values == {
        "name": "Mug",
        "category": ("Kitchen", "Mugs"),
        "price": Decimal("4.50"),
        "currency": "GBP",
        "stock": None,
        "is_active": False,
        "image_url": "",
        "attributes": {"colour": "red"},
    }


@pytest.mark.parametrize(
    "values, field",
    [
        ({"sku": ""}, "sku"),
        ({"sku": "x" * 65}, "sku"),
        ({"sku": "A", "price": "abc"}, "price"),
        ({"sku": "A", "price": "-1"}, "price"),
        ({"sku": "A", "price": "1.234"}, "price"),
        ({"sku": "A", "price": "NaN"}, "price"),
        ({"sku": "A", "currency": "POUND"}, "currency"),
        ({"sku": "A", "stock": "-2"}, "stock"),
        ({"sku": "A", "stock": "2.5"}, "stock"),
        ({"sku": "A", "stock": "--5"}, "stock"),  # these three once raised ValueError
        ({"sku": "A", "stock": "+-1"}, "stock"),
        ({"sku": "A", "stock": "²"}, "stock"),
        ({"sku": "A", "stock": "9" * 5000}, "stock"),  # beyond int()'s digit limit: "too large"
        ({"sku": "A", "stock": True}, "stock"),
        ({"sku": "A", "active": "maybe"}, "active"),
        ({"sku": "A", "image_url": "not a url"}, "image_url"),
        ({"sku": "A", "category": "Kitchen > > Mugs"}, "category"),
        ({"sku": "A", "attributes": [1, 2]}, "attributes"),
    ],
)
def test_row_check_names_the_bad_field(values, field):
    errors = product_row_check(values, index=7)
    assert isinstance(errors, list) and [e.field for e in errors] == [field]
    assert errors[0].index == 7


def test_sniffs_the_delimiter_of_an_unknown_extension(tmp_path):
    path = write(tmp_path, "products.txt", "sku;name;price\nA1;Mug;1,50\n")
    [(line, values, attributes)] = list(cfile.CatalogueReader(path).rows())
    assert (line, values, attributes) == (2, {"sku": "A1", "name": "Mug", "price": "1,50"}, {})


# --- the command ------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_csv_creates_products_categories_and_attributes(tmp_path):
    out = run(str(write(tmp_path, "c.csv", CSV)))
    assert "Imported: 3 created, 0 updated." in out
    kitchen = Category.objects.get(name="Kitchen", parent=None)
    mugs, storage = Category.objects.get(name="Mugs"), Category.objects.get(name="Storage")
    assert mugs.parent == kitchen and storage.parent == kitchen
    a1, a2, b1 = Product.objects.order_by("sku")
    assert (a1.name, a1.category, a1.price, a1.currency, a1.stock, a1.is_active) == (
        "Red mug",
        mugs,
        Decimal("4.50"),
        "GBP",
        10,
        True,
    )
    assert a1.image_url == "https://img.example.com/a1.jpg" and a1.attributes == {"colour": "red"}
    assert a2.stock is None and a2.in_stock and a2.currency == "GBP"  # empty stock: not tracked
    assert (b1.stock, b1.is_active, b1.currency, b1.attributes) == (0, False, "EUR", {})


@pytest.mark.django_db
def test_tsv_and_json_lines(tmp_path):
    run(str(write(tmp_path, "c.tsv", "sku\tname\tprice\nT1\tTab thing\t2\n")))
    lines = [
        {"sku": "J1", "name": "Json thing", "category": ["Garden", "Tools"], "stock": None, "size": "L"},
        {"sku": "J2", "name": "Other", "price": 3.25, "stock": 4, "attributes": {"tags": ["a", "b"]}},
    ]
    run(str(write(tmp_path, "c.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")))
    t1, j1, j2 = Product.objects.get(sku="T1"), Product.objects.get(sku="J1"), Product.objects.get(sku="J2")
    assert t1.price == Decimal("2.00") and t1.stock is None
    assert j1.category.name == "Tools" and j1.category.parent.name == "Garden" and j1.attributes == {"size": "L"}
    assert (j2.price, j2.stock, j2.attributes) == (Decimal("3.25"), 4, {"tags": ["a", "b"]})


@pytest.mark.django_db
def test_mapping_renames_columns(tmp_path):
    path = write(tmp_path, "m.csv", "ItemCode,Title,Cost,Section\nM1,Mapped,9.99,Home > Lamps\n")
    run(str(path), "--map", "sku=ItemCode,name=Title,price=Cost,category=Section")
    p = Product.objects.get(sku="M1")
    assert (p.name, p.price, p.category.name, p.attributes) == ("Mapped", Decimal("9.99"), "Lamps", {})
    with pytest.raises(CommandError, match="column 'Nope' \\(name\\) is not in the header"):
        run(str(path), "--map", "sku=ItemCode,name=Nope")
    with pytest.raises(CommandError, match="--map field 'colour' is unknown"):
        run(str(path), "--map", "colour=Section")


@pytest.mark.django_db
def test_same_file_twice_changes_nothing_and_a_changed_file_updates(tmp_path):
    path = write(tmp_path, "c.csv", CSV)
    run(str(path))
    before = snapshot()
    out = run(str(path))
    assert "Imported: 0 created, 0 updated." in out and "unchanged 3" in out
    assert snapshot() == before and Category.objects.count() == 3
    changed = CSV.replace("A2,Blue mug,,Kitchen > Mugs,4.5", "A2,Blue mug,,Kitchen > Cups,5.5")
    out = run(str(write(tmp_path, "c2.csv", changed)))
    assert "Imported: 0 created, 1 updated." in out
    a2 = Product.objects.get(sku="A2")
    assert (a2.price, a2.category.name, a2.category.parent.name) == (Decimal("5.50"), "Cups", "Kitchen")
    # columns a file leaves out keep their values
    run(str(write(tmp_path, "c3.csv", "sku,stock\nA1,3\n")))
    a1 = Product.objects.get(sku="A1")
    assert (a1.stock, a1.name, a1.price, a1.attributes) == (3, "Red mug", Decimal("4.50"), {"colour": "red"})


@pytest.mark.django_db
def test_existing_categories_are_matched_by_name_under_their_parent(tmp_path):
    kitchen = CategoryFactory(name="Kitchen", parent=None)
    mugs = CategoryFactory(name="Mugs", parent=kitchen)
    other_mugs = CategoryFactory(name="Mugs", parent=CategoryFactory(name="Office", parent=None))
    run(str(write(tmp_path, "c.csv", CSV)))
    assert Product.objects.get(sku="A1").category == mugs != other_mugs
    assert Category.objects.filter(name="Kitchen").count() == 1


@pytest.mark.django_db
def test_placeholders_from_events_are_filled_in(tmp_path):
    ProductFactory(sku="A1", name="Product A1", price=0, stock=None, attributes={"placeholder": True})
    out = run(str(write(tmp_path, "c.csv", CSV)))
    assert "Imported: 2 created, 1 updated." in out and "filled in: 1" in out
    a1 = Product.objects.get(sku="A1")
    assert (a1.name, a1.price, a1.stock, a1.attributes) == ("Red mug", Decimal("4.50"), 10, {"colour": "red"})


@pytest.mark.django_db
def test_bad_lines_are_listed_by_line_and_field_and_nothing_is_written(tmp_path):
    text = (
        "sku,name,price,stock,active\n"
        "G1,Good,1,1,yes\n"
        ",No sku,1,1,yes\n"
        "G2,Bad price,abc,1,yes\n"
        "G3,Bad stock and active,1,-4,perhaps\n"
        "N1,,1,1,yes\n"  # a new product needs a name
        "G1,Again,1,1,yes\n"
        "G4,short\n"
    )
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(CommandError) as caught:
        run(str(path))
    message = str(caught.value)
    assert "6 of 7 rows are invalid. Nothing was imported." in message
    for expected in (
        "line 3: sku is required",
        "line 4: price 'abc' is not a number",
        "line 5: stock '-4' is negative",
        "line 5: active 'perhaps' is not true/false",
        "line 6: name is required for a new product",
        "line 7: sku 'G1' is given twice (first at line 2)",
        "line 8: 2 fields, the header has 5",
    ):
        assert expected in message
    assert not Product.objects.exists()
    # the same when only what needs the database is wrong
    fixed = "sku,name\nG1,Good\nN1,\nG1,Again\n"
    with pytest.raises(CatalogueFileRejected) as rejected:
        catalogue_file_import(path=write(tmp_path, "db.csv", fixed))
    assert [str(p) for p in rejected.value.problems] == [
        "line 3: name is required for a new product",
        "line 4: sku 'G1' is given twice (first at line 2)",
    ]
    assert not Product.objects.exists()


@pytest.mark.django_db
def test_errors_list_the_first_twenty_with_the_count(tmp_path):
    text = "sku,name,price\n" + "".join(f"S{i},n,bad\n" for i in range(45))
    with pytest.raises(CommandError) as caught:
        run(str(write(tmp_path, "many.csv", text)))
    message = str(caught.value)
    assert "45 of 45 rows are invalid" in message and "... and 25 more bad rows" in message
    assert message.count("is not a number") == 20


@pytest.mark.django_db
def test_dry_run_reports_and_writes_nothing(tmp_path):
    ProductFactory(sku="A1", name="Old", price=Decimal("1.00"))
    out = run(str(write(tmp_path, "c.csv", CSV)), "--dry-run")
    assert "Would import: 2 created, 1 updated." in out and "categories 3" in out
    assert Product.objects.count() == 1 and Product.objects.get().name == "Old"
    assert not Category.objects.filter(name="Kitchen").exists()


@pytest.mark.django_db
def test_unreadable_files_are_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        run(str(tmp_path / "missing.csv"))
    with pytest.raises(CommandError, match="no column for 'sku'"):
        run(str(write(tmp_path, "h.csv", "name,price\nx,1\n")))
    with pytest.raises(CommandError, match="not UTF-8"):
        path = tmp_path / "latin.csv"
        path.write_bytes("sku,name\nA,caf\xe9\n".encode("latin-1"))
        run(str(path))
    with pytest.raises(CommandError, match="line 2: not valid JSON"):
        run(str(write(tmp_path, "j.jsonl", '{"sku": "A", "name": "ok"}\n{"sku": \n')))


@pytest.mark.django_db
def test_placeholders_from_an_events_file_are_filled_in(tmp_path):
    events = write(tmp_path, "events.csv", "user,item,timestamp\nu1,A1,2026-01-01T10:00:00Z\n")
    call_command("import_interactions", str(events), "--no-progress", stdout=StringIO(), stderr=StringIO())
    placeholder = Product.objects.get(sku="A1")
    assert placeholder.stock is None and placeholder.attributes == {"placeholder": True}
    run(str(write(tmp_path, "c.csv", CSV)))
    filled = Product.objects.get(sku="A1")
    assert (filled.pk, filled.name, filled.stock, filled.attributes) == (
        placeholder.pk,
        "Red mug",
        10,
        {"colour": "red"},
    )


@pytest.mark.django_db
def test_no_query_per_row(tmp_path, django_assert_max_num_queries):
    rows = "".join(f"Q{i:05d},Thing {i},Shop > Aisle {i % 3},{i % 50}.25,{i % 7}\n" for i in range(5000))
    path = write(tmp_path, "q.csv", "sku,name,category,price,stock\n" + rows)
    with django_assert_max_num_queries(40):  # a few per 2,000 rows, one per new category
        run(str(path))
    assert Product.objects.filter(sku__startswith="Q").count() == 5000
    changed = path.read_text().replace(".25,", ".75,")
    with django_assert_max_num_queries(40):
        assert "0 created, 5,000 updated" in run(str(write(tmp_path, "q2.csv", changed)))
