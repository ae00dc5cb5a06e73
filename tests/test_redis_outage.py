"""With Redis really unreachable (nothing listens on the port) the store, the API and
recommendations serving keep answering; /health/ready says what is down; and when
Redis comes back, so does the cache."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from recommendations import impressions
from recommendations.models import Impression
from shop.celery import app
from tests.factories import CategoryFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_at(settings, monkeypatch):
    """Point the cache, the impression queue and the broker at a port; returns a
    function that does it (the broker URL and the queue's outage pause are restored
    afterwards)."""
    old_broker = app.conf.broker_url
    monkeypatch.setattr(impressions, "_queue_retry_at", 0.0)

    def point(url: str) -> None:
        settings.REDIS_URL = url
        settings.CACHES = {
            "default": {
                "BACKEND": "shop.cache.FailSoftRedisCache",
                "LOCATION": url,
                "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1, "retry_seconds": 0},
            }
        }
        app.conf.broker_url = url

    yield point
    app.conf.broker_url = old_broker


@pytest.fixture
def store(db):
    category = CategoryFactory(name="Kitchen", slug="kitchen")
    products = [ProductFactory(category=category) for _ in range(6)]
    shopper = UserFactory(email="ann@example.com")
    return category, products, shopper


def test_store_api_and_serving_answer_with_redis_down(client, store, redis_at, caplog):
    category, products, shopper = store
    redis_at(f"redis://127.0.0.1:{_free_port()}/0")  # nothing listens there
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=shopper).key}")

    with caplog.at_level(logging.WARNING):
        assert client.get("/").status_code == 200
        assert client.get(f"/category/{category.slug}/").status_code == 200
        assert client.get(f"/product/{products[0].slug}/").status_code == 200
        assert api.get("/api/v1/products").status_code == 200
        assert api.get("/api/v1/recommendations/me").status_code == 200
        assert api.get("/api/v1/recommendations/trending").status_code == 200
        ready = client.get("/health/ready")

    assert ready.status_code == 503
    body = ready.json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"] == "unavailable" and body["checks"]["broker"] == "unavailable"
    assert "cache unavailable" in caplog.text  # the outage is logged, not raised
    assert Impression.objects.exists()  # lists shown were written directly, not lost


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_the_cache_comes_back_with_redis(client, store, redis_at, tmp_path):
    port = _free_port()
    redis_at(f"redis://127.0.0.1:{port}/0")
    cache.set("affinity:test:outage", "x")
    assert cache.get("affinity:test:outage") is None  # down: a miss, no exception
    assert client.get("/health/ready").status_code == 503

    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            cache.set("affinity:test:outage", "back")
            if cache.get("affinity:test:outage") == "back":
                break
            time.sleep(0.1)
        assert cache.get("affinity:test:outage") == "back"
        ready = client.get("/health/ready")
        assert ready.status_code == 200, ready.json()
        assert client.get("/").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_rate_limits_fail_open_on_any_cache_backend(store, settings, caplog):
    """Even on a cache backend that raises (Django's own RedisCache), the API answers."""
    _, _, shopper = store
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{_free_port()}/0",
        }
    }
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=shopper).key}")
    with caplog.at_level(logging.WARNING, logger="shop.rest.throttling"):
        assert api.get("/api/v1/products").status_code == 200
    assert "request allowed" in caplog.text
