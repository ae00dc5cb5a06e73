"""The recommendations API: permissions on every endpoint, outputs, validation."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from recommendations import impressions, services
from recommendations.models import Impression, ModelVersion
from shop.models import Interaction
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

BASE = "/api/v1"


def client_for(user=None, *, token: bool = False) -> APIClient:
    client = APIClient()
    if user is not None:
        if token:
            client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        else:
            client.force_login(user)
    return client


def integration_account(*codenames: str):
    account = UserFactory(email=f"pipeline-{'-'.join(codenames)}@partner.example")
    account.user_permissions.set(
        Permission.objects.filter(content_type__app_label="recommendations", codename__in=codenames)
    )
    return account


STAFF_PERMISSIONS = ("view_recommendations", "view_modelversion", "add_modelversion", "change_modelversion")


@pytest.fixture
def staff(db):
    """A staff account holding the permissions of its job (`is_staff` alone grants nothing)."""
    account = UserFactory(email="ops@affinity.example", is_staff=True)
    account.user_permissions.set(
        Permission.objects.filter(content_type__app_label="recommendations", codename__in=STAFF_PERMISSIONS)
    )
    return account


# --- who may call what ------------------------------------------------------------------------
def endpoints(store, version_id):
    user_id = store.customers[0].pk
    product_id = store.products[0].pk
    return {
        "me": ("get", f"{BASE}/recommendations/me"),
        "user": ("get", f"{BASE}/recommendations/users/{user_id}"),
        "session": ("get", f"{BASE}/recommendations/session?session_key=someone-else"),
        "trending": ("get", f"{BASE}/recommendations/trending"),
        "similar": ("get", f"{BASE}/recommendations/products/{product_id}/similar"),
        "models": ("get", f"{BASE}/models"),
        "model": ("get", f"{BASE}/models/{version_id}"),
        "train": ("post", f"{BASE}/models/train"),
        "activate": ("post", f"{BASE}/models/{version_id}/activate"),
    }


EXPECTED = {
    # endpoint: (anonymous, shopper, integration with view_recommendations, staff with STAFF_PERMISSIONS)
    "me": (401, 200, 200, 200),
    "user": (401, 403, 200, 200),
    "session": (401, 403, 200, 200),
    "trending": (200, 200, 200, 200),
    "similar": (200, 200, 200, 200),
    "models": (401, 403, 403, 200),
    "model": (401, 403, 403, 200),
    "train": (401, 403, 403, 202),
    "activate": (401, 403, 403, 200),
}


def test_permissions_on_every_endpoint(store, trained, staff, monkeypatch):
    monkeypatch.setattr(services, "model_train_enqueue", lambda version: None)  # no worker in this test
    integration = integration_account("view_recommendations")
    shopper = store.customers[0]
    callers = [client_for(), client_for(shopper), client_for(integration, token=True), client_for(staff)]
    for name, (method, url) in endpoints(store, trained.pk).items():
        for caller, expected in zip(callers, EXPECTED[name], strict=True):
            response = getattr(caller, method)(
                url, {"algorithm": "popularity"} if name == "train" else None, format="json"
            )
            assert response.status_code == expected, (name, expected, response.status_code, response.content[:300])


# Each endpoint that acts for others, and the one permission that opens it.
NEEDS = {
    "user": "view_recommendations",
    "session": "view_recommendations",
    "models": "view_modelversion",
    "model": "view_modelversion",
    "train": "add_modelversion",
    "activate": "change_modelversion",
}


def test_staff_alone_grants_nothing_the_specific_permission_does(store, trained, monkeypatch):
    monkeypatch.setattr(services, "model_train_enqueue", lambda version: None)
    bare_staff = client_for(UserFactory(email="bare-staff@affinity.example", is_staff=True))
    calls = endpoints(store, trained.pk)
    for name, codename in NEEDS.items():
        method, url = calls[name]
        body = {"algorithm": "popularity"} if name == "train" else None
        refused = getattr(bare_staff, method)(url, body, format="json")
        assert refused.status_code == 403, (name, refused.status_code)
        account = UserFactory(email=f"staff-{name}@affinity.example", is_staff=True)
        account.user_permissions.set(Permission.objects.filter(codename=codename))
        allowed = getattr(client_for(account), method)(url, body, format="json")
        assert allowed.status_code in (200, 202), (name, allowed.status_code, allowed.content[:300])


def test_model_permissions_for_integrations(store, trained, monkeypatch):
    monkeypatch.setattr(services, "model_train_enqueue", lambda version: None)
    reader = client_for(integration_account("view_modelversion"), token=True)
    assert reader.get(f"{BASE}/models").status_code == 200
    assert reader.post(f"{BASE}/models/train", {}, format="json").status_code == 403
    trainer_account = integration_account("view_modelversion", "add_modelversion")
    trainer = client_for(trainer_account, token=True)
    assert trainer.post(f"{BASE}/models/train", {"algorithm": "popularity"}, format="json").status_code == 202
    assert trainer.post(f"{BASE}/models/{trained.pk}/activate").status_code == 403


# --- outputs ------------------------------------------------------------------------------------
def test_recommendations_for_me(store, trained):
    shopper = store.customers[2]
    response = client_for(shopper).get(f"{BASE}/recommendations/me", {"n": 4, "context": "home"})
    assert response.status_code == 200
    body = response.json()
    assert body["strategy"] == f"model:item_knn#{trained.pk}" and body["model_version_id"] == trained.pk
    assert [item["rank"] for item in body["items"]] == [1, 2, 3, 4]
    first = body["items"][0]
    assert set(first) == {"rank", "product", "score", "reason", "reason_code", "source", "rule_effects"}
    assert first["source"] == "model"
    assert set(first["product"]) >= {"id", "sku", "name", "price", "category", "in_stock"}
    assert first["reason"].startswith("Because you")
    impressions.drain()  # with Redis the list is queued first
    shown = Impression.objects.get(pk=body["id"])
    assert shown.user_id == shopper.pk and shown.context == "home"


def test_recommendations_for_a_customer_and_query_validation(store, trained, staff):
    api = client_for(staff)
    user = store.customers[1]
    ok = api.get(
        f"{BASE}/recommendations/users/{user.pk}",
        {"n": 3, "strategy": "trending", "record": "false", "exclude": f"{store.products[0].pk}"},
    )
    assert ok.status_code == 200 and ok.json()["strategy"] == "trending" and len(ok.json()["items"]) == 3
    impressions.drain()
    assert not Impression.objects.filter(pk=ok.json()["id"]).exists()
    assert api.get(f"{BASE}/recommendations/users/999999").status_code == 404
    for params, field in [
        ({"n": 0}, "n"),
        ({"n": "x"}, "n"),
        ({"strategy": "magic"}, "strategy"),
        ({"context": "sidebar"}, "context"),
        ({"exclude": "1,a"}, "exclude"),
        ({"product_id": 999999}, "product_id"),
        ({"category_id": 999999}, "category_id"),
    ]:
        bad = api.get(f"{BASE}/recommendations/users/{user.pk}", params)
        assert bad.status_code == 400, (params, bad.content)
        assert field in bad.content.decode(), (params, bad.content)


def test_session_recommendations_for_own_session(store, trained):
    browser = APIClient()
    browser.get(f"{BASE}/recommendations/trending")
    session = browser.session
    session["seen"] = True
    session.save()
    browser.cookies["sessionid"] = session.session_key
    own = browser.get(f"{BASE}/recommendations/session", {"session_key": session.session_key})
    assert own.status_code == 200
    missing = client_for(integration_account("view_recommendations"), token=True).get(f"{BASE}/recommendations/session")
    assert missing.status_code == 400 and "session_key" in missing.content.decode()


def test_similar_and_trending(store, trained):
    api = client_for()
    product = store.products[3]
    also = api.get(f"{BASE}/recommendations/products/{product.pk}/similar", {"n": 3}).json()
    assert also["items"][0]["reason_code"] == "also_bought"
    similar = api.get(f"{BASE}/recommendations/products/{product.pk}/similar", {"kind": "similar"})
    assert similar.status_code == 200
    assert api.get(f"{BASE}/recommendations/products/{product.pk}/similar", {"kind": "x"}).status_code == 400
    assert api.get(f"{BASE}/recommendations/products/999999/similar").status_code == 404
    trending = api.get(f"{BASE}/recommendations/trending", {"n": 2, "category_id": store.categories[0].pk}).json()
    assert len(trending["items"]) == 2
    assert {i["product"]["category"]["id"] for i in trending["items"]} == {store.categories[0].pk}


def test_click_endpoint(store, trained):
    shopper = store.customers[0]
    api = client_for(shopper)
    rec = api.get(f"{BASE}/recommendations/me", {"n": 3}).json()
    product_id = rec["items"][0]["product"]["id"]
    response = api.post(
        f"{BASE}/recommendations/clicks", {"rec_list_id": rec["id"], "product_id": product_id}, format="json"
    )
    assert response.status_code == 201
    click = Interaction.objects.get(pk=response.json()["interaction_id"])
    assert click.kind == Interaction.Kind.CLICK and str(click.rec_list_id) == rec["id"] and click.user == shopper
    wrong = api.post(
        f"{BASE}/recommendations/clicks",
        {
            "rec_list_id": rec["id"],
            "product_id": store.products[-1].pk
            if store.products[-1].pk not in [i["product"]["id"] for i in rec["items"]]
            else 1,
        },
        format="json",
    )
    assert wrong.status_code == 400 and "rec_list_id" in wrong.content.decode()
    assert api.post(f"{BASE}/recommendations/clicks", {"rec_list_id": "x"}, format="json").status_code == 400
    anonymous = client_for().post(
        f"{BASE}/recommendations/clicks", {"rec_list_id": rec["id"], "product_id": product_id}, format="json"
    )
    assert anonymous.status_code == 201  # attributed to the browser's session
    assert Interaction.objects.get(pk=anonymous.json()["interaction_id"]).session_key


# --- model versions ----------------------------------------------------------------------------
def test_model_versions_list_detail_train_activate(store, trained, staff, monkeypatch):
    queued = []
    monkeypatch.setattr(services, "model_train_enqueue", lambda version: queued.append(version.pk))
    api = client_for(staff)
    listing = api.get(f"{BASE}/models", {"status": "succeeded"}).json()
    assert listing["results"][0]["id"] == trained.pk and listing["results"][0]["metrics"]["ndcg@10"] > 0
    assert api.get(f"{BASE}/models", {"status": "bogus"}).status_code == 400
    detail = api.get(f"{BASE}/models/{trained.pk}").json()
    assert detail["is_active"] and detail["status"] == "succeeded" and detail["progress"] == 100
    response = api.post(f"{BASE}/models/train", {"algorithm": "ease", "params": {"lam": 100}}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and body["trigger"] == "api" and body["created_by"] == staff.email
    assert queued == [body["id"]]
    bad = api.post(f"{BASE}/models/train", {"algorithm": "ease", "params": {"lam": -5}}, format="json")
    assert bad.status_code == 400 and "lam must be > 0" in bad.content.decode()
    versions = ModelVersion.objects.count()
    huge = api.post(f"{BASE}/models/train", {"algorithm": "als", "params": {"factors": 10**9}}, format="json")
    assert huge.status_code == 400, huge.content
    assert "params" in huge.content.decode() and "factors must be between 1 and 1024" in huge.content.decode()
    assert ModelVersion.objects.count() == versions and queued == [body["id"]]  # nothing created, nothing queued
    assert api.post(f"{BASE}/models/train", {"algorithm": "deep"}, format="json").status_code == 400
    # activation: a queued version cannot be activated; a succeeded one can
    refused = api.post(f"{BASE}/models/{body['id']}/activate")
    assert refused.status_code == 400 and "queued" in refused.content.decode()
    other = services.model_train(version_id=services.model_version_create(algorithm="popularity").pk)
    assert not other.is_active
    activated = api.post(f"{BASE}/models/{other.pk}/activate")
    assert activated.status_code == 200 and activated.json()["is_active"]
    assert ModelVersion.objects.get(pk=trained.pk).is_active is False
    assert api.post(f"{BASE}/models/999999/activate").status_code == 404


def test_the_fast_presenter_matches_the_documented_serializer(store, trained):
    import json

    from recommendations.api import RecommendationListSerializer, _present

    rec = services.recommend_for_user(user=store.customers[0], n=5, record_impression=False)
    documented = RecommendationListSerializer(
        {
            "id": rec.id,
            "context": rec.context,
            "strategy": rec.strategy,
            "model_version_id": rec.model_version_id,
            "variant": rec.variant,
            "placement": rec.placement,
            "rule_ids": list(rec.rule_ids),
            "items": [
                {
                    "rank": i,
                    "product": p.product,
                    "score": p.score,
                    "reason": p.reason,
                    "reason_code": p.reason_code,
                    "source": p.source,
                    "rule_effects": [e.as_dict() for e in p.rule_effects],
                }
                for i, p in enumerate(rec.picks, start=1)
            ],
        }
    ).data
    assert json.loads(json.dumps(_present(rec))) == json.loads(json.dumps(documented))
