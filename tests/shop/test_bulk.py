"""shop.bulk: the COPY / SQLite fast path of trusted rows, and the index drop and
rebuild around a large load."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, connection, transaction

from shop.bulk import rows_bulk_insert, tables_bulk_load
from shop.models import Interaction
from shop.services.interactions import interactions_bulk_copy
from tests.factories import ProductFactory, UserFactory

END = datetime(2025, 3, 31, tzinfo=UTC)


def table_schema(tables: list[str]) -> dict:
    with connection.cursor() as cur:
        return {
            t: {
                name: (c["columns"], c["unique"], c["foreign_key"], c["index"])
                for name, c in connection.introspection.get_constraints(cur, t).items()
            }
            for t in tables
        }


@pytest.mark.django_db(transaction=True)
def test_bulk_load_needs_a_transaction():
    with pytest.raises(RuntimeError, match="inside transaction.atomic"):
        with tables_bulk_load(models=[Interaction], expected_rows=10**6):
            pass


@pytest.mark.django_db
def test_bulk_load_skips_small_loads_and_a_failure_rolls_the_drop_back():
    tables = [Interaction._meta.db_table]
    before = table_schema(tables)
    with transaction.atomic(), tables_bulk_load(models=[Interaction], expected_rows=10) as fast:
        assert fast is False
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        with tables_bulk_load(models=[Interaction], expected_rows=10**6) as fast:
            assert fast is True
            assert table_schema(tables) != before  # dropped for the load
            1 / 0
    assert table_schema(tables) == before


@pytest.mark.django_db
def test_bulk_copy_rejects_naive_times_and_breaks_no_rule():
    p, u = ProductFactory(), UserFactory()
    with pytest.raises(ValueError, match="naive datetime"), transaction.atomic():
        interactions_bulk_copy(rows=[(u.pk, "", p.pk, 1, 1.0, datetime(2024, 1, 1), 4)])
    with pytest.raises(IntegrityError), transaction.atomic():  # no actor: the check constraint says no
        interactions_bulk_copy(rows=[(None, "", p.pk, 1, 1.0, END, 4)])
    with pytest.raises(ValueError, match="interactions_bulk_copy"):
        rows_bulk_insert(model=Interaction, fields=["user_id", "product_id"], rows=[])
    n = interactions_bulk_copy(rows=[(u.pk, "", p.pk, 6, 4.5, END, 4), (None, "sess", p.pk, 1, 1.0, END, 2)])
    assert n == 2
    got = set(Interaction.objects.values_list("user_id", "session_key", "kind", "value", "occurred_at", "source"))
    assert got == {(u.pk, "", 6, 4.5, END, 4), (None, "sess", 1, 1.0, END, 2)}


@pytest.mark.django_db
def test_bulk_load_decides_on_real_counts_not_stale_planner_statistics():
    """PostgreSQL's row estimate survives a rolled-back load (ANALYZE writes it in
    place); the decision must count the rows instead."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("UPDATE pg_class SET reltuples = 5e6 WHERE oid = %s::regclass", [Interaction._meta.db_table])
    with transaction.atomic(), tables_bulk_load(models=[Interaction], expected_rows=200_000) as fast:
        assert fast is True
