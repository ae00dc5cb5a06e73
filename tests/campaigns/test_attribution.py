"""Attribution of orders to email clicks, the report on known numbers, the
statistics, provider webhooks (bounces, complaints) and forgetting a customer."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal

import pytest
from anymail.signals import AnymailTrackingEvent, tracking
from django.utils import timezone

from campaigns import services
from campaigns.charts import funnel_svg
from campaigns.models import Campaign, Conversion, Delivery, Suppression, TrackingEvent
from campaigns.selectors import campaign_report, report_as_dict
from campaigns.stats import two_proportion_uplift
from shop import services as shop_services
from shop.models import Order, User

from .conftest import buy, make_campaign, make_customers

S = Delivery.Status


def sent_delivery(campaign: Campaign, user: User, *, days_ago: float = 3, **fields) -> Delivery:
    at = timezone.now() - timedelta(days=days_ago)
    fields.setdefault("variant", campaign.variants.first())
    return Delivery.objects.create(
        campaign=campaign,
        user=user,
        email=user.email,
        status=S.SENT,
        sent_at=at,
        processed_at=at,
        message_id=f"<{user.pk}.{campaign.pk}@t>",
        **fields,
    )


def click(delivery: Delivery, *, days_ago: float) -> None:
    services.delivery_click_record(delivery=delivery, path="/", at=timezone.now() - timedelta(days=days_ago))


# --- statistics -----------------------------------------------------------------------------
def test_two_proportion_uplift_on_known_numbers():
    u = two_proportion_uplift(x_treated=60, n_treated=500, x_control=40, n_control=500)
    assert u.treated_rate == pytest.approx(0.12) and u.control_rate == pytest.approx(0.08)
    assert u.difference == pytest.approx(0.04) and u.relative == pytest.approx(0.5)
    # pooled p = 0.1; se = sqrt(0.1 * 0.9 * (2/500)) = 0.0189737; z = 0.04 / se
    assert u.z == pytest.approx(2.108185, rel=1e-5)
    assert u.p_value == pytest.approx(0.035015, abs=2e-5)
    # unpooled se = sqrt(.12*.88/500 + .08*.92/500) = 0.0189315; 95% CI = 0.04 -/+ 1.959964 * se
    assert (u.ci_low, u.ci_high) == (pytest.approx(0.002895, abs=2e-6), pytest.approx(0.077105, abs=2e-6))
    assert u.fisher_p == pytest.approx(0.044762, abs=1e-5)
    assert u.significant


def test_uplift_edge_cases():
    none = two_proportion_uplift(x_treated=0, n_treated=50, x_control=0, n_control=50)
    assert none.difference == 0 and none.p_value is None and none.fisher_p == 1.0 and not none.significant
    assert none.relative is None
    with pytest.raises(ValueError, match="treated"):
        two_proportion_uplift(x_treated=5, n_treated=3, x_control=0, n_control=1)


# --- attribution ------------------------------------------------------------------------------
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
    assert services.conversions_attribute() == 1
    conversion = Conversion.objects.get()
    assert (conversion.delivery_id, conversion.order_id, conversion.revenue) == (d1.pk, order.pk, Decimal("27.00"))
    assert services.conversions_attribute() == 0, "idempotent"


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
    assert services.conversions_attribute() == 1
    assert Conversion.objects.get().delivery_id == b.pk


# --- the report -------------------------------------------------------------------------------
def test_report_counts_and_uplift_against_the_holdout_on_known_numbers(store, template):
    campaign = make_campaign(template, holdout_percent=50, attribution_window_days=5)
    customers = make_customers(200)
    now = timezone.now()
    variant = campaign.variants.get()
    for i, user in enumerate(customers):
        at = now - timedelta(days=4)
        if i < 100:
            d = Delivery.objects.create(
                campaign=campaign,
                user=user,
                email=user.email,
                variant=variant,
                status=S.SENT,
                sent_at=at,
                processed_at=at,
                message_id=f"<{i}@t>",
                opened_at=at if i < 40 else None,
                clicked_at=at if i < 20 else None,
                unsubscribed_at=at if i == 99 else None,
            )
            if i < 12:  # 12 of 100 emailed ordered within the window
                order = buy(user, store.products[:1], days_ago=3)
                if i < 8:  # 8 of them after a click in the email
                    Conversion.objects.create(
                        delivery=d, order=order, revenue=Decimal("4.50"), clicked_at=at, ordered_at=order.placed_at
                    )
        else:
            Delivery.objects.create(
                campaign=campaign, user=user, email=user.email, is_holdout=True, status=S.WITHHELD, processed_at=at
            )
            if i < 105:  # 5 of 100 in the holdout ordered anyway
                buy(user, store.products[:1], days_ago=3)
    buy(customers[50], store.products[:1], days_ago=10)  # before the email: not counted
    report = campaign_report(campaign=campaign)
    group, holdout = report.groups
    assert (group.audience, group.sent, group.opened, group.clicked, group.converted, group.unsubscribed) == (
        100,
        100,
        40,
        20,
        8,
        1,
    )
    assert group.revenue == Decimal("36.00") and group.ordered == 12
    assert (holdout.audience, holdout.withheld, holdout.ordered) == (100, 100, 5)
    u = group.uplift
    assert u.difference == pytest.approx(0.07)
    assert u.z == pytest.approx(1.774856, rel=1e-5) and u.p_value == pytest.approx(0.075922, abs=1e-5)
    assert u.fisher_p == pytest.approx(0.126179, abs=1e-5) and not u.significant
    se = math.sqrt(0.12 * 0.88 / 100 + 0.05 * 0.95 / 100)
    assert u.ci_low == pytest.approx(0.07 - 1.959964 * se, abs=1e-5)
    assert report.overall_uplift.difference == pytest.approx(0.07)
    data = report_as_dict(report)
    assert data["groups"][0]["revenue"] == "36.00" and data["total"]["audience"] == 200
    svg = funnel_svg(report)
    assert svg.startswith("<svg") and "Variant A" in svg and "Holdout" in svg and "12 (12.0%)" in svg


def test_report_compares_variants_when_there_is_no_holdout(store, template):
    campaign = make_campaign(template, variants=[{"name": "A"}, {"name": "B", "strategy": "trending"}])
    a, b = campaign.variants.order_by("name")
    customers = make_customers(4)
    for user, variant in zip(customers, (a, a, b, b), strict=True):
        sent_delivery(campaign, user, variant=variant)
    buy(customers[2], store.products[:1], days_ago=1)
    report = campaign_report(campaign=campaign)
    assert report.overall_uplift is None
    assert report.groups[1].compared_with == "Variant A" and report.groups[1].uplift.difference == pytest.approx(0.5)


def test_report_costs_a_constant_number_of_queries(store, template, django_assert_max_num_queries):
    campaign = make_campaign(template, holdout_percent=10)
    for user in make_customers(30):
        sent_delivery(campaign, user)
    with django_assert_max_num_queries(5):
        campaign_report(campaign=campaign)


# --- the email provider's webhooks -------------------------------------------------------------------
def test_provider_bounces_and_complaints_become_suppressions(store, template):
    bounced, complained, unsubscribed, delivered = make_customers(4)
    campaign = make_campaign(template)
    d = sent_delivery(campaign, complained)
    for user, event_type in (
        (bounced, "bounced"),
        (complained, "complained"),
        (unsubscribed, "unsubscribed"),
        (delivered, "delivered"),
    ):
        event = AnymailTrackingEvent(
            event_type=event_type,
            recipient=user.email,
            timestamp=timezone.now(),
            metadata={"delivery_id": str(d.pk)} if user == complained else {},
            description="test",
        )
        tracking.send(sender=object, event=event, esp_name="TestESP")
    reasons = dict(Suppression.objects.values_list("email", "reason"))
    assert reasons == {bounced.email: "bounced", complained.email: "complained", unsubscribed.email: "unsubscribed"}
    assert TrackingEvent.objects.get(delivery=d).kind == "complaint"
    unsubscribed.refresh_from_db()
    assert unsubscribed.marketing_consent is False
    rejected = AnymailTrackingEvent(event_type="rejected", reject_reason="bounced", recipient="x@example.com")
    tracking.send(sender=object, event=rejected, esp_name="TestESP")
    assert Suppression.objects.filter(email="x@example.com", reason="bounced").exists()


def test_forgetting_a_customer_keeps_counts_but_not_the_person(store, template):
    (user,) = make_customers(1)
    campaign = make_campaign(template)
    d = sent_delivery(campaign, user, products=[{"id": 1, "name": "x"}])
    shop_services.user_forget(user=user)
    d.refresh_from_db()
    assert (d.user_id, d.email, d.products, d.status) == (None, "", [], S.SENT)
    assert campaign_report(campaign=campaign).groups[0].sent == 1
