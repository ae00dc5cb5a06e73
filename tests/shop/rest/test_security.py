"""The classic holes: CSRF on session writes, other people's data, rate limits, sizes."""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import urlsplit

import pytest
from django.middleware.csrf import _get_new_csrf_string, _mask_cipher_secret
from django.test import Client
from rest_framework.test import APIClient

from campaigns import sending
from campaigns.models import Delivery
from shop.models import Interaction, User
from tests.campaigns.conftest import build_store, default_template, launch, make_campaign, make_customers
from tests.conftest import serving_caches_clear
from tests.factories import ProductFactory, interaction_make
from tests.shop.conftest import assert_error, token_client

pytestmark = pytest.mark.django_db


def csrf_client(user) -> tuple[APIClient, str]:
    """A browser-like session client that enforces CSRF, with the token it was given."""
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    secret = _get_new_csrf_string()  # what Django's CSRF cookie holds; the header carries a masked copy
    client.cookies["csrftoken"] = secret
    return client, _mask_cipher_secret(secret)


def test_session_writes_need_the_csrf_token(shopper):
    client, token = csrf_client(shopper)
    product = ProductFactory()
    event = {"product_id": product.pk, "kind": "view"}
    assert_error(client.patch("/api/v1/me", {"first_name": "Mallory"}, format="json"), 403, "permission_denied")
    assert_error(client.post("/api/v1/interactions/batch", {"events": [event]}, format="json"), 403)
    assert_error(client.post("/api/v1/interactions", event, format="json"), 403)
    shopper.refresh_from_db()
    assert shopper.first_name == "Ann" and not Interaction.objects.exists()
    # reads need no token; writes with it succeed
    assert client.get("/api/v1/me").status_code == 200
    ok = client.patch("/api/v1/me", {"first_name": "Annie"}, format="json", HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 200, ok.content
    assert (
        client.post(
            "/api/v1/interactions/batch", {"events": [event]}, format="json", HTTP_X_CSRFTOKEN=token
        ).status_code
        == 201
    )


def test_csrf_with_plain_django_client_too(shopper):
    client = Client(enforce_csrf_checks=True)
    client.force_login(shopper)
    response = client.patch("/api/v1/me", '{"first_name": "Mallory"}', content_type="application/json")
    assert_error(response, 403, "permission_denied")
    assert "CSRF" in response.json()["error"]["message"]


def test_token_clients_need_no_csrf_token(shopper):
    client = token_client(shopper)
    client.handler.enforce_csrf_checks = True
    assert client.patch("/api/v1/me", {"first_name": "Annie"}, format="json").status_code == 200


def test_a_shopper_cannot_read_another_customers_data(shopper_api, shopper, other_shopper):
    product = ProductFactory()
    interaction_make(user=other_shopper, product=product, kind=Interaction.Kind.PURCHASE)
    other = other_shopper.pk
    # the customer endpoints are closed to shoppers, whatever the id
    assert_error(shopper_api.get(f"/api/v1/customers/{other}"), 403)
    assert_error(shopper_api.get("/api/v1/customers/external/crm-bob"), 403)
    assert_error(shopper_api.get("/api/v1/customers", {"email": "bob@example.com"}), 403)
    # the events list only ever shows your own unless you may see others'
    assert shopper_api.get("/api/v1/interactions").json()["count"] == 0
    assert_error(shopper_api.get("/api/v1/interactions", {"user_id": other}), 403)
    assert_error(shopper_api.get("/api/v1/interactions", {"user_external_id": "crm-bob"}), 403)
    # `me` is always the caller, whatever the body says
    shopper_api.patch("/api/v1/me", {"id": other, "first_name": "Eve"}, format="json")
    assert User.objects.get(pk=other).first_name == "Bob"
    # no response to a shopper contains the other customer's email
    for url in ("/api/v1/me", "/api/v1/interactions", f"/api/v1/customers/{other}"):
        assert b"bob@example.com" not in shopper_api.get(url).content


def test_errors_never_leak_internals(staff_api):
    body = staff_api.get("/api/v1/customers/987654").json()
    assert body == {"error": {"code": "not_found", "message": "Not found.", "fields": []}}


def test_throttling_per_client(settings, shopper, other_shopper):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "2/min", "user": "3/min", "interactions_batch": "5/min"},
    }
    ann, bob = token_client(shopper), token_client(other_shopper)
    for _ in range(3):
        assert ann.get("/api/v1/me").status_code == 200
    throttled = ann.get("/api/v1/me")
    err = assert_error(throttled, 429, "throttled")
    assert 1 <= err["retry_after"] <= 60
    assert throttled["Retry-After"] == str(err["retry_after"])
    # another client has its own budget
    assert bob.get("/api/v1/me").status_code == 200
    # the bulk endpoint has its own, separate scope
    product = ProductFactory()
    for _ in range(5):
        assert (
            ann.post(
                "/api/v1/interactions/batch", {"events": [{"product_id": product.pk, "kind": "view"}]}, format="json"
            ).status_code
            == 201
        )
    assert_error(
        ann.post("/api/v1/interactions/batch", {"events": [{"product_id": product.pk, "kind": "view"}]}, format="json"),
        429,
        "throttled",
    )
    # anonymous callers are counted per address
    anon = APIClient()
    assert anon.get("/api/v1/products").status_code == 200
    assert anon.get("/api/v1/products").status_code == 200
    assert_error(anon.get("/api/v1/products"), 429, "throttled")
    assert APIClient(REMOTE_ADDR="10.0.0.9").get("/api/v1/products").status_code == 200


