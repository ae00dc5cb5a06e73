"""Tracking endpoints: open pixel, click redirect, one-click unsubscribe; bad,
tampered and foreign tokens refused."""

from __future__ import annotations

import pytest
from django.core import signing
from django.test import Client
from django.utils.text import slugify

from campaigns import sending, tokens
from campaigns.models import Delivery, Suppression, TrackingEvent
from shop.models import ConsentChange, Interaction

from .conftest import launch, make_campaign, make_customers


@pytest.fixture
def delivery(store, template) -> Delivery:
    make_customers(1)
    campaign = launch(make_campaign(template, strategy="trending", exclude_purchased=False))
    sending.deliveries_send_range(campaign_id=campaign.pk, min_id=0, max_id=2**62)
    delivery = Delivery.objects.select_related("user").get()
    assert delivery.status == Delivery.Status.SENT and delivery.products
    return delivery


def tamper(token: str) -> str:
    return token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]


def test_open_pixel_records_an_open(client, delivery, django_assert_max_num_queries):
    url = f"/c/o/{tokens.open_token(delivery.pk)}.gif"
    with django_assert_max_num_queries(6):
        response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    assert "no-store" in response["Cache-Control"]
    client.get(url)
    delivery.refresh_from_db()
    assert delivery.opened_at is not None and delivery.open_count == 2
    assert TrackingEvent.objects.filter(delivery=delivery, kind="open").count() == 2


def test_click_redirects_to_the_product_page_and_records_an_email_click(
    client, delivery, django_assert_max_num_queries
):
    product_id = delivery.products[0]["id"]
    url = f"/c/k/{tokens.click_token(delivery.pk, product_id=product_id)}/"
    with django_assert_max_num_queries(12):
        response = client.get(url)
    assert response.status_code == 302
    # the landing page is UTM-tagged: the visit is attributed to the campaign
    campaign = f"{slugify(delivery.campaign.name)}-c{delivery.campaign_id}"
    assert response["Location"] == (
        f"/product/{delivery.products[0]['slug']}/?utm_source=affinity&utm_medium=email"
        f"&utm_campaign={campaign}&utm_content=product-{product_id}"
    )
    click = Interaction.objects.get(kind=Interaction.Kind.CLICK)
    assert (click.user_id, click.product_id, click.source, click.delivery_id) == (
        delivery.user_id,
        product_id,
        Interaction.Source.EMAIL,
        delivery.pk,
    )
    delivery.refresh_from_db()
    assert delivery.clicked_at is not None and delivery.click_count == 1
    assert delivery.opened_at is not None  # a click proves the email was opened


def test_click_on_a_site_path(client, delivery):
    response = client.get(f"/c/k/{tokens.click_token(delivery.pk, path='/category/candles/')}/")
    assert response.status_code == 302 and response["Location"].startswith("/category/candles/?utm_source=affinity&")
    assert not Interaction.objects.filter(kind=Interaction.Kind.CLICK).exists()
    assert TrackingEvent.objects.get(kind="click").detail == "/category/candles/"


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "http:/x", "javascript:alert(1)"]
)
def test_a_foreign_redirect_is_refused_even_when_signed(client, delivery, target):
    with pytest.raises(ValueError):
        tokens.click_token(delivery.pk, path=target)
    # Signed with the right key and salt (as a bug elsewhere might): still refused.
    forged = signing.Signer(salt=tokens.SALT_CLICK, algorithm="sha256").sign_object({"d": delivery.pk, "u": target})
    response = client.get(f"/c/k/{forged}/")
    assert response.status_code == 400
    assert not TrackingEvent.objects.exists()


