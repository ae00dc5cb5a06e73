"""THE parser of whole numbers that come from outside (query strings, forms, path
segments, API fields): ASCII digits only, within the bounds of a 64-bit column.

``int()`` alone accepts what no column can hold (``10**30``) and digits of other scripts
("١٢") that the database would refuse in a raw comparison; every edge that turns text
into a number for a query goes through ``int_parse`` (or ``shop.rest.fields.IntegerField``).
Pure: no Django.
"""

from __future__ import annotations

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
ID_MAX = INT64_MAX
MAX_DIGITS = 20  # more cannot be a 64-bit number; refused before int() does any work


def int_parse(raw: object, *, minimum: int = INT64_MIN, maximum: int = INT64_MAX) -> int | None:
    """``raw`` as an int within ``[minimum, maximum]``, or None when it is not one
    (not a whole number in ASCII digits, or out of bounds)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        value = raw
    else:
        text = str(raw).strip() if raw is not None else ""
        sign = text[:1] in ("-", "+")
        digits = text[1:] if sign else text
        if not digits or not digits.isascii() or not digits.isdigit() or len(digits) > MAX_DIGITS:
            return None
        value = int(text, 10)
    return value if minimum <= value <= maximum else None
