"""shop.rest.permissions: who may act for others, and the staff tools' rule (a model
permission: `is_staff` alone grants nothing)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from shop.models import Interaction
from shop.rest.permissions import ActionModelPermission, HasModelPermission
from tests.shop.conftest import make_user

pytestmark = pytest.mark.django_db


class _View:
    permission_model = Interaction


class _TrainView(_View):
    permission_action = "add"


def _request(method: str, user):
    request = getattr(RequestFactory(), method.lower())("/api/v1/x")
    request.user = user
    return request


def test_model_permission_follows_the_method_and_staff_alone_grants_nothing():
    reader = make_user("reader@example.com", perms=("shop.view_interaction",))
    staff = make_user("staff@example.com", is_staff=True)
    check = HasModelPermission().has_permission
    assert check(_request("GET", reader), _View()) is True
    assert check(_request("POST", reader), _View()) is False
    assert check(_request("GET", staff), _View()) is False
    assert check(_request("GET", AnonymousUser()), _View()) is False


class _PreviewView(_View):
    required_permissions = ("recommendations.view_recommendations",)


def test_the_permission_of_the_views_action_and_staff_alone_grants_nothing():
    adder = make_user("adder@example.com", perms=("shop.add_interaction",))
    reader = make_user("reader@example.com", perms=("shop.view_interaction",))
    staff = make_user("staff@example.com", is_staff=True)
    staff_adder = make_user("staff-adder@example.com", is_staff=True, perms=("shop.add_interaction",))
    gone = make_user("gone@example.com", is_staff=True, is_active=False, perms=("shop.add_interaction",))
    check = ActionModelPermission().has_permission
    assert check(_request("POST", adder), _TrainView()) is True
    assert check(_request("POST", reader), _TrainView()) is False
    assert check(_request("GET", reader), _View()) is True  # action defaults to view
    assert check(_request("POST", staff), _TrainView()) is False
    assert check(_request("GET", staff), _View()) is False
    assert check(_request("POST", staff_adder), _TrainView()) is True
    assert check(_request("POST", gone), _TrainView()) is False
    assert check(_request("GET", AnonymousUser()), _View()) is False


def test_a_view_may_require_further_permissions():
    reader = make_user("reader@example.com", perms=("shop.view_interaction",))
    both = make_user("both@example.com", perms=("shop.view_interaction", "recommendations.view_recommendations"))
    check = ActionModelPermission().has_permission
    assert check(_request("GET", reader), _PreviewView()) is False
    assert check(_request("GET", both), _PreviewView()) is True
