"""API-wide conventions: the one error shape, documentation without CDN, the schema."""
from __future__ import annotations

import re

import pytest
from django.test import Client
from rest_framework import exceptions

from shop.api_errors import api_exception_handler
from shop.services import RowError, ValidationFailed

from .conftest import assert_error

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
    exc = ValidationFailed([RowError(0, "user", "required", "required"), RowError(3, "kind", "unknown kind 9", "invalid_choice")])
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
    exc = exceptions.ValidationError({"events": [{}, {"kind": [exceptions.ErrorDetail("bad kind", code="invalid_choice")]}],
                                      "non_field_errors": ["whole thing wrong"]})
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
