"""Bad input gives a clear 4xx, never a 500 (issue 13 item 9).

Each family of bad input is handled once at the edge (``shop.rest.middleware``, the
JSON parser in ``shop.rest.parsers``, ``shop.rest.bounds``, the webhook guard); this
probe sends each family to the store's pages, the API and the admin and checks the
answer: a 4xx (in the API's error shape under ``/api/``), or a page that simply ignores
the bad value, but never a 5xx.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from shop.numbers import int_parse
from tests.factories import CategoryFactory, ProductFactory
from tests.shop.conftest import token_client

HUGE = str(10**30)
NUL = "a\x00b"
ARABIC = "١٢"
SUPER = "²"


@pytest.fixture
def data(db, staff_user):
    home = CategoryFactory(name="Home", slug="home")
    ProductFactory(sku="P1", slug="p1", category=home)
    return staff_user


@pytest.fixture
def staff_api(data):
    return token_client(data)


def _assert_clear(response, path: str) -> None:
    assert response.status_code < 500, (path, response.status_code, response.content[:300])
    if path.startswith("/api/") and response.status_code >= 400:
        body = response.json()
        assert set(body["error"]) >= {"code", "message", "fields"}, body


STORE_GETS = [
    "/",
    "/search/",
    "/category/home/",
    "/product/p1/",
    "/cart/",
    "/account/",
    "/admin/shop/product/",
    "/admin/shop/user/",
    "/admin/shop/interaction/",
]
API_GETS = [
    "/api/v1/products",
    "/api/v1/categories",
    "/api/v1/customers",
    "/api/v1/interactions",
    "/api/v1/recommendations/trending",
    "/api/v1/recommendations/me",
    "/api/v1/models",
    "/api/v1/campaigns",
    "/api/v1/segments",
    "/api/v1/email-templates",
]
QUERY_KEYS = ["q", "page", "category", "sort", "product_id", "user_id", "limit", "n", "kind", "id__exact", "p", "o"]
BAD_VALUES = [NUL, HUGE, "-" + HUGE, ARABIC, SUPER]


@pytest.mark.parametrize("value", BAD_VALUES, ids=["nul", "huge", "neg-huge", "arabic", "superscript"])
@pytest.mark.parametrize("path", STORE_GETS + API_GETS)
def test_bad_query_values_never_500(path, value, staff_api, data):
    client = staff_api if path.startswith("/api/") else Client()
    if not path.startswith("/api/"):
        client.force_login(data)
    for key in QUERY_KEYS:
        _assert_clear(client.get(path, {key: value}), f"{path}?{key}")


def test_a_number_longer_than_int_parses_is_refused_not_a_500(staff_api, data):
    """More than 4,300 digits: int() itself raises; the middleware must still answer 400."""
    endless = "9" * 5000
    page = Client().get("/", {"product_id": endless})
    assert page.status_code == 400
    api = staff_api.get("/api/v1/products", {"category": "-" + endless})
    assert api.status_code == 400
    assert api.json()["error"]["fields"] == [
        {"field": "category", "code": "max_value", "message": "The query parameter is a number out of range."}
    ]
    padded = "0" * 5000 + "7"  # a small number, however many zeros lead it: not refused for its size
    assert Client().get("/", {"product_id": padded}).status_code == 200


BAD_PATHS = [
    "/product/a%00b/",
    "/category/a%00b/",
    "/c/o/a%00b.gif",
    "/c/k/a%00b/",
    "/c/u/a%00b/",
    "/reset/a%00b/x/",
    "/api/v1/customers/external/a%00b",
    "/api/v1/products/a%00b",
    "/api/v1/categories/a%00b",
    f"/api/v1/customers/{HUGE}",
    f"/api/v1/products/{HUGE}",
    f"/api/v1/categories/{HUGE}",
    f"/api/v1/recommendations/users/{HUGE}",
    f"/api/v1/recommendations/products/{HUGE}/similar",
    f"/api/v1/recommendations/products/{HUGE}/similar?n={ARABIC}&category_id={HUGE}",
    f"/api/v1/products?category={HUGE}&page={HUGE}&page_size={ARABIC}",
    f"/api/v1/models/{HUGE}",
    f"/api/v1/campaigns/{HUGE}",
    f"/api/v1/campaigns/{HUGE}/report",
    f"/img/p/{HUGE}.svg",
    "/admin/shop/product/a%00b/change/",
    f"/admin/shop/product/{HUGE}/change/",
]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_bad_path_segments_never_500(path, staff_api, data):
    if path.startswith("/api/"):
        client = staff_api
    else:
        client = Client()
        client.force_login(data)
    _assert_clear(client.get(path), path)


JSON_POSTS = [
    "/api/v1/interactions",
    "/api/v1/interactions/batch",
    "/api/v1/customers",
    "/api/v1/products/batch",
    "/api/v1/recommendations/session",
    "/api/v1/recommendations/clicks",
    "/api/v1/models/train",
    "/api/v1/campaigns",
]


def _deep(n: int) -> str:
    return "[" * n + "]" * n


RAW_BODIES = {
    "nul-string": '{"product_id": 1, "kind": "view", "email": "a\\u0000b@x.example", "external_id": "a\\u0000b"}',
    "surrogate": '{"product_id": 1, "kind": "view", "email": "a\\ud800@x.example", "external_id": "\\ud800"}',
    "surrogate-key": '{"\\ud800": 1}',
    "huge-ids": json.dumps({"product_id": 10**30, "user_id": 10**30, "product_ids": [10**30], "n": 10**30}),
    "deep": _deep(100_000),
    "deep-object": '{"a":' * 50_000 + "1" + "}" * 50_000,
    "empty": "",
}


@pytest.mark.parametrize("body", RAW_BODIES.values(), ids=RAW_BODIES.keys())
@pytest.mark.parametrize("path", JSON_POSTS)
def test_bad_json_bodies_never_500(path, body, staff_api):
    _assert_clear(staff_api.post(path, data=body, content_type="application/json"), path)


FORM_POSTS = ["/cart/add/", "/cart/update/", "/cart/remove/", "/signup/", "/login/", "/search/", "/password-reset/"]


@pytest.mark.parametrize("value", BAD_VALUES, ids=["nul", "huge", "neg-huge", "arabic", "superscript"])
@pytest.mark.parametrize("path", FORM_POSTS)
def test_bad_form_values_never_500(path, value, data):
    client = Client()
    fields = ["product_id", "product", "quantity", "email", "password", "password1", "password2", "q", "username"]
    _assert_clear(client.post(path, {f: value for f in fields}), path)


WEBHOOKS = ["mailgun", "sendgrid", "postmark", "amazon_ses", "mailjet", "sparkpost", "brevo", "resend"]


@pytest.mark.parametrize("body", ["", "{", "[]", "null", "\x00", '{"a": "\\ud800"}', _deep(50_000)])
@pytest.mark.parametrize("provider", WEBHOOKS)
def test_webhooks_answer_bad_bodies_with_4xx(provider, body, db, settings):
    if provider == "amazon_ses":
        pytest.importorskip("boto3")
    settings.ANYMAIL = {**settings.ANYMAIL, "MAILGUN_WEBHOOK_SIGNING_KEY": "test-signing-key"}
    path = f"/c/esp/{provider}/tracking/"
    for content_type in ("application/json", "application/x-www-form-urlencoded"):
        response = Client().post(path, data=body, content_type=content_type)
        _assert_clear(response, path)


# --- importers: a NUL in a file line is a line-numbered error, never a traceback -----------
IMPORTS = {
    "import_interactions": (
        "customer_id,sku,qty,ts,event\nc1,P1,1,2024-01-02T10:00:00Z,view\nc\x002,P1,1,2024-01-02T10:00:00Z,view\n",
        ["--map", "user=customer_id,item=sku,value=qty,timestamp=ts,kind=event"],
    ),
    "import_catalogue": ("sku,name,price\nA1,Mug,4.50\nA\x002,Cup,3\n", []),
    "import_online_retail": (
        "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
        "536365,85123A,WHITE HANGING HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom\n"
        "536366,85\x00123B,RED\x00 HEART,6,2010-12-01 08:28:00,2.55,17850,United Kingdom\n",
        [],
    ),
}


@pytest.mark.parametrize("command", IMPORTS)
def test_importers_report_nul_bytes_by_line(command, tmp_path, db):
    text, extra = IMPORTS[command]
    path = tmp_path / "in.csv"
    path.write_text(text, encoding="utf-8")
    args = ["--file", str(path)] if command == "import_online_retail" else [str(path)]
    out = StringIO()
    try:
        call_command(command, *args, *extra, "--no-progress", stdout=out, stderr=out)
    except CommandError as exc:
        message = f"{exc}\n{out.getvalue()}"
    else:
        message = out.getvalue()
    assert "NUL" in message and "line 3" in message, message


# --- the shared whole-number parser and the API's integer field -----------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [("12", 12), (" 7 ", 7), ("-3", -3), (5, 5), (ARABIC, None), (SUPER, None), (HUGE, None), ("1e3", None)]
    + [("", None), (None, None), (True, None), (str(2**63 - 1), 2**63 - 1), (str(2**63), None), ("1" * 5000, None)],
)
def test_int_parse(raw, expected):
    assert int_parse(raw) == expected


def test_api_integers_are_ascii_and_bounded(staff_api):
    for body in ({"product_id": ARABIC, "kind": "view"}, {"product_id": 10**30, "kind": "view"}):
        response = staff_api.post("/api/v1/interactions", body, format="json")
        assert response.status_code == 400, response.content
        assert response.json()["error"]["fields"][0]["field"] == "product_id"
