"""Events in: one at a time, and in batches of up to 1,000 with a per-row report."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from shop.api.interactions import EVENT_FIELDS, parse_event
from shop.models import Interaction
from shop.services.interactions import KIND_BY_NAME, SOURCE_BY_NAME
from tests.factories import ProductFactory, interaction_make
from tests.shop.conftest import assert_error, token_client

pytestmark = pytest.mark.django_db

BATCH = "/api/v1/interactions/batch"


@pytest.fixture
def products():
    return [ProductFactory(sku=f"P{i}") for i in range(3)]


def post_batch(client, events, **extra):
    return client.post(BATCH, {"events": events, **extra}, format="json")


# --- one event ----------------------------------------------------------------------------
def test_one_event_by_sku_and_external_id(pipeline_api, shopper, products):
    event = {
        "event_id": "e-1",
        "product_sku": "P1",
        "user_external_id": "crm-ann",
        "kind": "purchase",
        "value": 2,
        "occurred_at": "2024-05-01T10:00:00+02:00",
    }
    response = pipeline_api.post("/api/v1/interactions", event, format="json")
    assert response.status_code == 201, response.json()
    assert response.json() == {"status": "created", "event_id": "e-1"}
    row = Interaction.objects.get(event_id="e-1")
    assert (row.user_id, row.product_id, row.kind, row.value, row.source) == (
        shopper.pk,
        products[1].pk,
        Interaction.Kind.PURCHASE,
        2.0,
        Interaction.Source.API,
    )
    assert row.occurred_at.isoformat() == "2024-05-01T08:00:00+00:00"
    again = pipeline_api.post("/api/v1/interactions", event, format="json")
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert Interaction.objects.filter(event_id="e-1").count() == 1


def test_one_bad_event_is_400_with_fields(pipeline_api, products):
    err = assert_error(
        pipeline_api.post(
            "/api/v1/interactions", {"product_sku": "NOPE", "session_key": "s1", "kind": "viewed"}, format="json"
        ),
        400,
        "validation_error",
    )
    assert {f["field"] for f in err["fields"]} == {"kind"}
    err = assert_error(
        pipeline_api.post(
            "/api/v1/interactions", {"product_sku": "NOPE", "session_key": "s1", "kind": "view"}, format="json"
        ),
        400,
        "validation_error",
    )
    assert err["fields"][0]["field"] == "product" and err["fields"][0]["code"] == "does_not_exist"
    assert not Interaction.objects.exists()


# --- batches --------------------------------------------------------------------------------
def test_batch_partial_report_and_idempotency(pipeline_api, shopper, other_shopper, products):
    now = timezone.now()
    events = [
        {"event_id": "b-0", "product_id": products[0].pk, "user_id": shopper.pk, "kind": "view"},
        {"event_id": "b-1", "product_sku": "NOPE", "user_id": shopper.pk, "kind": "view"},
        {"event_id": "b-2", "product_sku": "P2", "user_external_id": "crm-bob", "kind": "rating", "value": 4.5},
        {"event_id": "b-3", "product_id": products[0].pk, "kind": "view"},  # no actor
        {
            "event_id": "b-4",
            "product_id": products[1].pk,
            "session_key": "anon-1",
            "kind": "add_to_cart",
            "occurred_at": (now - timedelta(hours=1)).isoformat(),
        },
        {"event_id": "b-5", "product_id": products[1].pk, "session_key": "anon-1", "kind": "rating", "value": 9},
        {
            "event_id": "b-6",
            "product_id": "12",
            "session_key": "anon-1",
            "kind": "view",
            "occurred_at": "2024-05-01T10:00:00",
        },
        "not an object",
        {"event_id": "b-0", "product_id": products[2].pk, "session_key": "anon-1", "kind": "view"},  # repeats row 0
        {"event_id": "b-9", "product_id": products[2].pk, "session_key": "anon-2", "kind": "click", "colour": "red"},
    ]
    response = post_batch(pipeline_api, events)
    assert response.status_code == 200, response.json()
    report = response.json()
    assert (report["received"], report["created"], report["duplicates"], report["rejected"]) == (10, 3, 0, 7)
    by_row = {}
    for e in report["errors"]:
        by_row.setdefault(e["index"], set()).add((e["field"], e["code"]))
    assert by_row == {
        1: {("product", "does_not_exist")},
        3: {("user", "no_actor")},
        5: {("value", "out_of_range")},
        6: {("product_id", "invalid"), ("occurred_at", "naive_datetime")},
        7: {("events[7]", "invalid")},
        8: {("event_id", "duplicate")},
        9: {("colour", "unknown_field")},
    }
    assert [e["index"] for e in report["errors"]] == sorted(e["index"] for e in report["errors"])
    stored = {r.event_id: r for r in Interaction.objects.all()}
    assert set(stored) == {"b-0", "b-2", "b-4"}
    assert stored["b-2"].user_id == other_shopper.pk and stored["b-2"].value == 4.5
    assert stored["b-4"].user_id is None and stored["b-4"].session_key == "anon-1"
    # the same batch again: nothing new is stored, the three are duplicates
    again = post_batch(pipeline_api, events).json()
    assert (again["created"], again["duplicates"], again["rejected"]) == (0, 3, 7)
    assert Interaction.objects.count() == 3


def test_batch_all_good_is_201(pipeline_api, products):
    events = [
        {"event_id": f"g-{i}", "product_id": products[i % 3].pk, "session_key": f"s{i % 7}", "kind": "view"}
        for i in range(50)
    ]
    response = post_batch(pipeline_api, events)
    assert response.status_code == 201
    assert response.json() == {"received": 50, "created": 50, "duplicates": 0, "rejected": 0, "errors": []}
    assert post_batch(pipeline_api, events).json()["duplicates"] == 50
    assert Interaction.objects.count() == 50


def test_events_without_event_id_are_stored_each_time(pipeline_api, products):
    events = [{"product_id": products[0].pk, "session_key": "s", "kind": "view"}]
    post_batch(pipeline_api, events)
    post_batch(pipeline_api, events)
    assert Interaction.objects.count() == 2


def test_batch_all_or_nothing(pipeline_api, products):
    events = [
        {"event_id": "a-0", "product_id": products[0].pk, "session_key": "s", "kind": "view"},
        {"event_id": "a-1", "product_sku": "NOPE", "session_key": "s", "kind": "view"},
        {"event_id": "a-2", "product_id": products[0].pk, "session_key": "s", "kind": "zoom"},
    ]
    err = assert_error(post_batch(pipeline_api, events, partial=False), 400, "validation_error")
    assert {(f["field"], f["index"], f["code"]) for f in err["fields"]} == {
        ("events[1].product", 1, "does_not_exist"),
        ("events[2].kind", 2, "invalid_choice"),
    }
    assert not Interaction.objects.exists()


def test_batch_with_every_row_bad_is_400_and_stores_nothing(pipeline_api, products):
    err = assert_error(post_batch(pipeline_api, [{"kind": "view"}, {"product_id": products[0].pk}]), 400)
    assert {f["index"] for f in err["fields"]} == {0, 1}
    assert all(f["field"].startswith(f"events[{f['index']}]") for f in err["fields"])
    assert not Interaction.objects.exists()


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "events"),
        ({"events": "x"}, "events"),
        ({"events": []}, "events"),
        ({"events": [{}], "partial": "yes"}, "partial"),
        ({"events": [{}], "extra": 1}, "extra"),
        ([{"kind": "view"}], "events"),
    ],
)
def test_malformed_batches(pipeline_api, body, field):
    err = assert_error(pipeline_api.post(BATCH, body, format="json"), 400, "validation_error")
    assert err["fields"][0]["field"] == field


def test_more_than_1000_events_is_400(pipeline_api, products):
    events = [{"product_id": products[0].pk, "session_key": "s", "kind": "view"}] * 1001
    err = assert_error(post_batch(pipeline_api, events), 400, "validation_error")
    assert err["fields"][0] == {
        "field": "events",
        "code": "max_length",
        "message": "at most 1000 events per request, not 1001",
    }
    assert not Interaction.objects.exists()


def test_huge_body_is_413(pipeline_api, settings, products):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    events = [{"product_id": products[0].pk, "session_key": "s" * 60, "kind": "view"}] * 200
    assert_error(post_batch(pipeline_api, events), 413, "payload_too_large")
    assert not Interaction.objects.exists()


def test_bad_json_is_a_parse_error(pipeline_api):
    assert_error(pipeline_api.post(BATCH, '{"events": [', content_type="application/json"), 400, "parse_error")
    assert_error(pipeline_api.post(BATCH, '{"events": [NaN]}', content_type="application/json"), 400, "parse_error")
    assert_error(pipeline_api.post(BATCH, b"\xff\xfe", content_type="application/json"), 400, "parse_error")


# --- who may send whose events ------------------------------------------------------------
def test_anonymous_cannot_post_events(api, products):
    assert_error(post_batch(api, [{"product_id": products[0].pk, "session_key": "s", "kind": "view"}]), 401)
    assert_error(api.post("/api/v1/interactions", {}, format="json"), 401)


def test_shopper_sends_only_own_events(shopper, shopper_api, other_shopper, products):
    response = post_batch(
        shopper_api,
        [
            {"product_id": products[0].pk, "kind": "view"},  # own, implicit
            {"product_id": products[0].pk, "kind": "click", "user_id": shopper.pk},  # own, explicit
            {"product_id": products[0].pk, "kind": "view", "user_id": other_shopper.pk},  # someone else
            {"product_id": products[0].pk, "kind": "view", "user_external_id": "crm-bob"},  # someone else
            {"product_id": products[0].pk, "kind": "view", "user_external_id": "crm-ann"},  # own by external id
        ],
    )
    report = response.json()
    assert response.status_code == 200 and report["created"] == 3
    assert [(e["index"], e["code"]) for e in report["errors"]] == [(2, "permission_denied"), (3, "permission_denied")]
    assert set(Interaction.objects.values_list("user_id", flat=True)) == {shopper.pk}
    err = assert_error(
        shopper_api.post(
            "/api/v1/interactions",
            {"product_id": products[0].pk, "kind": "view", "user_id": other_shopper.pk},
            format="json",
        ),
        400,
    )
    assert err["fields"][0]["code"] == "permission_denied"


def test_client_with_permission_sends_anyones_events(pipeline_api, shopper, other_shopper, products):
    report = post_batch(
        pipeline_api,
        [
            {"product_id": products[0].pk, "kind": "view", "user_id": shopper.pk},
            {"product_id": products[0].pk, "kind": "view", "user_id": other_shopper.pk},
        ],
    ).json()
    assert report["created"] == 2
    # without the permission, a token is just a shopper
    plain = token_client(shopper)
    report = post_batch(plain, [{"product_id": products[0].pk, "kind": "view", "user_id": other_shopper.pk}])
    assert report.status_code == 400


def test_list_own_events_and_others_only_with_permission(shopper, shopper_api, other_shopper, staff_api, products):
    interaction_make(user=shopper, product=products[0])
    interaction_make(user=other_shopper, product=products[1], kind=Interaction.Kind.PURCHASE)
    mine = shopper_api.get("/api/v1/interactions").json()
    assert [(e["user_id"], e["product_sku"], e["kind"]) for e in mine["results"]] == [(shopper.pk, "P0", "view")]
    assert_error(shopper_api.get("/api/v1/interactions", {"user_id": other_shopper.pk}), 403, "permission_denied")
    assert_error(shopper_api.get("/api/v1/interactions", {"session_key": "anything"}), 403)
    assert shopper_api.get("/api/v1/interactions", {"user_id": shopper.pk}).json()["count"] == 1
    theirs = staff_api.get("/api/v1/interactions", {"user_external_id": "crm-bob", "kind": "purchase"}).json()
    assert [e["user_id"] for e in theirs["results"]] == [other_shopper.pk]


# --- the hot path --------------------------------------------------------------------------
def test_batch_of_1000_query_count(pipeline_api, pipeline_user, shopper, products, django_assert_max_num_queries):
    events = [
        {
            "event_id": uuid.uuid4().hex,
            "product_id": products[i % 3].pk,
            "product_sku": None,
            "user_id": shopper.pk if i % 2 else None,
            "session_key": None if i % 2 else f"s-{i % 50}",
            "kind": "view",
            "occurred_at": "2024-05-01T10:00:00Z",
        }
        for i in range(1000)
    ]
    for e in events:
        del e["product_sku"]
        if e["session_key"] is None:
            del e["session_key"]
        if e["user_id"] is None:
            del e["user_id"]
    body = json.dumps({"events": events})
    # PostgreSQL: token + its user + permissions (2) + products + users + one insert (+ savepoint).
    # SQLite caps a statement at 999 parameters, so lookups and inserts go in chunks.
    from django.db import connection

    with django_assert_max_num_queries(8 if connection.vendor == "postgresql" else 25):
        response = pipeline_api.post(BATCH, body, content_type="application/json")
    assert response.status_code == 201, response.json()
    assert Interaction.objects.count() == 1000


# --- the event parser: an event or every problem of it, never both -------------------------
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=2**64),
    st.floats(allow_nan=True),
    st.text(max_size=70),
    st.sampled_from(
        [
            "view",
            "purchase",
            "api",
            "web",
            "2024-05-01T10:00:00Z",
            "2024-05-01T10:00:00",
            "2024-05-01T10:00:00+02:00",
            "6f1c2e7a-0000-4000-8000-000000000001",
            "crm-ann",
            "",
        ]
    ),
    st.lists(st.integers(), max_size=2),
)
_events = st.dictionaries(
    st.sampled_from(sorted(EVENT_FIELDS) + ["colour"]),
    _values,
    max_size=8,
)


class _Actor:
    pk = 7
    external_id = "crm-ann"


@hsettings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=_events, for_anyone=st.booleans())
@example(
    raw={
        "kind": "view",
        "product_id": 5,
        "occurred_at": "2024-05-01T10:00:00Z",
        "event_id": "e",
        "user_external_id": "crm-ann",
        "value": 2,
        "rec_list_id": "6f1c2e7a-0000-4000-8000-000000000001",
    },
    for_anyone=False,
)
@example(
    raw={"kind": "rating", "product_sku": "S", "session_key": "s", "value": 4.5, "source": "web", "delivery_id": 3},
    for_anyone=True,
)
@example(raw={"kind": "view", "product_id": 5, "user_id": 8}, for_anyone=False)
def test_event_parser_returns_an_event_or_every_problem(raw, for_anyone):
    event, errors = parse_event(0, raw, actor=_Actor, for_anyone=for_anyone)
    assert (event is None) == bool(errors), (raw, errors)
    if event is None:
        assert all(e.index == 0 for e in errors)
        named = {e.field for e in errors}
        assert named <= EVENT_FIELDS | set(raw) | {"user"}, errors
        assert set(raw) - EVENT_FIELDS <= named  # an unknown field is named
        return
    assert set(raw) <= EVENT_FIELDS
    assert event.kind == KIND_BY_NAME[raw["kind"]]
    assert event.source == SOURCE_BY_NAME[raw.get("source", "api")]
    assert event.product_id == raw.get("product_id") and event.product_sku == raw.get("product_sku")
    assert event.event_id == raw.get("event_id") and event.delivery_id == raw.get("delivery_id")
    assert event.session_key == (raw.get("session_key") or "")
    assert event.value == raw.get("value", 1.0)
    if for_anyone:
        assert (event.user_id, event.user_external_id) == (raw.get("user_id"), raw.get("user_external_id"))
    else:
        assert event.user_id == _Actor.pk and event.user_external_id is None


@pytest.mark.parametrize(
    ("field", "bad", "code"),
    [
        ("product_id", "5", "invalid"),
        ("product_id", 0, "out_of_range"),
        ("user_id", 2**63, "out_of_range"),
        ("product_sku", "", "blank"),
        ("session_key", "s" * 65, "max_length"),
        ("event_id", 7, "invalid"),
        ("kind", "viewed", "invalid_choice"),
        ("source", "fax", "invalid_choice"),
        ("value", "2", "invalid"),
        ("value", float("inf"), "invalid"),
        ("occurred_at", "2024-05-01T10:00:00", "naive_datetime"),
        ("occurred_at", "yesterday", "invalid"),
        ("rec_list_id", "nope", "invalid"),
        ("colour", "red", "unknown_field"),
    ],
)
def test_event_parser_names_the_one_bad_field(field, bad, code):
    raw = {"kind": "view", "product_id": 5, "session_key": "s", field: bad}
    event, errors = parse_event(3, raw, actor=_Actor, for_anyone=True)
    assert event is None
    assert [(e.index, e.field, e.code) for e in errors] == [(3, field, code)]
