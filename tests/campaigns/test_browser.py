"""In real headless Chromium: the live count of a segment as staff edit its rules,
and a customer unsubscribing from an email with one click."""

from __future__ import annotations

import pytest
from django.test import Client

from campaigns import sending, tokens
from campaigns.models import Delivery, Suppression

from .conftest import build_store, default_template, launch, make_campaign, make_customers

pytestmark = pytest.mark.e2e


def log_in(page, live_server, user) -> None:
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )


def test_segment_rules_show_a_live_count_and_sample(page, live_server, staff_user):
    build_store()
    make_customers(7)
    make_customers(3, prefix="france", country="France")
    log_in(page, live_server, staff_user)
    page.goto("/admin/campaigns/segment/add/")
    rules = page.locator("textarea[data-segment-rules]")
    rules.fill('{"rule": "country", "in": ["France"]}')
    preview = page.locator("#segment-preview")
    preview.get_by_text("3 customers match these rules now.").wait_for()
    assert preview.locator("tr").count() == 4  # header + 3 customers
    page.shots("france")
    rules.fill('{"rule": "country", "in": [')
    preview.get_by_text("not valid JSON yet").wait_for()
    rules.fill('{"all": [{"rule": "bought_within", "days": 0}]}')
    preview.get_by_text("all[0].days: must be a whole number of days").wait_for()
    rules.fill('{"rule": "consent"}')
    preview.get_by_text("10 customers match these rules now.").wait_for()
    page.shots("everyone")


def test_a_customer_unsubscribes_with_one_click(page, live_server):
    build_store()
    make_customers(1)
    campaign = launch(make_campaign(default_template()))
    sending.deliveries_send_range(campaign_id=campaign.pk, min_id=0, max_id=2**62)
    delivery = Delivery.objects.select_related("user").get()
    page.goto(f"/c/u/{tokens.unsubscribe_token(delivery.pk)}/")
    assert not Suppression.objects.exists()
    page.shots("asked")
    page.get_by_role("button", name="Unsubscribe").click()
    page.get_by_role("heading", name="You are unsubscribed").wait_for()
    page.shots("done")
    delivery.user.refresh_from_db()
    assert delivery.user.marketing_consent is False
    assert Suppression.objects.get().email == delivery.email


def test_staff_read_a_sent_email_in_the_outbox(page, live_server, staff_user, settings):
    settings.EMAIL_BACKEND = "campaigns.outbox.OutboxEmailBackend"
    settings.SITE_URL = live_server.url  # the email's images come from this store
    store = build_store()
    make_customers(1)
    campaign = launch(make_campaign(default_template(), strategy="trending", exclude_purchased=False))
    sending.deliveries_send_range(campaign_id=campaign.pk, min_id=0, max_id=2**62)
    from campaigns.models import OutboxMessage

    message = OutboxMessage.objects.get()
    log_in(page, live_server, staff_user)
    page.goto(f"/admin/campaigns/outboxmessage/{message.pk}/change/")
    frame = page.frame_locator("iframe[sandbox='']")
    first = Delivery.objects.get().products[0]["name"]
    frame.get_by_text(first, exact=True).first.wait_for()
    frame.get_by_role("link", name="Unsubscribe").wait_for()
    page.shots("outbox")
    assert first in {p.name for p in store.products}
