"""Pagination of every API list: ``?page=<n>&page_size=<m>``.

Rules (documented in the schema of each list):

* ``page`` is a whole number >= 1 (``last`` is accepted too); ``page_size`` a whole
  number from 1 to ``API_MAX_PAGE_SIZE`` (100 unless configured). Default size:
  ``REST_FRAMEWORK["PAGE_SIZE"]``.
* Anything else -- ``page=0``, ``page=abc``, ``page_size=1000``, or a page past the
  last one -- is a client mistake: **400** ``validation_error`` naming the parameter,
  never a 404 (the list exists) nor a 500. Page 1 of an empty list is an empty page.
* The response is ``{"count", "next", "previous", "results"}``; follow ``next``
  until it is ``null``.
"""

from __future__ import annotations

from django.conf import settings
from django.core.paginator import InvalidPage
from rest_framework import pagination
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.settings import api_settings

from shop.numbers import INT64_MAX


def max_page_size() -> int:
    return int(getattr(settings, "API_MAX_PAGE_SIZE", 100))


def _whole_number(raw: str, name: str, *, maximum: int | None = None) -> int:
    try:
        value = int(raw, 10)
    except (TypeError, ValueError):
        raise ValidationError({name: [_err(f"must be a whole number, not {raw[:40]!r}", "invalid")]}) from None
    if value < 1:
        raise ValidationError({name: [_err("must be at least 1", "min_value")]})
    if maximum is not None and value > maximum:
        raise ValidationError({name: [_err(f"must be at most {maximum}", "max_value")]})
    return value


def _err(message: str, code: str):
    return ErrorDetail(message, code=code)


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    last_page_strings = ("last",)

    @property
    def max_page_size(self) -> int:  # read at request time, so settings overrides apply
        return max_page_size()

    def get_page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return min(api_settings.PAGE_SIZE or 20, self.max_page_size)
        return _whole_number(raw, self.page_size_query_param, maximum=self.max_page_size)

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        page_size = self.get_page_size(request)
        raw = request.query_params.get(self.page_query_param) or "1"
        paginator = self.django_paginator_class(queryset, page_size)
        number = paginator.num_pages if raw in self.last_page_strings else _whole_number(raw, self.page_query_param)
        try:
            self.page = paginator.page(number)
        except InvalidPage:
            raise ValidationError(
                {
                    self.page_query_param: [
                        _err(f"page {number} is past the last page ({paginator.num_pages})", "out_of_range")
                    ]
                }
            ) from None
        if paginator.num_pages > 1 and self.template is not None:
            self.display_page_controls = True
        return list(self.page)

    def get_schema_operation_parameters(self, view):
        return [
            {
                "name": self.page_query_param,
                "required": False,
                "in": "query",
                "description": "Page number, from 1 (or `last`). A page past the last one is a 400.",
                # the edge refuses whole numbers outside 64 bits (shop.rest.middleware): say so
                "schema": {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Results per page, 1 to {self.max_page_size} (default {api_settings.PAGE_SIZE}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            },
        ]
