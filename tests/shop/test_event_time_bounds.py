"""Event times are bounded at every edge (API, importers, the service) and the lower
bound in the database: one event dated in year 1 used to be stored and then broke
training, admin pages, the API and the privacy export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from recommendations.training_data import interaction_matrix_build
from recommendations.trending import trending_window
from shop.event_time import EVENTS_EARLIEST, EVENTS_IMPOSSIBLE
from shop.importers.online_retail import MalformedRow, london_time
from shop.models import Interaction
from shop.services.errors import ValidationFailed
from shop.services.interactions import InteractionIn, interaction_record, interactions_bulk_record
from tests.factories import ProductFactory, UserFactory
from tests.shop.conftest import assert_error

pytestmark = pytest.mark.django_db

YEAR_ONE = "0001-01-01T00:00:00Z"


def test_api_refuses_an_event_dated_before_the_earliest_time(pipeline_api, shopper):
    p = ProductFactory(sku="P1")
    event = {"product_id": p.pk, "user_id": shopper.pk, "kind": "view", "occurred_at": YEAR_ONE}
    err = assert_error(pipeline_api.post("/api/v1/interactions", event, format="json"), 400)
    assert [f["field"] for f in err["fields"]] == ["occurred_at"], err
    assert "1990-01-01" in err["fields"][0]["message"]
    ok = dict(event, occurred_at="1990-01-01T00:00:00Z")
    assert pipeline_api.post("/api/v1/interactions", ok, format="json").status_code == 201
    assert list(Interaction.objects.values_list("occurred_at", flat=True)) == [EVENTS_EARLIEST]


def test_api_batch_refuses_an_event_dated_before_the_earliest_time(pipeline_api, shopper):
    p = ProductFactory(sku="P1")
    event = {"product_id": p.pk, "user_id": shopper.pk, "kind": "view", "occurred_at": "1989-12-31T23:59:59Z"}
    err = assert_error(pipeline_api.post("/api/v1/interactions/batch", {"events": [event]}, format="json"), 400)
    assert [f["field"] for f in err["fields"]] == ["events[0].occurred_at"], err
    # partial: the good event is stored, the bad one reported by index
    good = dict(event, occurred_at="2024-05-01T10:00:00Z")
    response = pipeline_api.post("/api/v1/interactions/batch", {"events": [good, event]}, format="json")
    assert response.status_code == 200, response.json()
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(1, "occurred_at")]
    assert Interaction.objects.count() == 1


@override_settings(INTERACTION_MAX_FUTURE_SECONDS=3600)
def test_the_future_skew_is_a_setting(pipeline_api, shopper):
    p = ProductFactory(sku="P1")
    soon = (timezone.now() + timedelta(minutes=30)).isoformat()
    late = (timezone.now() + timedelta(hours=2)).isoformat()
    event = {"product_id": p.pk, "user_id": shopper.pk, "kind": "view"}
    assert pipeline_api.post("/api/v1/interactions", dict(event, occurred_at=soon), format="json").status_code == 201
    err = assert_error(pipeline_api.post("/api/v1/interactions", dict(event, occurred_at=late), format="json"), 400)
    assert "future" in err["fields"][0]["message"]


def test_service_refuses_a_time_before_the_earliest():
    p, u = ProductFactory(), UserFactory()
    early = datetime(1, 1, 1, tzinfo=UTC)
    with pytest.raises(ValidationFailed, match="occurred_at.*1990-01-01"):
        interaction_record(product=p, kind=1, user=u, occurred_at=early)
    with pytest.raises(ValidationFailed, match="1990-01-01"):
        interactions_bulk_record(events=[InteractionIn(product_id=p.pk, kind=1, user_id=u.pk, occurred_at=early)])
    result = interactions_bulk_record(
        events=[InteractionIn(product_id=p.pk, kind=1, user_id=u.pk, occurred_at=early)], partial=True
    )
    assert [(e.field, e.code) for e in result.errors] == [("occurred_at", "too_early")]
    assert Interaction.objects.count() == 0


def test_importer_names_the_line_of_a_time_before_the_earliest(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text(
        "user,item,kind,timestamp\nc1,A,view,2024-05-01T10:00:00Z\nc1,A,view,0001-01-01T00:00:00Z\nc1,A,view,5\n"
    )
    err = StringIO()
    with pytest.raises(CommandError, match="2 of 3 rows are invalid"):
        call_command("import_interactions", str(path), "--no-progress", stdout=StringIO(), stderr=err)
    text = err.getvalue()
    assert "line 3: timestamp '0001-01-01T00:00:00Z' is before 1990-01-01 UTC" in text, text
    assert "line 4: timestamp '5' is before 1990-01-01 UTC" in text, text  # unix seconds, 1970
    assert Interaction.objects.count() == 0


def test_online_retail_invoice_date_is_bounded():
    assert london_time("2010-12-01 08:26:00") == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)
    with pytest.raises(MalformedRow, match="before 1990-01-01"):
        london_time("1980-01-01 00:00:00")
    with pytest.raises(MalformedRow):
        london_time("0001-01-01 00:00:00")  # overflows converting to UTC


def test_database_refuses_a_direct_insert_before_the_earliest():
    p, u = ProductFactory(), UserFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Interaction.objects.create(product=p, user=u, kind=1, occurred_at=datetime(1, 1, 1, tzinfo=UTC))
    with pytest.raises(IntegrityError), transaction.atomic():
        Interaction.objects.bulk_create(
            [Interaction(product=p, user=u, kind=1, occurred_at=EVENTS_EARLIEST - timedelta(microseconds=1))]
        )
    Interaction.objects.create(product=p, user=u, kind=1, occurred_at=EVENTS_EARLIEST)


@pytest.mark.slow
def test_the_constraint_migration_deletes_rows_dated_too_early(transactional_db):
    executor = MigrationExecutor(connection)
    before = [("shop", "0004_product_stock_untracked")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    product = old.get_model("shop", "Product").objects.create(sku="OLD", name="Old", slug="old", price=1)
    rows = old.get_model("shop", "Interaction").objects
    rows.create(product_id=product.pk, session_key="s", kind=1, occurred_at=datetime(1, 1, 2, tzinfo=UTC))
    rows.create(product_id=product.pk, session_key="s", kind=1, occurred_at=EVENTS_EARLIEST)
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert list(Interaction.objects.values_list("occurred_at", flat=True)) == [EVENTS_EARLIEST]


# --- the upper bound: fixed in the database, "now" + skew for every reader ---------------------
def test_database_refuses_a_direct_insert_at_or_after_the_impossible_time():
    p, u = ProductFactory(), UserFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Interaction.objects.create(product=p, user=u, kind=1, occurred_at=datetime(9999, 12, 31, tzinfo=UTC))
    with pytest.raises(IntegrityError), transaction.atomic():
        Interaction.objects.bulk_create([Interaction(product=p, user=u, kind=1, occurred_at=EVENTS_IMPOSSIBLE)])
    Interaction.objects.create(product=p, user=u, kind=1, occurred_at=EVENTS_IMPOSSIBLE - timedelta(days=1))


def test_a_far_future_row_written_around_the_edge_moves_no_reader(staff_client, client):
    """A row dated years ahead, written around the edge (the API and importers refuse it):
    the readers that measure from the newest event or weigh by age skip it, and every
    page that lists it still answers."""
    shopper = UserFactory(email="ann@example.com")
    shopper.set_password("pw-ann-123456")
    shopper.save()
    p = ProductFactory()
    real = timezone.now() - timedelta(hours=1)
    Interaction.objects.bulk_create(
        [
            Interaction(product=p, user=shopper, kind=Interaction.Kind.PURCHASE, occurred_at=real),
            Interaction(
                product=p, user=shopper, kind=Interaction.Kind.PURCHASE, occurred_at=real + timedelta(days=1000)
            ),
        ]
    )
    assert list(Interaction.objects.settled().values_list("occurred_at", flat=True)) == [real]
    events = interaction_matrix_build()
    assert len(events) == 1 and events.times.max() == pytest.approx(real.timestamp())
    window = trending_window()
    assert window is not None and window.end == real

    assert staff_client.get(reverse("admin:shop_interaction_changelist")).status_code == 200
    assert staff_client.get(reverse("admin:shop_user_change", args=[shopper.pk])).status_code == 200
    listed = staff_client.get("/api/v1/interactions", {"user_id": shopper.pk})
    assert listed.status_code == 200, listed.content[:300]
    client.force_login(shopper)
    assert client.get(reverse("shop:export")).status_code == 200
