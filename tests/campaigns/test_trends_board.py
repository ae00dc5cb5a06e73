"""The live trends board in admin (campaigns.board): the ``likely_buyers`` segment rule,
the one-click draft campaign with a product's predicted audience, the JSON the page
polls, permissions, and the page in real Chromium refreshing without a reload."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from campaigns.drafts import draft_subject, likely_buyers_draft
from campaigns.models import Campaign, Segment
from campaigns.segments import RuleError, rule_registry, rules_preview, rules_queryset, rules_validate
from recommendations import noise
from shop.models import Interaction
from shop.services.interactions import interactions_bulk_insert
from tests.browser import Shots
from tests.factories import ProductFactory, UserFactory

from .conftest import buy, default_template, make_customers


@pytest.fixture(autouse=True)
def _no_cached_answers(settings):
    settings.AFFINITY_AUDIENCE_CACHE_SECONDS = 0
    cache.delete(noise.NOISE_CACHE_KEY)
    yield
    cache.delete(noise.NOISE_CACHE_KEY)


@pytest.fixture
def audience_store(store):
    """Candle lovers, kettle lovers and a new candle nobody has seen yet."""
    candle_fans = make_customers(4, prefix="candle")
    kettle_fans = make_customers(4, prefix="kettle")
    for user in candle_fans:
        buy(user, store.in_category(store.candles)[:3], days_ago=3)
    for user in kettle_fans:
        buy(user, store.in_category(store.kitchen)[:3], days_ago=3)
    new = ProductFactory(
        sku="CAN-NEW",
        name="Candle 77",
        slug="candle-77",
        category=store.candles,
        price=Decimal("4.50"),
        description="A useful thing.",
    )
    return {"candle_fans": candle_fans, "kettle_fans": kettle_fans, "new": new}


# --- the segment rule ----------------------------------------------------------------------
def test_likely_buyers_rule_selects_the_top_n_by_id_or_sku(audience_store):
    new = audience_store["new"]
    candle_ids = {u.pk for u in audience_store["candle_fans"]}
    by_id = set(rules_queryset({"rule": "likely_buyers", "product": new.pk, "size": 4}).values_list("pk", flat=True))
    assert by_id == candle_ids  # the candle buyers, not the kettle buyers
    by_sku = rules_queryset({"rule": "likely_buyers", "product": "CAN-NEW", "size": 4})
    assert set(by_sku.values_list("pk", flat=True)) == candle_ids
    # it combines with the other rules like any rule
    one = audience_store["candle_fans"][0]
    one.marketing_consent = False
    one.save(update_fields=["marketing_consent"])
    both = rules_queryset({"all": [{"rule": "likely_buyers", "product": new.pk, "size": 4}, {"rule": "consent"}]})
    assert set(both.values_list("pk", flat=True)) == candle_ids - {one.pk}
    assert rules_preview({"rule": "likely_buyers", "product": new.pk, "size": 2}).count == 2


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"rule": "likely_buyers", "size": 5}, "likely_buyers.product: is required"),
        ({"rule": "likely_buyers", "product": 987654321, "size": 5}, "unknown product 987654321"),
        ({"rule": "likely_buyers", "product": "NO-SUCH-SKU", "size": 5}, "unknown product 'NO-SUCH-SKU'"),
        ({"rule": "likely_buyers", "product": True, "size": 5}, "unknown product True"),
        ({"rule": "likely_buyers", "product": "CAN0"}, "likely_buyers.size: must be a whole number between 1 and"),
        ({"rule": "likely_buyers", "product": "CAN0", "size": 0}, "not 0"),
        ({"rule": "likely_buyers", "product": "CAN0", "size": "10"}, "not '10'"),
        ({"rule": "likely_buyers", "product": "CAN0", "size": 5, "days": 3}, "does not take days"),
        ({"all": [{"rule": "likely_buyers", "product": "CAN0", "size": 10**6}]}, "all[0].size: must be a whole number"),
    ],
)
def test_likely_buyers_rule_validation_names_the_problem(store, rule, message):
    with pytest.raises(RuleError) as caught:
        rules_validate(rule)
    assert any(message in m for m in caught.value.messages), caught.value.messages


def test_the_rule_is_in_the_builders_registry(db):
    entry = next(r for r in rule_registry() if r["name"] == "likely_buyers")
    assert entry["params"] == ["product", "size"] and entry["label"] == "Likely buyers of a product"


# --- the one-click draft ---------------------------------------------------------------------
def test_draft_service_makes_a_segment_and_a_draft_campaign(audience_store, template, staff_user):
    new = audience_store["new"]
    campaign = likely_buyers_draft(product_id=new.pk, size=3, template_id=template.pk, created_by=staff_user)
    assert campaign.status == Campaign.Status.DRAFT and campaign.kind == Campaign.Kind.ONE_OFF
    assert campaign.segment.rules == {"rule": "likely_buyers", "product": new.pk, "size": 3}
    assert "Candle 77" in campaign.segment.name and "top 3" in campaign.segment.name
    assert campaign.created_by == staff_user and campaign.template == template
    assert [v.subject for v in campaign.variants.all()] == ["New: Candle 77"]  # the email names the product
    # again: the same segment is reused, a second draft is made
    again = likely_buyers_draft(product_id=new.pk, size=3, template_id=template.pk)
    assert again.segment_id == campaign.segment_id and again.pk != campaign.pk
    # a different size is a different segment, even when the name would repeat
    Segment.objects.filter(pk=campaign.segment_id).update(rules={"rule": "consent"})
    third = likely_buyers_draft(product_id=new.pk, size=3, template_id=template.pk)
    assert third.segment_id != campaign.segment_id and third.segment.name.endswith("#2")


def test_a_product_name_with_template_syntax_keeps_the_templates_subject():
    assert draft_subject("Mug {{ 1|add:1 }}") == "" and draft_subject("50% off") == ""
    assert draft_subject("Kettle") == "New: Kettle"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"product_id": 987654321}, "product"), ({"size": 0}, "size"), ({"template_id": None}, "template")],
)
def test_draft_service_names_bad_input(audience_store, template, kwargs, field):
    from django.core.exceptions import ValidationError

    args = {"product_id": audience_store["new"].pk, "size": 5, "template_id": template.pk, **kwargs}
    with pytest.raises(ValidationError) as caught:
        likely_buyers_draft(**args)
    assert field in caught.value.message_dict


def test_one_click_from_the_board_drafts_the_campaign_and_opens_it(staff_client, audience_store, template):
    new = audience_store["new"]
    response = staff_client.post(
        reverse("trends:draft"), {"product": new.pk, "size": 4, "template": template.pk}, follow=True
    )
    campaign = Campaign.objects.get()
    assert response.redirect_chain[-1][0] == reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    assert "Draft campaign" in response.content.decode()
    assert campaign.status == Campaign.Status.DRAFT
    assert campaign.segment.rules == {"rule": "likely_buyers", "product": new.pk, "size": 4}
    # the predicted audience is who the campaign would reach
    audience = set(rules_queryset(campaign.segment.rules).values_list("pk", flat=True))
    assert audience == {u.pk for u in audience_store["candle_fans"]}


def test_one_click_with_bad_input_says_what_was_wrong(staff_client, audience_store, template):
    board = reverse("trends:board")
    response = staff_client.post(reverse("trends:draft"), {"product": "x", "size": 4, "template": template.pk})
    assert response.status_code == 302 and response.url == board
    page = staff_client.get(board).content.decode()
    assert "product: must be a product id" in page
    staff_client.post(reverse("trends:draft"), {"product": audience_store["new"].pk, "size": 4, "template": ""})
    assert "choose an email template" in staff_client.get(board).content.decode()
    assert Campaign.objects.count() == 0
    assert staff_client.get(reverse("trends:draft")).status_code == 405


# --- the JSON the page polls -------------------------------------------------------------------
def test_board_json_ranks_a_rising_product(staff_client, store):
    hot = store.products[7]
    now = timezone.now()
    rows = [  # 30 views of one kettle in the last day, against the fixture's even trickle
        Interaction(
            session_key=f"hot{i}", product=hot, kind=Interaction.Kind.VIEW, occurred_at=now - timedelta(hours=i * 0.5)
        )
        for i in range(30)
    ]
    rows += [  # a baseline for everything: two views a week for eight weeks
        Interaction(
            session_key=f"b{p.pk}-{w}",
            product=p,
            kind=Interaction.Kind.VIEW,
            occurred_at=now - timedelta(days=2 + 3.5 * w),
        )
        for p in store.products
        for w in range(16)
    ]
    interactions_bulk_insert(rows=rows)
    data = staff_client.get(reverse("trends:data"), {"window": 24, "baseline": 56}).json()
    assert data["products"][0]["id"] == hot.pk and data["products"][0]["z"] > 3
    assert data["categories"][0]["name"] == "Kitchen"
    assert data["window_hours"] == 24 and data["series"]["lines"][0]["id"] == hot.pk
    bad = staff_client.get(reverse("trends:data"), {"window": 5})
    assert bad.status_code == 400 and "window" in bad.json()["error"]
    assert staff_client.get(reverse("trends:data"), {"baseline": "abc"}).status_code == 400


def test_new_products_and_audience_json(staff_client, audience_store):
    new = audience_store["new"]
    data = staff_client.get(reverse("trends:new-products"), {"size": 4}).json()
    row = next(p for p in data["products"] if p["id"] == new.pk)
    assert row["events"] == 0 and row["audience"]["method"] == "content"
    assert row["audience"]["count"] == 4 and row["audience"]["consenting"] == 4
    candle_emails = {u.email for u in audience_store["candle_fans"]}
    assert {u["email"] for u in row["audience"]["preview"]} <= candle_emails
    one = staff_client.get(reverse("trends:audience"), {"product": new.pk, "size": 2}).json()
    assert one["count"] == 2 and [u["email"] for u in one["preview"]][0] in candle_emails
    assert staff_client.get(reverse("trends:audience"), {"product": 987654321}).status_code == 400
    assert "product" in staff_client.get(reverse("trends:audience")).json()["error"]
    assert staff_client.get(reverse("trends:audience"), {"product": new.pk, "size": 0}).status_code == 400


def test_permissions(client, audience_store):
    assert client.get(reverse("trends:board")).status_code == 302  # to the admin login
    viewer = UserFactory(email="viewer@affinity.example", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_campaign"))
    client.force_login(viewer)
    page = client.get(reverse("trends:board"))
    assert page.status_code == 200 and b"Rising products" in page.content
    assert b"Draft campaign" not in page.content and b'id="new-products"' not in page.content
    assert client.get(reverse("trends:data")).status_code == 200
    assert client.get(reverse("trends:new-products")).status_code == 403  # customers' emails
    assert client.post(reverse("trends:draft"), {"product": audience_store["new"].pk, "size": 3}).status_code == 403
    nobody = UserFactory(email="nobody@affinity.example", is_staff=True)
    client.force_login(nobody)
    assert client.get(reverse("trends:board")).status_code == 403


# --- the page in a real browser ---------------------------------------------------------------------
@pytest.mark.e2e
def test_the_board_refreshes_live_and_drafts_in_one_click(staff_page):
    from tests.campaigns.conftest import build_store

    page = staff_page
    store = build_store()
    template = default_template()
    fans = make_customers(3, prefix="candle")
    for user in fans:
        buy(user, store.in_category(store.candles)[:3], days_ago=3)
    new = ProductFactory(
        sku="CAN-NEW", name="Candle 77", slug="candle-77", category=store.candles, price=Decimal("4.5")
    )
    now = timezone.now()
    baseline = [
        Interaction(
            session_key=f"b{p.pk}-{w}",
            product=p,
            kind=Interaction.Kind.VIEW,
            occurred_at=now - timedelta(days=2 + 3.5 * w),
        )
        for p in store.products
        for w in range(16)
    ]
    first, second = store.products[1], store.products[8]
    burst = [
        Interaction(
            session_key=f"a{i}", product=first, kind=Interaction.Kind.VIEW, occurred_at=now - timedelta(hours=i)
        )
        for i in range(25)
    ]
    interactions_bulk_insert(rows=baseline + burst)

    page.goto(reverse("trends:board") + "?poll=1")
    page.select_option("#trend-window", "24")
    rows = page.locator("#rising-products tbody tr")
    page.wait_for_function("() => document.querySelector('#rising-products tbody tr[data-id]') !== null")
    assert rows.first.get_attribute("data-id") == str(first.pk)
    assert second.name not in page.inner_text("#rising-products")
    assert (
        page.evaluate("() => Chart.getChart(document.getElementById('trend-chart')).data.datasets[0].label")
        == first.name
    )
    count = int(page.get_attribute("#trends-board", "data-refreshes"))

    # new events arrive: the next poll shows them, with no reload
    interactions_bulk_insert(
        rows=[
            Interaction(
                session_key=f"z{i}", product=second, kind=Interaction.Kind.VIEW, occurred_at=now - timedelta(minutes=i)
            )
            for i in range(60)
        ]
    )
    page.evaluate("() => { window.__sameDocument = true; }")
    page.wait_for_function(
        f"() => document.querySelector('#rising-products tbody tr[data-id=\"{second.pk}\"]') !== null"
    )
    assert page.evaluate("() => window.__sameDocument") is True  # the page was not reloaded
    assert int(page.get_attribute("#trends-board", "data-refreshes")) > count
    assert rows.first.get_attribute("data-id") == str(second.pk)  # 60 beats 25
    assert "Live · updated" in page.inner_text("#trend-status")
    shots = Shots(page, "trends_board")
    shots("the board after a live refresh")

    # the new candle beside its likely buyers; one click drafts the campaign
    new_row = page.locator(f'#new-products tbody tr[data-id="{new.pk}"]')
    new_row.wait_for()
    assert "content similarity" in new_row.inner_text()
    assert {u.first_name for u in fans} & set(new_row.inner_text().replace("\n", " ").replace(" · ", " ").split(" "))
    new_row.get_by_role("button", name="Preview").click()
    page.locator("#audience-preview tbody tr").first.wait_for()
    assert "reach 3 customers" in page.inner_text("#audience-summary")
    shots("a new product's predicted audience")
    page.fill("#audience-size", "2")
    page.select_option("#draft-template", str(template.pk))
    new_row.get_by_role("button", name="Draft campaign").click()
    page.wait_for_url("**/admin/campaigns/campaign/*/change/")
    campaign = Campaign.objects.get()
    assert campaign.status == Campaign.Status.DRAFT
    assert campaign.segment.rules == {"rule": "likely_buyers", "product": new.pk, "size": 2}
    assert set(rules_queryset(campaign.segment.rules).values_list("pk", flat=True)) <= {u.pk for u in fans}
