"""Triggered flows: the events that start an email (a cart left alone, a sign-up, an
order, a customer gone quiet, products viewed and left, a product back in stock, a
price drop) and one delivery per campaign, customer and event.

Two paths find the same events with the same queries: the real-time one
(`triggers_react`, queued by `campaigns.receivers` when a store event commits:
scoped to that event's customers or product changes, so the email leaves within
seconds) and the periodic sweep (`campaigns.tick`: everything in the look-back, the
safety net for a lost message, a worker that was down, and events no store action
fires, such as win-back). The unique constraint on (campaign, customer, trigger key)
makes the two, and any repeat, harmless."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Exists, F, Max, OuterRef, Q
from django.utils import timezone

from shop.models import Cart, CartItem, CustomerPrediction, Interaction, Order, OrderLine, Product, User
from shop.signals import ProductChange as StoreChange

from . import conf
from .lifecycle import Assigner, not_suppressed, variants_ensure
from .models import Campaign, Delivery, ProductChange
from .segments import segment_queryset

logger = logging.getLogger(__name__)
Status = Campaign.Status


@dataclass(frozen=True)
class TriggerEvent:
    user_id: int
    key: str
    context: dict


def _trigger_window(campaign: Campaign, now: datetime) -> tuple[datetime, datetime]:
    """Events happened in [start, end]: after the campaign started listening (and
    within the look-back), and at least the campaign's delay ago."""
    end = now - timedelta(hours=campaign.trigger_delay_hours)
    start = max(campaign.started_at or now, end - timedelta(days=conf.get("TRIGGER_LOOKBACK_DAYS")))
    return start, end


@dataclass(frozen=True)
class Scope:
    """Which events an evaluation looks at: those of these customers, or of these
    product changes (None: all; the periodic sweep)."""

    user_ids: frozenset[int] | None = None
    change_ids: frozenset[int] | None = None

    @property
    def everything(self) -> bool:
        return self.user_ids is None and self.change_ids is None


EVERYTHING = Scope()


def trigger_events(*, campaign: Campaign, now: datetime | None = None, scope: Scope = EVERYTHING) -> list[TriggerEvent]:
    """The events that are due for ``campaign`` now (handled ones included: the
    unique constraint drops them when rows are created), within ``scope``."""
    now = now or timezone.now()
    start, end = _trigger_window(campaign, now)
    finder = _FINDERS.get(campaign.kind)
    if finder is None:
        return []
    return finder(campaign, start, end, now, scope)


def _users_in(qs, scope: Scope, field: str = "user_id"):
    """``qs`` limited to the scope's customers (a product-change scope: none)."""
    if scope.everything:
        return qs
    if scope.user_ids is None:
        return qs.none()
    return qs.filter(**{f"{field}__in": scope.user_ids})


def _abandoned_cart_events(campaign: Campaign, start: datetime, end: datetime, now: datetime, scope: Scope):
    later_order = Order.objects.filter(user=OuterRef("user"), placed_at__gte=OuterRef("updated_at"))
    carts = (
        _users_in(Cart.objects.filter(user__isnull=False, updated_at__gte=start, updated_at__lte=end), scope)
        .filter(Exists(CartItem.objects.filter(cart=OuterRef("pk"))))
        .filter(~Exists(later_order))
        .values_list("pk", "user_id", "updated_at")
    )
    carts = list(carts)
    items: dict[int, list[int]] = defaultdict(list)
    for cart_id, product_id in CartItem.objects.filter(cart_id__in=[c[0] for c in carts]).values_list(
        "cart_id", "product_id"
    ):
        items[cart_id].append(product_id)
    return [
        TriggerEvent(user_id=u, key=f"cart:{c}:{int(t.timestamp())}", context={"cart_id": c, "product_ids": items[c]})
        for c, u, t in carts
    ]


def _welcome_events(campaign: Campaign, start: datetime, end: datetime, now: datetime, scope: Scope):
    users = _users_in(User.objects.filter(date_joined__gte=start, date_joined__lte=end), scope, "pk")
    return [TriggerEvent(user_id=u, key="welcome", context={}) for u in users.values_list("pk", flat=True)]


