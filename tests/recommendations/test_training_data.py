"""The training read (recommendations.training_data): interactions streamed from the
database into arrays, exactly as the ORM sees them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.utils import timezone

from recommendations import training_data
from recommendations.engine import DEFAULT_KIND_WEIGHTS
from recommendations.models import ModelVersion
from shop.models import Interaction
from shop.services.interactions import interaction_record
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_events_read_matches_the_orm_exactly(store):
    anonymous = store.products[0]
    interaction_record(product=anonymous, kind=Interaction.Kind.VIEW, session_key="anon")  # not read
    events = training_data.interaction_matrix_build()
    expected = sorted(
        (u, p, k, v, t.timestamp())
        for u, p, k, v, t in Interaction.objects.filter(user__isnull=False).values_list(
            "user_id", "product_id", "kind", "value", "occurred_at"
        )
    )
    got = sorted(
        zip(
            events.users.tolist(),
            events.items.tolist(),
            events.kinds.tolist(),
            events.values.tolist(),
            events.times.tolist(),
            strict=True,
        )
    )
    assert [row[:4] for row in got] == [row[:4] for row in expected]
    np.testing.assert_allclose([row[4] for row in got], [row[4] for row in expected], rtol=0, atol=1e-5)
    assert events.users.dtype == np.int64 and events.times.dtype == np.float64


def test_events_read_in_small_chunks_with_a_progress_callback_that_queries(store, monkeypatch):
    """The stream is parsed chunk by chunk; a progress callback that touches the
    database (the training's does) must not deadlock the connection streaming it."""
    monkeypatch.setattr(training_data, "COPY_CHUNK_BYTES", 512)
    seen = []
    events = training_data.interaction_matrix_build(progress=lambda f: seen.append((f, ModelVersion.objects.count())))
    assert len(events) == Interaction.objects.filter(user__isnull=False).count()
    assert seen and seen[-1][0] == 1.0


def test_events_read_window_and_kinds(store):
    since = timezone.now() - timedelta(days=10)
    events = training_data.interaction_matrix_build(since=since, kinds=[Interaction.Kind.PURCHASE])
    expected = Interaction.objects.filter(user__isnull=False, occurred_at__gte=since, kind=Interaction.Kind.PURCHASE)
    assert len(events) == expected.count() > 0
    assert set(events.kinds.tolist()) == {Interaction.Kind.PURCHASE}
    assert events.times.min() >= since.timestamp() - 1e-3


def test_interaction_matrix_build(store):
    matrix = training_data.interaction_matrix_build(kinds=sorted(DEFAULT_KIND_WEIGHTS)).matrix()
    assert matrix.n_users == len(store.customers)
    user = store.customers[0]
    row = matrix.user_rows([user.pk])
    touched = set(
        Interaction.objects.filter(user=user)
        .exclude(kind=Interaction.Kind.REMOVE_FROM_CART)
        .values_list("product_id", flat=True)
    )
    assert set(matrix.item_ids[row.indices].tolist()) == touched
    assert (row.data > 0).all()


def test_events_read_of_an_empty_table(db):
    events = training_data.interaction_matrix_build()
    assert len(events) == 0


def test_events_read_keeps_a_fraction_of_a_second_near_one(db):
    """A time at .9997 s reads as that second, not the next one (SQLite's strftime
    would round the fraction up)."""
    user, product = UserFactory(), ProductFactory()
    at = datetime(2026, 3, 1, 12, 30, 31, 999700, tzinfo=UTC)
    interaction_record(product=product, kind=Interaction.Kind.VIEW, user=user, occurred_at=at)
    events = training_data.interaction_matrix_build()
    assert events.times.tolist() == [pytest.approx(at.timestamp(), abs=1e-5)]
