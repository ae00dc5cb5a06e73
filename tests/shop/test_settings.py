"""Settings in each run mode, checked in a fresh interpreter with a controlled environment."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "import json, django; from django.conf import settings; django.setup();"
    "print(json.dumps({'engine': settings.DATABASES['default']['ENGINE'],"
    " 'broker': settings.CELERY_BROKER_URL, 'eager': settings.CELERY_TASK_ALWAYS_EAGER,"
    " 'email': settings.EMAIL_BACKEND, 'debug': settings.DEBUG,"
    " 'cache': settings.CACHES['default']['BACKEND']}))"
)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO", "DATABASE_URL", "REDIS_URL", "EMAIL_", "DEBUG", "ALLOWED_HOSTS"))
    }
    base.update({"DJANGO_SETTINGS_MODULE": "shop.settings", **env})
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=base, capture_output=True, text=True, timeout=120)


def probe(env: dict[str, str], tmp_path) -> dict:
    out = run({"AFFINITY_VAR_DIR": str(tmp_path), **env}, "-c", PROBE)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_embedded_default_needs_no_server(tmp_path):
    s = probe({}, tmp_path)
    assert s["engine"] == "django.db.backends.sqlite3"
    assert s["broker"] == "filesystem://localhost/" and s["eager"] is False
    assert s["email"] == "campaigns.outbox.OutboxEmailBackend"
    assert s["debug"] is True


def test_services_from_environment(tmp_path):
    s = probe(
        {
            "DATABASE_URL": "postgres://u@db.internal:5432/shop",
            "REDIS_URL": "redis://cache:6379/0",
            "EMAIL_URL": "smtp://mail.internal:2525",
        },
        tmp_path,
    )
    assert s["engine"] == "django.db.backends.postgresql"
    assert s["broker"] == "redis://cache:6379/0"
    assert s["cache"] == "shop.cache.FailSoftRedisCache"  # a Redis outage is a cache miss, not a 500
    assert s["email"] == "django.core.mail.backends.smtp.EmailBackend"


def test_production_refuses_to_start_without_secret(tmp_path):
    out = run({"DJANGO_ENV": "production", "AFFINITY_VAR_DIR": str(tmp_path)}, "manage.py", "check")
    assert out.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in out.stderr


def test_unknown_environment_name_is_refused(tmp_path):
    out = run({"DJANGO_ENV": "prod", "AFFINITY_VAR_DIR": str(tmp_path)}, "manage.py", "check")
    assert out.returncode != 0 and "DJANGO_ENV must be" in out.stderr


def test_production_passes_check_deploy_without_warnings(tmp_path):
    out = run(
        {
            "DJANGO_ENV": "production",
            "AFFINITY_VAR_DIR": str(tmp_path),
            "DJANGO_SECRET_KEY": "x" * 20 + "a-long-random-production-secret-9f8e7d6c5b4a",
            "ALLOWED_HOSTS": "shop.example.com",
            "ANYMAIL": '{"WEBHOOK_SECRET": "esp:a-long-random-webhook-password"}',
        },
        "manage.py",
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert "no issues" in out.stdout


def test_check_deploy_warns_when_esp_webhooks_have_no_secret(tmp_path):
    env = {
        "DJANGO_ENV": "production",
        "AFFINITY_VAR_DIR": str(tmp_path),
        "DJANGO_SECRET_KEY": "x" * 20 + "a-long-random-production-secret-9f8e7d6c5b4a",
        "ALLOWED_HOSTS": "shop.example.com",
    }
    out = run(env, "manage.py", "check", "--deploy")
    assert "campaigns.W001" in out.stderr + out.stdout and "WEBHOOK_SECRET" in out.stderr + out.stdout
    assert "campaigns.W001" not in run(env, "manage.py", "check").stderr, "a deploy check only"