def _post_purchase_events(campaign: Campaign, start: datetime, end: datetime, now: datetime, scope: Scope):
    orders = list(
        _users_in(
            Order.objects.exclude(status=Order.Status.CANCELLED).filter(
                user__isnull=False, placed_at__gte=start, placed_at__lte=end
            ),
            scope,
        ).values_list("pk", "user_id", "number", "total", "currency")
    )
    lines: dict[int, list[int]] = defaultdict(list)
    for order_id, product_id in OrderLine.objects.filter(order_id__in=[o[0] for o in orders]).values_list(
        "order_id", "product_id"
    ):
        lines[order_id].append(product_id)
    return [
        TriggerEvent(
            user_id=u,
            key=f"order:{o}",
            context={
                "order_id": o,
                "order_number": str(n),
                "order_total": str(total),
                "currency": currency,
                "product_ids": lines[o],
            },
        )
        for o, u, n, total, currency in orders
    ]


def _win_back_events(campaign: Campaign, start: datetime, end: datetime, now: datetime, scope: Scope):
    """The customer became inactive within the window; once per last order. Inactive
    is predicted where the customer has a current prediction (``shop.CustomerPrediction``
    made after their last order, with an ``inactive_at``: when their probability of being
    active falls below ``AFFINITY_PREDICTION_WINBACK_BELOW`` -- soon after a missed
    purchase for a weekly buyer, late for one who buys twice a year); otherwise it is
    the last order + the campaign's inactive days. No store event fires it: the
    periodic sweep finds it."""
    days = timedelta(days=campaign.inactive_days or 0)
    orders = Order.objects.exclude(status=Order.Status.CANCELLED).filter(user__isnull=False)
    last_orders = orders.values("user_id").annotate(last=Max("placed_at"))
    slack = timedelta(seconds=1)  # the stored last purchase time went through a float
    due: dict[int, datetime] = {}
    predicted = dict(
        _users_in(CustomerPrediction.objects.filter(inactive_at__gte=start, inactive_at__lte=end), scope).values_list(
            "user_id", "last_purchase_at"
        )
    )
    if predicted:
        for user_id, last in last_orders.filter(user_id__in=list(predicted)).values_list("user_id", "last"):
            if last <= predicted[user_id] + slack:  # no order since the prediction
                due[user_id] = last
    rows = list(
        _users_in(last_orders.filter(last__gte=start - days, last__lte=end - days), scope).values_list(
            "user_id", "last"
        )
    )
    timed = dict(
        CustomerPrediction.objects.filter(user_id__in=[u for u, _ in rows], inactive_at__isnull=False).values_list(
            "user_id", "last_purchase_at"
        )
    )
    for user_id, last in rows:
        if user_id in timed and last <= timed[user_id] + slack:
            continue  # a current prediction times this customer's win-back
        due.setdefault(user_id, last)
    return [
        TriggerEvent(user_id=u, key=f"winback:{int(t.timestamp())}", context={"last_order_at": t.isoformat()})
        for u, t in sorted(due.items())
    ]


def _browse_abandonment_events(campaign: Campaign, start: datetime, end: datetime, now: datetime, scope: Scope):
    """A customer viewed products (their last view at T, at least the campaign's delay
    ago: nothing viewed since), and in that visit (from T - ``BROWSE_VISIT_MINUTES``
    on) put nothing in a cart and ordered nothing. Once per visit: not again while
    this campaign emailed them about browsing since the visit began."""
    visit = timedelta(minutes=conf.get("BROWSE_VISIT_MINUTES"))
    views = Interaction.objects.filter(user__isnull=False, kind=Interaction.Kind.VIEW)
    later_view = views.filter(user=OuterRef("user"), occurred_at__gt=end)
    last_views = dict(
        _users_in(views.filter(occurred_at__gte=start, occurred_at__lte=end), scope)
        .filter(~Exists(later_view))
        .values("user_id")
        .annotate(last=Max("occurred_at"))
        .values_list("user_id", "last")
    )
    if not last_views:
        return []
    since = min(last_views.values()) - visit
    users = list(last_views)
    acted: dict[int, datetime] = {}  # the customer's latest cart add or order
    for user_id, at in Interaction.objects.filter(
        user_id__in=users, kind=Interaction.Kind.ADD_TO_CART, occurred_at__gte=since
    ).values_list("user_id", "occurred_at"):
        acted[user_id] = max(at, acted.get(user_id, at))
    for user_id, at in Order.objects.filter(user_id__in=users, placed_at__gte=since).values_list(
        "user_id", "placed_at"
    ):
        acted[user_id] = max(at, acted.get(user_id, at))
    emailed: dict[int, datetime] = {}
    for user_id, at in Delivery.objects.filter(campaign=campaign, user_id__in=users, created_at__gte=since).values_list(
        "user_id", "created_at"
    ):
        emailed[user_id] = max(at, emailed.get(user_id, at))
    due = {
        u: t
        for u, t in last_views.items()
        if acted.get(u, since - visit) < t - visit and emailed.get(u, since - visit) < t - visit
    }
    viewed: dict[int, list[int]] = defaultdict(list)
    for user_id, product_id, at in (
        views.filter(user_id__in=list(due), occurred_at__gte=since, occurred_at__lte=end)
        .order_by("-occurred_at", "-pk")
        .values_list("user_id", "product_id", "occurred_at")
    ):
        if at >= due[user_id] - visit and product_id not in viewed[user_id] and len(viewed[user_id]) < 6:
            viewed[user_id].append(product_id)
    return [
        TriggerEvent(
            user_id=u,
            key=f"browse:{int(t.timestamp())}",
            context={"product_ids": viewed[u], "last_viewed_at": t.isoformat()},
        )
        for u, t in due.items()
    ]


