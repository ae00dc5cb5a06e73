"""What a forgotten customer leaves behind in the campaigns app."""

from __future__ import annotations

from campaigns.models import Delivery
from campaigns.selectors import campaign_report
from shop.services.customers import user_forget

from .conftest import make_campaign, make_customers, sent_delivery

S = Delivery.Status


def test_forgetting_a_customer_keeps_counts_but_not_the_person(store, template):
    (user,) = make_customers(1)
    campaign = make_campaign(template)
    d = sent_delivery(campaign, user, products=[{"id": 1, "name": "x"}])
    user_forget(user=user)
    d.refresh_from_db()
    assert (d.user_id, d.email, d.products, d.status) == (None, "", [], S.SENT)
    assert campaign_report(campaign=campaign).groups[0].sent == 1
