"""Template helpers of the storefront: prices and product pictures."""

from __future__ import annotations

import re
from decimal import Decimal
from functools import cache

from django import template
from django.urls import get_script_prefix, reverse

register = template.Library()

SYMBOLS = {"GBP": "£", "EUR": "€", "USD": "$"}


@register.filter
def money(amount, currency: str = "GBP") -> str:
    """``9.5|money:"GBP"`` -> "£9.50"; an unknown currency is written after the amount."""
    if amount in (None, ""):
        return ""
    value = Decimal(str(amount)).quantize(Decimal("0.01"))
    text = f"{value:,.2f}"
    symbol = SYMBOLS.get(currency or "GBP")
    return f"{symbol}{text}" if symbol else f"{text} {currency}"


@cache
def _around(name: str, prefix: str) -> tuple[str, str]:
    """What a route's URL has before and after its one argument (reversed once per
    script prefix: pages link dozens of products, and ``reverse`` is not free)."""
    marker = "0"
    url = reverse(name, args=[marker])
    head, _, tail = url.rpartition(marker)
    return head, tail


@register.filter
def product_url(product) -> str:
    head, tail = _around("shop:product", get_script_prefix())
    return f"{head}{product.slug}{tail}"


@register.filter
def image_url(product) -> str:
    """The product's picture: its own image if it has one, else the generated one."""
    if product.image_url:
        return product.image_url
    head, tail = _around("shop:product_image", get_script_prefix())
    return f"{head}{product.pk}{tail}"


_SMALL = {"a", "an", "and", "as", "at", "for", "in", "of", "on", "or", "the", "to", "with"}
_ALPHA = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


def _title_word(word: str, first: bool) -> str:
    if any(ch.isdigit() for ch in word):
        return word  # sizes and codes: "12PC", "3D", "20CM"
    lower = word.lower()
    if not first and lower in _SMALL:
        return lower
    return _ALPHA.sub(lambda m: m.group(0)[0].upper() + m.group(0)[1:].lower(), word)


@register.filter
def display_name(name: str) -> str:
    """Catalogue names are often SHOUTED ("WHITE HANGING HEART T-LIGHT HOLDER"): show
    them in title case ("White Hanging Heart T-Light Holder"); others stay as written."""
    if not name or not name.isupper():
        return name or ""
    return " ".join(_title_word(w, i == 0) for i, w in enumerate(name.split()))


def _shouting(token: str) -> bool:
    letters = [ch for ch in token if ch.isalpha()]
    return bool(letters) and all(ch.isupper() for ch in letters)


@register.filter
def display_text(text: str) -> str:
    """Soften SHOUTED catalogue names inside a sentence ("Because you viewed WHITE
    HANGING HEART" -> "Because you viewed White Hanging Heart")."""
    if not text:
        return ""
    tokens = text.split(" ")
    out: list[str] = []
    i = 0
    while i < len(tokens):
        if _shouting(tokens[i]):
            j = i
            while j < len(tokens) and (_shouting(tokens[j]) or (tokens[j] and tokens[j].isdigit())):
                j += 1
            run = " ".join(tokens[i:j])
            if sum(ch.isalpha() for ch in run) >= 3:
                run = display_name(run)
            out.append(run)
            i = j
        else:
            out.append(tokens[i])
            i += 1
    return " ".join(out)
