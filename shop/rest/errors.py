"""One error shape for the whole API (``/api/``), whoever wrote the endpoint.

Every error a client can get from the API is JSON of this shape::

    {"error": {
        "code": "validation_error",            # stable, machine-readable
        "message": "2 invalid fields; first: kind: ...",   # for humans
        "fields": [                             # only for input problems, else []
            {"field": "events[3].kind", "code": "invalid_choice", "message": "...", "index": 3}
        ]
    }}

``field`` is the path of the bad input (``null`` for a problem of the input as a
whole); ``index`` is present when the problem is in one row of a list (0-based).
A throttled request also carries ``retry_after`` (seconds) and a ``Retry-After``
header.

Codes of the envelope: ``validation_error`` (400), ``parse_error`` (400),
``bad_request`` (400), ``not_authenticated`` / ``authentication_failed`` (401),
``permission_denied`` (403), ``not_found`` (404), ``method_not_allowed`` (405),
``not_acceptable`` (406), ``conflict`` / ``out_of_stock`` (409),
``payload_too_large`` (413), ``unsupported_media_type`` (415), ``throttled`` (429),
``server_error`` (500, details only in the server's log).

Installed as ``REST_FRAMEWORK["EXCEPTION_HANDLER"]``; the Django-level handlers
below give the same shape to what never reaches a DRF view (unknown URLs, bad
hosts, crashes) for paths under ``/api/``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

from django.core import signals
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.settings import api_settings

from shop.services.errors import Conflict, OutOfStock, RowError, ValidationFailed

logger = logging.getLogger("shop.api")

API_PREFIX = "/api/"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "payload_too_large"


# --- shape helpers ------------------------------------------------------------------
def error_body(code: str, message: str, fields: Iterable[dict] = (), **extra) -> dict:
    return {"error": {"code": code, "message": message, "fields": list(fields), **extra}}


def row_error_field(err: RowError, container: str | None = None) -> dict:
    """A service `RowError` as one entry of ``fields``."""
    if container:
        path = f"{container}[{err.index}]" + (f".{err.field}" if err.field else "")
    else:
        path = err.field or None
    return {"field": path, "code": err.code, "message": err.message, "index": err.index}


def _join(path: str, key) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if key == api_settings.NON_FIELD_ERRORS_KEY:
        return path
    return f"{path}.{key}" if path else str(key)


def _flatten(detail, path: str = "") -> list[dict]:
    """DRF's nested ``ValidationError.detail`` as a flat list of field problems."""
    if isinstance(detail, dict):
        out: list[dict] = []
        for key, value in detail.items():
            out.extend(_flatten(value, _join(path, key)))
        return out
    if isinstance(detail, list):
        if all(isinstance(d, (str, exceptions.ErrorDetail)) for d in detail):
            return [_field(path, d) for d in detail]
        out = []
        for i, value in enumerate(detail):
            if value:  # a ListSerializer puts {} for the valid items
                out.extend(_flatten(value, _join(path, i)))
        return out
    return [_field(path, detail)]


def _field(path: str, detail) -> dict:
    entry = {"field": path or None, "code": getattr(detail, "code", None) or "invalid", "message": str(detail)}
    # "events[3].kind" -> index 3: the row of the outermost list it belongs to.
    if path and "[" in path:
        try:
            entry["index"] = int(path[path.index("[") + 1 : path.index("]")])
        except ValueError:
            pass
    return entry


def _summary(fields: list[dict]) -> str:
    first = fields[0]
    where = f"{first['field']}: " if first.get("field") else ""
    if len(fields) == 1:
        return f"Invalid input: {where}{first['message']}"
    return f"Invalid input: {len(fields)} problems; first: {where}{first['message']}"


def _detail_text(detail) -> str:
    if isinstance(detail, (list, dict)):
        flat = _flatten(detail)
        return flat[0]["message"] if flat else ""
    return str(detail)


