"""Content-Security-Policy on every page: store, admin and the API docs (issue 13).

Scripts only from our own origin, never inline; CSP_REPORT_ONLY=true switches the
header to Content-Security-Policy-Report-Only for a roll-out period."""

import json
import re

import pytest
from django.test import Client

from tests.factories import ProductFactory
from tests.shop.test_settings import run


def directives(header: str) -> dict[str, list[str]]:
    parts = (part.strip().split() for part in header.split(";") if part.strip())
    return {words[0]: words[1:] for words in parts}


def assert_strict_policy(response) -> None:
    assert "Content-Security-Policy" in response, "no Content-Security-Policy header"
    policy = directives(response["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["default-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"] and policy["form-action"] == ["'self'"]
    assert "'unsafe-inline'" not in policy.get("script-src-elem", [])
    assert "'unsafe-inline'" not in policy.get("script-src-attr", [])


def assert_no_inline_script(html: str) -> None:
    for tag in re.findall(r"<script\b[^>]*>", html, flags=re.IGNORECASE):
        assert "src=" in tag or 'type="application/json"' in tag, f"inline script: {tag}"
    assert not re.search(r"\son[a-z]+\s*=", html, flags=re.IGNORECASE), "inline event handler"


@pytest.mark.django_db
def test_store_pages_send_the_policy(client):
    product = ProductFactory()
    for url in ("/", f"/product/{product.slug}/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert_strict_policy(response)
        assert_no_inline_script(response.content.decode())


@pytest.mark.django_db
def test_admin_login_and_admin_pages_send_the_policy(staff_client):
    login = Client().get("/admin/login/")
    assert login.status_code == 200
    assert_strict_policy(login)
    for url in (
        "/admin/",
        "/admin/shop/product/",
        "/admin/django_celery_beat/periodictask/",
        "/admin/django_celery_beat/periodictask/add/",  # upstream has an inline script here
        "/admin/axes/accessattempt/",
    ):
        response = staff_client.get(url)
        assert response.status_code == 200, url
        assert_strict_policy(response)
        assert_no_inline_script(response.content.decode())


@pytest.mark.django_db
def test_api_docs_send_the_policy_and_load_their_script_from_a_url(client):
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    assert_strict_policy(response)
    html = response.content.decode()
    assert_no_inline_script(html)
    scripts = re.findall(r'<script\b[^>]*\bsrc="([^"]+)"', html)
    init = [src for src in scripts if "script=" in src]
    assert init, scripts  # the Swagger UI init script is served as a URL of its own
    script = client.get(init[0].replace("&amp;", "&"))
    assert script.status_code == 200 and "javascript" in script["Content-Type"]
    assert "SwaggerUIBundle" in script.content.decode()


PROBE = (
    "import json, django; django.setup();"
    "from django.http import HttpResponse; from django.test import RequestFactory;"
    "from csp.middleware import CSPMiddleware;"
    "r = CSPMiddleware(lambda request: HttpResponse('ok'))(RequestFactory().get('/'));"
    "print(json.dumps({'enforced': r.get('Content-Security-Policy'),"
    " 'report_only': r.get('Content-Security-Policy-Report-Only')}))"
)


def headers(env: dict[str, str], tmp_path) -> dict:
    out = run({"AFFINITY_VAR_DIR": str(tmp_path), **env}, "-c", PROBE)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_policy_is_enforced_by_default(tmp_path):
    sent = headers({}, tmp_path)
    assert sent["report_only"] is None
    assert directives(sent["enforced"])["script-src"] == ["'self'"]
    assert "report-uri" not in directives(sent["enforced"])


def test_report_only_period_switches_the_header(tmp_path):
    sent = headers({"CSP_REPORT_ONLY": "true", "CSP_REPORT_URI": "https://csp.example.com/report"}, tmp_path)
    assert sent["enforced"] is None
    policy = directives(sent["report_only"])
    assert policy["script-src"] == ["'self'"]
    assert policy["report-uri"] == ["https://csp.example.com/report"]