def _product_changes(kind: str, start: datetime, end: datetime, scope: Scope) -> list[ProductChange]:
    changes = ProductChange.objects.filter(kind=kind, occurred_at__gte=start, occurred_at__lte=end)
    if scope.change_ids is not None:
        changes = changes.filter(pk__in=scope.change_ids)
    elif not scope.everything:
        return []
    # Only products on sale now (a product that sold out again, or was taken off sale, sends nothing).
    return list(changes.filter(product__is_active=True).filter(_in_stock("product__")).order_by("pk"))


def _in_stock(prefix: str) -> Q:
    return Q(**{f"{prefix}stock__isnull": True}) | Q(**{f"{prefix}stock__gt": 0})


def _interested(product_id: int, kinds: tuple[int, ...], since: datetime, until: datetime) -> set[int]:
    """Customers who did one of ``kinds`` with the product in [since, until]."""
    return set(
        Interaction.objects.filter(
            product_id=product_id, kind__in=kinds, user__isnull=False, occurred_at__gte=since, occurred_at__lte=until
        )
        .values_list("user_id", flat=True)
        .distinct()
    )


def _bought(product_id: int, user_ids: set[int], since: datetime) -> set[int]:
    if not user_ids:
        return set()
    return set(
        OrderLine.objects.filter(product_id=product_id, order__user_id__in=user_ids, order__placed_at__gte=since)
        .exclude(order__status=Order.Status.CANCELLED)
        .values_list("order__user_id", flat=True)
    )


def _back_in_stock_events(campaign: Campaign, start: datetime, end: datetime, now: datetime, scope: Scope):
    """A product came back in stock: the customers who viewed or wish-listed it while
    it was out (since its last ``out_of_stock`` change; without one, within
    ``PRODUCT_INTEREST_DAYS``) and have not bought it since it came back."""
    events = []
    for change in _product_changes(ProductChange.Kind.BACK_IN_STOCK, start, end, scope):
        went_out = (
            ProductChange.objects.filter(
                product_id=change.product_id,
                kind=ProductChange.Kind.OUT_OF_STOCK,
                occurred_at__lte=change.occurred_at,
            )
            .order_by("-occurred_at", "-pk")
            .values_list("occurred_at", flat=True)
            .first()
        ) or change.occurred_at - timedelta(days=conf.get("PRODUCT_INTEREST_DAYS"))
        watchers = _interested(
            change.product_id, (Interaction.Kind.VIEW, Interaction.Kind.WISHLIST), went_out, change.occurred_at
        )
        watchers -= _bought(change.product_id, watchers, change.occurred_at)
        context = {"product_ids": [change.product_id], "change_id": change.pk}
        events += [TriggerEvent(user_id=u, key=f"restock:{change.pk}", context=context) for u in watchers]
    return events


def _price_drop_events(campaign: Campaign, start: datetime, end: datetime, now: datetime, scope: Scope):
    """A product's price dropped (by at least the campaign's ``price_drop_min_percent``,
    and the lower price still holds): the customers who viewed, carted or wish-listed it
    within ``PRODUCT_INTEREST_DAYS`` before, and have not bought it since."""
    events = []
    threshold = Decimal(campaign.price_drop_min_percent) / 100
    days = timedelta(days=conf.get("PRODUCT_INTEREST_DAYS"))
    changes = _product_changes(ProductChange.Kind.PRICE_DROP, start, end, scope)
    prices = dict(Product.objects.filter(pk__in={c.product_id for c in changes}).values_list("pk", "price"))
    for change in changes:
        before, after = change.price_before, change.price_after
        if before is None or after is None or before <= 0 or (before - after) / before < threshold:
            continue
        if prices.get(change.product_id, after) > after:  # the price went up again since
            continue
        since = change.occurred_at - days
        kinds = (Interaction.Kind.VIEW, Interaction.Kind.ADD_TO_CART, Interaction.Kind.WISHLIST)
        interested = _interested(change.product_id, kinds, since, change.occurred_at)
        interested -= _bought(change.product_id, interested, since)
        context = {
            "product_ids": [change.product_id],
            "change_id": change.pk,
            "price_before": str(before),
            "price_after": str(after),
        }
        events += [TriggerEvent(user_id=u, key=f"price:{change.pk}", context=context) for u in interested]
    return events


