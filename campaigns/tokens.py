"""Signed tokens in tracking links (django.core.signing, keyed by SECRET_KEY).

Each kind of link has its own salt, so a token of one kind is refused by the others.
A token names a delivery and, for clicks, either a product (the redirect goes to that
product's page on this site) or a path on this site. Nothing else is trusted from a
URL: where a click leads is computed from the product, and a path is checked against
this site again before redirecting.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.urls import NoReverseMatch, reverse
from django.utils.http import url_has_allowed_host_and_scheme

SALT_OPEN = "campaigns.open.v1"
SALT_CLICK = "campaigns.click.v1"
SALT_UNSUBSCRIBE = "campaigns.unsubscribe.v1"


class BadToken(ValueError):
    """A token that is malformed, forged, tampered with or of the wrong kind."""


def _signer(salt: str) -> signing.Signer:
    return signing.Signer(salt=salt, algorithm="sha256")


def open_token(delivery_id: int) -> str:
    return _signer(SALT_OPEN).sign(str(int(delivery_id)))


def unsubscribe_token(delivery_id: int) -> str:
    return _signer(SALT_UNSUBSCRIBE).sign(str(int(delivery_id)))


def click_token(delivery_id: int, *, product_id: int | None = None, path: str | None = None) -> str:
    if (product_id is None) == (path is None):
        raise ValueError("a click token names either a product or a path")
    payload: dict = {"d": int(delivery_id)}
    if product_id is not None:
        payload["p"] = int(product_id)
    else:
        if not is_local_path(path):
            raise ValueError(f"not a path on this site: {path!r}")
        payload["u"] = path
    return _signer(SALT_CLICK).sign_object(payload, compress=False)


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


def _reverse(name: str, **kwargs) -> str | None:
    try:
        return reverse(name, kwargs=kwargs or None)
    except NoReverseMatch:
        return None


def product_path(*, product_id: int, slug: str) -> str:
    """The product's page on the store (the home page if the store has none)."""
    return _reverse("shop:product", slug=slug) or _reverse("shop:home") or "/"


def product_image_url(*, product_id: int, image_url: str = "") -> str:
    """Absolute image URL: the product's own, else the store's generated placeholder,
    else "" (templates then show a text block instead of an image)."""
    if image_url:
        return image_url if image_url.startswith(("http://", "https://")) else absolute(image_url)
    path = _reverse("shop:product_image", pk=product_id)
    return absolute(path) if path else ""


def open_url(delivery_id: int) -> str:
    return absolute(reverse("campaigns:open", kwargs={"token": open_token(delivery_id)}))


def click_url(delivery_id: int, *, product_id: int | None = None, path: str | None = None) -> str:
    token = click_token(delivery_id, product_id=product_id, path=path)
    return absolute(reverse("campaigns:click", kwargs={"token": token}))


def unsubscribe_url(delivery_id: int) -> str:
    return absolute(reverse("campaigns:unsubscribe", kwargs={"token": unsubscribe_token(delivery_id)}))


def preferences_url() -> str:
    path = _reverse("shop:preferences")
    return absolute(path) if path else ""


def home_path() -> str:
    return _reverse("shop:home") or "/"
