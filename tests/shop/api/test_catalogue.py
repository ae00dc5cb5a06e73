"""Products and categories: public reads, filters, search, pagination."""

from __future__ import annotations

from decimal import Decimal

import pytest

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


def test_catalogue_is_read_only(staff_api, catalogue):
    assert_error(staff_api.post("/api/v1/products", {"sku": "X"}, format="json"), 405, "method_not_allowed")
    assert_error(staff_api.delete(f"/api/v1/products/{catalogue['lamp'].pk}"), 405, "method_not_allowed")


def test_product_list_query_count(api, catalogue, django_assert_max_num_queries):
    for _ in range(30):
        ProductFactory(category=catalogue["garden"])
    with django_assert_max_num_queries(2):  # count + page (with categories joined)
        assert api.get("/api/v1/products", {"page_size": 50}).json()["count"] == 33
    with django_assert_max_num_queries(3):  # + the category tree
        api.get("/api/v1/products", {"category": catalogue["home"].pk})
