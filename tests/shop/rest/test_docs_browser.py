"""The interactive API docs in real headless Chromium: they render every app's
operations and load nothing from any other host (the project's no-CDN rule)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_swagger_ui_renders_from_our_own_static_files(live_server, browser):
    context = browser.new_context()
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        response = page.goto(f"{live_server.url}/api/v1/docs/")
        assert response is not None and response.ok
        page.wait_for_selector(".opblock", timeout=30_000)  # operations rendered from the schema
        text = page.inner_text("body")
        for expected in ("Record a batch of events", "List and search products", "Create or update a customer"):
            assert expected in text, expected
        assert page.locator(".opblock").count() >= 15
    finally:
        context.close()
    assert requested
    foreign = [url for url in requested if not url.startswith(live_server.url) and not url.startswith("data:")]
    assert not foreign, foreign
    assert any("swagger-ui" in url for url in requested)
