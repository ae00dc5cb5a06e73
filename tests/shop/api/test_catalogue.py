"""Products and categories: public reads, filters, search, pagination; writes with
model permissions, the bulk upsert by SKU."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shop.models import Category, Product
from tests.factories import CategoryFactory, ProductFactory
from tests.shop.conftest import assert_error, make_user, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalogue():
    home = CategoryFactory(name="Home", slug="home")
    candles = CategoryFactory(name="Candles", slug="candles", parent=home)
    garden = CategoryFactory(name="Garden", slug="garden")
    return {
        "home": home,
        "candles": candles,
        "garden": garden,
        "lamp": ProductFactory(name="Brass lamp", sku="LAMP1", category=home, price=Decimal("30.00"), stock=3),
        "candle": ProductFactory(name="Vanilla candle", sku="CAND1", category=candles, price=Decimal("4.50"), stock=0),
        "spade": ProductFactory(name="Garden spade", sku="SPADE", category=garden, price=Decimal("12.00"), stock=9),
        "old": ProductFactory(name="Old lamp", sku="OLD1", category=home, price=Decimal("5.00"), is_active=False),
    }


def skus(response) -> list[str]:
    assert response.status_code == 200, response.content[:400]
    return [p["sku"] for p in response.json()["results"]]


def test_anyone_reads_the_catalogue(api, catalogue):
    body = api.get("/api/v1/products").json()
    assert body["count"] == 3 and body["next"] is None
    lamp = next(p for p in body["results"] if p["sku"] == "LAMP1")
    assert lamp["price"] == "30.00" and lamp["in_stock"] is True
    assert lamp["category"] == {"id": catalogue["home"].pk, "name": "Home", "slug": "home"}
    one = api.get(f"/api/v1/products/{catalogue['spade'].pk}")
    assert one.status_code == 200 and one.json()["sku"] == "SPADE"
    cats = api.get("/api/v1/categories").json()
    assert {c["slug"]: c["parent_id"] for c in cats["results"]} == {
        "home": None,
        "candles": catalogue["home"].pk,
        "garden": None,
    }


def test_filters(api, catalogue):
    assert sorted(skus(api.get("/api/v1/products", {"category": catalogue["home"].pk}))) == ["CAND1", "LAMP1"]
    assert skus(api.get("/api/v1/products", {"category": catalogue["candles"].pk})) == ["CAND1"]
    assert skus(api.get("/api/v1/products", {"min_price": "5", "max_price": "20"})) == ["SPADE"]
    assert sorted(skus(api.get("/api/v1/products", {"in_stock": "true"}))) == ["LAMP1", "SPADE"]
    assert skus(api.get("/api/v1/products", {"in_stock": "false"})) == ["CAND1"]
    assert skus(api.get("/api/v1/products", {"sku": "SPADE"})) == ["SPADE"]
    assert skus(api.get("/api/v1/products", {"q": "lamp"})) == ["LAMP1"]  # the withdrawn "Old lamp" is not sold
    assert skus(api.get("/api/v1/products", {"q": "vanil"})) == ["CAND1"]  # prefixes match
    assert skus(api.get("/api/v1/products", {"q": "lamp", "max_price": "10"})) == []
    assert skus(api.get("/api/v1/products", {"ordering": "-price"})) == ["LAMP1", "SPADE", "CAND1"]
    assert skus(api.get("/api/v1/products", {"category": 999999})) == []


def test_category_filter_sees_a_category_added_a_moment_ago(api, catalogue):
    """The filter walks the cached category tree; a change to a category refreshes it."""
    assert sorted(skus(api.get("/api/v1/products", {"category": catalogue["home"].pk}))) == ["CAND1", "LAMP1"]
    lamps = CategoryFactory(name="Lamps", slug="lamps", parent=catalogue["home"])
    ProductFactory(name="Arc lamp", sku="ARC1", category=lamps)
    assert sorted(skus(api.get("/api/v1/products", {"category": catalogue["home"].pk}))) == ["ARC1", "CAND1", "LAMP1"]
    lamps.parent = catalogue["garden"]
    lamps.save()
    assert sorted(skus(api.get("/api/v1/products", {"category": catalogue["garden"].pk}))) == ["ARC1", "SPADE"]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"min_price": "abc"}, "min_price"),
        ({"min_price": "-1"}, "min_price"),
        ({"min_price": "10", "max_price": "5"}, "min_price"),
        ({"category": "x"}, "category"),
        ({"category": "99999999999999999999999"}, "category"),
        ({"in_stock": "maybe"}, "in_stock"),
        ({"ordering": "popularity"}, "ordering"),
    ],
)
def test_bad_filters_are_400_naming_the_parameter(api, catalogue, params, field):
    err = assert_error(api.get("/api/v1/products", params), 400, "validation_error")
    assert [f["field"] for f in err["fields"]] == [field]


def test_withdrawn_products_only_with_permission(api, shopper_api, staff_api, catalogue):
    old = catalogue["old"]
    assert_error(api.get(f"/api/v1/products/{old.pk}"), 404, "not_found")
    assert_error(shopper_api.get(f"/api/v1/products/{old.pk}"), 404, "not_found")
    assert_error(shopper_api.get("/api/v1/products", {"active": "false"}), 403, "permission_denied")
    assert staff_api.get(f"/api/v1/products/{old.pk}").json()["is_active"] is False
    assert skus(staff_api.get("/api/v1/products", {"active": "false"})) == ["OLD1"]
    assert skus(staff_api.get("/api/v1/products", {"active": "false", "q": "lamp"})) == ["OLD1"]
    viewer = token_client(make_user("viewer@x.example", perms=("shop.view_product",)))
    assert skus(viewer.get("/api/v1/products", {"active": "false"})) == ["OLD1"]


def test_pagination_and_its_errors(api, catalogue):
    page1 = api.get("/api/v1/products", {"page_size": 2}).json()
    assert page1["count"] == 3 and len(page1["results"]) == 2 and page1["previous"] is None
    page2 = api.get(page1["next"]).json()
    assert len(page2["results"]) == 1 and page2["next"] is None
    assert {p["sku"] for p in page1["results"] + page2["results"]} == {"LAMP1", "CAND1", "SPADE"}
    assert skus(api.get("/api/v1/products", {"page": "last", "page_size": 2})) == skus(api.get(page1["next"]))
    for params, field, code in [
        ({"page": 0}, "page", "min_value"),
        ({"page": "two"}, "page", "invalid"),
        ({"page": 3, "page_size": 2}, "page", "out_of_range"),
        ({"page_size": 0}, "page_size", "min_value"),
        ({"page_size": 101}, "page_size", "max_value"),
        ({"page_size": "1e9"}, "page_size", "invalid"),
    ]:
        err = assert_error(api.get("/api/v1/products", params), 400, "validation_error")
        assert err["fields"][0]["field"] == field and err["fields"][0]["code"] == code, (params, err)


def test_empty_list_has_an_empty_first_page(api):
    assert api.get("/api/v1/products").json() == {"count": 0, "next": None, "previous": None, "results": []}
    assert_error(api.get("/api/v1/products", {"page": 2}), 400, "validation_error")


def test_unknown_product_is_404_in_the_error_shape(api, catalogue):
    assert_error(api.get("/api/v1/products/987654321"), 404, "not_found")
    assert_error(api.get("/api/v1/products/99999999999999999999999"), 404, "not_found")
    assert_error(api.get("/api/v1/products/abc"), 404, "not_found")


def test_untracked_stock_reads_as_in_stock(api, catalogue):
    Product.objects.filter(pk=catalogue["candle"].pk).update(stock=None)
    body = api.get(f"/api/v1/products/{catalogue['candle'].pk}").json()
    assert (body["stock"], body["in_stock"]) == (None, True)
    assert "CAND1" in skus(api.get("/api/v1/products", {"in_stock": "true"}))
    assert "CAND1" not in skus(api.get("/api/v1/products", {"in_stock": "false"}))


def test_product_list_query_count(api, catalogue, django_assert_max_num_queries):
    for _ in range(30):
        ProductFactory(category=catalogue["garden"])
    with django_assert_max_num_queries(2):  # count + page (with categories joined)
        assert api.get("/api/v1/products", {"page_size": 50}).json()["count"] == 33
    with django_assert_max_num_queries(3):  # + the category tree
        api.get("/api/v1/products", {"category": catalogue["home"].pk})


# --- writes ------------------------------------------------------------------------------------
@pytest.fixture
def editor():
    """An integration account holding the catalogue's model permissions."""
    perms = tuple(f"shop.{a}_{m}" for a in ("add", "change", "delete") for m in ("product", "category"))
    return token_client(make_user("catalogue@integrations.example", perms=perms))


