"""Attribution of orders to email clicks (last touch, within the window, once)."""

from __future__ import annotations

from decimal import Decimal

from campaigns.attribution import conversions_attribute
from campaigns.models import Conversion
from shop.models import Order

from .conftest import buy, click, make_campaign, make_customers, sent_delivery


def test_an_order_within_the_window_after_a_click_is_attributed_with_its_revenue(store, template):
    clicked, late, before, unclicked = make_customers(4)
    campaign = make_campaign(template, attribution_window_days=5)
    candles = store.in_category(store.candles)
    d1 = sent_delivery(campaign, clicked)
    d2 = sent_delivery(campaign, late, days_ago=9)
    d3 = sent_delivery(campaign, before)
    sent_delivery(campaign, unclicked)
    click(d1, days_ago=2)
    click(d2, days_ago=8)
    click(d3, days_ago=1)
    order = buy(clicked, candles[:2], days_ago=1, quantity=3)  # 2 lines x 3 x 4.50 = 27.00
    buy(late, candles[:1], days_ago=1)  # 7 days after the click: outside 5
    buy(before, candles[:1], days_ago=2)  # before the click
    buy(unclicked, candles[:1], days_ago=1)  # never clicked
    assert conversions_attribute() == 1
    conversion = Conversion.objects.get()
    assert (conversion.delivery_id, conversion.order_id, conversion.revenue) == (d1.pk, order.pk, Decimal("27.00"))
    assert conversions_attribute() == 0, "idempotent"


def test_the_last_click_before_the_order_wins_and_cancelled_orders_do_not_count(store, template):
    (user,) = make_customers(1)
    first = make_campaign(template, name="first")
    second = make_campaign(template, name="second", segment=first.segment)
    a, b = sent_delivery(first, user), sent_delivery(second, user)
    click(a, days_ago=3)
    click(b, days_ago=2)
    buy(user, store.products[:1], days_ago=1)
    cancelled = buy(user, store.products[:1], days_ago=0.5)
    Order.objects.filter(pk=cancelled.pk).update(status=Order.Status.CANCELLED)
    assert conversions_attribute() == 1
    assert Conversion.objects.get().delivery_id == b.pk
