"""OpenAPI generation (drf-spectacular) with the API-wide error responses.

``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]``: every operation of every app gets the
error responses it can produce, in the one error shape (`shop.rest.errors`), with an
example each, unless the view documents that status itself:

* 400 for writes and for operations with query parameters (bad input, bad page),
* 401 and 403 unless the operation needs no authentication,
* 404 for operations with path parameters,
* 413 and 415 for operations with a request body,
* 429 everywhere (throttling).

Serializers nested in views are named after the view (see `AutoSchema.get_serializer_name`).
"""

from __future__ import annotations

import re

from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from .errors import ErrorSerializer, error_body

ERRORS = {
    "400": (
        "Bad input: the fields say what and why.",
        error_body(
            "validation_error",
            "Invalid input: kind: unknown kind 'viewed'",
            [{"field": "kind", "code": "invalid_choice", "message": "unknown kind 'viewed'"}],
        ),
    ),
    "401": (
        "No or bad credentials: send `Authorization: Token <key>` or log in.",
        error_body(
            "not_authenticated",
            "Authentication credentials were not provided.",
        ),
    ),
    "403": (
        "Authenticated, but not allowed to do this.",
        error_body(
            "permission_denied",
            "You do not have permission to perform this action.",
        ),
    ),
    "404": ("No such object (or not one you may see).", error_body("not_found", "Not found.")),
    "413": (
        "The request body is larger than the server accepts.",
        error_body(
            "payload_too_large",
            "The request body is 3000000 bytes; the limit is 2621440.",
        ),
    ),
    "415": (
        "The body is not JSON (send `Content-Type: application/json`).",
        error_body(
            "unsupported_media_type",
            'Unsupported media type "text/plain" in request.',
        ),
    ),
    "429": (
        "Too many requests: wait `retry_after` seconds (also in `Retry-After`).",
        error_body(
            "throttled",
            "Request was throttled. Expected available in 12 seconds.",
            retry_after=12,
        ),
    ),
}


def error_response(code: str, description: str | None = None, example: dict | None = None) -> OpenApiResponse:
    """An `OpenApiResponse` in the error shape, for views that document their own errors."""
    default_description, default_example = ERRORS.get(code, ("Error.", error_body("error", "Error.")))
    return OpenApiResponse(
        ErrorSerializer,
        description=description or default_description,
        examples=[
            OpenApiExample(f"error {code}", value=example or default_example, response_only=True, status_codes=[code])
        ],
    )


class AutoSchema(SpectacularAutoSchema):
    def get_serializer_name(self, serializer, direction):
        """Serializers nested in a view (``CustomerApi.InputSerializer``, the style of
        this project) are named after their view (``CustomerInput``), so that the
        many nested ``InputSerializer`` classes never collide as components."""
        name = super().get_serializer_name(serializer, direction)
        cls = serializer if isinstance(serializer, type) else type(serializer)
        qualname = cls.__qualname__
        if "." in qualname and "<locals>" not in qualname:
            outer = qualname.rsplit(".", 1)[0].split(".")[-1]
            for suffix in ("ViewSet", "APIView", "Api", "View"):
                if outer.endswith(suffix) and len(outer) > len(suffix):
                    outer = outer[: -len(suffix)]
                    break
            name = outer + name
        return name

    def _error_codes(self) -> list[str]:
        codes = ["429"]
        method = self.method.upper()
        has_body = method in {"POST", "PUT", "PATCH"}
        permissions = self.view.get_permissions() if hasattr(self.view, "get_permissions") else []
        authenticators = getattr(self.view, "authentication_classes", None)
        public = all(isinstance(p, AllowAny) for p in permissions)
        if not public or authenticators:
            codes += ["401", "403"]
        if has_body or self._has_query_parameters():
            codes.append("400")
        if "{" in self.path:
            codes.append("404")
        if has_body:
            codes += ["413", "415"]
        return sorted(codes)

    def _has_query_parameters(self) -> bool:
        try:
            params = self._get_parameters()
        except Exception:  # noqa: BLE001 - documentation must not fail on one view
            return False
        return any(p.get("in") == "query" for p in params)

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for code in self._error_codes():
            if code not in responses:
                responses[code] = self._get_response_for_code(error_response(code), code, direction=direction)
        return responses


