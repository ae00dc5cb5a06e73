"""Request body parsers that respect ``settings.DATA_UPLOAD_MAX_MEMORY_SIZE``.

DRF reads the body from the WSGI stream itself, which bypasses Django's size check
(that check lives in ``HttpRequest.body``). These parsers refuse a body larger than
the limit with 413 ``payload_too_large`` -- from ``Content-Length`` before reading
anything, and while reading for chunked bodies -- so a huge request never fills memory.
"""

from __future__ import annotations

import codecs
import json

from django.conf import settings
from django.http import QueryDict
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from .errors import PayloadTooLarge


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
            return json.loads(text, parse_constant=_reject_constant)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from exc


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
