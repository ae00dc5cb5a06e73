"""Reads of the campaigns app: progress, reports (funnel, revenue, uplift)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.db.models import Count, DateTimeField, Exists, ExpressionWrapper, OuterRef, Q, Sum, Value

from recommendations.engine.statistics import Uplift, two_proportion_uplift
from shop.models import CartItem, Order, OrderLine, Product

from . import products, social
from .models import Campaign, Conversion, Delivery
from .rendering import email_compile, email_context, email_render

S = Delivery.Status


def campaign_progress(*, campaign: Campaign) -> dict:
    """Counts of the campaign's deliveries by state (one query), for live status."""
    counts = dict(Delivery.objects.filter(campaign=campaign).values_list("status").annotate(n=Count("pk")))
    total = sum(counts.values())
    done = total - counts.get(S.PENDING, 0) - counts.get(S.SENDING, 0)
    return {
        "status": campaign.status,
        "status_display": campaign.get_status_display(),
        "note": campaign.status_note,
        "audience": total,
        "done": done,
        "percent": round(100 * done / total, 1) if total else 0.0,
        **{status: counts.get(status, 0) for status in S.values},
    }


@dataclass
class GroupReport:
    label: str
    variant_id: int | None
    is_holdout: bool
    audience: int = 0
    sent: int = 0
    withheld: int = 0
    skipped: int = 0
    failed: int = 0
    open: int = 0  # pending or sending
    opened: int = 0
    clicked: int = 0
    converted: int = 0  # deliveries with an attributed order (click, then order within the window)
    revenue: Decimal = Decimal("0.00")
    unsubscribed: int = 0
    ordered: int = 0  # reached (sent / withheld) and ordered within the window: for uplift
    uplift: Uplift | None = None
    compared_with: str = ""

    @property
    def reached(self) -> int:
        """Sent, or for the holdout: eligible at send time and withheld."""
        return self.withheld if self.is_holdout else self.sent

    @property
    def order_rate(self) -> float:
        return self.ordered / self.reached if self.reached else 0.0

    def rate(self, name: str) -> float:
        return getattr(self, name) / self.sent if self.sent else 0.0


@dataclass
class CampaignReport:
    campaign: Campaign
    groups: list[GroupReport]
    total: GroupReport
    overall_uplift: Uplift | None
    skip_reasons: dict[str, int] = field(default_factory=dict)
    # UTM-tagged visits of the store through this campaign's links (campaigns.social)
    visits: dict = field(default_factory=dict)

    @property
    def holdout(self) -> GroupReport | None:
        return next((g for g in self.groups if g.is_holdout), None)


_COUNTED = (
    "audience",
    "sent",
    "withheld",
    "skipped",
    "failed",
    "open",
    "opened",
    "clicked",
    "unsubscribed",
    "ordered",
    "converted",
)