def test_writes_need_model_permissions_not_staff(api, shopper_api, catalogue):
    staff_only = token_client(make_user("staff-only@example.com", is_staff=True))
    lamp = catalogue["lamp"].pk
    for client, code in ((api, 401), (shopper_api, 403), (staff_only, 403)):
        assert client.post("/api/v1/products", {"sku": "N1", "name": "New"}, format="json").status_code == code
        assert client.patch(f"/api/v1/products/{lamp}", {"name": "x"}, format="json").status_code == code
        assert client.delete(f"/api/v1/products/{lamp}").status_code == code
        assert client.post("/api/v1/categories", {"name": "New"}, format="json").status_code == code
        assert client.post("/api/v1/products/batch", {"products": [{"sku": "N1"}]}, format="json").status_code == code
    adder = token_client(make_user("adder@example.com", perms=("shop.add_product",)))
    assert adder.post("/api/v1/products", {"sku": "N1", "name": "New"}, format="json").status_code == 201
    assert adder.patch(f"/api/v1/products/{lamp}", {"name": "x"}, format="json").status_code == 403
    assert adder.post("/api/v1/products/batch", {"products": [{"sku": "N1"}]}, format="json").status_code == 403


def test_create_update_and_deactivate_a_product(editor, api, catalogue):
    r = editor.post(
        "/api/v1/products",
        {
            "sku": "MUG1",
            "name": "Red mug",
            "category": "Kitchen > Mugs",
            "price": "4.50",
            "currency": "eur",
            "stock": None,
            "attributes": {"colour": "red"},
        },
        format="json",
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert (body["sku"], body["price"], body["currency"], body["stock"], body["in_stock"]) == (
        "MUG1",
        "4.50",
        "EUR",
        None,
        True,
    )
    assert body["category"]["name"] == "Mugs" and body["attributes"] == {"colour": "red"}
    mugs = Category.objects.get(name="Mugs")
    assert mugs.parent.name == "Kitchen"
    pk = body["id"]
    assert_error(editor.post("/api/v1/products", {"sku": "MUG1", "name": "Again"}, format="json"), 409, "conflict")

    r = editor.patch(f"/api/v1/products/{pk}", {"stock": 5, "name": "Crimson mug"}, format="json")
    assert r.status_code == 200 and (r.json()["stock"], r.json()["name"], r.json()["price"]) == (
        5,
        "Crimson mug",
        "4.50",
    )
    r = editor.put(f"/api/v1/products/{pk}", {"sku": "MUG2", "name": "Plain mug"}, format="json")
    assert r.status_code == 200
    assert (r.json()["sku"], r.json()["category"], r.json()["stock"], r.json()["attributes"]) == (
        "MUG2",
        None,
        None,
        {},
    )
    conflict = assert_error(editor.patch(f"/api/v1/products/{pk}", {"sku": "LAMP1"}, format="json"), 409, "conflict")
    assert conflict["fields"][0]["field"] == "sku"

    assert editor.delete(f"/api/v1/products/{pk}").status_code == 204
    assert Product.objects.get(pk=pk).is_active is False
    assert api.get(f"/api/v1/products/{pk}").status_code == 404
    assert editor.patch(f"/api/v1/products/{pk}", {"active": True}, format="json").json()["is_active"] is True
    assert_error(editor.delete("/api/v1/products/987654"), 404, "not_found")


@pytest.mark.parametrize(
    "body, field, code",
    [
        ({"name": "No sku"}, "sku", "required"),
        ({"sku": "A"}, "name", "required"),
        ({"sku": "A", "name": "x", "price": "abc"}, "price", "invalid"),
        ({"sku": "A", "name": "x", "price": 4.5}, "price", "invalid"),
        ({"sku": "A", "name": "x", "stock": -1}, "stock", "min_value"),
        ({"sku": "A", "name": "x", "stock": "3"}, "stock", "invalid"),
        ({"sku": "A", "name": "x", "currency": "POUNDS"}, "currency", "invalid"),
        ({"sku": "A", "name": "x", "image_url": "nope"}, "image_url", "invalid"),
        ({"sku": "A", "name": "x", "colour": "red"}, "colour", "unknown_field"),
        ({"sku": "A", "name": "x\u0000"}, "name", "null_characters_not_allowed"),
    ],
)
def test_bad_product_input_is_400_naming_the_field(editor, body, field, code):
    err = assert_error(editor.post("/api/v1/products", body, format="json"), 400, "validation_error")
    assert (err["fields"][0]["field"], err["fields"][0]["code"]) == (field, code)
    assert not Product.objects.filter(sku="A").exists()


def test_category_create_update_and_delete(editor, catalogue):
    r = editor.post("/api/v1/categories", {"name": "Lamps", "parent_id": catalogue["home"].pk}, format="json")
    assert r.status_code == 201, r.content
    lamps = r.json()
    assert (lamps["parent_id"], lamps["slug"]) == (catalogue["home"].pk, "home-lamps")
    same = editor.post("/api/v1/categories", {"name": "Lamps", "parent_id": catalogue["home"].pk}, format="json")
    assert_error(same, 409, "conflict")
    err = assert_error(editor.post("/api/v1/categories", {"name": "X", "parent_id": 999999}, format="json"), 400)
    assert err["fields"][0]["code"] == "does_not_exist"
    home = catalogue["home"].pk
    below = editor.patch(f"/api/v1/categories/{home}", {"parent_id": lamps["id"]}, format="json")
    assert assert_error(below, 400)["fields"][0]["code"] == "cycle"
    r = editor.patch(f"/api/v1/categories/{lamps['id']}", {"name": "Lights", "colour": "#112233"}, format="json")
    assert r.status_code == 200 and (r.json()["name"], r.json()["colour"]) == ("Lights", "#112233")
    # a category in use is not deleted; an empty one is
    in_use = assert_error(editor.delete(f"/api/v1/categories/{home}"), 409, "conflict")
    assert "still holds" in in_use["message"]
    assert editor.delete(f"/api/v1/categories/{lamps['id']}").status_code == 204
    assert not Category.objects.filter(pk=lamps["id"]).exists()


# --- the bulk upsert ----------------------------------------------------------------------------
def batch(client, products, **extra):
    return client.post("/api/v1/products/batch", {"products": products, **extra}, format="json")


def test_batch_upserts_by_sku_with_a_report_per_row(editor, catalogue):
    rows = [
        {"sku": "LAMP1", "stock": None},  # update
        {"sku": "NEW1", "name": "New thing", "category": "Home > Lamps", "price": "9.99"},  # create
        {"sku": "SPADE", "name": "Garden spade"},  # as stored
    ]
    r = batch(editor, rows)
    assert r.status_code == 201, r.content
    report = r.json()
    assert {k: report[k] for k in ("received", "created", "updated", "unchanged", "rejected")} == {
        "received": 3,
        "created": 1,
        "updated": 1,
        "unchanged": 1,
        "rejected": 0,
    }
    assert [(x["index"], x["sku"], x["status"]) for x in report["results"]] == [
        (0, "LAMP1", "updated"),
        (1, "NEW1", "created"),
        (2, "SPADE", "unchanged"),
    ]
    assert Product.objects.get(sku="LAMP1").stock is None
    assert report["results"][1]["id"] == Product.objects.get(sku="NEW1").pk
    again = batch(editor, rows).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 3)


