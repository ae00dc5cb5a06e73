import pytest
from django.urls import reverse


def test_liveness(client):
    response = client.get(reverse("health-live"))
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readiness_checks_database_and_broker(client):
    body = client.get(reverse("health-ready")).json()
    assert body["status"] == "ok", body
    assert body["checks"] == {"database": "ok", "broker": "ok"}


@pytest.mark.django_db
def test_readiness_fails_with_503_naming_the_broker(client, settings):
    from shop.celery import app

    old = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    try:
        response = client.get(reverse("health-ready"))
    finally:
        app.conf.broker_url = old
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "ok"
    assert "broker" in response.json()["checks"] and response.json()["checks"]["broker"] != "ok"
