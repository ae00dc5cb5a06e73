"""Brute-force protection (django-axes) on the store's and the admin's login."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from axes.utils import reset
from django.urls import reverse

from shop.models import User

LIMIT = 3
PASSWORD = "right-pass-123"


@pytest.fixture(autouse=True)
def _small_limit(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = LIMIT


@pytest.fixture
def ann(db):
    return User.objects.create_user(email="ann@example.com", password=PASSWORD)


@pytest.fixture
def boss(db):
    return User.objects.create_superuser(email="boss@affinity.example", password=PASSWORD)


def _logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def _store_login(client, email, password, **extra):
    return client.post(reverse("shop:login"), {"username": email, "password": password}, **extra)


def _admin_login(client, email, password):
    return client.post(reverse("admin:login"), {"username": email, "password": password, "next": "/admin/"})


def test_store_login_locks_the_account_even_for_the_right_password(client, ann):
    for _ in range(LIMIT):
        assert _store_login(client, "ann@example.com", "wrong").status_code in (200, 429)
    response = _store_login(client, "ann@example.com", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()
    assert not _logged_in(client)

    reset(username="ann@example.com")  # what staff's "reset" does
    response = _store_login(client, "ann@example.com", PASSWORD)
    assert response.status_code == 302 and _logged_in(client)


def test_the_account_count_ignores_the_case_of_the_email(client, ann):
    for i in range(LIMIT):
        _store_login(client, "ANN@Example.com" if i % 2 else "ann@example.com", "wrong", REMOTE_ADDR=f"10.0.0.{i}")
    response = _store_login(client, "ann@example.com", PASSWORD, REMOTE_ADDR="10.0.1.1")  # a fresh address
    assert response.status_code == 429 and not _logged_in(client)


def test_an_address_is_locked_across_accounts(client, ann):
    for i in range(LIMIT):
        _store_login(client, f"nobody{i}@example.com", "wrong", REMOTE_ADDR="203.0.113.9")
    assert _store_login(client, "ann@example.com", PASSWORD, REMOTE_ADDR="203.0.113.9").status_code == 429
    assert not _logged_in(client)
    # another address may still log in to the account
    assert _store_login(client, "ann@example.com", PASSWORD, REMOTE_ADDR="198.51.100.7").status_code == 302


def test_admin_login_locks_too_and_staff_can_unlock_in_admin(client, boss, ann):
    for _ in range(LIMIT):
        _admin_login(client, "boss@affinity.example", "wrong")
    response = _admin_login(client, "boss@affinity.example", PASSWORD)
    assert response.status_code == 429 and "Too many failed logins" in response.content.decode()
    assert not _logged_in(client)
    assert AccessAttempt.objects.filter(username="boss@affinity.example").exists()

    # another staff member sees the lockouts in admin and deletes them
    other = User.objects.create_superuser(email="ops@affinity.example", password=PASSWORD)
    staff = client.__class__()
    staff.force_login(other)
    changelist = staff.get(reverse("admin:axes_accessattempt_changelist"))
    assert changelist.status_code == 200 and "boss@affinity.example" in changelist.content.decode()

    reset(username="boss@affinity.example")
    response = _admin_login(client, "boss@affinity.example", PASSWORD)
    assert response.status_code == 302 and _logged_in(client)


def test_a_success_before_the_limit_clears_the_count(client, ann):
    for _ in range(LIMIT - 1):
        _store_login(client, "ann@example.com", "wrong")
    assert _store_login(client, "ann@example.com", PASSWORD).status_code == 302
    client.logout()
    for _ in range(LIMIT - 1):
        _store_login(client, "ann@example.com", "wrong")
    assert _store_login(client, "ann@example.com", PASSWORD).status_code == 302


def test_the_address_is_read_behind_the_trusted_proxies(client, ann, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    for i in range(LIMIT):  # one attacker behind the proxy, the proxy's own address for all
        _store_login(
            client, f"nobody{i}@example.com", "wrong", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9"
        )
    locked = _store_login(
        client, "ann@example.com", PASSWORD, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9"
    )
    assert locked.status_code == 429
    # another shopper behind the same proxy is not locked out with the attacker
    other = _store_login(
        client, "ann@example.com", PASSWORD, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7"
    )
    assert other.status_code == 302