def campaign_report(*, campaign: Campaign, confidence: float = 0.95) -> CampaignReport:
    """Funnel and revenue per variant and for the holdout, with the uplift of
    ordering within the attribution window against the holdout (or, without a
    holdout, against the first variant). Three queries whatever the audience size."""
    window = timedelta(days=campaign.attribution_window_days)
    until = ExpressionWrapper(OuterRef("processed_at") + Value(window), output_field=DateTimeField())
    ordered = Exists(
        Order.objects.exclude(status=Order.Status.CANCELLED).filter(
            user=OuterRef("user"), placed_at__gte=OuterRef("processed_at"), placed_at__lt=until
        )
    )
    reached = Q(status=S.SENT) | Q(status=S.WITHHELD)
    rows = (
        Delivery.objects.filter(campaign=campaign)
        .values("variant_id", "is_holdout")
        .order_by()
        .annotate(
            audience=Count("pk"),
            sent=Count("pk", filter=Q(status=S.SENT)),
            withheld=Count("pk", filter=Q(status=S.WITHHELD)),
            skipped=Count("pk", filter=Q(status=S.SKIPPED)),
            failed=Count("pk", filter=Q(status=S.FAILED)),
            open=Count("pk", filter=Q(status__in=Delivery.OPEN_STATUSES)),
            opened=Count("pk", filter=Q(opened_at__isnull=False)),
            clicked=Count("pk", filter=Q(clicked_at__isnull=False)),
            unsubscribed=Count("pk", filter=Q(unsubscribed_at__isnull=False)),
            ordered=Count("pk", filter=reached & Q(ordered)),
        )
    )
    conversions = {
        (r["delivery__variant_id"], r["delivery__is_holdout"]): r
        for r in Conversion.objects.filter(delivery__campaign=campaign)
        .values("delivery__variant_id", "delivery__is_holdout")
        .order_by()
        .annotate(converted=Count("delivery", distinct=True), revenue=Sum("revenue"))
    }
    names = dict(campaign.variants.values_list("pk", "name"))
    groups: dict[tuple, GroupReport] = {}
    for variant_id, name in sorted(names.items(), key=lambda kv: kv[1]):
        groups[(variant_id, False)] = GroupReport(label=f"Variant {name}", variant_id=variant_id, is_holdout=False)
    if campaign.holdout_percent:
        groups[(None, True)] = GroupReport(label="Holdout", variant_id=None, is_holdout=True)
    for r in rows:
        key = (r["variant_id"], r["is_holdout"])
        group = groups.setdefault(
            key,
            GroupReport(
                label="Holdout" if r["is_holdout"] else f"Variant {names.get(r['variant_id'], '?')}",
                variant_id=r["variant_id"],
                is_holdout=r["is_holdout"],
            ),
        )
        for name in _COUNTED:
            if name in r:
                setattr(group, name, r[name])
    for key, conv in conversions.items():
        if key in groups:
            groups[key].converted = conv["converted"]
            groups[key].revenue = Decimal(conv["revenue"] or 0).quantize(Decimal("0.01"))
    ordered_groups = [g for k, g in groups.items() if not k[1]] + [g for k, g in groups.items() if k[1]]
    total = GroupReport(label="All", variant_id=None, is_holdout=False)
    for g in ordered_groups:
        for name in _COUNTED:
            setattr(total, name, getattr(total, name) + getattr(g, name))
        total.revenue += g.revenue
    holdout = groups.get((None, True))
    treated = [g for g in ordered_groups if not g.is_holdout]
    overall = None
    if holdout is not None and holdout.reached and treated:
        n_t = sum(g.sent for g in treated)
        x_t = sum(g.ordered for g in treated)
        if n_t:
            overall = two_proportion_uplift(
                x_treated=x_t,
                n_treated=n_t,
                x_control=holdout.ordered,
                n_control=holdout.reached,
                confidence=confidence,
            )
        for g in treated:
            if g.sent:
                g.uplift = two_proportion_uplift(
                    x_treated=g.ordered,
                    n_treated=g.sent,
                    x_control=holdout.ordered,
                    n_control=holdout.reached,
                    confidence=confidence,
                )
                g.compared_with = "holdout"
    elif len(treated) > 1 and treated[0].sent:
        base = treated[0]
        for g in treated[1:]:
            if g.sent:
                g.uplift = two_proportion_uplift(
                    x_treated=g.ordered,
                    n_treated=g.sent,
                    x_control=base.ordered,
                    n_control=base.sent,
                    confidence=confidence,
                )
                g.compared_with = base.label
    skip_reasons = dict(
        Delivery.objects.filter(campaign=campaign, status=S.SKIPPED)
        .values_list("skip_reason")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return CampaignReport(
        campaign=campaign,
        groups=ordered_groups,
        total=total,
        overall_uplift=overall,
        skip_reasons=skip_reasons,
        visits=social.campaign_visits(campaign_id=campaign.pk),
    )


def report_as_dict(report: CampaignReport) -> dict:
    def group(g: GroupReport) -> dict:
        return {
            "label": g.label,
            "variant_id": g.variant_id,
            "is_holdout": g.is_holdout,
            **{name: getattr(g, name) for name in _COUNTED},
            "revenue": str(g.revenue),
            "reached": g.reached,
            "order_rate": round(g.order_rate, 6),
            "uplift": g.uplift.as_dict() if g.uplift else None,
            "compared_with": g.compared_with,
        }

    return {
        "campaign": report.campaign.pk,
        "status": report.campaign.status,
        "attribution_window_days": report.campaign.attribution_window_days,
        "groups": [group(g) for g in report.groups],
        "total": group(report.total),
        "overall_uplift": report.overall_uplift.as_dict() if report.overall_uplift else None,
        "skip_reasons": report.skip_reasons,
        "visits": report.visits,
    }


# --- previews -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class EmailPreview:
    subject: str
    text: str
    html: str
    products: list[dict]
    strategy: str
    customer_email: str


def trigger_context_for_preview(*, user, kind: str) -> dict:
    """What a triggered email would show next to the picks: the customer's current
    cart (abandoned cart) or last order (post-purchase)."""
    if kind == Campaign.Kind.ABANDONED_CART:
        ids = list(CartItem.objects.filter(cart__user=user).values_list("product_id", flat=True))
        return {"cart_id": None, "product_ids": ids} if ids else {}
    if kind == Campaign.Kind.POST_PURCHASE:
        order = Order.objects.filter(user=user).exclude(status=Order.Status.CANCELLED).order_by("-placed_at").first()
        if order is None:
            return {}
        ids = list(OrderLine.objects.filter(order=order).values_list("product_id", flat=True))
        return {
            "order_id": order.pk,
            "order_number": str(order.number),
            "order_total": str(order.total),
            "currency": order.currency,
            "product_ids": ids,
        }
    return {}


def email_preview(*, template, user, campaign: Campaign | None = None, variant=None) -> EmailPreview:
    """Render ``template`` for ``user`` with their real recommendations now (context
    "email", no impression recorded, links untracked). Raises `TemplateInvalid`."""
    kind = campaign.kind if campaign else Campaign.Kind.ONE_OFF
    strategy = (
        (variant.strategy if variant and variant.strategy else "")
        or (campaign.strategy if campaign else "")
        or products.AUTO
    )
    if kind == Campaign.Kind.WELCOME and strategy == products.AUTO:
        strategy = "interests"
    exclusions = products.Exclusions(
        category_ids=frozenset(campaign.exclude_categories.values_list("pk", flat=True)) if campaign else frozenset(),
        exclude_purchased=campaign.exclude_purchased if campaign else True,
    )
    context_data = trigger_context_for_preview(user=user, kind=kind)
    picks, used = products.picks_for_preview(
        user=user,
        strategy=strategy,
        n=campaign.n_products if campaign else 6,
        exclusions=exclusions,
        excluded=context_data.get("product_ids", ()),
    )
    items = {
        p.pk: p for p in Product.objects.filter(pk__in=context_data.get("product_ids", ())).select_related("category")
    }
    subject = variant.subject if variant and variant.subject else template.subject
    compiled = email_compile(subject=subject, html_body=template.html_body, text_body=template.text_body)
    context = email_context(
        user={"first_name": user.first_name, "last_name": user.last_name, "email": user.email},
        products=picks,
        kind=kind,
        campaign_name=campaign.name if campaign else template.name,
        campaign_id=campaign.pk if campaign else None,
        context_data=context_data,
        items=items,
    )
    rendered = email_render(compiled, context)
    return EmailPreview(
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        products=picks,
        strategy=used,
        customer_email=user.email,
    )