_FINDERS: dict[str, Callable[[Campaign, datetime, datetime, datetime, Scope], list[TriggerEvent]]] = {
    Campaign.Kind.ABANDONED_CART: _abandoned_cart_events,
    Campaign.Kind.WELCOME: _welcome_events,
    Campaign.Kind.POST_PURCHASE: _post_purchase_events,
    Campaign.Kind.WIN_BACK: _win_back_events,
    Campaign.Kind.BROWSE_ABANDONMENT: _browse_abandonment_events,
    Campaign.Kind.BACK_IN_STOCK: _back_in_stock_events,
    Campaign.Kind.PRICE_DROP: _price_drop_events,
}


def triggers_evaluate(*, campaign: Campaign, now: datetime | None = None, scope: Scope = EVERYTHING) -> int:
    """Create a delivery for every new triggering event of a running triggered
    campaign (at most once per campaign, customer and event: a database constraint),
    within ``scope`` (the real-time path: the customers or product changes of one
    store event; the periodic sweep: everything). Returns how many new deliveries
    were created; the caller fans the sending out when there are any
    (`campaigns.tasks`)."""
    if campaign.status != Status.RUNNING or not campaign.is_triggered:
        return 0
    events = trigger_events(campaign=campaign, now=now, scope=scope)
    if not events:
        return 0
    eligible = User.objects.filter(pk__in={e.user_id for e in events}, is_active=True, marketing_consent=True)
    eligible = eligible.filter(not_suppressed())
    if campaign.segment_id:
        eligible = eligible.filter(pk__in=segment_queryset(campaign.segment).values("pk"))
    allowed = dict(eligible.values_list("pk", "email"))
    variants_ensure(campaign=campaign)
    assigner = Assigner.for_campaign(campaign)
    now = now or timezone.now()
    events = [e for e in events if e.user_id in allowed]
    handled = set(
        Delivery.objects.filter(
            campaign=campaign, user_id__in={e.user_id for e in events}, trigger_key__in={e.key for e in events}
        ).values_list("user_id", "trigger_key")
    )
    rows = []
    for event in events:
        if (event.user_id, event.key) in handled:
            continue
        handled.add((event.user_id, event.key))
        is_holdout, variant_id = assigner.assign(event.user_id)
        rows.append(
            Delivery(
                campaign=campaign,
                user_id=event.user_id,
                trigger_key=event.key,
                email=allowed[event.user_id],
                is_holdout=is_holdout,
                variant_id=variant_id,
                context=event.context,
                next_attempt_at=now,
                created_at=now,
            )
        )
    if not rows:
        return 0
    with transaction.atomic():
        # A concurrent evaluation may have created some of them: the constraint drops those.
        Delivery.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
        Campaign.objects.filter(pk=campaign.pk).update(audience_size=F("audience_size") + len(rows))
    created = len(rows)
    if created:
        logger.info("campaign %s: %d new triggered deliveries", campaign.pk, created)
    return created


# --- the real-time path -----------------------------------------------------------------
# What each store event can fire (the campaign kinds it is evaluated for).
KINDS_OF_EVENT: dict[str, tuple[str, ...]] = {
    "view": (Campaign.Kind.BROWSE_ABANDONMENT,),
    "cart": (Campaign.Kind.ABANDONED_CART,),
    "order": (Campaign.Kind.POST_PURCHASE,),
    "signup": (Campaign.Kind.WELCOME,),
    "back_in_stock": (Campaign.Kind.BACK_IN_STOCK,),
    "price_drop": (Campaign.Kind.PRICE_DROP,),
}
_EVENT_OF_INTERACTION = {Interaction.Kind.VIEW: "view", Interaction.Kind.ADD_TO_CART: "cart"}


