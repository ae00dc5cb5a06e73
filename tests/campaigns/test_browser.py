"""In real headless Chromium: the live count of a segment as staff edit its rules,
and a customer unsubscribing from an email with one click."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

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
    page.get_by_text("Advanced: the rules as JSON").click()  # the JSON view, beside the builder
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
    frame = page.frame_locator("iframe.email-frame")
    first = Delivery.objects.get().products[0]["name"]
    frame.get_by_text(first, exact=True).first.wait_for()
    frame.get_by_role("link", name="Unsubscribe").wait_for()
    page.shots("outbox")
    assert first in {p.name for p in store.products}


def test_staff_see_the_campaign_funnel_drawn_by_chart_js(page, live_server, staff_user):
    build_store()
    make_customers(40)
    campaign = launch(
        make_campaign(
            default_template(),
            holdout_percent=25,
            variants=[{"name": "A"}, {"name": "B", "strategy": "trending"}],
            exclude_purchased=False,
        )
    )
    sending.deliveries_send_range(campaign_id=campaign.pk, min_id=0, max_id=2**62)
    sent = Delivery.objects.filter(campaign=campaign, is_holdout=False).order_by("pk")
    now = timezone.now()
    Delivery.objects.filter(pk__in=[d.pk for d in sent[:16]]).update(opened_at=now)
    Delivery.objects.filter(pk__in=[d.pk for d in sent[:7]]).update(clicked_at=now)
    log_in(page, live_server, staff_user)
    page.goto(f"/admin/campaigns/campaign/{campaign.pk}/report/")
    page.wait_for_function(
        "() => window.Chart && Chart.getChart(document.querySelector('canvas[data-chart=chart-funnel]'))"
    )
    chart = page.evaluate(
        """() => { const chart = Chart.getChart(document.querySelector('canvas[data-chart=chart-funnel]'));
            return {type: chart.config.type, axis: chart.options.indexAxis, stages: chart.data.labels,
                    groups: chart.data.datasets.map(d => [d.label, d.backgroundColor, d.data]),
                    xTicks: chart.scales.x.ticks.map(t => t.label), xTitle: chart.options.scales.x.title.text}; }"""
    )
    assert chart["type"] == "bar" and chart["axis"] == "y" and chart["stages"][0] == "Audience"
    labels = [g[0] for g in chart["groups"]]
    assert labels == ["Variant A", "Variant B", "Holdout"]
    holdout = chart["groups"][2]
    assert holdout[1] == "#9aa0a6" and holdout[2][2:4] == [None, None]  # grey, no opens or clicks
    assert sum(g[2][0] for g in chart["groups"]) == 40 and chart["xTitle"].startswith("Customers")
    assert all("." not in t for t in chart["xTicks"])  # counts, not fractions
    # hovering the "Opened" row shows every variant's count and share
    box = page.locator("canvas[data-chart=chart-funnel]").bounding_box()
    y = page.evaluate(
        "Chart.getChart(document.querySelector('canvas[data-chart=chart-funnel]')).scales.y.getPixelForValue(2)"
    )
    page.mouse.move(box["x"] + box["width"] / 3, box["y"] + y)
    page.wait_for_function(
        "() => Chart.getChart(document.querySelector('canvas[data-chart=chart-funnel]')).tooltip.getActiveElements().length > 0"
    )
    lines = page.evaluate(
        "Chart.getChart(document.querySelector('canvas[data-chart=chart-funnel]')).tooltip.body.map(b => b.lines).flat()"
    )
    assert [line.split(":")[0] for line in lines] == ["Variant A — Opened", "Variant B — Opened", "Holdout — Opened"]
    assert lines[0].endswith("%)") and lines[2] == "Holdout — Opened: n/a (the holdout gets no email)"
    page.locator("canvas[data-chart=chart-funnel]").scroll_into_view_if_needed()
    page.locator(".affinity-chart").screenshot(path=str(page.shots.dir / "funnel-with-tooltip.png"))
    # the list's progress: a plain <progress> bar (no chart library)
    page.goto("/admin/campaigns/campaign/")
    bar = page.locator("td.field-progress progress.campaign-progress")
    campaign.refresh_from_db()
    assert float(bar.get_attribute("value")) == round(100 * campaign.sent_count / campaign.audience_size, 1) > 0
    assert bar.bounding_box()["width"] > 50
    page.shots("list-progress")
