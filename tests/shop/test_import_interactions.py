"""import_interactions: any shop's CSV/TSV history, all or nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from shop.importers import interactions_file as ifile
from shop.importers.interactions_load import InteractionsFileRejected, interactions_file_import
from shop.models import Interaction, Product, User
from tests.factories import ProductFactory, UserFactory

DATA = Path(__file__).parent / "data"
SHOP = DATA / "interactions_shop.csv"
BAD = DATA / "interactions_bad.csv"
MAP = "user=customer_id,item=sku,value=qty,timestamp=ts,kind=event"
UTC = UTC
LONDON = ZoneInfo("Europe/London")


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_interactions", *args, "--no-progress", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def counts() -> tuple[int, int, int]:
    return User.objects.count(), Product.objects.count(), Interaction.objects.count()


# --- pure parsing ------------------------------------------------------------------------------
def test_parse_mapping():
    assert ifile.parse_mapping(MAP) == {
        "user": "customer_id",
        "item": "sku",
        "value": "qty",
        "timestamp": "ts",
        "kind": "event",
    }
    assert ifile.parse_mapping("") == {}
    with pytest.raises(ifile.FileProblem, match="field 'colour' is unknown"):
        ifile.parse_mapping("colour=c")
    with pytest.raises(ifile.FileProblem, match="not field=column"):
        ifile.parse_mapping("user")
    with pytest.raises(ifile.FileProblem, match="twice"):
        ifile.parse_mapping("user=a,user=b")


def test_delimiter_for():
    assert ifile.delimiter_for(Path("x.tsv"), None) == "\t"
    assert ifile.delimiter_for(Path("x.csv"), None) == ","
    assert ifile.delimiter_for(Path("x.csv"), r"\t") == "\t"
    assert ifile.delimiter_for(Path("x.txt"), ";") == ";"
    with pytest.raises(ifile.FileProblem, match="one character"):
        ifile.delimiter_for(Path("x.csv"), ";;")


@pytest.mark.parametrize(
    "text, kind",
    [
        ("view", 1),
        ("VIEW", 1),
        ("add-to-cart", 3),
        ("Add to cart", 3),
        ("addtocart", 3),
        ("transaction", 5),
        ("purchase", 5),
        ("5", 5),
        ("rating", 6),
        ("wishlist", 7),
        ("teleport", None),
        ("9", None),
    ],
)
def test_kind_parse(text, kind):
    assert ifile.kind_parse(text) == kind


def test_timestamps():
    now = datetime(2024, 6, 1, tzinfo=UTC)
    parse = ifile.TimestampParser(LONDON, "s", now=now)
    assert parse("2024-03-01T10:00:00") == datetime(2024, 3, 1, 10, tzinfo=UTC)  # GMT
    assert parse("2024-05-01 10:00:00") == datetime(2024, 5, 1, 9, tzinfo=UTC)  # naive: London, BST
    assert parse("2024-05-01T10:00:00Z") == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse("2024-05-01T10:00:00+02:00") == datetime(2024, 5, 1, 8, tzinfo=UTC)
    assert parse("1709287200") == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert parse("1709287200.5") == datetime(2024, 3, 1, 10, 0, 0, 500000, tzinfo=UTC)
    assert parse("yesterday") == "timestamp 'yesterday' is not ISO 8601 or unix seconds"
    assert parse("2024-07-01T00:00:00") == "timestamp '2024-07-01T00:00:00' is in the future"
    assert parse("") == "timestamp is empty"
    ms = ifile.TimestampParser(LONDON, "ms", now=now)
    assert ms("1709287200000") == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert ms("soon") == "timestamp 'soon' is not ISO 8601 or unix milliseconds"


def test_parse_event_lists_every_problem_of_a_row():
    cols = {"user": 0, "item": 1, "value": 2, "timestamp": 3, "kind": 4}
    stamp = ifile.TimestampParser(UTC, "s", now=datetime(2024, 6, 1, tzinfo=UTC))
    ok = ifile.parse_event(["u", "p", "2", "2024-01-01T00:00:00", "purchase"], cols, stamp, 5, 1.0)
    at = datetime(2024, 1, 1, tzinfo=UTC)
    assert ok == ifile.EventRow("u", "p", 5, 2.0, at, ifile.event_key("u", "p", 5, at))
    bad = ifile.parse_event(["", "p" * 65, "x", "nope", "teleport"], cols, stamp, 5, 1.0)
    assert bad == [
        "user is empty",
        "item 'pppppppppppppppppppp'... is longer than 64 characters",
        "kind 'teleport' is not one of view, click, add_to_cart, remove_from_cart, purchase, rating, wishlist",
        "value 'x' is not a number",
        "timestamp 'nope' is not ISO 8601 or unix seconds",
    ]
    assert ifile.parse_event(["u", "p", "7", "2024-01-01", "rating"], cols, stamp, 5, 1.0) == [
        "rating '7' is not between 0 and 5"
    ]
    assert ifile.parse_event(["u", "p", "-1", "2024-01-01", "view"], cols, stamp, 5, 1.0) == ["value '-1' is negative"]
    assert ifile.parse_event(["u", "p", "inf", "2024-01-01", "view"], cols, stamp, 5, 1.0) == [
        "value 'inf' is not a finite number"
    ]
    assert ifile.parse_event(["u", "p"], cols, stamp, 5, 1.0) == ["2 fields, the mapped columns need 5"]
    # Empty optional cells take the defaults.
    assert ifile.parse_event(["u", "p", "", "2024-01-01", ""], cols, stamp, 1, 1.0).kind == 1


# --- the import --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_import_with_mapping_creates_unknown_customers_and_products():
    known_user = UserFactory(external_id="known-7")
    known_product = ProductFactory(sku="SKU-KNOWN", name="Real Name", price=5)
    out, _ = run(str(SHOP), "--map", MAP)
    assert "interactions 6" in out and "customers 3" in out and "products 3" in out
    assert User.objects.filter(external_id__in=["c-100", "c-200", "c-300"]).count() == 3
    assert User.objects.filter(external_id="known-7").count() == 1
    new = User.objects.get(external_id="c-100")
    assert new.email.endswith("@customers.affinity.example") and not new.marketing_consent
    assert not new.has_usable_password() and not new.consent_changes.exists()
    placeholder = Product.objects.get(sku="SKU-1")
    assert placeholder.name == "Product SKU-1" and placeholder.price == 0 and placeholder.is_active
    assert placeholder.stock is None and placeholder.in_stock  # untracked: recommendable and orderable
    assert Product.objects.get(sku="SKU-KNOWN").name == "Real Name"  # existing products untouched
    rows = {
        (i.user.external_id, i.product.sku): (i.kind, i.value, i.occurred_at, i.source)
        for i in Interaction.objects.select_related("user", "product")
    }
    assert rows == {
        ("c-100", "SKU-1"): (Interaction.Kind.PURCHASE, 2.0, datetime(2024, 3, 1, 10, tzinfo=UTC), 4),
        ("c-100", "SKU-2"): (Interaction.Kind.VIEW, 1.0, datetime(2024, 3, 1, 9, 58, tzinfo=UTC), 4),
        ("c-200", "SKU-1"): (Interaction.Kind.ADD_TO_CART, 1.0, datetime(2024, 3, 1, 10, tzinfo=UTC), 4),
        ("c-200", "SKU-3"): (Interaction.Kind.RATING, 4.5, datetime(2024, 7, 1, 11, tzinfo=UTC), 4),  # BST
        ("c-300", "SKU-2"): (Interaction.Kind.ADD_TO_CART, 1.0, datetime(2024, 3, 2, 7, tzinfo=UTC), 4),
        ("known-7", "SKU-KNOWN"): (Interaction.Kind.PURCHASE, 3.0, datetime(2024, 3, 3, 10, tzinfo=UTC), 4),
    }
    assert Interaction.objects.get(user=known_user, product=known_product)


@pytest.mark.django_db
def test_tsv_with_default_columns_and_defaults():
    run(str(DATA / "interactions_default_columns.tsv"))
    assert Interaction.objects.count() == 3
    assert set(Interaction.objects.values_list("kind", "value")) == {(Interaction.Kind.PURCHASE, 1.0)}
    assert Interaction.objects.filter(user__external_id="u2").get().occurred_at == datetime(2024, 1, 5, 10, tzinfo=UTC)


@pytest.mark.django_db
def test_retailrocket_style_millisecond_timestamps_and_event_names():
    run(
        str(DATA / "interactions_retailrocket.csv"),
        "--map",
        "user=visitorid,item=itemid,kind=event",
        "--timestamp-unit",
        "ms",
    )
    kinds = dict(Interaction.objects.values_list("product__sku", "kind"))
    assert kinds == {
        "355908": Interaction.Kind.VIEW,
        "248676": Interaction.Kind.ADD_TO_CART,
        "15335": Interaction.Kind.PURCHASE,
    }
    assert Interaction.objects.get(product__sku="355908").occurred_at == datetime(
        2015, 6, 2, 5, 2, 12, 117000, tzinfo=UTC
    )


@pytest.mark.django_db
def test_a_bad_row_rejects_the_whole_file_naming_its_line():
    UserFactory(external_id="c1")
    before = counts()
    with pytest.raises(CommandError, match="18 of 59 rows are invalid") as exc:
        run(str(BAD), "--map", MAP, "--show-errors", "3")
    assert "Nothing was imported" in str(exc.value)
    assert counts() == before  # all or nothing: not even the customers and products


@pytest.mark.django_db
def test_rejected_file_lists_bad_rows_in_order_and_caps_the_list():
    err = StringIO()
    with pytest.raises(CommandError):
        call_command(
            "import_interactions",
            str(BAD),
            "--map",
            MAP,
            "--show-errors",
            "3",
            "--no-progress",
            stdout=StringIO(),
            stderr=err,
        )
    lines = err.getvalue().splitlines()
    assert lines[0] == "line 17: timestamp 'yesterday' is not ISO 8601 or unix seconds"
    assert lines[1] == (
        "line 30: item is empty; kind 'teleport' is not one of view, click, add_to_cart, "
        "remove_from_cart, purchase, rating, wishlist; value 'abc' is not a number"
    )
    assert lines[2] == "line 45: value '-45' is negative"
    assert lines[3] == "... and 15 more bad rows"
    with pytest.raises(InteractionsFileRejected) as exc:
        interactions_file_import(path=BAD, mapping=MAP)
    assert exc.value.total == 18 and [p.line for p in exc.value.problems] == [17, 30, *range(45, 61)]


@pytest.mark.django_db
def test_file_level_problems(tmp_path):
    with pytest.raises(CommandError, match=r"column 'cust' \(user\) is not in the header: 'customer_id', 'sku'"):
        run(str(SHOP), "--map", "user=cust")
    odd = tmp_path / "odd.csv"
    odd.write_text("who,what,when\nc1,p1,2024-01-01T00:00:00Z\n", encoding="utf-8")
    with pytest.raises(CommandError, match=r"no column for 'user' is not in the header.*--map user=<column>"):
        run(str(odd))
    with pytest.raises(CommandError, match="does not exist"):
        run(str(tmp_path / "nope.csv"))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(CommandError, match="is empty"):
        run(str(empty))
    header_only = tmp_path / "h.csv"
    header_only.write_text("user,item,timestamp\n")
    with pytest.raises(CommandError, match="no rows"):
        run(str(header_only))
    latin = tmp_path / "latin.csv"
    latin.write_bytes("user,item,timestamp\nJos\xe9,p,2024-01-01\n".encode("latin-1"))
    with pytest.raises(CommandError, match="not UTF-8"):
        run(str(latin))
    with pytest.raises(CommandError, match="default kind 'teleport'"):
        run(str(SHOP), "--map", MAP, "--default-kind", "teleport")
    assert counts() == (0, 0, 0)


@pytest.mark.django_db
def test_import_of_many_rows_uses_one_batch_path(tmp_path):
    """A few thousand rows, several customers and products: counts add up exactly."""
    path = tmp_path / "many.csv"
    with path.open("w") as fh:
        fh.write("u,i,t,k\n")
        for n in range(5000):
            fh.write(f"u{n % 97},p{n % 211},{1700000000 + n},{'view' if n % 3 else 'purchase'}\n")
    report = interactions_file_import(path=path, mapping="user=u,item=i,timestamp=t,kind=k")
    assert report.rows == 5000 and report.created == {"customers": 97, "products": 211, "interactions": 5000}
    assert report.by_kind == {"view": 3333, "purchase": 1667}
    assert Interaction.objects.filter(kind=Interaction.Kind.PURCHASE).count() == 1667
    assert Interaction.objects.filter(user__external_id="u5", product__sku="p5").count() == len(
        [n for n in range(5000) if n % 97 == 5 and n % 211 == 5]
    )


@pytest.mark.django_db
def test_keep_indexes_never_takes_the_locking_bulk_path(monkeypatch):
    """--keep-indexes: the import asks the bulk loader for nothing (expected rows 0),
    so a live store's interactions table is never locked by an index rebuild."""
    from shop.importers import interactions_load

    asked = []
    real = interactions_load.tables_bulk_load

    def spy(*, models, expected_rows):
        asked.append(expected_rows)
        return real(models=models, expected_rows=expected_rows)

    monkeypatch.setattr(interactions_load, "tables_bulk_load", spy)
    run(str(SHOP), "--map", MAP, "--keep-indexes")
    run(str(SHOP), "--map", MAP)
    assert asked == [0, 6]
    assert Interaction.objects.count() == 6  # a second import of the same file stores nothing twice


