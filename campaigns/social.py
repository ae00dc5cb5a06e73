"""Social and tagged traffic: shared links that credit the customer who shared them,
and UTM-tagged visits (our emails' links, shares, ads) attributed to campaigns.

A shared link carries ``ref=<signed customer id>`` (django.core.signing, a salt of its
own): a forged or altered reference is ignored. A visit through it is a `ShareVisit`;
when the visitor logs in or signs up in that session the visit learns who they are
(``signed_up`` when their account is newer than the visit), and their orders within
``SHARE_ATTRIBUTION_DAYS`` go to the sharer of the last shared visit before the order
(`ShareConversion`, one per order). Nobody is credited for their own visits or orders.

A visit with ``utm_source`` is a `TaggedVisit`; ``utm_campaign`` ending in ``-c<id>``
names one of our campaigns (every email link says so: `with_utm`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.text import slugify

from shop.models import Order, User

from . import conf
from .attribution import order_revenue
from .models import Campaign, ShareConversion, ShareVisit, TaggedVisit

logger = logging.getLogger(__name__)

SALT_SHARE = "campaigns.share.v1"
SHARE_PARAM = "ref"
UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
_UTM_MAX = 100
_CAMPAIGN_ID = re.compile(r"-c(\d{1,18})$")


# --- the signed reference to the sharer ------------------------------------------------------
def _signer() -> signing.Signer:
    return signing.Signer(salt=SALT_SHARE, algorithm="sha256")


def share_token(*, user_id: int) -> str:
    """The reference a customer's shared links carry: their id, signed."""
    return _signer().sign(str(int(user_id)))


def share_token_read(token: str) -> int | None:
    """The sharer's id, or None for a forged, altered or malformed reference."""
    try:
        value = _signer().unsign(token)
    except signing.BadSignature:
        return None
    return int(value) if value.isdigit() and len(value) <= 18 else None


# --- UTM ---------------------------------------------------------------------------------------
def utm_campaign_value(*, campaign_id: int | None, name: str) -> str:
    """``utm_campaign`` of a campaign's links: readable, and ending in its id
    ("spring-sale-c42") so visits find the campaign again."""
    slug = slugify(name)[:60] or "campaign"
    return f"{slug}-c{campaign_id}" if campaign_id else slug


def campaign_id_from_utm(value: str) -> int | None:
    match = _CAMPAIGN_ID.search(value or "")
    return int(match.group(1)) if match else None


def utm_query(*, source: str, medium: str, campaign: str, content: str = "") -> str:
    params = {"utm_source": source, "utm_medium": medium, "utm_campaign": campaign}
    if content:
        params["utm_content"] = content
    return urlencode(params)


def with_query(url: str, query: str) -> str:
    """``url`` with ``query`` appended (after its own query, if any)."""
    if not query or not url:
        return url
    base, _, fragment = url.partition("#")
    joined = f"{base}{'&' if '?' in base else '?'}{query}"
    return f"{joined}#{fragment}" if fragment else joined


def with_utm(url: str, *, campaign: str, content: str = "", source: str = "affinity", medium: str = "email") -> str:
    return with_query(url, utm_query(source=source, medium=medium, campaign=campaign, content=content))


def utm_from(params) -> dict[str, str]:
    """The UTM parameters of a query (a QueryDict or a dict), trimmed and bounded."""
    return {k: str(params.get(k, "")).strip()[:_UTM_MAX] for k in UTM_KEYS if str(params.get(k, "")).strip()}


# --- visits ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VisitRecord:
    share_visit_id: int | None
    tagged_visit_id: int | None


def visit_record(
    *,
    share_ref: str,
    utm: dict[str, str],
    path: str,
    session_key: str,
    user: User | None,
    product_id: int | None = None,
) -> VisitRecord:
    """Record a visit that came through a shared link and/or with UTM parameters."""
    now = timezone.now()
    share_id = tagged_id = None
    sharer_id = share_token_read(share_ref) if share_ref else None
    if share_ref and sharer_id is None:
        logger.info("shared link with an invalid reference ignored (path %s)", path[:200])
    if sharer_id is not None and (user is None or user.pk != sharer_id):
        if User.objects.filter(pk=sharer_id, is_active=True).exists():
            share_id = ShareVisit.objects.create(
                sharer_id=sharer_id,
                channel=utm.get("utm_source", "")[:40],
                product_id=product_id,
                path=path[:500],
                session_key=session_key,
                visitor=user,
                created_at=now,
            ).pk
    if utm.get("utm_source"):
        campaign_id = campaign_id_from_utm(utm.get("utm_campaign", ""))
        if campaign_id is not None and not Campaign.objects.filter(pk=campaign_id).exists():
            campaign_id = None
        tagged_id = TaggedVisit.objects.create(
            **{k: utm.get(k, "") for k in UTM_KEYS},
            campaign_id=campaign_id,
            path=path[:500],
            session_key=session_key,
            user=user,
            created_at=now,
        ).pk
    return VisitRecord(share_visit_id=share_id, tagged_visit_id=tagged_id)