def kinds_of_interactions(kinds) -> set[str]:
    """The campaign kinds that shoppers' events of these interaction kinds can fire."""
    return {k for i in kinds if (event := _EVENT_OF_INTERACTION.get(i)) for k in KINDS_OF_EVENT[event]}


def kinds_listening(kinds) -> set[str]:
    """Of ``kinds``, those with a running campaign (one small query: asked before
    anything is queued, so a store without triggered campaigns queues nothing)."""
    if not kinds:
        return set()
    return set(
        Campaign.objects.filter(status=Status.RUNNING, kind__in=list(kinds)).values_list("kind", flat=True).distinct()
    )


@dataclass(frozen=True)
class Reaction:
    """What one campaign did about a store event: new deliveries, and when to look
    again (seconds: the campaign waits that long after the event) or None."""

    campaign_id: int
    kind: str
    created: int
    look_again_in: float | None


def triggers_react(
    *,
    kinds,
    user_ids=None,
    change_ids=None,
    now: datetime | None = None,
    look_again: bool = True,
) -> list[Reaction]:
    """Evaluate the running campaigns of ``kinds`` for one store event's customers
    (``user_ids``) or product changes (``change_ids``). A campaign with a delay asks to
    be evaluated again when the event is due (``look_again_in``) if that is within
    ``TRIGGER_LOOK_AGAIN_MAX_SECONDS`` (further away, the periodic sweep finds it)."""
    scope = Scope(
        user_ids=frozenset(user_ids) if user_ids is not None else None,
        change_ids=frozenset(change_ids) if change_ids is not None else None,
    )
    if scope.everything:
        raise ValueError("a reaction needs the event's customers or product changes")
    reactions = []
    horizon = conf.get("TRIGGER_LOOK_AGAIN_MAX_SECONDS")
    for campaign in Campaign.objects.filter(status=Status.RUNNING, kind__in=list(kinds)).select_related("segment"):
        try:
            created = triggers_evaluate(campaign=campaign, now=now, scope=scope)
        except Exception:  # one broken campaign must not stop the others; the sweep retries
            logger.exception("campaign %s: real-time trigger evaluation failed", campaign.pk)
            continue
        delay = campaign.trigger_delay_hours * 3600
        again = float(delay) if look_again and 0 < delay <= horizon else None
        reactions.append(Reaction(campaign_id=campaign.pk, kind=campaign.kind, created=created, look_again_in=again))
    return reactions


def due_send_ranges(*, campaign_id: int, chunk_size: int | None = None) -> list[tuple[int, int]]:
    """The id ranges (``chunk_size`` rows each) of a campaign's pending deliveries
    that are due now: what a reaction hands to send tasks (rows a killed reaction
    created and never handed over included)."""
    chunk_size = chunk_size or conf.get("SEND_CHUNK_SIZE")
    ids = list(
        Delivery.objects.filter(
            campaign_id=campaign_id, status=Delivery.Status.PENDING, next_attempt_at__lte=timezone.now()
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return [(ids[i], ids[min(i + chunk_size, len(ids)) - 1]) for i in range(0, len(ids), chunk_size)]


def product_changes_record(*, changes: list[StoreChange], now: datetime | None = None) -> list[ProductChange]:
    """Note the store's price and stock changes that matter to triggers (out of stock,
    back in stock, price drop) as `ProductChange` rows, in the caller's transaction.
    Returns the rows that can fire a campaign (back in stock, price drop)."""
    now = now or timezone.now()
    rows = []
    for c in changes:
        was_out, is_out = c.stock_before == 0, c.stock_after == 0
        if is_out and not was_out:
            rows.append(ProductChange(product_id=c.product_id, kind=ProductChange.Kind.OUT_OF_STOCK, occurred_at=now))
        elif was_out and not is_out:
            rows.append(ProductChange(product_id=c.product_id, kind=ProductChange.Kind.BACK_IN_STOCK, occurred_at=now))
        if c.price_before is not None and c.price_after is not None and c.price_after < c.price_before:
            rows.append(
                ProductChange(
                    product_id=c.product_id,
                    kind=ProductChange.Kind.PRICE_DROP,
                    price_before=c.price_before,
                    price_after=c.price_after,
                    occurred_at=now,
                )
            )
    if not rows:
        return []
    created = ProductChange.objects.bulk_create(rows)
    return [r for r in created if r.kind != ProductChange.Kind.OUT_OF_STOCK]


def kinds_of_changes(changes: list[ProductChange]) -> set[str]:
    """The campaign kinds these product changes can fire."""
    return {k for change in changes for k in KINDS_OF_EVENT.get(change.kind, ())}
