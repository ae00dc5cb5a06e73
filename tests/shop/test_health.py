import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]


def test_liveness(client):
    response = client.get(reverse("health-live"))
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readiness_checks_database_and_broker(client):
    body = client.get(reverse("health-ready")).json()
    assert body["status"] == "ok", body
    assert body["checks"] == {"database": "ok", "broker": "ok", "cache": "ok"}


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
    assert response.json()["checks"]["broker"] == "unavailable"
    assert response.json()["down"] == ["broker"]
    assert "Error" not in response.content.decode()  # no exception text on a public endpoint


# --- production mode: plain-HTTP probes, no exception text ---------------------------
PROD_PROBE = """
import json, django
django.setup()
from django.test import Client
c = Client()
live = c.get("/health/live")
ready = c.get("/health/ready")
page = c.get("/about-anything")
print(json.dumps({"live": live.status_code, "ready": ready.status_code,
                  "ready_body": ready.content.decode(), "page": page.status_code}))
"""


def test_probes_answer_over_plain_http_in_production_and_hide_errors(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO", "DATABASE_URL", "REDIS_URL", "EMAIL_", "DEBUG", "ALLOWED_HOSTS"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "shop.settings",
            "DJANGO_ENV": "production",
            "DJANGO_SECRET_KEY": "x" * 20 + "a-long-random-production-secret-9f8e7d6c5b4a",
            "ALLOWED_HOSTS": "testserver",
            "AFFINITY_VAR_DIR": str(tmp_path),
            "REDIS_URL": "redis://127.0.0.1:6390/0",  # nothing listens there: broker and cache are down
        }
    )
    out = subprocess.run(
        [sys.executable, "-c", PROD_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["page"] == 301  # everything else still goes to https
    assert result["live"] == 200
    assert result["ready"] == 503
    body = json.loads(result["ready_body"])
    assert body["checks"] == {"database": "ok", "broker": "unavailable", "cache": "unavailable"}
    assert set(body["down"]) == {"broker", "cache"}
    # the details are logged, never shown
    assert "Error" not in result["ready_body"] and "6390" not in result["ready_body"]
    assert "readiness: broker is unavailable" in out.stderr