# --- nothing stored twice ----------------------------------------------------------------------
def test_event_key_is_the_natural_key_in_any_notation():
    at = datetime(2024, 3, 1, 10, tzinfo=UTC)
    key = ifile.event_key("c-1", "SKU-1", 5, at)
    assert key.startswith(ifile.DERIVED_KEY_PREFIX) and len(key) == 24
    assert ifile.event_key("c-1", "SKU-1", 5, at.astimezone(LONDON)) == key
    assert ifile.event_key("c-1", "SKU-1", 1, at) != key  # the kind counts
    assert ifile.event_key("c-1", "SKU-2", 5, at) != key
    assert ifile.event_key("c-2", "SKU-1", 5, at) != key
    assert ifile.event_key("c-1", "SKU-1", 5, at.replace(microsecond=1)) != key
    stamp = ifile.TimestampParser(UTC)
    columns = {"user": 0, "item": 1, "timestamp": 2, "value": 3}
    one = ifile.parse_event(["c-1", "SKU-1", "2024-03-01T10:00:00Z", "2"], columns, stamp, 5, 1.0)
    other = ifile.parse_event(["c-1", "SKU-1", "1709287200", "7"], columns, stamp, 5, 1.0)
    assert one.event_id == other.event_id == key  # the value is not part of the key


