"""API-wide conventions: the one error shape, documentation without CDN, the schema."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from rest_framework import exceptions

from shop.rest.errors import api_exception_handler
from shop.services.errors import RowError, ValidationFailed
from tests.shop.conftest import assert_error

pytestmark = pytest.mark.django_db


def test_unknown_api_url_is_a_json_404(api):
    assert_error(api.get("/api/v1/no-such-thing"), 404, "not_found")
    assert_error(api.post("/api/v1/no/such/thing", {}, format="json"), 404, "not_found")


def test_unknown_api_url_outside_v1_is_a_json_404():
    client = Client()
    assert_error(client.get("/api/v2/products"), 404, "not_found")


def test_bad_host_under_api_is_a_json_400():
    client = Client(HTTP_HOST="evil.example")
    assert_error(client.get("/api/v1/schema/"), 400, "bad_request")


def test_validation_failed_from_a_service_lists_every_row():
    exc = ValidationFailed(
        [RowError(0, "user", "required", "required"), RowError(3, "kind", "unknown kind 9", "invalid_choice")]
    )
    response = api_exception_handler(exc, {})
    assert response.status_code == 400
    err = response.data["error"]
    assert err["code"] == "validation_error"
    assert err["fields"] == [
        {"field": "user", "code": "required", "message": "required", "index": 0},
        {"field": "kind", "code": "invalid_choice", "message": "unknown kind 9", "index": 3},
    ]
    assert "2 problems" in err["message"]


def test_nested_drf_validation_errors_are_flattened_with_paths():
    exc = exceptions.ValidationError(
        {
            "events": [{}, {"kind": [exceptions.ErrorDetail("bad kind", code="invalid_choice")]}],
            "non_field_errors": ["whole thing wrong"],
        }
    )
    err = api_exception_handler(exc, {}).data["error"]
    assert {"field": "events[1].kind", "code": "invalid_choice", "message": "bad kind", "index": 1} in err["fields"]
    assert {"field": None, "code": "invalid", "message": "whole thing wrong"} in err["fields"]


def test_throttled_carries_retry_after():
    response = api_exception_handler(exceptions.Throttled(wait=12.4), {})
    assert response.status_code == 429
    assert response["Retry-After"] == "13"  # rounded up: never too early
    assert response.data["error"]["retry_after"] == 13
    assert response.data["error"]["code"] == "throttled"


def test_unhandled_error_is_a_json_500_without_details(caplog):
    response = api_exception_handler(RuntimeError("secret connection string postgres://x"), {})
    assert response.status_code == 500
    assert response.data["error"]["code"] == "server_error"
    assert "postgres" not in str(response.data)
    assert "secret connection string" in caplog.text  # but the log has it


def test_schema_is_valid_openapi_3(api):
    response = api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert "Errors" in schema["info"]["description"]


def test_docs_load_nothing_from_a_cdn(api):
    response = api.get("/api/v1/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(r"""url:\s*["']([^"']+)["']""", html)
    assert urls, html[:500]
    external = [u for u in urls if re.match(r"^(https?:)?//", u)]
    assert not external, external
    assert any("swagger-ui" in u for u in urls)


def test_event_parser_and_its_documentation_agree():
    """`parse_event` accepts exactly the fields the schema documents."""
    from shop.api.interactions import EVENT_FIELDS, EventInputSerializer

    assert set(EventInputSerializer().fields) == set(EVENT_FIELDS)


def test_every_operation_documents_its_errors_and_my_writes_have_examples(api):
    schema = api.get("/api/v1/schema/?format=json").json()
    operations = [
        (path, method, op)
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]
    assert len(operations) >= 15
    for path, method, op in operations:
        codes = set(op["responses"])
        assert {"401", "403", "429"} <= codes, (method, path, codes)
        if method in {"post", "put", "patch"}:
            assert {"400", "413", "415"} <= codes, (method, path, codes)
        if "{" in path:
            assert "404" in codes, (method, path, codes)
        for code in codes - {"200", "201", "202", "204"}:
            if code.startswith(("4", "5")):
                content = op["responses"][code]["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/Error"}, (method, path, code)
    mine = {
        ("post", "/api/v1/interactions"),
        ("post", "/api/v1/interactions/batch"),
        ("post", "/api/v1/customers"),
        ("put", "/api/v1/customers/external/{external_id}"),
        ("patch", "/api/v1/me"),
        ("post", "/api/v1/products"),
        ("put", "/api/v1/products/{id}"),
        ("patch", "/api/v1/products/{id}"),
        ("post", "/api/v1/products/batch"),
        ("post", "/api/v1/categories"),
        ("put", "/api/v1/categories/{id}"),
        ("patch", "/api/v1/categories/{id}"),
    }
    for method, path in mine:
        body = schema["paths"][path][method]["requestBody"]["content"]
        assert list(body) == ["application/json"]
        assert body["application/json"].get("examples"), (method, path)
    store = [
        (path, method, op)
        for path, method, op in operations
        if any(path.startswith(f"/api/v1/{p}") for p in ("products", "categories", "customers", "me", "interactions"))
    ]
    assert len(store) == 25
    for path, method, op in store:
        assert op.get("summary"), (method, path)
        ok = [code for code in op["responses"] if code.startswith("2") and code != "204"]
        assert ok or method == "delete", (method, path)
        assert all(op["responses"][c]["content"]["application/json"].get("examples") for c in ok), (method, path)


def test_unhandled_error_in_a_view_is_a_json_500(monkeypatch, staff_user):
    from rest_framework.authtoken.models import Token

    def broken(**kwargs):
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr("shop.api.interactions.interactions_bulk_record", broken)
    client = Client(
        raise_request_exception=False, HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff_user).key}"
    )
    from tests.factories import ProductFactory

    response = client.post(
        "/api/v1/interactions/batch",
        {"events": [{"product_id": ProductFactory().pk, "session_key": "s", "kind": "view"}]},
        content_type="application/json",
    )
    err = assert_error(response, 500, "server_error")
    assert "hunter2" not in response.content.decode()
    assert err["fields"] == []


def test_a_body_over_the_limit_is_refused_without_a_content_length(settings):
    """Chunked uploads carry no Content-Length: the parser stops reading at the limit."""
    import io

    from shop.rest.errors import PayloadTooLarge
    from shop.rest.parsers import JSONParser

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100

    class Req:
        META: dict = {}

    with pytest.raises(PayloadTooLarge):
        JSONParser().parse(io.BytesIO(b'{"events": [' + b"1," * 200 + b"1]}"), parser_context={"request": Req()})
    assert JSONParser().parse(io.BytesIO(b'{"events": []}'), parser_context={"request": Req()}) == {"events": []}


def test_methods_not_allowed_are_405_with_the_shape(api):
    assert_error(api.put("/api/v1/categories", {}, format="json"), 405, "method_not_allowed")


def test_not_acceptable_is_406_with_the_shape(api):
    assert_error(api.get("/api/v1/products", HTTP_ACCEPT="application/xml"), 406, "not_acceptable")


def test_django_level_handlers_answer_json_under_api_only(rf):
    from shop.rest import errors as api_errors

    for handler, status, code in [
        (api_errors.server_error, 500, "server_error"),
        (api_errors.permission_denied, 403, "permission_denied"),
        (api_errors.bad_request, 400, "bad_request"),
        (api_errors.page_not_found, 404, "not_found"),
    ]:
        args = () if handler is api_errors.server_error else (Exception("internal detail"),)
        api = handler(rf.get("/api/v1/anything"), *args)
        assert api.status_code == status and api["Content-Type"] == "application/json"
        body = json.loads(api.content)
        assert body["error"]["code"] == code and "internal detail" not in api.content.decode()
        page = handler(rf.get("/shop/anything"), *args)
        assert page.status_code == status and page["Content-Type"].startswith("text/html")
