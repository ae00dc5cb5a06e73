"""Customers (sync by external id) and the shopper's own profile (`me`)."""

from __future__ import annotations

import pytest

from shop.models import ConsentChange, Interaction, User
from tests.factories import CategoryFactory, ProductFactory, interaction_make
from tests.shop.conftest import assert_error, make_user, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def kitchen():
    return CategoryFactory(name="Kitchen", slug="kitchen")


# --- permissions ------------------------------------------------------------------------
def test_customer_endpoints_permission_matrix(api, shopper, shopper_api, other_shopper, staff_api, crm_api):
    other = other_shopper.pk
    # anonymous: 401, shopper (even for themselves): 403 -- these are integration endpoints
    assert_error(api.get("/api/v1/customers"), 401, "not_authenticated")
    assert_error(api.get(f"/api/v1/customers/{other}"), 401, "not_authenticated")
    assert_error(shopper_api.get("/api/v1/customers"), 403, "permission_denied")
    assert_error(shopper_api.get(f"/api/v1/customers/{other}"), 403, "permission_denied")
    assert_error(shopper_api.get(f"/api/v1/customers/{shopper.pk}"), 403, "permission_denied")
    assert_error(shopper_api.get("/api/v1/customers/external/crm-bob"), 403, "permission_denied")
    assert_error(shopper_api.patch(f"/api/v1/customers/{other}", {"first_name": "X"}, format="json"), 403)
    assert_error(shopper_api.put("/api/v1/customers/external/crm-bob", {"first_name": "X"}, format="json"), 403)
    assert_error(shopper_api.delete(f"/api/v1/customers/{other}"), 403)
    # staff (superuser) and a client with the permissions
    for client in (staff_api, crm_api):
        assert client.get(f"/api/v1/customers/{other}").json()["email"] == "bob@example.com"
        assert client.get("/api/v1/customers/external/crm-bob").json()["id"] == other
    # a client with view only cannot change
    viewer = token_client(make_user("view@x.example", perms=("shop.view_user",)))
    assert viewer.get(f"/api/v1/customers/{other}").status_code == 200
    assert_error(viewer.patch(f"/api/v1/customers/{other}", {"first_name": "X"}, format="json"), 403)
    assert_error(crm_api.delete(f"/api/v1/customers/{other}"), 403)  # no delete_user
    assert User.objects.get(pk=other).first_name == "Bob"


def test_bad_token_is_401(api):
    api.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    assert_error(api.get("/api/v1/me"), 401, "authentication_failed")


def test_staff_accounts_are_not_customers(crm_api, staff_user):
    assert_error(crm_api.get(f"/api/v1/customers/{staff_user.pk}"), 404, "not_found")
    assert_error(
        crm_api.patch(f"/api/v1/customers/{staff_user.pk}", {"email": "mine@evil.example"}, format="json"), 404
    )
    assert staff_user.pk not in [c["id"] for c in crm_api.get("/api/v1/customers").json()["results"]]
    staff_user.external_id = "crm-admin"
    staff_user.save()
    err = assert_error(
        crm_api.put("/api/v1/customers/external/crm-admin", {"email": "x@evil.example"}, format="json"),
        400,
        "validation_error",
    )
    assert err["fields"][0]["code"] == "forbidden"
    staff_user.refresh_from_db()
    assert staff_user.email == "staff@affinity.example"


