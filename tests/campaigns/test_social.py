"""UTM parameters on email links and the visits they bring: recorded as tagged
visits of the campaign, shown in its report (admin and API)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from campaigns import selectors, sending, social
from campaigns.models import Delivery, OutboxMessage, TaggedVisit

from .conftest import launch, make_campaign, make_customers

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(store, template, settings):
    settings.EMAIL_BACKEND = "campaigns.outbox.OutboxEmailBackend"
    make_customers(1)
    campaign = launch(make_campaign(template, name="Spring picks", strategy="trending", exclude_purchased=False))
    sending.deliveries_send_range(campaign_id=campaign.pk, min_id=0, max_id=2**62)
    return Delivery.objects.select_related("campaign").get()


def _links(html: str) -> list[str]:
    return [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]+)"', html)]


def test_every_link_to_the_store_in_an_email_carries_utm(sent):
    html = OutboxMessage.objects.get().html
    links = [u for u in _links(html) if u.startswith("https://shop.example.com/")]
    assert links
    expected = f"spring-picks-c{sent.campaign_id}"
    for url in links:
        query = parse_qs(urlsplit(url).query)
        if "/c/u/" in url:  # the unsubscribe endpoint: not a visit, the same URL as the header's
            continue
        assert query["utm_source"] == ["affinity"] and query["utm_medium"] == ["email"], url
        assert query["utm_campaign"] == [expected] and query["utm_content"], url


def test_a_click_lands_as_a_tagged_visit_of_the_campaign_and_in_its_report(sent, staff_client):
    client = Client()  # the recipient's browser (not logged in)
    html = OutboxMessage.objects.get().html
    product_link = next(u for u in _links(html) if "utm_content=product-" in u and "/c/k/" in u)
    response = client.get(urlsplit(product_link).path + "?" + urlsplit(product_link).query)
    assert response.status_code == 302
    landing = client.get(response["Location"])  # the product page, UTM-tagged
    assert landing.status_code == 302 and "utm_" not in landing["Location"]  # recorded, then cleaned
    assert client.get(landing["Location"]).status_code == 200
    visit = TaggedVisit.objects.get()
    assert (visit.campaign_id, visit.utm_source, visit.utm_medium) == (sent.campaign_id, "affinity", "email")
    assert visit.utm_content.startswith("product-") and visit.user is None
    report = selectors.campaign_report(campaign=sent.campaign)
    assert report.visits["visits"] == 1 and report.visits["visitors"] == 1
    assert report.visits["by_link"] == [{"utm_content": visit.utm_content, "n": 1}]
    page = staff_client.get(f"/admin/campaigns/campaign/{sent.campaign_id}/report/")
    assert page.status_code == 200 and "1 visit by 1 visitor" in page.content.decode()  # the admin report
    api = staff_client.get(f"/api/v1/campaigns/{sent.campaign_id}/report")
    assert api.status_code == 200 and api.json()["visits"]["visits"] == 1


def test_utm_campaign_values_round_trip():
    value = social.utm_campaign_value(campaign_id=42, name="Spring sale: 20% off!")
    assert value == "spring-sale-20-off-c42" and social.campaign_id_from_utm(value) == 42
    assert social.campaign_id_from_utm("facebook-summer") is None
    assert social.with_utm("/p/?a=1#x", campaign="c", content="k") == (
        "/p/?a=1&utm_source=affinity&utm_medium=email&utm_campaign=c&utm_content=k#x"
    )
    assert social.with_utm("", campaign="c") == ""


def test_a_utm_campaign_naming_no_campaign_of_ours_is_kept_without_one(client, store):
    client.get("/?utm_source=newsletter&utm_medium=email&utm_campaign=other-c999999&utm_term=mugs")
    visit = TaggedVisit.objects.get()
    assert visit.campaign is None and visit.utm_campaign == "other-c999999" and visit.utm_term == "mugs"
