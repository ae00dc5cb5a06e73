"""A marketer's first campaign, in real headless Chromium against the live server, a
real Celery worker and a real SMTP server: build a segment with the builder (no JSON
typed), preview the email, send a test to yourself, send the campaign after a
confirmation that states its audience, open the report, then open an email in the
outbox and follow its links. The live server runs on a random port (not 8000), and
SITE_URL points at it as `make run PORT=...` does, so the links must lead back there."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from campaigns.models import Campaign, Delivery, OutboxMessage, Segment, Suppression
from tests.browser import ROOT, assert_contrast
from tests.conftest import wait_for

from .conftest import build_store, buy, default_template, make_customers

pytestmark = pytest.mark.e2e


def log_in(page, live_server, user) -> None:
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )


def people(store):
    """10 French candle buyers (6 may be emailed, 3 without consent, 1 suppressed),
    and others the segment must leave out."""
    may = make_customers(6, prefix="fr-yes", country="France", marketing_consent=True)
    no = make_customers(3, prefix="fr-no", country="France", marketing_consent=False)
    (gone,) = make_customers(1, prefix="fr-gone", country="France", marketing_consent=True)
    Suppression.objects.create(email=gone.email, reason=Suppression.Reason.UNSUBSCRIBED)
    for user in may + no + [gone]:
        buy(user, store.in_category(store.candles)[:2], days_ago=5)
    for user in make_customers(2, prefix="uk", country="United Kingdom", marketing_consent=True):
        buy(user, store.in_category(store.candles)[:1], days_ago=5)
    for user in make_customers(3, prefix="fr-kitchen", country="France", marketing_consent=True):
        buy(user, store.in_category(store.kitchen)[:1], days_ago=5)
    return may


def test_the_marketers_first_campaign_with_the_builder(
    page, live_server, staff_user, settings, smtp_server, celery_worker_factory
):
    settings.SITE_URL = live_server.url  # as `make run PORT=...` sets it: this server, this port
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"  # test sends: the real SMTP server
    settings.EMAIL_HOST, settings.EMAIL_PORT = smtp_server.host, smtp_server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    port = live_server.url.rsplit(":", 1)[1]
    assert port != "8000"
    store = build_store()
    may = people(store)
    default_template()
    celery_worker_factory(SITE_URL=live_server.url)  # the campaign's emails: to the outbox, links to this port
    log_in(page, live_server, staff_user)
    page.set_viewport_size({"width": 1440, "height": 900})

    # 1. build a segment with the builder: an empty start, no JSON typed
    page.goto("/admin/campaigns/segment/add/")
    assert page.locator("textarea[data-segment-rules]").input_value() == ""  # not "null"
    assert page.locator(".errorlist li").count() == 0  # no error before typing
    page.get_by_text("Add a condition to see how many customers match").wait_for()
    assert page.get_by_text("Members now").count() == 0
    page.locator("#id_name").fill("French candle lovers")
    builder = page.locator("#segment-builder")
    builder.get_by_role("button", name="+ Add condition").last.click()
    rows = builder.locator(".sb-row")
    rows.nth(0).locator("select.sb-field").select_option(label="Bought in category")
    rows.nth(0).get_by_label("category").select_option(label="Home › Candles")
    builder.get_by_role("button", name="+ Add condition").last.click()
    rows.nth(1).locator("select.sb-field").select_option(label="Country")
    rows.nth(1).get_by_label("countries").fill("France")
    preview = page.locator("#segment-preview")
    preview.get_by_text("10 customers match these rules now.").wait_for()
    # a condition left incomplete is marked where it is, with the validator's words
    builder.get_by_role("button", name="+ Add condition").last.click()
    rows.nth(2).locator("select.sb-field").select_option(label="Ordered recently")
    rows.nth(2).get_by_label("in the last … days").fill("")
    rows.nth(2).locator(".sb-errors").get_by_text("all[2].days: is required").wait_for()
    assert "sb-row-error" in rows.nth(2).get_attribute("class")
    rows.nth(2).get_by_label("in the last … days").fill("30")
    preview.get_by_text("10 customers match these rules now.").wait_for()
    rows.nth(2).get_by_role("button", name="Remove").click()
    preview.get_by_text("10 customers match these rules now.").wait_for()
    assert_contrast(page)  # the builder, its help and the header meet WCAG AA
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    page.screenshot(path=str(ROOT / "test-artifacts" / "segment-builder.png"), full_page=True)
    page.get_by_text("Advanced: the rules as JSON").click()  # the same tree, as JSON
    expected = {"all": [{"rule": "bought_category", "category": "candles"}, {"rule": "country", "in": ["France"]}]}
    assert json.loads(page.locator("textarea[data-segment-rules]").input_value()) == expected
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("was added successfully").wait_for()
    segment = Segment.objects.get(name="French candle lovers")
    assert segment.rules == expected

    # 2. the campaign: a draft for that segment, with the default template
    page.goto("/admin/campaigns/campaign/add/")
    page.locator("#id_name").fill("Candles for France")
    for field, text in (("segment", "French candle"), ("template", "Recommended")):
        page.locator(f"#id_{field}").locator("xpath=following-sibling::span[1]").locator(".select2-selection").click()
        page.locator(".select2-search__field").fill(text)
        page.locator(".select2-results__option", has_text=text).first.click()
    page.get_by_role("button", name="Save and continue editing").click()
    page.get_by_text("was added successfully").wait_for()
    campaign = Campaign.objects.get(name="Candles for France")
    assert campaign.status == Campaign.Status.DRAFT

    # 3. preview: it opens as a member of the segment who would get the email
    page.get_by_role("link", name="Preview and test send").first.click()
    shown = page.locator("#customer").input_value()
    assert shown in {u.email for u in may}
    page.get_by_text("a member of the segment “French candle lovers” who would get this email").wait_for()
    subject = page.get_by_test_id("preview-subject").inner_text()
    assert subject

    # 4. a test email to yourself, through the real SMTP server
    assert page.locator("#to").input_value() == staff_user.email
    page.get_by_role("button", name="Send test").click()
    page.get_by_text(f"Test email sent to {staff_user.email}").wait_for()
    wait_for(lambda: smtp_server.recipients() == [staff_user.email], timeout=10, what="the test email")
    assert smtp_server.messages[0]["Subject"] == f"[TEST] {subject}"

    # 5. send: the confirmation states the audience after consent and suppressions
    page.goto(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    page.locator("a.campaign-send").click()
    assert page.get_by_test_id("send-audience").inner_text() == "6"
    assert_contrast(page)
    confirm = page.locator(".campaign-audience").inner_text()
    assert "In the segment now\t10" in confirm and "without marketing consent\t3" in confirm and "suppressed" in confirm
    page.shots("send-confirmation")
    page.get_by_role("button", name="Send now to 6 customers").click()
    page.get_by_text("Sending “Candles for France” now").wait_for()
    assert page.locator(".messagelist li").all_inner_texts() == [
        "Sending “Candles for France” now: its progress shows below."
    ]
    wait_for(
        lambda: Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.COMPLETED,
        timeout=90,
        what="the worker to send the campaign",
    )
    assert set(Delivery.objects.filter(campaign=campaign, status="sent").values_list("email", flat=True)) == {
        u.email for u in may
    }
    page.locator("#campaign-status").get_by_text("Completed").wait_for(timeout=20_000)  # the live status

    # 6. the report
    page.get_by_role("link", name="Report").first.click()
    page.get_by_role("heading", name="Funnel").wait_for()
    all_row = page.locator("tr", has=page.locator("th", has_text="All")).last.inner_text()
    assert all_row.split("\t")[1:3] == ["6", "6"]  # audience, sent
    page.shots("report")
    for url in (page.url, "/admin/campaigns/campaign/", f"/admin/campaigns/segment/{segment.pk}/change/"):
        for width in (1280, 1920):  # the layout holds: nothing wider than the window
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(url)
            wide = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert wide <= 0, f"{url} at {width}px is {wide}px too wide"
    page.set_viewport_size({"width": 1440, "height": 900})

    # 7. an email in the outbox: the whole of it, and its links lead to this store's port
    message = OutboxMessage.objects.filter(to__contains=[may[0].email]).get()
    page.goto(f"/admin/campaigns/outboxmessage/{message.pk}/change/")
    frame_el = page.locator("iframe.email-frame")
    frame = page.frame_locator("iframe.email-frame")
    unsubscribe = frame.get_by_role("link", name="Unsubscribe")
    unsubscribe.wait_for()
    page.wait_for_function(
        """() => { const f = document.querySelector('iframe.email-frame');
            const d = f.contentDocument; return d && f.clientHeight >= d.documentElement.scrollHeight; }"""
    )  # no inner scroll: the footer and its unsubscribe link are in view of the page
    hrefs = page.evaluate(  # read from this page: the sandbox runs no script in the email itself
        """() => [...document.querySelector('iframe.email-frame').contentDocument.querySelectorAll('a[href]')]
            .map(a => a.href)"""
    )
    assert hrefs and all(h.startswith(f"{live_server.url}/") for h in hrefs), hrefs
    page.shots("outbox")
    delivery = Delivery.objects.get(campaign=campaign, email=may[0].email)
    product_name = delivery.products[0]["name"]
    with page.context.expect_page() as popup_info:
        frame.get_by_role("link", name=product_name).first.click()
    product_page = popup_info.value
    product_page.wait_for_load_state()
    assert product_page.url.startswith(f"{live_server.url}/")
    product_page.get_by_role("heading", name=product_name).first.wait_for()
    product_page.close()
    wait_for(lambda: Delivery.objects.get(pk=delivery.pk).clicked_at is not None, timeout=10, what="the click")
    with page.context.expect_page() as popup_info:
        unsubscribe.click()
    leave = popup_info.value
    leave.wait_for_load_state()
    assert leave.url.startswith(f"{live_server.url}/c/u/")
    leave.get_by_role("button", name="Unsubscribe").wait_for()
    leave.close()
    assert frame_el.bounding_box()["height"] > 400


def test_the_builder_picks_products_nests_groups_and_follows_the_json(page, live_server, staff_user):
    store = build_store()
    kettle = store.in_category(store.kitchen)[0]
    log_in(page, live_server, staff_user)
    page.goto("/admin/campaigns/segment/add/")
    builder = page.locator("#segment-builder")
    area = page.locator("textarea[data-segment-rules]")
    # a product, found by typing its name (the picker asks the server)
    builder.get_by_role("button", name="+ Add condition").last.click()
    row = builder.locator(".sb-row").first
    row.locator("select.sb-field").select_option(label="Likely buyers of a product")
    picker = row.get_by_label("product")
    picker.fill("Kettle")
    page.wait_for_function("() => document.querySelectorAll('#segment-builder datalist option').length === 6")
    picker.fill(f"Kettle 0 (KIT0) · #{kettle.pk}")  # what choosing the suggestion enters
    row.get_by_label("how many").fill("50")
    page.get_by_text("Advanced: the rules as JSON").click()
    assert json.loads(area.input_value()) == {"all": [{"rule": "likely_buyers", "product": kettle.pk, "size": 50}]}
    # a negated group of "any"
    builder.get_by_role("button", name="+ Add group").last.click()
    group = builder.locator(".sb-group").first
    group.locator(".sb-group-head select.sb-negate").select_option(label="Do not match")
    group.locator(".sb-row select.sb-field").select_option(label="Country")
    group.get_by_label("countries").fill("France, Spain")
    tree = json.loads(area.input_value())
    assert tree["all"][1] == {"not": {"any": [{"rule": "country", "in": ["France", "Spain"]}]}}
    # JSON typed by hand rebuilds the form; a tree it cannot show leaves the JSON in charge
    area.fill('{"any": [{"rule": "rfm", "recency": [4, 5]}, {"not": {"rule": "consent"}}]}')
    page.wait_for_function("() => document.querySelector('#segment-builder select.sb-op').value === 'any'")
    assert builder.locator(".sb-row select.sb-field").evaluate_all("s => s.map(x => x.value)") == ["rfm", "consent"]
    assert builder.locator(".sb-row").nth(1).locator("select.sb-negate").input_value() == "not"
    assert builder.locator(".sb-scores input:checked").count() == 2
    area.fill('{"rule": "consent", "mystery": 1}')
    builder.get_by_text("These rules use something the builder cannot show").wait_for()
    page.locator("#segment-preview").get_by_text("does not take mystery").wait_for()
