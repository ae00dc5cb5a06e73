"""Signed tokens in tracking links (django.core.signing, keyed by SECRET_KEY).

Each kind of link has its own salt, so a token of one kind is refused by the others.
A token names a delivery and, for clicks, either a product (the redirect goes to that
product's page on this site) or a path on this site. Nothing else is trusted from a
URL: where a click leads is computed from the product, and a path is checked against
this site again before redirecting.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.urls import NoReverseMatch, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from shop import links

SALT_OPEN = "campaigns.open.v1"
SALT_CLICK = "campaigns.click.v1"
SALT_UNSUBSCRIBE = "campaigns.unsubscribe.v1"


class BadToken(ValueError):
    """A token that is malformed, forged, tampered with or of the wrong kind."""


def _signer(salt: str) -> signing.Signer:
    """Verification: Django's signer (it also accepts SECRET_KEY_FALLBACKS)."""
    return signing.Signer(salt=salt, algorithm="sha256")


@lru_cache(maxsize=16)
def _mac(salt: str, secret: str) -> hmac.HMAC:
    # Exactly django.utils.crypto.salted_hmac(salt + "signer", ..., secret, "sha256"),
    # with the derived key computed once instead of per token.
    key = hashlib.sha256(f"{salt}signer".encode() + secret.encode()).digest()
    return hmac.new(key, digestmod=hashlib.sha256)


def _sign(value: str, salt: str) -> str:
    """What ``_signer(salt).sign(value)`` returns, several times faster (an email
    carries a dozen signed links)."""
    mac = _mac(salt, settings.SECRET_KEY).copy()
    mac.update(value.encode())
    return f"{value}:{base64.urlsafe_b64encode(mac.digest()).rstrip(b'=').decode()}"


def _sign_object(obj, salt: str) -> str:
    """What ``_signer(salt).sign_object(obj)`` returns (JSON, base64, uncompressed)."""
    return _sign_json(json.dumps(obj, separators=(",", ":")), salt)


def _sign_json(data: str, salt: str) -> str:
    return _sign(base64.urlsafe_b64encode(data.encode("latin-1")).rstrip(b"=").decode(), salt)


def open_token(delivery_id: int) -> str:
    return _sign(str(int(delivery_id)), SALT_OPEN)


def unsubscribe_token(delivery_id: int) -> str:
    return _sign(str(int(delivery_id)), SALT_UNSUBSCRIBE)


def click_token(delivery_id: int, *, product_id: int | None = None, path: str | None = None) -> str:
    if (product_id is None) == (path is None):
        raise ValueError("a click token names either a product or a path")
    if product_id is not None:
        # json.dumps({"d": ..., "p": ...}) written out: a dozen links per email
        return _sign_json(f'{{"d":{int(delivery_id)},"p":{int(product_id)}}}', SALT_CLICK)
    if not is_local_path(path):
        raise ValueError(f"not a path on this site: {path!r}")
    return _sign_object({"d": int(delivery_id), "u": path}, SALT_CLICK)


def _read_id(token: str, salt: str) -> int:
    try:
        value = _signer(salt).unsign(token)
    except signing.BadSignature as exc:
        raise BadToken("bad signature") from exc
    if not value.isdigit():
        raise BadToken("malformed token")
    return int(value)


def read_open_token(token: str) -> int:
    return _read_id(token, SALT_OPEN)


def read_unsubscribe_token(token: str) -> int:
    return _read_id(token, SALT_UNSUBSCRIBE)


@dataclass(frozen=True)
class Click:
    delivery_id: int
    product_id: int | None
    path: str | None


def read_click_token(token: str) -> Click:
    try:
        payload = _signer(SALT_CLICK).unsign_object(token)
    except (signing.BadSignature, ValueError, UnicodeDecodeError) as exc:
        raise BadToken("bad signature") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("d"), int):
        raise BadToken("malformed token")
    product_id, path = payload.get("p"), payload.get("u")
    if (product_id is None) == (path is None):
        raise BadToken("malformed token")
    if product_id is not None and not isinstance(product_id, int):
        raise BadToken("malformed token")
    if path is not None and not is_local_path(path):
        raise BadToken("redirect target is not on this site")
    return Click(delivery_id=payload["d"], product_id=product_id, path=path)


# --- where links lead ---------------------------------------------------------------------
def site_host() -> str:
    return urlsplit(settings.SITE_URL).netloc


def is_local_path(path) -> bool:
    """A path on this site: starts with one slash, no scheme, no host, no backslash
    tricks (``//evil``, ``/\\evil``, ``https://evil``)."""
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return False
    return url_has_allowed_host_and_scheme(path, allowed_hosts={site_host()}, require_https=False)


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


_MARK = "0x0TOKEN0x0"


@lru_cache(maxsize=64)
def _pattern(name: str, arg: str) -> str | None:
    """The path of route ``name`` with a marker where its one argument goes (reverse
    costs ~0.1 ms; an email has a dozen links). None if the store has no such route."""
    try:
        return reverse(name, kwargs={arg: _MARK})
    except NoReverseMatch:
        try:  # routes whose argument is an int
            return reverse(name, kwargs={arg: 987654321}).replace("987654321", _MARK)
        except NoReverseMatch:
            return None


@lru_cache(maxsize=64)
def _path(name: str) -> str | None:
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def _reverse(name: str, **kwargs) -> str | None:
    """``reverse`` for the few routes emails link to, memoised (routes do not change
    while the process runs)."""
    if not kwargs:
        return _path(name)
    if len(kwargs) == 1:
        ((arg, value),) = kwargs.items()
        pattern = _pattern(name, arg)
        return pattern.replace(_MARK, str(value)) if pattern else None
    try:
        return reverse(name, kwargs=kwargs)
    except NoReverseMatch:
        return None


def product_path(*, product_id: int, slug: str) -> str:
    """The product's page on the store (the home page if the store has none)."""
    return _reverse("shop:product", slug=slug) or _reverse("shop:home") or "/"


def product_image_url(*, product_id: int, image_url: str = "") -> str:
    """Absolute image URL: the product's own, else the store's generated placeholder as
    a PNG (mail clients do not show SVG), else "" (templates then show a text block)."""
    return links.product_image_url(product_id=product_id, image_url=image_url, png=True)


def open_url(delivery_id: int) -> str:
    return absolute(_reverse("campaigns:open", token=open_token(delivery_id)))


def click_url(delivery_id: int, *, product_id: int | None = None, path: str | None = None) -> str:
    token = click_token(delivery_id, product_id=product_id, path=path)
    return absolute(_reverse("campaigns:click", token=token))


def unsubscribe_url(delivery_id: int) -> str:
    return absolute(_reverse("campaigns:unsubscribe", token=unsubscribe_token(delivery_id)))


def preferences_url() -> str:
    path = _reverse("shop:preferences")
    return absolute(path) if path else ""


def home_path() -> str:
    return _reverse("shop:home") or "/"