def test_bad_and_tampered_tokens_are_refused_and_record_nothing(client, delivery):
    product_id = delivery.products[0]["id"]
    good_click = tokens.click_token(delivery.pk, product_id=product_id)
    other_signer = signing.Signer(key="another-secret", salt=tokens.SALT_CLICK, algorithm="sha256")

    def forged(salt: str) -> str:  # signed with another key
        return signing.Signer(key="another-secret", salt=salt, algorithm="sha256").sign(str(delivery.pk))

    bad = [
        f"/c/k/{tamper(good_click)}/",
        f"/c/k/{other_signer.sign_object({'d': delivery.pk, 'p': product_id})}/",
        f"/c/k/{tokens.open_token(delivery.pk)}/",  # a token of another kind
        "/c/k/garbage/",
        f"/c/o/{tamper(tokens.open_token(delivery.pk))}.gif",
        f"/c/o/{str(delivery.pk)}.gif",
        f"/c/u/{tamper(tokens.unsubscribe_token(delivery.pk))}/",
        f"/c/u/{tokens.open_token(delivery.pk)}/",
        f"/c/u/{forged(tokens.SALT_UNSUBSCRIBE)}/",
        f"/c/u/{delivery.pk}/",  # unsigned
        f"/c/o/{forged(tokens.SALT_OPEN)}.gif",
    ]
    for url in bad:
        method = client.post if url.startswith("/c/u/") else client.get
        assert method(url).status_code == 400, url
    assert not TrackingEvent.objects.exists()
    assert not Interaction.objects.filter(kind=Interaction.Kind.CLICK).exists()
    assert not Suppression.objects.exists()
    delivery.refresh_from_db()
    delivery.user.refresh_from_db()
    assert delivery.opened_at is None and delivery.clicked_at is None and delivery.unsubscribed_at is None
    assert delivery.user.marketing_consent is True  # consent never changes without a verified token
    assert not ConsentChange.objects.filter(user=delivery.user, source=ConsentChange.Source.UNSUBSCRIBE).exists()


def test_a_valid_token_of_a_deleted_delivery_is_not_found(client, delivery):
    token = tokens.open_token(delivery.pk + 1000)
    assert client.get(f"/c/o/{token}.gif").status_code == 404


def test_unsubscribe_page_asks_first_and_one_post_unsubscribes_at_once(delivery):
    client = Client(enforce_csrf_checks=True)  # a mailbox provider has no cookie nor CSRF token
    url = f"/c/u/{tokens.unsubscribe_token(delivery.pk)}/"
    page = client.get(url)
    assert page.status_code == 200 and b"Unsubscribe" in page.content
    assert not Suppression.objects.exists(), "GET (e.g. a link scanner) must not unsubscribe"

    response = client.post(url, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert Suppression.objects.get(email=delivery.email).reason == Suppression.Reason.UNSUBSCRIBED
    delivery.user.refresh_from_db()
    assert delivery.user.marketing_consent is False
    assert ConsentChange.objects.filter(user=delivery.user, source=ConsentChange.Source.UNSUBSCRIBE).count() == 1
    delivery.refresh_from_db()
    assert delivery.unsubscribed_at is not None
    # Idempotent.
    assert client.post(url).status_code == 200
    assert ConsentChange.objects.filter(user=delivery.user, source=ConsentChange.Source.UNSUBSCRIBE).count() == 1
    assert TrackingEvent.objects.filter(kind="unsubscribe").count() == 1


def test_tracking_methods(client, delivery):
    assert client.post(f"/c/o/{tokens.open_token(delivery.pk)}.gif").status_code == 405
    assert client.delete(f"/c/u/{tokens.unsubscribe_token(delivery.pk)}/").status_code == 405


@pytest.mark.parametrize(
    "payload",
    [{"d": 1, "p": 2}, {"d": 123456789, "u": "/category/candles/?page=2"}, {"d": 7, "u": "/search/?q=caf\u00e9"}],
)
def test_fast_signing_is_exactly_djangos(payload, settings):
    djangos = signing.Signer(salt=tokens.SALT_CLICK, algorithm="sha256").sign_object(payload, compress=False)
    assert tokens._sign_object(payload, tokens.SALT_CLICK) == djangos
    # click_token writes the JSON itself: still byte for byte what Django signs
    assert tokens.click_token(payload["d"], product_id=payload.get("p"), path=payload.get("u")) == djangos
    assert tokens.open_token(42) == signing.Signer(salt=tokens.SALT_OPEN, algorithm="sha256").sign("42")
    settings.SECRET_KEY = "another-key-0123456789-0123456789-0123456789"
    assert tokens.open_token(42) == signing.Signer(salt=tokens.SALT_OPEN, algorithm="sha256").sign("42")
