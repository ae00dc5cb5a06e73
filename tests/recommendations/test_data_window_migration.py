"""A model trained while an event dated in year 1 was stored (before shop.0005 bounded
event times) recorded that date as its data window, and every read of it failed."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from django.apps import apps as django_apps
from django.db import connection

from recommendations.models import ModelVersion
from shop.event_time import EVENTS_EARLIEST
from tests.shop.conftest import token_client

pytestmark = pytest.mark.django_db


def test_a_model_trained_on_a_year_one_event_is_readable_again(staff_user):
    version = ModelVersion.objects.create(
        algorithm="popularity", status="succeeded", data_since=datetime(1, 1, 1, tzinfo=UTC), data_until=EVENTS_EARLIEST
    )
    migration = importlib.import_module("recommendations.migrations.0005_model_version_data_window_clear")
    migration.clear_bad_windows(django_apps, SimpleNamespace(connection=connection))
    version.refresh_from_db()
    assert (version.data_since, version.data_until) == (None, EVENTS_EARLIEST)
    response = token_client(staff_user).get("/api/v1/models")
    assert response.status_code == 200, response.content[:300]