API_DESCRIPTION = """\
Products, customers, events, recommendations and campaigns of an Affinity store.
Everything here is versioned under `/api/v1/`; this document is generated from the code.

## Authentication
* **Tokens** for API clients: `Authorization: Token <key>`. Staff create and revoke
  tokens in admin (*Auth Token > Tokens*). A token acts with exactly the permissions of
  the account it belongs to: give an integration its own account with only what it needs.
* **Browser sessions** (logged in on the store): writes need the CSRF token in the
  `X-CSRFToken` header, as Django's CSRF protection asks.

## Permissions
A shopper reads and changes only their own data (`/me`, their own events). Acting for
other customers needs the Django model permission of the action (`view`, `add`,
`change`, `delete`), e.g. `shop.add_interaction` to send anyone's events or
`shop.change_user` to sync customers. Somebody else's object is a 404 or 403, never data.
The catalogue is public to read; writing it needs `shop.add_product`, `change_product`,
`delete_product` (the same for `category`); staff status alone grants nothing.

## Errors
Every error has one shape:
```json
{"error": {"code": "validation_error", "message": "Invalid input: events[3].kind: unknown kind 'viewed'",
           "fields": [{"field": "events[3].kind", "index": 3, "code": "invalid_choice",
                       "message": "unknown kind 'viewed'"}]}}
```
`code` is stable and machine-readable: `validation_error`, `parse_error`, `bad_request` (400),
`not_authenticated`, `authentication_failed` (401), `permission_denied` (403), `not_found` (404),
`method_not_allowed` (405), `not_acceptable` (406), `conflict`, `out_of_stock` (409),
`payload_too_large` (413), `unsupported_media_type` (415), `throttled` (429, with `retry_after`
and a `Retry-After` header), `server_error` (500: a bug of ours, logged, no details).
Client mistakes are always 4xx.

## Pagination
Lists take `page` (from 1) and `page_size` (1 to 100, default 20) and answer
`{"count", "next", "previous", "results"}`. A bad value or a page past the last is a 400.

## Rate limits
Per account (anonymous callers: per IP address). Defaults: 1,200 requests/min for an
account, 120/min anonymous, and a separate budget of 3,000 batches/min for
`POST /api/v1/interactions/batch`. Over the limit: 429.

## Request size
Bodies over the server's limit (`DATA_UPLOAD_MAX_MEMORY_SIZE`, 2.5 MB by default) get 413;
a batch holds at most 1,000 events.
"""


# Rules between fields that serializers cannot state: component -> extra JSON schema.
COMPONENT_RULES = {
    # an event names its product by id or by SKU
    "EventInputRequest": {
        "anyOf": [{"required": ["product_id"]}, {"required": ["product_sku"]}],
        "additionalProperties": False,  # a misspelt field is an error, not silently ignored
    },
    "InteractionBatchInputRequest": {"additionalProperties": False},
    # a product as written (`shop.api.catalogue`): unknown fields are refused too
    "ProductInputRequest": {"additionalProperties": False},
    "PatchedProductPatchRequest": {"additionalProperties": False},
    "ProductBatchRowRequest": {"additionalProperties": False},
    "ProductBatchInputRequest": {"additionalProperties": False},
}


def describe_api(result, generator, request, public):
    """drf-spectacular post-processing hook: the API's conventions as its description,
    and the cross-field rules of `COMPONENT_RULES`."""
    result.setdefault("info", {})["description"] = API_DESCRIPTION
    schemas = result.get("components", {}).get("schemas", {})
    for name, extra in COMPONENT_RULES.items():
        if name in schemas:
            schemas[name].update(extra)
    return result


_ITEM_PARAM = re.compile(r"^\{(?P<name>[a-z_]+)\}$")


def link_operations(result, generator, request, public):
    """drf-spectacular post-processing hook: OpenAPI links from each operation that
    creates a resource (a 201 whose body has an ``id``) to every operation on that
    resource (``<collection>/{id}`` and its actions), passing ``$response.body#/id``.

    Clients and tools read them to chain calls (create, then read, change, act on, delete
    what was created); the stateful schemathesis run follows them. Derived from the paths,
    so a new endpoint is linked without an entry here."""
    paths = result.get("paths", {})
    operation_ids: dict[str, list[str]] = {}
    for path, operations in paths.items():
        parts = path.rstrip("/").split("/")
        for i, part in enumerate(parts):
            match = _ITEM_PARAM.match(part)
            if match and match["name"] == "id":
                collection = "/".join(parts[:i])
                for operation in operations.values():
                    if isinstance(operation, dict) and operation.get("operationId"):
                        operation_ids.setdefault(collection, []).append(operation["operationId"])
                break
    for path, operations in paths.items():
        targets = operation_ids.get(path.rstrip("/"))
        if not targets:
            continue
        for method in ("post", "put"):
            created = (operations.get(method) or {}).get("responses", {}).get("201")
            if not created:
                continue
            created["links"] = {
                target: {"operationId": target, "parameters": {"id": "$response.body#/id"}} for target in targets
            }
    return result


def paginated(serializer_class, name: str):
    """The response of a paginated list of ``serializer_class`` (for views that paginate
    by hand): ``{"count", "next", "previous", "results": [...]}``."""
    return inline_serializer(
        name,
        {
            "count": serializers.IntegerField(help_text="Results in all pages."),
            "next": serializers.URLField(allow_null=True, help_text="The next page, null on the last."),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer_class(many=True),
        },
    )


def row_errors_field(component: str, *, rows: str, row: str) -> serializers.ListField:
    """The ``errors`` list of a batch endpoint's report: one entry per problem, each
    with the row's index in ``rows``, the bad field, a code and a message."""
    return serializers.ListField(
        child=inline_serializer(
            component,
            {
                "index": serializers.IntegerField(help_text=f"0-based position of the {row} in `{rows}`."),
                "field": serializers.CharField(help_text=f"The bad field, or `{rows}[i]` for the {row} as a whole."),
                "code": serializers.CharField(),
                "message": serializers.CharField(),
            },
        ),
        help_text=f"One entry per problem, in row order (a {row} may have several).",
    )
