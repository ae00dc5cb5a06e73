"""Triggered campaigns: abandoned cart, welcome, win-back, post-purchase; at most
once per triggering event."""

from __future__ import annotations

from datetime import timedelta

from django.core import mail
from django.utils import timezone

from campaigns import lifecycle, sending, services
from campaigns.models import Campaign, Delivery
from campaigns.triggers import triggers_evaluate
from shop.models import Cart, Order, User
from shop.services.carts import cart_add, cart_get_or_create

from .conftest import buy, make_campaign, make_customers


def start(campaign: Campaign, *, hours_ago: float = 48) -> Campaign:
    """Activate a triggered campaign as if it had started ``hours_ago`` hours ago."""
    services.campaign_schedule(campaign=campaign)
    lifecycle.campaign_launch(campaign_id=campaign.pk)
    Campaign.objects.filter(pk=campaign.pk).update(started_at=timezone.now() - timedelta(hours=hours_ago))
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.RUNNING
    return campaign


def send_all(campaign):
    return sending.deliveries_send_range(campaign_id=campaign.pk, min_id=0, max_id=2**62)


def abandon(user: User, products, *, hours_ago: float) -> Cart:
    cart = cart_get_or_create(user=user)
    for product in products:
        cart_add(cart=cart, product=product)
    Cart.objects.filter(pk=cart.pk).update(updated_at=timezone.now() - timedelta(hours=hours_ago))
    cart.refresh_from_db()
    return cart


def test_abandoned_cart_once_per_abandonment(store, template):
    idle, fresh, bought, no_consent = make_customers(4)
    User.objects.filter(pk=no_consent.pk).update(marketing_consent=False)
    candles = store.in_category(store.candles)
    cart = abandon(idle, candles[:2], hours_ago=5)
    abandon(fresh, candles[:1], hours_ago=1)  # not idle long enough
    abandon(bought, candles[:1], hours_ago=5)
    buy(bought, candles[3:4], days_ago=0.01)  # ordered after leaving the cart
    abandon(no_consent, candles[:1], hours_ago=5)
    campaign = start(make_campaign(template, kind=Campaign.Kind.ABANDONED_CART, trigger_delay_hours=3))

    assert triggers_evaluate(campaign=campaign) == 1
    assert triggers_evaluate(campaign=campaign) == 0, "the same event never twice"
    delivery = Delivery.objects.get()
    assert delivery.user == idle and delivery.trigger_key == f"cart:{cart.pk}:{int(cart.updated_at.timestamp())}"
    send_all(campaign)
    (message,) = mail.outbox
    assert "You left these in your cart" in message.body
    for product in candles[:2]:
        assert product.name in message.body
    assert not {p["id"] for p in Delivery.objects.get().products} & {p.pk for p in candles[:2]}

    # The customer comes back, changes the cart, leaves again: a new event.
    abandon(idle, candles[2:3], hours_ago=4)
    assert triggers_evaluate(campaign=campaign) == 1
    assert Delivery.objects.filter(user=idle).count() == 2


def test_events_before_the_campaign_started_do_not_trigger(store, template):
    (user,) = make_customers(1)
    abandon(user, store.products[:1], hours_ago=30)
    campaign = start(make_campaign(template, kind=Campaign.Kind.ABANDONED_CART, trigger_delay_hours=1), hours_ago=10)
    assert triggers_evaluate(campaign=campaign) == 0


def test_welcome_picks_from_stated_interests(store, template):
    (newcomer,) = make_customers(1)
    newcomer.interests.add(store.kitchen)
    User.objects.filter(pk=newcomer.pk).update(date_joined=timezone.now() - timedelta(hours=2))
    (too_new,) = make_customers(1, prefix="new")
    campaign = start(make_campaign(template, kind=Campaign.Kind.WELCOME, trigger_delay_hours=1))
    assert triggers_evaluate(campaign=campaign) == 1
    send_all(campaign)
    delivery = Delivery.objects.get()
    assert delivery.user == newcomer and delivery.trigger_key == "welcome"
    assert delivery.strategy == "interests"
    kitchen = {p.pk for p in store.in_category(store.kitchen)}
    interest = [p for p in delivery.products if p["reason_code"] == "interest"]
    assert interest and all(p["id"] in kitchen for p in interest)
    assert delivery.products[0]["id"] in kitchen, "interests first, then whatever fills the list"
    assert "Kitchen" in interest[0]["reason"]
    assert too_new.deliveries.count() == 0


def test_post_purchase_cross_sell_once_per_order(store, template):
    (user,) = make_customers(1)
    candles = store.in_category(store.candles)
    order = buy(user, candles[:2], days_ago=0.5)
    campaign = start(make_campaign(template, kind=Campaign.Kind.POST_PURCHASE, trigger_delay_hours=6))
    assert triggers_evaluate(campaign=campaign) == 1
    assert triggers_evaluate(campaign=campaign) == 0
    delivery = Delivery.objects.get()
    assert delivery.trigger_key == f"order:{order.pk}" and delivery.context["product_ids"] == [
        c.pk for c in candles[:2]
    ]
    send_all(campaign)
    (message,) = mail.outbox
    assert "Thank you for your order" in message.body
    assert not {p["id"] for p in Delivery.objects.get().products} & {c.pk for c in candles[:2]}


def test_win_back_when_a_customer_becomes_inactive(store, template):
    lapsed, active, long_gone = make_customers(3)
    buy(lapsed, store.products[:1], days_ago=31)  # crossed 30 days a day ago
    buy(active, store.products[:1], days_ago=3)
    buy(long_gone, store.products[:1], days_ago=200)  # crossed long before the campaign
    campaign = start(make_campaign(template, kind=Campaign.Kind.WIN_BACK, inactive_days=30), hours_ago=72)
    assert triggers_evaluate(campaign=campaign) == 1
    assert Delivery.objects.get().user == lapsed
    assert triggers_evaluate(campaign=campaign) == 0


def test_triggered_campaign_respects_its_segment(store, template):
    uk, fr = make_customers(2)
    User.objects.filter(pk=fr.pk).update(country="France")
    for user in (uk, fr):
        buy(user, store.products[:1], days_ago=0.5)
    from .conftest import make_segment

    france = make_segment({"rule": "country", "in": ["France"]}, name="France")
    campaign = start(make_campaign(template, kind=Campaign.Kind.POST_PURCHASE, segment=france))
    assert triggers_evaluate(campaign=campaign) == 1
    assert Delivery.objects.get().user_id == fr.pk


def test_cancelled_orders_do_not_trigger(store, template):
    (user,) = make_customers(1)
    order = buy(user, store.products[:1], days_ago=0.5)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.CANCELLED)
    campaign = start(make_campaign(template, kind=Campaign.Kind.POST_PURCHASE))
    assert triggers_evaluate(campaign=campaign) == 0
