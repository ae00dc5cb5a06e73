"""shop.services.interactions against the real database."""

from datetime import timedelta

import pytest
from django.utils import timezone

from shop.models import Interaction
from shop.services.errors import ValidationFailed
from shop.services.interactions import InteractionIn, interaction_record, interactions_bulk_record
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_interaction_record_validates():
    p = ProductFactory()
    with pytest.raises(ValidationFailed, match="user or a session_key"):
        interaction_record(product=p, kind=Interaction.Kind.VIEW)
    with pytest.raises(ValidationFailed, match="finite"):
        interaction_record(product=p, kind=Interaction.Kind.VIEW, session_key="s", value=float("nan"))
    with pytest.raises(ValidationFailed, match="future"):
        interaction_record(product=p, kind=1, session_key="s", occurred_at=timezone.now() + timedelta(days=1))
    assert Interaction.objects.count() == 0
    i = interaction_record(product=p, kind=Interaction.Kind.VIEW, session_key="s")
    assert i.pk and i.source == Interaction.Source.WEB


def test_interaction_record_is_idempotent_with_event_id():
    p, u = ProductFactory(), UserFactory()
    a = interaction_record(product=p, kind=1, user=u, event_id="evt-1")
    b = interaction_record(product=p, kind=1, user=u, event_id="evt-1")
    assert a.pk == b.pk and Interaction.objects.count() == 1


def test_bulk_record_all_or_nothing_names_every_bad_row():
    p, u = ProductFactory(), UserFactory()
    events = [
        InteractionIn(product_id=p.pk, kind=1, user_id=u.pk),
        InteractionIn(product_id=999999, kind=1, user_id=u.pk),
        InteractionIn(product_id=p.pk, kind=99, session_key="x"),
    ]
    with pytest.raises(ValidationFailed) as exc:
        interactions_bulk_record(events=events)
    assert [(e.index, e.field) for e in exc.value.errors] == [(1, "product"), (2, "kind")]
    assert Interaction.objects.count() == 0


def test_bulk_record_partial_keeps_good_rows_and_skips_known_event_ids():
    p, u = ProductFactory(), UserFactory()
    events = [
        InteractionIn(product_id=p.pk, kind=1, user_id=u.pk, event_id="a"),
        InteractionIn(product_id=p.pk, kind=5, user_id=u.pk, value=-1, event_id="b"),
        InteractionIn(product_id=p.pk, kind=3, session_key="anon", event_id="c"),
    ]
    result = interactions_bulk_record(events=events, partial=True)
    assert (result.created, result.duplicates) == (2, 0)
    assert [e.index for e in result.errors] == [1]
    again = interactions_bulk_record(events=events, partial=True)
    assert (again.created, again.duplicates) == (0, 2)
    assert Interaction.objects.count() == 2
