"""The email provider's webhooks (/c/esp/<provider>/tracking/): only an authenticated
event (anymail's basic-auth secret, and the provider's signature where anymail verifies
one) changes anything; in production no secret means every request is refused; the
deploy check says so."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from django.core import checks

from campaigns.checks import esp_webhooks_check
from campaigns.models import Suppression
from shop.models import ConsentChange

from .conftest import make_customers

POSTMARK = "/c/esp/postmark/tracking/"
MAILGUN = "/c/esp/mailgun/tracking/"
SECRET = "esp-user:a-long-random-webhook-password"


def basic(credentials: str) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(credentials.encode()).decode()}


def postmark_events(email: str) -> list[dict]:
    return [
        {
            "RecordType": "SubscriptionChange",
            "Recipient": email,
            "SuppressSending": True,
            "SuppressionReason": "ManualSuppression",
            "ChangedAt": "2026-01-02T03:04:05Z",
        },
        {
            "RecordType": "Bounce",
            "Type": "HardBounce",
            "Email": email.replace("@", "+b@"),
            "BouncedAt": "2026-01-02T03:04:05Z",
            "ID": 1,
        },
    ]


def post_postmark(client, email: str, **extra):
    responses = [
        client.post(POSTMARK, json.dumps(e), content_type="application/json", **extra) for e in postmark_events(email)
    ]
    return [r.status_code for r in responses]


@pytest.fixture
def customer(db):
    (user,) = make_customers(1)
    assert user.marketing_consent
    return user


def assert_nothing_changed(user) -> None:
    assert not Suppression.objects.exists()
    user.refresh_from_db()
    assert user.marketing_consent is True
    assert not ConsentChange.objects.filter(user=user, source=ConsentChange.Source.UNSUBSCRIBE).exists()


@pytest.mark.parametrize("credentials", [None, "esp-user:wrong", "someone:" + SECRET.split(":")[1]])
def test_without_the_right_credentials_nothing_changes(client, settings, customer, credentials):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    extra = basic(credentials) if credentials else {}
    assert post_postmark(client, customer.email, **extra) == [400, 400]
    assert_nothing_changed(customer)


def test_with_the_right_credentials_the_events_are_applied(client, settings, customer):
    settings.ANYMAIL = {"WEBHOOK_SECRET": ["old:rotated-out", SECRET]}
    assert post_postmark(client, customer.email, **basic(SECRET)) == [200, 200]
    reasons = dict(Suppression.objects.values_list("email", "reason"))
    assert reasons == {customer.email: "unsubscribed", customer.email.replace("@", "+b@"): "bounced"}
    customer.refresh_from_db()
    assert customer.marketing_consent is False


@pytest.mark.parametrize("credentials", [None, SECRET, ""])
def test_in_production_no_secret_refuses_every_request(client, settings, customer, credentials):
    settings.PRODUCTION = True
    settings.ANYMAIL = {"WEBHOOK_SECRET": ""} if credentials == "" else {}
    extra = basic(credentials) if credentials else {}
    assert post_postmark(client, customer.email, **extra) == [403, 403]
    response = client.post(MAILGUN, "{}", content_type="application/json")
    assert response.status_code == 403 and b"WEBHOOK_SECRET" in response.content
    assert client.head(POSTMARK).status_code == 403
    assert_nothing_changed(customer)


def test_in_production_with_a_secret_the_webhook_works(client, settings, customer):
    settings.PRODUCTION = True
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    assert post_postmark(client, customer.email) == [400, 400]
    assert_nothing_changed(customer)
    assert post_postmark(client, customer.email, **basic(SECRET)) == [200, 200]
    assert Suppression.objects.count() == 2


def mailgun_unsubscribe(email: str, key: str) -> str:
    timestamp, token = str(int(time.time())), "a" * 50
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {
            "signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": {"event": "unsubscribed", "recipient": email, "timestamp": float(timestamp)},
        }
    )


def test_a_signing_provider_needs_its_signature_as_well(client, settings, customer):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": "the-signing-key"}
    forged = mailgun_unsubscribe(customer.email, "another-key")
    assert client.post(MAILGUN, forged, content_type="application/json", **basic(SECRET)).status_code == 400
    assert_nothing_changed(customer)
    signed = mailgun_unsubscribe(customer.email, "the-signing-key")
    assert client.post(MAILGUN, signed, content_type="application/json").status_code == 400  # no basic auth
    assert_nothing_changed(customer)
    assert client.post(MAILGUN, signed, content_type="application/json", **basic(SECRET)).status_code == 200
    assert Suppression.objects.get().email == customer.email


def test_deploy_check_warns_about_a_missing_secret_and_signing_key(settings):
    settings.ANYMAIL = {}
    settings.EMAIL_BACKEND = "campaigns.outbox.OutboxEmailBackend"
    assert [m.id for m in esp_webhooks_check()] == ["campaigns.W001"]
    assert "campaigns.W001" in [m.id for m in checks.run_checks(include_deployment_checks=True)]
    assert "campaigns.W001" not in [m.id for m in checks.run_checks(include_deployment_checks=False)]
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    assert esp_webhooks_check() == []
    settings.EMAIL_BACKEND = "anymail.backends.mailgun.EmailBackend"
    (message,) = esp_webhooks_check()
    assert message.id == "campaigns.W002" and "MAILGUN_WEBHOOK_SIGNING_KEY" in message.msg
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": "k"}
    assert esp_webhooks_check() == []