def test_batch_partial_keeps_the_good_rows_and_lists_the_bad(editor, catalogue):
    rows = [
        {"sku": "OK1", "name": "Fine"},
        {"sku": "BAD1", "name": "Bad", "price": "abc"},
        {"sku": "NONAME"},  # a new product needs a name
        {"sku": "OK1", "name": "Twice"},
    ]
    r = batch(editor, rows)
    assert r.status_code == 200, r.content
    report = r.json()
    assert (report["created"], report["rejected"]) == (1, 3)
    assert [(e["index"], e["field"], e["code"]) for e in report["errors"]] == [
        (1, "price", "invalid"),
        (2, "name", "required_for_new"),
        (3, "sku", "duplicate"),
    ]
    assert list(Product.objects.filter(sku__in=["OK1", "BAD1", "NONAME"]).values_list("sku", flat=True)) == ["OK1"]


def test_batch_all_or_nothing_and_request_errors(editor, catalogue):
    rows = [{"sku": "OK2", "name": "Fine"}, {"sku": "NONAME2"}, {"sku": "BAD2", "name": "x", "stock": -3}]
    err = assert_error(batch(editor, rows, partial=False), 400, "validation_error")
    assert [(f["field"], f["index"]) for f in err["fields"]] == [("products[1].name", 1), ("products[2].stock", 2)]
    assert not Product.objects.filter(sku="OK2").exists()
    assert_error(batch(editor, [{"sku": "Z", "price": "x"}]), 400)  # every row rejected
    assert_error(batch(editor, []), 400)
    assert_error(batch(editor, [{"sku": f"S{i}"} for i in range(1001)]), 400)
    assert_error(editor.post("/api/v1/products/batch", {"rows": []}, format="json"), 400)
    assert_error(batch(editor, [{"sku": "S"}], partial="no"), 400)


def test_batch_of_a_thousand_rows_in_few_queries(editor, django_assert_max_num_queries):
    rows = [{"sku": f"B{i:04d}", "name": f"Bulk {i}", "category": f"Bulk > Shelf {i % 5}"} for i in range(1000)]
    with django_assert_max_num_queries(30):
        assert batch(editor, rows).status_code == 201
    assert Product.objects.filter(sku__startswith="B").count() == 1000
