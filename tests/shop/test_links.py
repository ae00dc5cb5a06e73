"""Absolute links follow the store: SITE_URL when set, else the address `runstore`
serves (passed to its web, worker and beat processes), else the request's own host;
images are absolute everywhere (API included, placeholders too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import RequestFactory

from shop import links
from shop.management.commands.runstore import served_env, served_url
from tests.factories import ProductFactory

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "host, port, expected",
    [
        ("127.0.0.1", 8101, "http://127.0.0.1:8101"),
        ("0.0.0.0", 8000, "http://127.0.0.1:8000"),
        ("localhost", 9000, "http://localhost:9000"),
        ("::", 8101, "http://[::1]:8101"),
        ("::1", 8101, "http://[::1]:8101"),
    ],
)
def test_served_url(host, port, expected):
    assert served_url(host=host, port=port) == expected


def test_runstore_passes_the_served_address_unless_site_url_is_set():
    env = served_env({"PATH": "/bin"}, host="127.0.0.1", port=8101, site_url_set=False)
    assert env == {"PATH": "/bin", "SITE_URL": "http://127.0.0.1:8101"}
    kept = served_env({"SITE_URL": "https://shop.example.com"}, host="127.0.0.1", port=8101, site_url_set=True)
    assert kept == {"SITE_URL": "https://shop.example.com"}


def test_a_process_started_by_runstore_on_port_8101_links_emails_there():
    """What the worker does with the environment runstore gives it: every link and
    image of an email points at port 8101."""
    env = {k: v for k, v in os.environ.items() if k != "SITE_URL"}
    env = served_env(env, host="127.0.0.1", port=8101, site_url_set=False)
    env["DJANGO_SETTINGS_MODULE"] = "shop.settings"
    script = (
        "import django, json; django.setup()\n"
        "from django.conf import settings\n"
        "from campaigns.rendering import email_context\n"
        "p = {'id': 7, 'slug': 'mug', 'name': 'Mug', 'price': '2.00', 'currency': 'GBP', 'image_url': ''}\n"
        "c = email_context(user={'first_name': 'Ada', 'email': 'a@example.com'}, products=[p],"
        " campaign_name='Spring', campaign_id=3, delivery_id=11)\n"
        "print(json.dumps({'site': settings.SITE_URL, 'set': settings.SITE_URL_SET,"
        " 'urls': [c['shop_url'], c['unsubscribe_url'], c['preferences_url'],"
        " c['products'][0]['url'], c['products'][0]['image_url']]}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data["site"] == "http://127.0.0.1:8101" and data["set"] is True
    for url in data["urls"]:
        assert url.startswith("http://127.0.0.1:8101/"), url
    assert data["urls"][-1] == "http://127.0.0.1:8101/img/p/7.png"  # a PNG: mail clients show no SVG
    assert "utm_campaign=spring-c3" in data["urls"][3]


def test_absolute_urls_use_the_request_when_site_url_is_not_set(settings):
    settings.SITE_URL, settings.SITE_URL_SET = "http://127.0.0.1:8000", False
    request = RequestFactory().get("/", HTTP_HOST="127.0.0.1:8101")
    assert links.absolute_url("/x/", request) == "http://127.0.0.1:8101/x/"
    assert links.absolute_url("/x/") == "http://127.0.0.1:8000/x/"
    assert links.absolute_url("https://cdn.example.com/a.jpg", request) == "https://cdn.example.com/a.jpg"
    settings.SITE_URL_SET = True
    assert links.absolute_url("/x/", request) == "http://127.0.0.1:8000/x/"


@pytest.mark.django_db
def test_the_api_returns_absolute_image_urls_placeholders_included(client, settings):
    settings.SITE_URL, settings.SITE_URL_SET = "https://shop.example.com", True
    plain = ProductFactory(image_url="")
    photo = ProductFactory(image_url="https://cdn.example.com/p.jpg")
    rows = {r["id"]: r for r in client.get("/api/v1/products?page_size=50").json()["results"]}
    assert rows[plain.pk]["image_url"] == f"https://shop.example.com/img/p/{plain.pk}.svg"
    assert rows[photo.pk]["image_url"] == "https://cdn.example.com/p.jpg"
    assert client.get(f"/api/v1/products/{plain.pk}").json()["image_url"].startswith("https://shop.example.com/")
    # and the placeholder is served there, as SVG and PNG
    assert client.get(f"/img/p/{plain.pk}.svg").status_code == 200
    assert client.get(f"/img/p/{plain.pk}.png")["Content-Type"] == "image/png"


@pytest.mark.django_db
def test_the_api_follows_the_request_host_without_site_url(client, settings):
    settings.SITE_URL_SET = False
    plain = ProductFactory(image_url="")
    row = client.get(f"/api/v1/products/{plain.pk}", HTTP_HOST="127.0.0.1:8101").json()
    assert row["image_url"] == f"http://127.0.0.1:8101/img/p/{plain.pk}.svg"
