"""In real headless Chromium, with the Content-Security-Policy enforced: a third-party
admin page whose upstream template has an inline script still works (the ``page``
fixture fails on any console error, CSP violations included)."""

from __future__ import annotations

import pytest
from django.test import Client
from django_celery_beat.models import CrontabSchedule

pytestmark = pytest.mark.e2e


def log_in(page, live_server, user) -> None:
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )


def test_periodic_task_form_translates_the_crontab_under_the_policy(page, live_server, staff_user):
    crontab = CrontabSchedule.objects.create(minute="30", hour="4", day_of_week="*", day_of_month="*")
    log_in(page, live_server, staff_user)
    response = page.goto(f"{live_server.url}/admin/django_celery_beat/periodictask/add/")
    assert response is not None and "script-src 'self'" in response.headers["content-security-policy"]
    page.select_option("#id_crontab", str(crontab.pk))
    help_text = page.locator(".field-crontab .help")
    help_text.get_by_text("Translation:").wait_for()
    assert crontab.human_readable in help_text.inner_text()
    page.shots("periodic-task-crontab-translated")
