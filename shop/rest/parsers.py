"""Request body parsers that respect ``settings.DATA_UPLOAD_MAX_MEMORY_SIZE``.

DRF reads the body from the WSGI stream itself, which bypasses Django's size check
(that check lives in ``HttpRequest.body``). These parsers refuse a body larger than
the limit with 413 ``payload_too_large`` -- from ``Content-Length`` before reading
anything, and while reading for chunked bodies -- so a huge request never fills memory.

The JSON parser is also THE edge for what no field can hold: a document nested deeper
than ``MAX_JSON_DEPTH`` is a 400 ``parse_error`` (never a RecursionError), and a string or
key with a NUL byte or a lone surrogate is a 400 ``validation_error`` naming its path
(``events[3].kind``), whatever the endpoint.
"""

from __future__ import annotations

import codecs
import json

from django.conf import settings
from django.http import QueryDict
from rest_framework import parsers
from rest_framework.exceptions import ErrorDetail, ParseError, ValidationError
from rest_framework.settings import api_settings

from .errors import PayloadTooLarge
from .middleware import text_is_unstorable


def read_limited(stream, parser_context: dict | None) -> bytes:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    request = (parser_context or {}).get("request")
    if limit is not None and request is not None:
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            raise PayloadTooLarge(f"The request body is {declared} bytes; the limit is {limit}.")
    if stream is None:
        return b""
    data = stream.read() if limit is None else stream.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")
    return data


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = read_limited(stream, parser_context)
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.decode(raw, encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise ParseError(f"The body is not valid {encoding} text.") from exc
        if not text.strip():
            raise ParseError("The body is empty; a JSON document was expected.")
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc
        except RecursionError as exc:
            raise ParseError(f"The JSON document is nested too deeply (the limit is {MAX_JSON_DEPTH}).") from exc
        json_check(data)
        return data


MAX_JSON_DEPTH = 64  # the deepest document of the API (segment rules, 12 levels) needs far fewer


def json_check(data) -> None:
    """Refuse a document nested deeper than ``MAX_JSON_DEPTH`` or holding a string (value
    or key) with a NUL byte or a lone surrogate: no field of the API can store either.
    Iterative, so that the check itself never recurses."""
    stack: list[tuple[object, int, str]] = [(data, 0, "")]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, str):
            if text_is_unstorable(value):
                _refuse_text(path, "text with a NUL byte or a lone surrogate: neither can be stored")
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth >= MAX_JSON_DEPTH:
            raise ParseError(f"The JSON document is nested too deeply (the limit is {MAX_JSON_DEPTH}).")
        if isinstance(value, dict):
            for key, item in value.items():
                if text_is_unstorable(key):
                    _refuse_text(path, "a key with a NUL byte or a lone surrogate: neither can be stored")
                stack.append((item, depth + 1, f"{path}.{key}" if path else key))
        else:
            stack.extend((item, depth + 1, f"{path}[{i}]") for i, item in enumerate(value))


def _refuse_text(path: str, message: str) -> None:
    """A 400 ``validation_error`` naming the field (as DRF's own CharField check would)."""
    code = "null_characters_not_allowed"
    raise ValidationError({path or api_settings.NON_FIELD_ERRORS_KEY: [ErrorDetail(message, code=code)]})


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = read_limited(stream, parser_context)
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        return QueryDict(raw, encoding=encoding)


def query_params(request) -> dict[str, str]:
    """Query parameters for a filter serializer: a plain dict, so that ``?kind=`` is an
    empty value to validate (a 400), not silently "no filter" as for HTML forms."""
    return request.query_params.dict()


def batch_body(body: object, *, key: str, singular: str, max_rows: int) -> tuple[list, bool]:
    """The envelope of a batch endpoint, ``{"<key>": [...], "partial": true|false}``:
    its rows and ``partial`` (default true), or a `ValidationError` naming what is wrong
    (not an object, unknown fields, not a list, empty, more than ``max_rows``)."""
    if type(body) is not dict or key not in body:
        message = f'the body is {{"{key}": [...]}}, a JSON object with a list of {key}'
        raise ValidationError({key: [ErrorDetail(message, code="required")]})
    unknown = set(body) - {key, "partial"}
    if unknown:
        raise ValidationError(
            {name: [ErrorDetail("unknown field", code="unknown_field")] for name in sorted(unknown)[:5]}
        )
    rows, partial = body[key], body.get("partial", True)
    if type(partial) is not bool:
        raise ValidationError({"partial": [ErrorDetail("must be true or false", code="invalid")]})
    if type(rows) is not list:
        raise ValidationError({key: [ErrorDetail("must be a list", code="not_a_list")]})
    if not rows:
        raise ValidationError({key: [ErrorDetail(f"send at least one {singular}", code="empty")]})
    if len(rows) > max_rows:
        message = f"at most {max_rows} {key} per request, not {len(rows)}"
        raise ValidationError({key: [ErrorDetail(message, code="max_length")]})
    return rows, partial
