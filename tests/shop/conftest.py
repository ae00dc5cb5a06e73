"""Fixtures of the API tests: accounts of each kind and clients acting as them."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


@pytest.fixture(autouse=True)
def _own_throttle_counters(settings):
    """Rate-limit counters live in the shared cache (Redis): give every test its own
    namespace so that counts never leak between tests or test runs."""
    settings.API_THROTTLE_NAMESPACE = f"test-{uuid.uuid4().hex}"


@pytest.fixture
def api():
    """An anonymous API client."""
    return APIClient()


def make_user(email: str, *, perms: tuple[str, ...] = (), **extra):
    from django.contrib.auth.models import Permission

    from shop.models import User

    user = User.objects.create_user(email=email, password="secret-pass-123", **extra)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return User.objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def shopper(db):
    return make_user("ann@example.com", first_name="Ann", external_id="crm-ann")


@pytest.fixture
def other_shopper(db):
    return make_user("bob@example.com", first_name="Bob", external_id="crm-bob")


@pytest.fixture
def shopper_api(shopper):
    """A shopper logged in with a browser session (CSRF not enforced: see the CSRF tests)."""
    client = APIClient()
    client.force_login(shopper)
    return client


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def staff_api(staff_user):
    """A superuser's token client."""
    return token_client(staff_user)


@pytest.fixture
def pipeline_user(db):
    """An integration account holding only the permission to send anyone's events."""
    return make_user("pipeline@integrations.example", perms=("shop.add_interaction",))


@pytest.fixture
def pipeline_api(pipeline_user):
    return token_client(pipeline_user)


@pytest.fixture
def crm_user(db):
    """An integration account that syncs customers."""
    return make_user("crm@integrations.example", perms=("shop.view_user", "shop.add_user", "shop.change_user"))


@pytest.fixture
def crm_api(crm_user):
    return token_client(crm_user)


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The response is ``status`` in the API's one error shape; returns its ``error``."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err["code"], str) and err["code"], err
    assert isinstance(err["message"], str) and err["message"], err
    assert isinstance(err["fields"], list), err
    for f in err["fields"]:
        assert {"field", "code", "message"} <= set(f), f
    if code is not None:
        assert err["code"] == code, err
    return err
