"""The report on known numbers (funnel, revenue, uplift against the holdout or the
first variant) and its chart."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.charts import HOLDOUT_COLOUR, funnel_spec, progress_percent
from campaigns.models import Conversion, Delivery
from campaigns.selectors import campaign_report, report_as_dict

from .conftest import buy, make_campaign, make_customers, sent_delivery

S = Delivery.Status


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
    spec = funnel_spec(report)
    json.dumps(spec)  # plain data, ready for json_script
    assert spec["type"] == "bar" and spec["indexAxis"] == "y"
    assert spec["labels"] == [
        "Audience",
        "Sent / withheld",
        "Opened",
        "Clicked",
        "Ordered in window",
        "Attributed orders",
    ]
    emailed, held = spec["datasets"]
    assert emailed["label"] == "Variant A" and emailed["data"] == [100, 100, 40, 20, 12, 8]
    assert emailed["valueLabels"] == ["100", "100", "40 (40.0%)", "20 (20.0%)", "12 (12.0%)", "8 (8.0%)"]
    assert emailed["tooltips"][4] == "Variant A — Ordered in window: 12 (12.0%)"
    # the holdout: grey, and no bar but "n/a" where a stage does not apply (no email to open or click)
    assert held["label"] == "Holdout" and held["backgroundColor"] == HOLDOUT_COLOUR != emailed["backgroundColor"]
    assert held["data"] == [100, 100, None, None, 5, None]
    assert held["valueLabels"] == ["100", "100", "n/a", "n/a", "5 (5.0%)", "n/a"]
    assert held["tooltips"][2] == "Holdout — Opened: n/a (the holdout gets no email)"
    assert spec["x"]["format"] == "count" and spec["x"]["min"] == 0


def test_funnel_spec_empty_and_progress_percent(store, template):
    campaign = make_campaign(template)
    spec = funnel_spec(campaign_report(campaign=campaign))
    assert set(spec) == {"title", "empty"} and spec["empty"].startswith("No audience yet")
    assert (progress_percent(1, 3), progress_percent(5, 4), progress_percent(0, 0)) == (33.3, 100.0, 0.0)


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
    with django_assert_max_num_queries(6):  # 4 + the UTM-tagged visits (totals, per link)
        campaign_report(campaign=campaign)
