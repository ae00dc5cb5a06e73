"""``event_id`` is an idempotency key per sending client: one client cannot claim the
ids another will send (whose events were then silently dropped as duplicates)."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from shop.models import Interaction
from shop.services.interactions import InteractionIn, interactions_bulk_record
from tests.factories import ProductFactory, UserFactory
from tests.shop.conftest import make_user, token_client

pytestmark = pytest.mark.django_db

BATCH = "/api/v1/interactions/batch"


def test_two_clients_sending_the_same_event_id_both_get_their_event_stored(shopper_api, shopper, pipeline_api):
    p = ProductFactory(sku="P1")
    own = {"event_id": "e-1", "product_id": p.pk, "kind": "view"}
    assert shopper_api.post("/api/v1/interactions", own, format="json").status_code == 201
    theirs = {"event_id": "e-1", "product_id": p.pk, "user_id": shopper.pk, "kind": "purchase"}
    first = pipeline_api.post("/api/v1/interactions", theirs, format="json")
    assert first.status_code == 201 and first.json()["status"] == "created", first.json()
    again = pipeline_api.post("/api/v1/interactions", theirs, format="json")
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert sorted(Interaction.objects.filter(event_id="e-1").values_list("kind", flat=True)) == [
        Interaction.Kind.VIEW,
        Interaction.Kind.PURCHASE,
    ]


def test_batches_of_two_clients_with_the_same_ids(pipeline_api, shopper):
    p = ProductFactory(sku="P1")
    other_api = token_client(make_user("crm@integrations.example", perms=("shop.add_interaction",)))
    events = [{"event_id": f"b-{i}", "product_id": p.pk, "user_id": shopper.pk, "kind": "view"} for i in range(3)]
    for api in (pipeline_api, other_api):
        body = api.post(BATCH, {"events": events}, format="json").json()
        assert (body["created"], body["duplicates"]) == (3, 0), body
    for api in (pipeline_api, other_api):  # each client's retry stores nothing
        body = api.post(BATCH, {"events": events}, format="json").json()
        assert (body["created"], body["duplicates"]) == (0, 3), body
    assert Interaction.objects.count() == 6


def test_service_scopes_event_ids_by_client():
    p, u, a, b = ProductFactory(), UserFactory(), UserFactory(), UserFactory()
    event = InteractionIn(product_id=p.pk, kind=1, user_id=u.pk, event_id="k")
    assert interactions_bulk_record(events=[event], client=a).created == 1
    assert interactions_bulk_record(events=[event], client=a).duplicates == 1
    assert interactions_bulk_record(events=[event], client=b).created == 1
    assert interactions_bulk_record(events=[event]).created == 1  # the store's own namespace
    assert interactions_bulk_record(events=[event]).duplicates == 1
    assert sorted(Interaction.objects.values_list("client_id", flat=True), key=str) == sorted(
        [a.pk, b.pk, None], key=str
    )


def test_database_keeps_each_namespace_unique():
    p, u, a = ProductFactory(), UserFactory(), UserFactory()
    Interaction.objects.create(product=p, user=u, kind=1, event_id="k", client_id=a.pk)
    Interaction.objects.create(product=p, user=u, kind=1, event_id="k")
    for client_id in (a.pk, None):
        with pytest.raises(IntegrityError), transaction.atomic():
            Interaction.objects.create(product=p, user=u, kind=1, event_id="k", client_id=client_id)
