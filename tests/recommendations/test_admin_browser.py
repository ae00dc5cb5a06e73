"""The model versions admin in real headless Chromium: the metrics chart renders and
a running training's progress updates live (the page polls its JSON endpoint)."""

from __future__ import annotations

import pytest

from recommendations.models import ModelVersion

pytestmark = [pytest.mark.e2e]  # tests/browser.py allows the ORM beside Playwright's loop


@pytest.fixture
def admin_page(browser, live_server, transactional_db, client):
    """A staff member's page in the session's Chromium (the shared `browser` fixture)."""
    from django.db import connections

    from shop.models import User

    # the live server answers each request in a new thread: close its connection at
    # the end of the request, so none is left open when the test database is dropped
    settings_dict = connections["default"].settings_dict
    max_age = settings_dict.get("CONN_MAX_AGE")
    settings_dict["CONN_MAX_AGE"] = 0
    staff = User.objects.create_superuser(email="ops@affinity.example", password="x-pass-123456")
    client.force_login(staff)
    session = client.cookies["sessionid"].value
    context = browser.new_context(base_url=live_server.url)
    host = live_server.url.split("//", 1)[1].split(":")[0]
    context.add_cookies([{"name": "sessionid", "value": session, "domain": host, "path": "/"}])
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        page.goto("about:blank")  # stop polling before the server and the database go
        context.close()
        connections.close_all()
        settings_dict["CONN_MAX_AGE"] = max_age
    assert not errors, errors


def test_live_progress_and_chart(admin_page):
    page = admin_page
    from django.utils import timezone

    done = ModelVersion.objects.create(
        algorithm="ease",
        requested_algorithm="ease",
        status="succeeded",
        progress=100,
        metrics={"ndcg@10": 0.11, "recall@10": 0.07},
        finished_at=timezone.now(),
    )
    running = ModelVersion.objects.create(
        algorithm="als", requested_algorithm="als", status="running", progress=10, stage="fitting als"
    )
    page.goto("/admin/recommendations/modelversion/")
    assert page.locator("svg[aria-label^='NDCG@10']").count() == 1
    assert page.locator("svg[aria-label^='NDCG@10'] circle title", has_text=f"ease#{done.pk}").count() == 1
    panel = page.locator("#rec-running")
    panel.get_by_text("10% fitting als").wait_for()
    ModelVersion.objects.filter(pk=running.pk).update(progress=60, stage="fitting als on all data")
    panel.get_by_text("60% fitting als on all data").wait_for()
    ModelVersion.objects.filter(pk=running.pk).update(status="succeeded", progress=100, stage="done")
    # the page reloads once the run is over: the version shows as succeeded, no progress bar left
    page.wait_for_function("document.querySelectorAll('#rec-running .rec-job').length === 0")
    page.locator("#result_list").get_by_text(f"als#{running.pk}").wait_for()
    assert page.locator("#result_list progress").count() == 0
