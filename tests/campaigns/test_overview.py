"""The admin start page: the key figures of the last 7 days on a hand-counted store,
and the page itself (figures, common tasks, the app list)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from campaigns.models import Delivery
from campaigns.overview import key_figures
from recommendations.models import Impression
from shop.models import Interaction, Order, OrderLine
from tests.factories import UserFactory, interaction_make

from .conftest import buy, make_campaign, make_customers, sent_delivery


@pytest.fixture
def week(store, template):
    """In the last 7 days: 10 emailed (3 of them ordered a candle, 4.50 each), 10 withheld
    in the holdout (1 ordered a kettle, 20.00), a cancelled order; one order line came
    from a recommendation list; 2 lists shown, 1 clicked. The 7 days before: one email,
    one order of two candles."""
    campaign = make_campaign(template, holdout_percent=50, attribution_window_days=5)
    emailed, withheld = make_customers(10, prefix="e"), make_customers(10, prefix="h")
    candle, kettle = store.products[0], store.products[6]
    for user in emailed:
        sent_delivery(campaign, user, days_ago=4)
    at = timezone.now() - timedelta(days=4)
    for user in withheld:
        Delivery.objects.create(
            campaign=campaign,
            user=user,
            email=user.email,
            is_holdout=True,
            status=Delivery.Status.WITHHELD,
            processed_at=at,
        )
    orders = [buy(user, [candle], days_ago=3) for user in emailed[:3]]
    buy(withheld[0], [kettle], days_ago=3)
    cancelled = buy(emailed[5], [kettle], days_ago=2)
    Order.objects.filter(pk=cancelled.pk).update(status=Order.Status.CANCELLED)
    # before the window
    sent_delivery(campaign, make_customers(1, prefix="x")[0], days_ago=10)
    buy(emailed[8], [candle], days_ago=10, quantity=2)
    # one line bought from a recommendation list; two lists shown, one clicked
    shown = Impression.objects.create(context="home", strategy="trending", product_ids=[candle.pk])
    Impression.objects.create(context="home", strategy="trending", product_ids=[kettle.pk])
    OrderLine.objects.filter(order=orders[0]).update(rec_list_id=shown.id)
    interaction_make(user=emailed[0], product=candle, kind=Interaction.Kind.CLICK, rec_list_id=shown.id)
    Impression.objects.create(
        context="home", strategy="trending", product_ids=[], created_at=timezone.now() - timedelta(days=9)
    )
    return campaign


def test_key_figures_are_the_hand_counted_ones(week):
    figures = key_figures(days=7)
    now, before = figures.current, figures.previous
    assert now.orders == 4 and before.orders == 1  # the cancelled order left out
    assert now.revenue == Decimal("33.50") and before.revenue == Decimal("9.00")  # 3 x 4.50 + 20.00
    assert now.recommended_revenue == Decimal("4.50")
    assert now.recommended_share == pytest.approx(4.50 / 33.50)
    assert now.emails_sent == 10 and before.emails_sent == 1
    assert (now.lists_shown, now.lists_clicked, now.ctr) == (2, 1, 0.5)
    assert before.lists_shown == 1
    assert figures.change("orders") == pytest.approx(3.0)
    # ordering within the window: 3 of the 11 emailed (one sent earlier), 1 of 10 withheld
    assert figures.uplift_campaigns == 1
    assert figures.uplift.treated_rate == pytest.approx(3 / 11)
    assert figures.uplift.control_rate == pytest.approx(1 / 10)
    assert figures.uplift_points == pytest.approx(100 * (3 / 11 - 1 / 10))
    with pytest.raises(ValueError, match="days must be a whole number"):
        key_figures(days=0)


def test_no_holdout_no_uplift(store, template):
    campaign = make_campaign(template)
    sent_delivery(campaign, make_customers(1)[0], days_ago=1)
    figures = key_figures(days=7)
    assert figures.uplift is None and figures.uplift_points is None and figures.current.emails_sent == 1


def test_the_start_page(week, staff_client):
    response = staff_client.get("/admin/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="key-figures"' in html and "Last 7 days" in html
    assert 'data-figure="emails-sent"' in html and "13.4%" in html  # 4.50 of 33.50 from recommendations
    assert 'href="/admin/performance/"' in html and "Train a model" in html
    assert 'id="common-tasks"' in html
    # the app list stays: every app's models are reachable from here
    assert "/admin/recommendations/modelversion/" in html and "/admin/campaigns/campaign/" in html
    # signed out: the admin's login page, no figures
    response = Client().get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_start_page_without_figures_for_staff_without_the_permission(week, client):
    client.force_login(UserFactory(is_staff=True))
    html = client.get("/admin/").content.decode()
    assert 'id="key-figures"' not in html and 'id="common-tasks"' in html
    assert "/admin/performance/" not in html