@pytest.mark.django_db
def test_importing_the_same_file_twice_stores_nothing_twice():
    out, _ = run(str(SHOP), "--map", MAP)
    assert "interactions 6" in out and "Duplicates (events stored before or repeated in the file, skipped): 0" in out
    stored = set(Interaction.objects.values_list("event_id", flat=True))
    assert len(stored) == 6 and all(k.startswith("imp:") for k in stored)
    before = counts()
    out, _ = run(str(SHOP), "--map", MAP)
    assert counts() == before
    assert "Created: customers 0, products 0 (placeholders), interactions 0" in out
    assert "skipped): 6" in out and "Imported 0 interactions." in out
    report = interactions_file_import(path=SHOP, mapping=MAP)
    assert report.rows == 6 and report.duplicates == 6 and report.created["interactions"] == 0


@pytest.mark.django_db
def test_rows_repeated_in_a_file_are_one_event_whatever_the_value_or_notation(tmp_path):
    path = tmp_path / "repeats.csv"
    path.write_text(
        "user,item,timestamp,kind,value\n"
        "u1,p1,2024-01-05T10:00:00Z,purchase,1\n"
        "u1,p1,1704448800,purchase,3\n"  # the same moment as unix seconds, another value
        "u1,p1,2024-01-05T10:00:00Z,view,1\n"  # another kind: another event
        "u1,p1,2024-01-05T10:00:01Z,purchase,1\n"  # another second: another event
    )
    report = interactions_file_import(path=path)
    assert (report.rows, report.created["interactions"], report.duplicates) == (4, 3, 1)
    assert Interaction.objects.get(kind=Interaction.Kind.PURCHASE, occurred_at__second=0).value == 1.0  # first kept
    report = interactions_file_import(path=path)
    assert (report.created["interactions"], report.duplicates) == (0, 4)
    assert Interaction.objects.count() == 3


