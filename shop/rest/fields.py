"""Serializer fields every API input uses for whole numbers.

``IntegerField`` is DRF's, bounded by default to what a 64-bit column holds, and
refusing digits other than ASCII ones (as ``shop.numbers.int_parse`` does): a client's
``10**30`` or "١٢" is a 400 naming the field, never a database error.
"""

from __future__ import annotations

from rest_framework import serializers

from shop.numbers import INT64_MAX, INT64_MIN


class IntegerField(serializers.IntegerField):
    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", INT64_MIN)
        kwargs.setdefault("max_value", INT64_MAX)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str) and not data.isascii():
            self.fail("invalid")
        return super().to_internal_value(data)
