"""Campaigns API: create, schedule, pause/resume/cancel, preview, report, permissions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from campaigns import lifecycle, sending, services
from campaigns.models import Campaign
from tests.shop.conftest import make_user

from .conftest import make_customers, make_segment


@pytest.fixture
def staff_api(staff_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(staff_user)
    return client


def create(api, template, segment, /, **extra):
    body = {"name": "API picks", "template": template.pk, "segment": segment.pk}
    body.update(extra)
    return api.post("/api/v1/campaigns", body, format="json")


def test_create_a_campaign_with_variants(staff_api, store, template):
    segment = make_segment()
    response = create(
        staff_api,
        template,
        segment,
        holdout_percent=10,
        n_products=4,
        seed=99,
        exclude_category_ids=[store.kitchen.pk],
        variants=[{"name": "A"}, {"name": "B", "subject": "B: {{ greeting_name }}", "weight": 2}],
    )
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["status"] == "draft" and data["holdout_percent"] == 10 and data["seed"] == 99
    assert [v["name"] for v in data["variants"]] == ["A", "B"] and data["exclude_category_ids"] == [store.kitchen.pk]
    assert staff_api.get(f"/api/v1/campaigns/{data['id']}").json()["name"] == "API picks"
    listing = staff_api.get("/api/v1/campaigns", {"status": "draft"}).json()
    assert listing["count"] == 1 and listing["results"][0]["id"] == data["id"]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"strategy": "astrology"}, "strategy"),
        ({"variants": [{"name": "A", "subject": "{% if %}"}]}, "variants[0]"),
        ({"variants": [{"name": "A"}, {"name": "A"}]}, "variants"),
        ({"holdout_percent": 95}, "holdout_percent"),
        ({"kind": "win_back"}, "inactive_days"),
        ({"segment": None}, "segment"),
        ({"from_email": "Shop <shop@example.com>\r\nBcc: everyone@example.net"}, "from_email"),
        ({"from_email": "not an address"}, "from_email"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(staff_api, store, template, extra, field):
    segment = make_segment()
    response = create(staff_api, template, segment, **extra)
    assert response.status_code == 400, response.content
    fields = [f["field"] or "" for f in response.json()["error"]["fields"]]
    assert any(f.startswith(field) for f in fields), fields
    assert not Campaign.objects.exists()


def test_schedule_pause_resume_cancel(staff_api, store, template, django_capture_on_commit_callbacks):
    campaign_id = create(staff_api, template, make_segment()).json()["id"]
    at = (timezone.now() + timedelta(hours=2)).isoformat()
    response = staff_api.post(f"/api/v1/campaigns/{campaign_id}/schedule", {"at": at}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "scheduled"
    assert staff_api.post(f"/api/v1/campaigns/{campaign_id}/pause").json()["status"] == "paused"
    assert staff_api.post(f"/api/v1/campaigns/{campaign_id}/resume").json()["status"] == "scheduled"
    conflict = staff_api.post(f"/api/v1/campaigns/{campaign_id}/resume")
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "conflict"
    assert staff_api.post(f"/api/v1/campaigns/{campaign_id}/cancel").json()["status"] == "cancelled"
    assert staff_api.post(f"/api/v1/campaigns/{campaign_id}/cancel").status_code == 409
    naive = staff_api.post(f"/api/v1/campaigns/{campaign_id}/schedule", {"at": "not a date"}, format="json")
    assert naive.status_code == 400


def test_schedule_now_enqueues_the_launch_after_commit(staff_api, store, template, django_capture_on_commit_callbacks):
    campaign_id = create(staff_api, template, make_segment()).json()["id"]
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff_api.post(f"/api/v1/campaigns/{campaign_id}/schedule", {}, format="json")
    assert response.status_code == 200 and len(callbacks) == 1


def test_preview_for_a_customer(staff_api, store, template):
    (customer,) = make_customers(1)
    campaign_id = create(staff_api, template, make_segment()).json()["id"]
    response = staff_api.get(f"/api/v1/campaigns/{campaign_id}/preview", {"customer": customer.email})
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["customer"] == customer.email and customer.first_name in data["subject"]
    assert data["products"] and data["products"][0]["name"] in data["html"]
    assert staff_api.get(f"/api/v1/campaigns/{campaign_id}/preview", {"customer": "nobody"}).status_code == 400
    assert staff_api.get(f"/api/v1/campaigns/{campaign_id}/preview").status_code == 400


def test_report(staff_api, store, template):
    make_customers(10)
    campaign_id = create(staff_api, template, make_segment(), holdout_percent=30, seed=5).json()["id"]
    campaign = Campaign.objects.get(pk=campaign_id)
    services.campaign_schedule(campaign=campaign)
    lifecycle.campaign_launch(campaign_id=campaign_id)
    sending.deliveries_send_range(campaign_id=campaign_id, min_id=0, max_id=2**62)
    data = staff_api.get(f"/api/v1/campaigns/{campaign_id}/report").json()
    assert data["total"]["audience"] == 10 and data["progress"]["percent"] == 100.0
    holdout = next(g for g in data["groups"] if g["is_holdout"])
    assert holdout["withheld"] + data["groups"][0]["sent"] == 10
    assert data["groups"][0]["uplift"]["difference"] == 0.0


def test_segments_and_templates_lists(staff_api, store, template):
    make_segment()
    assert staff_api.get("/api/v1/segments").json()["count"] == 1
    names = [t["name"] for t in staff_api.get("/api/v1/email-templates").json()["results"]]
    assert template.name in names


def test_only_permitted_accounts(store, template):
    anonymous = APIClient()
    assert anonymous.get("/api/v1/campaigns").status_code == 401
    shopper = make_user("shopper@example.com")
    client = APIClient()
    client.force_authenticate(shopper)
    assert client.get("/api/v1/campaigns").status_code == 403
    reader = make_user("reader@example.com", perms=("campaigns.view_campaign",))
    client.force_authenticate(reader)
    assert client.get("/api/v1/campaigns").status_code == 200
    assert client.post("/api/v1/campaigns", {}, format="json").status_code == 403


def test_staff_alone_grants_nothing_the_specific_permission_does(store, template):
    """Every campaigns endpoint, as a staff account without permissions (403) and as one
    holding just the permission the endpoint needs (through)."""
    (customer,) = make_customers(1)
    segment = make_segment()
    campaign = services.campaign_create(name="Matrix", template=template, segment=segment)
    at = (timezone.now() + timedelta(hours=2)).isoformat()
    base = f"/api/v1/campaigns/{campaign.pk}"
    view = ("campaigns.view_campaign",)
    matrix = [
        ("get", "/api/v1/campaigns", None, view),
        (
            "post",
            "/api/v1/campaigns",
            {"name": "New", "template": template.pk, "segment": segment.pk},
            ("campaigns.add_campaign",),
        ),
        ("get", base, None, view),
        ("get", f"{base}/preview?customer={customer.pk}", None, (*view, "recommendations.view_recommendations")),
        ("get", f"{base}/report", None, view),
        ("get", "/api/v1/segments", None, view),
        ("get", "/api/v1/email-templates", None, view),
        ("post", f"{base}/schedule", {"at": at}, ("campaigns.change_campaign",)),
        ("post", f"{base}/pause", None, ("campaigns.change_campaign",)),
        ("post", f"{base}/resume", None, ("campaigns.change_campaign",)),
        ("post", f"{base}/cancel", None, ("campaigns.change_campaign",)),
    ]
    bare = APIClient()
    bare.force_authenticate(make_user("bare-staff@example.com", is_staff=True))
    for i, (method, url, body, perms) in enumerate(matrix):
        refused = getattr(bare, method)(url, body, format="json")
        assert refused.status_code == 403, (method, url, refused.status_code)
        if len(perms) > 1:  # each one alone is not enough
            for perm in perms:
                partial = APIClient()
                partial.force_authenticate(make_user(f"partial-{i}-{perm}@example.com", is_staff=True, perms=(perm,)))
                assert getattr(partial, method)(url, body, format="json").status_code == 403, (url, perm)
        allowed = APIClient()
        allowed.force_authenticate(make_user(f"staff-{i}@example.com", is_staff=True, perms=perms))
        response = getattr(allowed, method)(url, body, format="json")
        assert response.status_code in (200, 201), (method, url, response.status_code, response.content[:300])


def test_the_schema_documents_the_campaigns_api(staff_api):
    schema = staff_api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    for path in (
        "/api/v1/campaigns",
        "/api/v1/campaigns/{id}/schedule",
        "/api/v1/campaigns/{id}/preview",
        "/api/v1/campaigns/{id}/report",
    ):
        assert path in paths, path
    assert "409" in paths["/api/v1/campaigns/{id}/resume"]["post"]["responses"]
