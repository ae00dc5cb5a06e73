"""Chunked request bodies through a real server (gunicorn), as a client sends them.

gunicorn de-chunks a ``Transfer-Encoding: chunked`` body but sends no Content-Length;
Django alone reads such a body as empty. ``shop.wsgi`` wraps the application so the API
(and a form) gets the body, and a chunked body over the limit is a 413 in the error shape.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from rest_framework.authtoken.models import Token

from shop.models import Interaction
from tests.conftest import ROOT, child_env, free_port
from tests.factories import ProductFactory
from tests.shop.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(tmp_path) -> Iterator[int]:
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "shop.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", "1"],
        cwd=ROOT,
        env=child_env(REDIS_URL=""),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/health/live")
                conn.getresponse().read()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail((tmp_path / "gunicorn.log").read_text())
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def post_chunked(port: int, path: str, body: bytes, token: str) -> tuple[int, dict]:
    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 7):  # small chunks: the body really arrives in pieces
            yield body[start : start + 7]

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(
        "POST",
        path,
        body=chunks(),
        headers={"Content-Type": "application/json", "Authorization": f"Token {token}"},
        encode_chunked=True,
    )
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"{}")


@pytest.fixture
def pipeline_token() -> str:
    user = make_user("pipeline@integrations.example", perms=("shop.add_interaction",))
    return Token.objects.create(user=user).key


def test_a_chunked_event_is_read_and_stored(server, pipeline_token):
    ProductFactory(sku="P1")
    make_user("ann@example.com", external_id="crm-ann")
    event = {"event_id": "chunked-1", "product_sku": "P1", "user_external_id": "crm-ann", "kind": "view"}
    status, body = post_chunked(server, "/api/v1/interactions", json.dumps(event).encode(), pipeline_token)
    assert status == 201, body
    assert Interaction.objects.filter(event_id="chunked-1").count() == 1


def test_a_chunked_body_over_the_limit_is_refused_in_the_error_shape(server, pipeline_token):
    too_big = b'{"events": [' + b" " * (2_621_440 + 10) + b"]}"  # Django's 2.5 MB body limit, plus a little
    status, body = post_chunked(server, "/api/v1/interactions/batch", too_big, pipeline_token)
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"
    assert not Interaction.objects.exists()
