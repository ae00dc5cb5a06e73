"""Merchandising rules reach the emails: a campaign really sent (Django's locmem
backend) carries the "email" placement's pins and leaves out what its rules exclude,
while a rule for another placement changes nothing."""

from __future__ import annotations

import pytest
from django.core import mail

from campaigns import sending
from campaigns.models import Delivery
from recommendations.models import MerchandisingRule, Placement

from .conftest import buy, launch, make_campaign, make_customers

pytestmark = pytest.mark.django_db


def send_all(campaign) -> None:
    sending.deliveries_send_range(campaign_id=campaign.pk, min_id=0, max_id=2**62)


def test_sent_emails_obey_the_email_placements_rules(store, template):
    ada, bob = make_customers(2)
    buy(ada, store.in_category(store.candles)[:2])
    buy(bob, store.in_category(store.kitchen)[:2])
    featured = store.in_category(store.kitchen)[-1]
    pin = MerchandisingRule.objects.create(name="Feature", action="pin", product=featured, position=1)
    pin.placements.set([Placement.objects.get_or_create(key="email", defaults={"name": "Picked for you"})[0]])
    gone = MerchandisingRule.objects.create(
        name="No candles", action="exclude", condition={"category": [store.candles.pk]}
    )
    gone.placements.set([Placement.objects.get(key="email")])
    elsewhere = MerchandisingRule.objects.create(name="Cart only", action="exclude", condition={})
    elsewhere.placements.set([Placement.objects.get_or_create(key="cart", defaults={"name": "Cart"})[0]])
    campaign = launch(make_campaign(template, n_products=3))
    send_all(campaign)
    assert len(mail.outbox) == 2
    for user in (ada, bob):
        products = Delivery.objects.get(user=user).products
        assert products and products[0]["id"] == featured.pk
        assert products[0]["reason_code"] == "rule"
        assert not {p["id"] for p in products} & {p.pk for p in store.in_category(store.candles)}
        message = next(m for m in mail.outbox if m.to == [user.email])
        assert featured.name in message.body