def test_x_forwarded_for_does_not_dodge_the_anonymous_limit(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "1/min", "user": "off", "interactions_batch": "off"},
    }
    assert APIClient().get("/api/v1/products", HTTP_X_FORWARDED_FOR="1.1.1.1").status_code == 200
    assert_error(APIClient().get("/api/v1/products", HTTP_X_FORWARDED_FOR="2.2.2.2"), 429)


# --- click tracking in emails (campaigns' /c/k/<token>/) ------------------------------------
def _off_site(response) -> bool:
    if not 300 <= response.status_code < 400:
        return False
    target = urlsplit(response["Location"])
    return bool(target.scheme or target.netloc) or response["Location"].startswith(("//", "/\\"))


@pytest.fixture
def clean_serving_state(settings, tmp_path):
    """The recommendations' serving state and trending cache outlive a test's rolled-back
    database (they are keyed by epochs that repeat): start and end clean, as the
    campaigns tests do."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    serving_caches_clear()
    yield
    serving_caches_clear()


def test_click_links_in_a_sent_email_never_redirect_off_site(client, mailoutbox, clean_serving_state):
    """Black box: take the tracking links from an email as sent, tamper with them the
    way an attacker would, and check no answer sends the browser to another host."""
    build_store()
    make_customers(1)
    campaign = launch(make_campaign(default_template(), strategy="trending", exclude_purchased=False))
    sending.deliveries_send_range(campaign_id=campaign.pk, min_id=0, max_id=2**62)
    delivery = Delivery.objects.get()
    assert len(mailoutbox) == 1, (delivery.status, delivery.skip_reason)
    email = mailoutbox[0]
    body = email.body + "".join(str(content) for content, _ in getattr(email, "alternatives", []))
    links = sorted(set(re.findall(r"/c/k/([^/\"'\s<>]+)/", body)))
    assert links, body[:500]

    for token in links:
        genuine = client.get(f"/c/k/{token}/")
        assert genuine.status_code == 302 and not _off_site(genuine), genuine.get("Location")
        payload_b64, _, signature = token.partition(":")
        evil = (
            base64.urlsafe_b64encode(
                json.dumps({"d": delivery.pk, "u": "https://evil.example/login"}, separators=(",", ":")).encode()
            )
            .decode()
            .rstrip("=")
        )
        attempts = [
            f"/c/k/{token}/?next=https://evil.example/",  # extra parameters are ignored
            f"/c/k/{evil}:{signature}/",  # payload swapped, signature kept
            f"/c/k/{evil}/",  # no signature at all
            f"/c/k/{token[:-3]}xyz/",  # signature altered
            "/c/k/https:%2F%2Fevil.example/",  # a URL instead of a token
            "/c/k/%2F%2Fevil.example/",
        ]
        for url in attempts:
            response = client.get(url)
            assert not _off_site(response), (url, response.status_code, response.get("Location"))
            if "?next=" not in url:
                assert response.status_code in (400, 404), (url, response.status_code)