@pytest.mark.django_db
def test_a_file_with_event_ids_uses_them(tmp_path):
    user, product = UserFactory(external_id="u1"), ProductFactory(sku="p1")
    Interaction.objects.create(
        user=user, product=product, kind=Interaction.Kind.VIEW, event_id="ev-api-1", source=Interaction.Source.API
    )
    path = tmp_path / "ids.csv"
    path.write_text(
        "uid,item,timestamp,kind,eid\n"
        "u1,p1,2024-01-05T10:00:00Z,purchase,ev-1\n"
        "u1,p1,2024-01-05T10:00:00Z,purchase,ev-2\n"  # same natural key, its own id: stored
        "u1,p1,2024-01-06T10:00:00Z,view,ev-api-1\n"  # sent through the API already
        "u1,p2,2024-01-07T10:00:00Z,view,\n"  # no id in this row: the derived key
    )
    out, _ = run(str(path), "--map", "user=uid,event_id=eid")
    assert "interactions 3" in out and "skipped): 1" in out
    keys = set(Interaction.objects.filter(source=Interaction.Source.IMPORT).values_list("event_id", flat=True))
    assert keys == {"ev-1", "ev-2", ifile.event_key("u1", "p2", 1, datetime(2024, 1, 7, 10, tzinfo=UTC))}
    out, _ = run(str(path), "--map", "user=uid,event_id=eid")
    assert "interactions 0" in out and "skipped): 4" in out
    assert Interaction.objects.count() == 4
    too_long = tmp_path / "long.csv"
    too_long.write_text(f"user,item,timestamp,event_id\nu1,p1,2024-01-05,{'x' * 65}\n")
    with pytest.raises(CommandError, match="1 of 1 rows are invalid"):
        run(str(too_long))


