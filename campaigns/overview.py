"""The admin start page's key figures: the store's last days at a glance (orders,
revenue, the share that came through recommendation lists, emails sent, the uplift
of the campaigns that sent), each next to the same span before it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from recommendations.engine.statistics import Uplift, two_proportion_uplift
from recommendations.models import Impression
from recommendations.performance import recommendation_revenue_share
from shop.models import Interaction, Order

from .models import Campaign, Delivery
from .selectors import campaign_report


@dataclass(frozen=True)
class Span:
    """The figures of one span of days."""

    since: datetime
    until: datetime
    orders: int
    revenue: Decimal
    recommended_revenue: Decimal
    emails_sent: int
    lists_shown: int
    lists_clicked: int

    @property
    def recommended_share(self) -> float | None:
        return float(self.recommended_revenue / self.revenue) if self.revenue else None

    @property
    def ctr(self) -> float | None:
        return self.lists_clicked / self.lists_shown if self.lists_shown else None

    @property
    def recommended_percent(self) -> float | None:
        share = self.recommended_share
        return 100 * share if share is not None else None

    @property
    def ctr_percent(self) -> float | None:
        return 100 * self.ctr if self.ctr is not None else None


@dataclass(frozen=True)
class KeyFigures:
    days: int
    current: Span
    previous: Span
    uplift: Uplift | None  # ordering: sent vs holdout, campaigns that sent in the span
    uplift_campaigns: int

    @property
    def uplift_points(self) -> float | None:
        """The uplift in percentage points of the order rate."""
        return 100 * self.uplift.difference if self.uplift is not None else None

    def change(self, name: str) -> float | None:
        """Relative change of a figure from the previous span (None: nothing to compare)."""
        now, before = getattr(self.current, name), getattr(self.previous, name)
        if now is None or before is None or not before:
            return None
        return float((now - before) / before)


def _span(since: datetime, until: datetime) -> Span:
    orders = Order.objects.filter(placed_at__gte=since, placed_at__lt=until).exclude(status=Order.Status.CANCELLED)
    revenue, recommended = recommendation_revenue_share(since=since, until=until)
    lists = Impression.objects.filter(created_at__gte=since, created_at__lt=until)
    clicked = Interaction.objects.filter(
        kind=Interaction.Kind.CLICK, rec_list_id__isnull=False, occurred_at__gte=since
    ).values("rec_list_id")
    return Span(
        since=since,
        until=until,
        orders=orders.count(),
        revenue=revenue,
        recommended_revenue=recommended,
        emails_sent=Delivery.objects.filter(status=Delivery.Status.SENT, sent_at__gte=since, sent_at__lt=until).count(),
        lists_shown=lists.count(),
        lists_clicked=lists.filter(id__in=clicked).count(),
    )


def _uplift(since: datetime, until: datetime) -> tuple[Uplift | None, int]:
    """Ordering of the emailed against the holdout, pooled over the campaigns that
    sent or withheld in the span and have a holdout (their whole audience so far)."""
    campaigns = Campaign.objects.filter(
        pk__in=Delivery.objects.filter(
            Q(status=Delivery.Status.SENT) | Q(status=Delivery.Status.WITHHELD),
            processed_at__gte=since,
            processed_at__lt=until,
        ).values("campaign_id"),
        holdout_percent__gt=0,
    )
    x_t = n_t = x_c = n_c = 0
    counted = 0
    for campaign in campaigns:
        report = campaign_report(campaign=campaign)
        holdout = report.holdout
        if holdout is None or not holdout.reached:
            continue
        counted += 1
        for group in report.groups:
            if group.is_holdout:
                x_c += group.ordered
                n_c += group.reached
            else:
                x_t += group.ordered
                n_t += group.sent
    if not (n_t and n_c):
        return None, counted
    return two_proportion_uplift(x_treated=x_t, n_treated=n_t, x_control=x_c, n_control=n_c), counted


def key_figures(*, days: int = 7, now: datetime | None = None) -> KeyFigures:
    """The last ``days`` days against the ``days`` before them."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 366:
        raise ValueError(f"days must be a whole number from 1 to 366, got {days!r}")
    now = now or timezone.now()
    since = now - timedelta(days=days)
    uplift, counted = _uplift(since, now)
    return KeyFigures(
        days=days,
        current=_span(since, now),
        previous=_span(since - timedelta(days=days), since),
        uplift=uplift,
        uplift_campaigns=counted,
    )
