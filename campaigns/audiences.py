"""A segment as a custom-audience file for ad platforms (Meta Custom Audiences,
Google Ads Customer Match): consenting customers only, each identifier normalised
the way the platform specifies and SHA-256 hashed, so no address leaves in clear.

Normalisation, as the platforms document it:
- **Meta**: trim, lower-case ("Normalize ... trim leading and trailing whitespace,
  convert all characters to lowercase"); phone numbers digits only, with the country
  code, no "+" and no leading zeros.
- **Google**: trim, lower-case, and for gmail.com / googlemail.com addresses remove
  the periods before the "@" (Customer Match's own rule); phone numbers in E.164
  ("+" and country code).
No other rewriting (no "+tag" stripping): neither platform asks for it.

Who is in the file: the segment's members with marketing consent, an active
account and an address that is not suppressed (unsubscribed, bounced,
complained) -- the same filter as a campaign's audience.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

from .lifecycle import not_suppressed
from .models import Segment
from .segments import segment_queryset

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_GMAIL = {"gmail.com", "googlemail.com"}


@dataclass(frozen=True)
class Platform:
    name: str
    label: str
    email_header: str
    phone_header: str


PLATFORMS = {
    "meta": Platform("meta", "Meta Custom Audiences", "email", "phone"),
    "google": Platform("google", "Google Ads Customer Match", "Email", "Phone"),
}


class AudienceError(ValueError):
    """Bad input to an export (unknown platform), with a message naming it."""


def platform_get(name: str) -> Platform:
    try:
        return PLATFORMS[name]
    except KeyError:
        raise AudienceError(f"unknown platform {name!r}: use one of {', '.join(sorted(PLATFORMS))}") from None


def email_normalise(email: str, *, platform: str) -> str | None:
    """The address as the platform hashes it, or None if it is not an address."""
    platform_get(platform)
    value = (email or "").strip().lower()
    if not _EMAIL.match(value):
        return None
    if platform == "google":
        local, _, domain = value.rpartition("@")
        if domain in _GMAIL:
            value = f"{local.replace('.', '')}@{domain}"
    return value


def phone_normalise(phone: str, *, platform: str) -> str | None:
    """An international number ("+44 20 7946 0958", "0044 20...") as the platform
    hashes it (Meta: "442079460958", Google: "+442079460958"), or None when it has no
    country code or is not 8 to 15 digits (E.164)."""
    platform_get(platform)
    value = (phone or "").strip()
    if value.startswith("00"):
        value = "+" + value[2:]
    if not value.startswith("+"):
        return None
    digits = re.sub(r"[\s().\-/]", "", value[1:])
    if not digits.isdigit() or not 8 <= len(digits) <= 15 or digits[0] == "0":
        return None
    return digits if platform == "meta" else f"+{digits}"


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def audience_queryset(*, segment: Segment):
    """The segment's members who may receive marketing: consent, active, not suppressed."""
    return segment_queryset(segment).filter(marketing_consent=True, is_active=True).filter(not_suppressed())


def audience_hashes(*, segment: Segment, platform: str) -> Iterator[str]:
    """Hashed, normalised emails of the audience, each once, in a stable order."""
    platform_get(platform)
    seen: set[str] = set()
    for email in audience_queryset(segment=segment).order_by("pk").values_list("email", flat=True).iterator(2000):
        normal = email_normalise(email, platform=platform)
        if normal is None:
            continue
        digest = sha256_hex(normal)
        if digest not in seen:
            seen.add(digest)
            yield digest


def audience_write(*, segment: Segment, platform: str, out: TextIO) -> int:
    """Write the file (CSV with the platform's header) and return how many rows.
    The store keeps no phone numbers, so the file has the email column only."""
    spec = platform_get(platform)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([spec.email_header])
    n = 0
    for digest in audience_hashes(segment=segment, platform=platform):
        writer.writerow([digest])
        n += 1
    return n


def audience_filename(*, segment: Segment, platform: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", segment.name.lower()).strip("-") or f"segment-{segment.pk}"
    return f"audience-{platform}-{slug}.csv"