# --- the DRF exception handler -------------------------------------------------------
def set_rollback() -> None:
    # rest_framework.views imports the parser settings, which import this module.
    from rest_framework.views import set_rollback as drf_set_rollback  # noqa: PLC0415 - the cycle above

    drf_set_rollback()


def api_exception_handler(exc: Exception, context: dict) -> Response:
    """``REST_FRAMEWORK["EXCEPTION_HANDLER"]``: every exception -> the error shape."""
    if isinstance(exc, ValidationFailed):
        fields = [row_error_field(e, getattr(exc, "container", None)) for e in exc.errors]
        set_rollback()
        message = _summary(fields) if fields else str(exc)
        return Response(error_body("validation_error", message, fields), status=400)
    if isinstance(exc, OutOfStock):
        set_rollback()
        return Response(
            error_body("out_of_stock", str(exc), [{"field": "quantity", "code": "out_of_stock", "message": str(exc)}]),
            status=409,
        )
    if isinstance(exc, Conflict):
        set_rollback()
        fields = [{"field": exc.field, "code": "conflict", "message": str(exc)}] if exc.field else []
        return Response(error_body("conflict", str(exc), fields), status=409)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {api_settings.NON_FIELD_ERRORS_KEY: exc.messages}
        )
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()  # never echo internals ("No Product matches the given query.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(str(exc) or None)
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: ["The request was malformed."]})

    if isinstance(exc, exceptions.APIException):
        headers: dict[str, str] = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        extra: dict = {}
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(max(1, math.ceil(exc.wait)))
            extra["retry_after"] = max(1, math.ceil(exc.wait))
        if isinstance(exc, exceptions.ValidationError):
            fields = _flatten(exc.detail)
            body = error_body("validation_error", _summary(fields) if fields else "Invalid input.", fields)
        else:
            code = exc.get_codes() if not isinstance(exc.detail, (list, dict)) else exc.default_code
            body = error_body(str(code or exc.default_code), _detail_text(exc.detail), **extra)
        set_rollback()
        return Response(body, status=exc.status_code, headers=headers)

    # Anything else is our bug: log it with its traceback, tell the client nothing more.
    request = context.get("request")
    logger.error(
        "Unhandled error in API %s %s",
        getattr(request, "method", "?"),
        getattr(request, "path", "?"),
        exc_info=exc,
    )
    if request is not None:
        signals.got_request_exception.send(sender=None, request=getattr(request, "_request", request))
    set_rollback()
    return Response(
        error_body("server_error", "Internal server error. It has been logged; please try again later."),
        status=500,
    )


# --- Django-level handlers (shop/urls.py: handler400/403/404/500) ----------------------
def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("bad_request", "The request was malformed."), status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(
            error_body("permission_denied", "You do not have permission to perform this action."), status=403
        )
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("not_found", f"No API endpoint at {request.path}."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(
            error_body("server_error", "Internal server error. It has been logged; please try again later."),
            status=500,
        )
    return defaults.server_error(request)


@csrf_exempt  # a POST to an unknown URL is a 404, not a CSRF failure page
def api_not_found(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """The last route under /api/v1/: an unknown API URL is a JSON 404 even with DEBUG on."""
    return page_not_found(request)


# --- schema components (used by shop.rest.schema) -------------------------------------
class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(
        allow_null=True, help_text="Path of the bad input, e.g. `events[3].kind`; null for the input as a whole."
    )
    code = serializers.CharField(
        help_text="Machine-readable reason, e.g. `required`, `invalid_choice`, `does_not_exist`."
    )
    message = serializers.CharField(help_text="Human-readable reason.")
    index = serializers.IntegerField(required=False, help_text="Row of a list (0-based) the problem is in.")


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable error code (see the API description).")
    message = serializers.CharField()
    fields = FieldErrorSerializer(many=True)
    retry_after = serializers.IntegerField(required=False, help_text="Seconds to wait (429 only).")


class ErrorSerializer(serializers.Serializer):
    """The one error shape of the Affinity API."""

    error = ErrorBodySerializer()
