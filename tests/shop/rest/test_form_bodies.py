"""A form body checked by the edge middleware stays readable to the view.

The middleware reads `request.POST` of every store and admin form (NUL bytes, lone
surrogates); after that, a view that reads the raw body (the segment builder's JSON
preview, provider webhooks) got Django's RawPostDataException: a 500 for a request that
only had the wrong content type."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

PREVIEW = "/admin/campaigns/segment/preview/"


def test_a_form_posted_to_a_json_endpoint_is_a_clear_400(staff_client):
    response = staff_client.post(PREVIEW, {"rules": '{"rule": "all_customers"}'})
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["errors"][0]


def test_the_json_endpoint_still_answers_json(staff_client):
    body = json.dumps({"rules": {"all": []}})
    response = staff_client.post(PREVIEW, body, content_type="application/json")
    assert response.status_code == 200, response.content
    assert "count" in response.json() or "errors" in response.json()


def test_the_form_is_still_checked_for_unstorable_text(client):
    response = client.post(reverse("shop:login"), {"username": "a\x00b@example.com", "password": "x"})
    assert response.status_code == 400