@pytest.mark.django_db
def test_dry_run_reports_and_writes_nothing(tmp_path):
    UserFactory(external_id="known-7")
    before = counts()
    out, _ = run(str(SHOP), "--map", MAP, "--dry-run")
    assert counts() == before
    assert "Would create: customers 3, products 4 (placeholders), interactions 6" in out
    assert "Already known: customers 1, products 0" in out
    assert "Dry run: would import 6 interactions. Nothing was written." in out
    run(str(SHOP), "--map", MAP)
    after = counts()
    out, _ = run(str(SHOP), "--map", MAP, "--dry-run")
    assert counts() == after
    assert "Would create: customers 0, products 0 (placeholders), interactions 0" in out and "skipped): 6" in out
    # a file with bad rows: they are listed and counted, the rest is judged, nothing written
    err = StringIO()
    with pytest.raises(CommandError, match="Dry run: 18 of 59 rows are invalid"):
        call_command(
            "import_interactions", str(BAD), "--map", MAP, "--dry-run", "--no-progress", stdout=StringIO(), stderr=err
        )
    assert err.getvalue().splitlines()[0] == "line 17: timestamp 'yesterday' is not ISO 8601 or unix seconds"
    assert counts() == after
    report = interactions_file_import(path=BAD, mapping=MAP, dry_run=True)
    assert report.bad == 18 and report.rows == 59
    assert report.created["interactions"] + report.duplicates == 41


@pytest.mark.django_db
def test_usual_column_names_need_no_map(tmp_path):
    plain = tmp_path / "plain.csv"
    plain.write_text(
        "Customer,Product,Rating,Date,Event\nc1,p1,4,2015-03-01T10:00:00Z,rating\nc2,p1,2,1425204000,rating\n",
        encoding="utf-8",
    )
    run(str(plain))
    rows = list(
        Interaction.objects.order_by("user__external_id").values_list(
            "user__external_id", "product__sku", "value", "kind"
        )
    )
    assert rows == [("c1", "p1", 4.0, Interaction.Kind.RATING), ("c2", "p1", 2.0, Interaction.Kind.RATING)]