def visits_claim(*, user: User, share_visit_ids: list[int], tagged_visit_ids: list[int]) -> int:
    """A visitor logged in (or signed up) in the session of these visits: they are
    theirs now. A shared visit counts as a sign-up when the account is newer than it.
    Returns how many shared visits were claimed."""
    claimed = 0
    if share_visit_ids:
        visits = ShareVisit.objects.filter(pk__in=share_visit_ids, visitor__isnull=True).exclude(sharer=user)
        claimed += visits.filter(created_at__lte=user.date_joined).update(visitor=user, signed_up=True)
        claimed += visits.filter(created_at__gt=user.date_joined).update(visitor=user)
    if tagged_visit_ids:
        TaggedVisit.objects.filter(pk__in=tagged_visit_ids, user__isnull=True).update(user=user)
    return claimed


def order_attribute(*, order_id: int) -> ShareConversion | None:
    """Credit an order to the sharer of its customer's last shared visit before it
    (within SHARE_ATTRIBUTION_DAYS). Idempotent: an order is credited at most once."""
    order = Order.objects.filter(pk=order_id, user__isnull=False).exclude(status=Order.Status.CANCELLED).first()
    if order is None:
        return None
    window = timedelta(days=conf.get("SHARE_ATTRIBUTION_DAYS"))
    visit = (
        ShareVisit.objects.filter(
            visitor_id=order.user_id, created_at__lte=order.placed_at, created_at__gte=order.placed_at - window
        )
        .exclude(sharer_id=order.user_id)
        .order_by("-created_at", "-id")
        .first()
    )
    if visit is None or ShareConversion.objects.filter(order_id=order_id).exists():
        return None
    revenue = order_revenue([order.pk]).get(order.pk, Decimal("0"))
    try:
        with transaction.atomic():
            return ShareConversion.objects.create(
                visit=visit, sharer_id=visit.sharer_id, order=order, revenue=revenue, ordered_at=order.placed_at
            )
    except IntegrityError:  # credited meanwhile by another process
        return None


# --- reports -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SharerRow:
    sharer_id: int
    email: str
    visits: int
    visitors: int
    signups: int
    orders: int
    revenue: Decimal


def share_report(*, since: datetime | None = None, limit: int = 100) -> list[SharerRow]:
    """Per sharer: visits through their links, distinct visitors (sessions), sign-ups,
    orders credited and their revenue; most revenue first."""
    visits = ShareVisit.objects.all()
    if since is not None:
        visits = visits.filter(created_at__gte=since)
    per_sharer = {
        row["sharer_id"]: row
        for row in visits.values("sharer_id", "sharer__email").annotate(
            n=Count("id"),
            sessions=Count("session_key", distinct=True),
            signups=Count("id", filter=Q(signed_up=True)),
        )
    }
    conversions = ShareConversion.objects.all()
    if since is not None:
        conversions = conversions.filter(ordered_at__gte=since)
    money = {
        row["sharer_id"]: row
        for row in conversions.values("sharer_id").annotate(orders=Count("id"), revenue=Sum("revenue"))
    }
    emails = dict(User.objects.filter(pk__in=set(money) - set(per_sharer)).values_list("pk", "email"))
    rows = []
    for sharer_id in set(per_sharer) | set(money):
        v: Mapping[str, Any] = per_sharer.get(sharer_id) or {}
        m: Mapping[str, Any] = money.get(sharer_id) or {}
        rows.append(
            SharerRow(
                sharer_id=sharer_id,
                email=v.get("sharer__email") or emails.get(sharer_id, ""),
                visits=v.get("n", 0),
                visitors=v.get("sessions", 0),
                signups=v.get("signups", 0),
                orders=m.get("orders", 0),
                revenue=m.get("revenue") or Decimal("0"),
            )
        )
    rows.sort(key=lambda r: (-r.revenue, -r.orders, -r.signups, -r.visits, r.sharer_id))
    return rows[:limit]


def campaign_visits(*, campaign_id: int) -> dict:
    """UTM-tagged visits of a campaign: total, distinct visitors, and per link
    (``utm_content``), for the campaign report."""
    visits = TaggedVisit.objects.filter(campaign_id=campaign_id)
    totals = visits.aggregate(n=Count("id"), sessions=Count("session_key", distinct=True))
    by_link = list(visits.values("utm_content").annotate(n=Count("id")).order_by("-n", "utm_content")[:20])
    return {"visits": totals["n"], "visitors": totals["sessions"], "by_link": by_link}