# --- create, list, change, forget ---------------------------------------------------------
def test_create_and_list_customers(crm_api, kitchen):
    response = crm_api.post(
        "/api/v1/customers",
        {
            "email": "New@Example.com",
            "external_id": "crm-9",
            "first_name": "Nia",
            "interests": ["kitchen"],
            "marketing_consent": True,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["email"] == "new@example.com" and body["interests"] == ["kitchen"] and body["marketing_consent"]
    user = User.objects.get(pk=body["id"])
    assert not user.has_usable_password()
    assert ConsentChange.objects.get(user=user).source == "api"
    listed = crm_api.get("/api/v1/customers", {"external_id": "crm-9"}).json()
    assert [c["id"] for c in listed["results"]] == [user.pk]
    opted_out = crm_api.get("/api/v1/customers", {"marketing_consent": "false"}).json()["results"]
    assert user.pk not in [c["id"] for c in opted_out]
    assert [c["id"] for c in crm_api.get("/api/v1/customers", {"marketing_consent": "true"}).json()["results"]] == [
        user.pk
    ]


def test_create_customer_validation(crm_api, shopper):
    err = assert_error(
        crm_api.post(
            "/api/v1/customers",
            {"email": "not-an-email", "interests": ["nope"], "first_name": 5 * "x" * 40},
            format="json",
        ),
        400,
    )
    assert {f["field"] for f in err["fields"]} == {"email", "interests", "first_name"}
    err = assert_error(
        crm_api.post("/api/v1/customers", {"email": "ANN@example.com", "external_id": "crm-ann"}, format="json"),
        400,
        "validation_error",
    )
    assert {(f["field"], f["code"]) for f in err["fields"]} == {("email", "unique"), ("external_id", "unique")}
    assert_error(crm_api.post("/api/v1/customers", ["email"], format="json"), 400, "validation_error")
    assert_error(crm_api.post("/api/v1/customers", "{not json", content_type="application/json"), 400, "parse_error")
    assert_error(crm_api.post("/api/v1/customers", "email=x", content_type="text/plain"), 415, "unsupported_media_type")


def test_upsert_by_external_id_creates_then_updates(crm_api, kitchen):
    url = "/api/v1/customers/external/shopify-77"
    err = assert_error(crm_api.put(url, {"first_name": "Kai"}, format="json"), 400)
    assert err["fields"][0]["field"] == "email"  # creating needs an email
    first = crm_api.put(url, {"email": "kai@example.com", "first_name": "Kai"}, format="json")
    assert first.status_code == 201 and first.json()["external_id"] == "shopify-77"
    again = crm_api.put(url, {"last_name": "Moss", "interests": ["kitchen"], "marketing_consent": True}, format="json")
    assert again.status_code == 200
    body = again.json()
    assert (body["first_name"], body["last_name"], body["interests"], body["marketing_consent"]) == (
        "Kai",
        "Moss",
        ["kitchen"],
        True,
    )
    assert User.objects.filter(external_id="shopify-77").count() == 1
    # create needs add_user, update change_user
    changer = token_client(make_user("chg@x.example", perms=("shop.change_user",)))
    assert changer.put(url, {"first_name": "Kim"}, format="json").status_code == 200
    assert_error(
        changer.put("/api/v1/customers/external/new-one", {"email": "n@x.example"}, format="json"),
        403,
        "permission_denied",
    )


def test_patch_customer_and_email_clash(crm_api, shopper, other_shopper):
    response = crm_api.patch(f"/api/v1/customers/{shopper.pk}", {"country": "France"}, format="json")
    assert response.status_code == 200 and response.json()["country"] == "France"
    err = assert_error(
        crm_api.patch(f"/api/v1/customers/{shopper.pk}", {"email": "bob@example.com"}, format="json"), 400
    )
    assert err["fields"] == [
        {"field": "email", "code": "unique", "message": "another account has this email address", "index": 0}
    ]


def test_forget_customer(staff_api, shopper):
    interaction_make(user=shopper, product=ProductFactory())
    assert staff_api.delete(f"/api/v1/customers/{shopper.pk}").status_code == 204
    assert not User.objects.filter(pk=shopper.pk).exists()
    assert not Interaction.objects.filter(user_id=shopper.pk).exists()
    assert_error(staff_api.get(f"/api/v1/customers/{shopper.pk}"), 404)


# --- me -------------------------------------------------------------------------------------
def test_me_reads_and_changes_only_own_profile(api, shopper, shopper_api, other_shopper, kitchen):
    assert_error(api.get("/api/v1/me"), 401, "not_authenticated")
    me = shopper_api.get("/api/v1/me").json()
    assert me["id"] == shopper.pk and me["email"] == "ann@example.com"
    response = shopper_api.patch(
        "/api/v1/me",
        {
            "first_name": "Annie",
            "interests": ["kitchen"],
            "marketing_consent": True,
            "email": "hijack@example.com",
            "id": other_shopper.pk,
            "external_id": "crm-bob",
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["id"] == shopper.pk and body["first_name"] == "Annie" and body["interests"] == ["kitchen"]
    assert body["email"] == "ann@example.com" and body["external_id"] == "crm-ann"  # read-only here
    assert ConsentChange.objects.filter(user=shopper, source="api", consent=True).count() == 1
    other_shopper.refresh_from_db()
    assert other_shopper.first_name == "Bob"


def test_me_works_with_a_token(shopper):
    assert token_client(shopper).get("/api/v1/me").json()["id"] == shopper.pk


def test_me_validation(shopper_api):
    err = assert_error(
        shopper_api.patch("/api/v1/me", {"interests": "kitchen", "marketing_consent": "perhaps"}, format="json"), 400
    )
    assert {f["field"] for f in err["fields"]} == {"interests", "marketing_consent"}
    assert_error(shopper_api.delete("/api/v1/me"), 405, "method_not_allowed")


def test_customer_list_pagination(crm_api):
    for i in range(5):
        make_user(f"p{i}@example.com")
    page = crm_api.get("/api/v1/customers", {"page_size": 2, "page": 2}).json()
    assert page["count"] >= 5 and len(page["results"]) == 2 and page["previous"] and page["next"]
    assert_error(crm_api.get("/api/v1/customers", {"page": 99}), 400, "validation_error")
    assert_error(crm_api.get("/api/v1/customers", {"email": ""}), 400, "validation_error")


def test_token_admin_masks_keys_and_shows_the_new_one_once(staff_client, staff_user, crm_user):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=crm_user)
    listing = staff_client.get("/admin/authtoken/tokenproxy/")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert token.key not in html and token.key[:6] in html and "crm@integrations.example" in html
    page = staff_client.get(f"/admin/authtoken/tokenproxy/{crm_user.pk}/change/")
    assert token.key in page.content.decode() and "shop.change_user" in page.content.decode()
    created = staff_client.post("/admin/authtoken/tokenproxy/add/", {"user": staff_user.pk}, follow=True)
    new_key = Token.objects.get(user=staff_user).key
    assert new_key in created.content.decode()  # shown in the success message
    # revoking = deleting: the token stops working at once
    staff_client.post(f"/admin/authtoken/tokenproxy/{crm_user.pk}/delete/", {"post": "yes"})
    assert not Token.objects.filter(key=token.key).exists()
    from rest_framework.test import APIClient

    revoked = APIClient()
    revoked.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    assert_error(revoked.get("/api/v1/me"), 401, "authentication_failed")
