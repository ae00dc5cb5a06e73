"""Refuse, once for every request, what no part of the site can store or look up.

- Text with a NUL byte or a lone surrogate (PostgreSQL rejects NUL in text; a lone
  surrogate cannot be encoded as UTF-8) in the path, the query string or a form body:
  400 (JSON bodies are checked by ``shop.rest.parsers.JSONParser``).
- A query value that is a whole number outside a 64-bit column's range (admin list
  filters such as ``?product_id=10**30`` pass it to the database as it is): 400.
  ``q`` (free-text search) is exempt: a long number is a fine thing to search for.
- An ``<int:...>`` path segment outside that range (``/api/v1/models/10**30``): 404,
  as for any id that does not exist.

Under ``/api/`` the answer is in the API's error shape; elsewhere Django's plain pages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views import defaults

from shop.numbers import INT64_MAX, INT64_MIN

from .errors import API_PREFIX, error_body, page_not_found

INTEGER_LITERAL = re.compile(r"[+-]?[0-9]+")
FREE_TEXT_KEYS = frozenset({"q"})

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def text_is_unstorable(text: str) -> bool:
    """NUL, or a lone surrogate (U+D800..U+DFFF), anywhere in ``text``."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _within_body_limit(request: HttpRequest) -> bool:
    """Whether the body fits the size Django reads into memory (an upload larger than
    that is parsed from the stream: nobody reads such a body raw)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        size = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False
    return limit is None or size <= limit


def _any_unstorable(pairs: Iterable[tuple[str, list]]) -> str | None:
    for key, values in pairs:
        if text_is_unstorable(key):
            return key.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
        for value in values:
            if isinstance(value, str) and text_is_unstorable(value):
                return key
    return None


def _beyond_int64(literal: str) -> bool:
    """Whether an integer literal (`INTEGER_LITERAL`) is outside a 64-bit column's range,
    without ``int()`` on thousands of digits (Python refuses more than 4,300: a 500)."""
    digits = literal.lstrip("+-").lstrip("0")
    if len(digits) > 19:
        return True
    value = int(digits or "0")
    return not INT64_MIN <= (-value if literal.startswith("-") else value) <= INT64_MAX


def _out_of_range(pairs: Iterable[tuple[str, list]]) -> str | None:
    for key, values in pairs:
        if key in FREE_TEXT_KEYS:
            continue
        for value in values:
            text = value.strip()
            if len(text) > 18 and INTEGER_LITERAL.fullmatch(text) and _beyond_int64(text):
                return key
    return None


class BadTextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        is_api = request.path_info.startswith(API_PREFIX) or request.path.startswith(API_PREFIX)
        if text_is_unstorable(request.path):
            return self._refuse(request, is_api, None, "The URL contains a NUL byte or an invalid character.")
        bad = _any_unstorable(request.GET.lists())
        if bad is not None:
            return self._refuse(
                request, is_api, bad, "The query parameter contains a NUL byte or an invalid character."
            )
        bad = _out_of_range(request.GET.lists())
        if bad is not None:
            return self._refuse(request, is_api, bad, "The query parameter is a number out of range.", "max_value")
        if not is_api and request.method == "POST" and request.content_type in FORM_TYPES:
            try:
                if _within_body_limit(request):
                    request.body  # noqa: B018 - read (and kept) first: a view may still read the raw body
                bad = _any_unstorable(request.POST.lists())
            except MultiPartParserError:
                return self._refuse(request, is_api, None, "The form data is malformed.")
            if bad is not None:
                return self._refuse(request, is_api, bad, "The form field contains a NUL byte or an invalid character.")
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view, args, kwargs) -> HttpResponse | None:
        for value in (*args, *kwargs.values()):
            if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
                return page_not_found(request, Http404("No such id."))
        return None

    @staticmethod
    def _refuse(
        request: HttpRequest, is_api: bool, field: str | None, message: str, code: str = "null_characters_not_allowed"
    ) -> HttpResponse:
        if is_api:
            fields = [{"field": field, "code": code, "message": message}]
            envelope = "validation_error" if field is not None else "bad_request"  # as the API's own checks
            return JsonResponse(error_body(envelope, message, fields), status=400)
        return defaults.bad_request(request, None)
