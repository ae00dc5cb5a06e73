"""API v1 of events: a shopper's own or, with permission, anyone's; one at a time or
in batches of up to 1,000 (the ingestion endpoint). Every event is parsed by the one
hand-written parser `parse_event` (the ``EventInputSerializer`` documents its fields)
and stored through `shop.services.interactions`."""

from __future__ import annotations

import math
import uuid
from datetime import datetime

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from shop import selectors
from shop.event_time import occurred_at_problem
from shop.models import Interaction, User
from shop.rest.errors import error_body
from shop.rest.fields import IntegerField
from shop.rest.pagination import PageNumberPagination
from shop.rest.parsers import JSONParser, batch_body, query_params
from shop.rest.permissions import can_act_for_others
from shop.rest.schema import error_response, paginated, row_errors_field
from shop.rest.throttling import BulkEventsThrottle
from shop.services.errors import RowError, ValidationFailed
from shop.services.interactions import (
    KIND_BY_NAME,
    SOURCE_BY_NAME,
    InteractionIn,
    interactions_bulk_record,
    interactions_validate,
    max_future,
)

BATCH_MAX_EVENTS = 1000
EVENT_KIND_CHOICES = sorted(KIND_BY_NAME)
EVENT_SOURCE_CHOICES = sorted(SOURCE_BY_NAME)
EVENT_STATUS_CHOICES = ["created", "duplicate"]
KIND_NAMES = {value: name for name, value in KIND_BY_NAME.items()}
SOURCE_NAMES = {value: name for name, value in SOURCE_BY_NAME.items()}

EVENT_FIELDS = frozenset(
    {
        "event_id",
        "product_id",
        "product_sku",
        "user_id",
        "user_external_id",
        "session_key",
        "kind",
        "value",
        "occurred_at",
        "source",
        "rec_list_id",
        "delivery_id",
    }
)


class EventInputSerializer(serializers.Serializer):
    """One event. Documents the fields `parse_event` accepts (a test keeps them equal)."""

    event_id = serializers.CharField(
        required=False,
        min_length=1,
        max_length=64,
        help_text="Your unique id of the event: an event whose id you already sent is skipped, "
        "so a retried request never stores it twice. Ids are per client (account): another "
        "client's ids never collide with yours. Strongly recommended.",
    )
    product_id = IntegerField(required=False, min_value=1, help_text="Affinity product id…")
    product_sku = serializers.CharField(
        required=False, min_length=1, max_length=64, help_text="…or its SKU (one of the two)."
    )
    user_id = IntegerField(required=False, min_value=1, help_text="Affinity customer id…")
    user_external_id = serializers.CharField(
        required=False, min_length=1, max_length=64, help_text="…or the customer's id in your system…"
    )
    session_key = serializers.CharField(
        required=False,
        min_length=1,
        max_length=64,
        help_text="…or, for an anonymous visitor, their session id. A shopper's own events need none of these.",
    )
    kind = serializers.ChoiceField(choices=EVENT_KIND_CHOICES, help_text="What happened.")
    value = serializers.FloatField(
        required=False,
        default=1.0,
        min_value=0,
        help_text="Quantity for purchases, stars (0-5) for ratings; default 1.",
    )
    occurred_at = serializers.DateTimeField(
        required=False,
        help_text="ISO 8601 with a timezone (`2024-05-01T10:00:00Z`); default: now. "
        "Not before 1990-01-01 UTC, nor more than 5 minutes in the future.",
    )
    source = serializers.ChoiceField(choices=EVENT_SOURCE_CHOICES, required=False, default="api")
    rec_list_id = serializers.UUIDField(
        required=False, allow_null=True, help_text="Id of the recommendation list the product was shown in."
    )
    delivery_id = IntegerField(
        required=False, allow_null=True, min_value=1, help_text="Id of the campaign email the event came from."
    )


_ID_MAX = 2**63 - 1
# The reference fields of an event, in the order their problems are reported, and
# whether each is a whole-number id (else a string of 1 to 64 characters).
_REFERENCES = (
    ("product_id", True),
    ("product_sku", False),
    ("user_id", True),
    ("user_external_id", False),
    ("session_key", False),
    ("event_id", False),
    ("delivery_id", True),
)


def _reference_error(index: int, field: str, raw, whole: bool) -> RowError:
    if whole:
        if type(raw) is not int:
            return RowError(index, field, f"must be a whole number, not {type(raw).__name__}")
        return RowError(index, field, "out of range", "out_of_range")
    if type(raw) is not str:
        return RowError(index, field, f"must be a string, not {type(raw).__name__}")
    return RowError(index, field, "1 to 64 characters", "max_length" if raw else "blank")


def parse_event(index: int, raw, *, actor: User, for_anyone: bool) -> tuple[InteractionIn | None, list[RowError]]:
    """One JSON event -> an `InteractionIn`, or every problem of it, named per field.

    Types, names and formats are checked here (what a client can get wrong in JSON);
    the rules about values and the references (unknown product, user) are checked by
    the service, in bulk. Written by hand rather than with a serializer per row: for a
    batch of 1,000 events it is ~30x faster, and ingestion speed matters. A
    well-formed event costs one pass of cheap type checks; messages are built only
    for what is wrong.

    ``for_anyone`` (the client may send anyone's events) unset: the event must be the
    actor's own -- no user given means the actor, another user is refused.
    """
    if type(raw) is not dict:
        return None, [RowError(index, "", f"an event is a JSON object, not {type(raw).__name__}")]
    errors: list[RowError] = []
    if not raw.keys() <= EVENT_FIELDS:
        errors.extend(
            RowError(index, name, "unknown field", "unknown_field") for name in sorted(raw.keys() - EVENT_FIELDS)[:5]
        )
    get = raw.get
    references = []
    for name, whole in _REFERENCES:
        ref = get(name)
        if ref is not None and (
            (type(ref) is not int or not 0 < ref <= _ID_MAX)
            if whole
            else (type(ref) is not str or not 0 < len(ref) <= 64)
        ):
            errors.append(_reference_error(index, name, ref, whole))
            ref = None
        references.append(ref)
    product_id, product_sku, user_id, user_external_id, session_key, event_id, delivery_id = references

    kind_name = get("kind")
    kind = KIND_BY_NAME.get(kind_name) if type(kind_name) is str else None
    if kind is None:
        errors.append(
            RowError(
                index,
                "kind",
                f"unknown kind {kind_name!r}; one of {sorted(KIND_BY_NAME)}",
                "required" if kind_name is None else "invalid_choice",
            )
        )
    source_name = get("source", "api")
    source = SOURCE_BY_NAME.get(source_name) if type(source_name) is str else None
    if source is None:
        errors.append(
            RowError(
                index, "source", f"unknown source {source_name!r}; one of {sorted(SOURCE_BY_NAME)}", "invalid_choice"
            )
        )
    value = get("value", 1.0)
    if type(value) is not int and (type(value) is not float or not math.isfinite(value)):
        errors.append(RowError(index, "value", f"must be a number, not {value!r}"[:120]))
        value = 1.0
    occurred_at = get("occurred_at")
    if occurred_at is not None:
        if type(occurred_at) is not str or len(occurred_at) > 40:
            errors.append(RowError(index, "occurred_at", "must be an ISO 8601 date-time string"))
            occurred_at = None
        else:
            try:
                parsed = datetime.fromisoformat(occurred_at)
            except ValueError:
                errors.append(RowError(index, "occurred_at", f"not an ISO 8601 date-time: {occurred_at!r}"))
                occurred_at = None
            else:
                if parsed.tzinfo is None or parsed.utcoffset() is None:
                    errors.append(
                        RowError(index, "occurred_at", "needs a timezone (e.g. Z or +01:00)", "naive_datetime")
                    )
                    occurred_at = None
                elif problem := occurred_at_problem(parsed, now=timezone.now(), max_future=max_future()):
                    errors.append(RowError(index, "occurred_at", problem[1], problem[0]))
                    occurred_at = None
                else:
                    occurred_at = parsed
    rec_list_id = get("rec_list_id")
    if rec_list_id is not None:
        try:
            rec_list_id = uuid.UUID(rec_list_id) if type(rec_list_id) is str else None
        except ValueError:
            rec_list_id = None
        if rec_list_id is None:
            errors.append(RowError(index, "rec_list_id", "must be a UUID"))

    if not for_anyone:
        own = (user_id is None or user_id == actor.pk) and (
            user_external_id is None or (actor.external_id is not None and user_external_id == actor.external_id)
        )
        if not own:
            errors.append(RowError(index, "user", "you may only send your own events", "permission_denied"))
        user_id, user_external_id = actor.pk, None
    if errors:
        return None, errors
    return InteractionIn(
        product_id=product_id,
        product_sku=product_sku,
        kind=kind,
        user_id=user_id,
        user_external_id=user_external_id,
        session_key=session_key or "",
        value=value,
        occurred_at=occurred_at,
        source=source,
        event_id=event_id,
        delivery_id=delivery_id,
        rec_list_id=rec_list_id,
    ), errors


class InteractionOutputSerializer(serializers.ModelSerializer):
    product_sku = serializers.CharField(source="product.sku", read_only=True)
    kind = serializers.SerializerMethodField()
    source = serializers.SerializerMethodField()

    class Meta:
        model = Interaction
        fields = [
            "id",
            "event_id",
            "product_id",
            "product_sku",
            "user_id",
            "session_key",
            "kind",
            "value",
            "occurred_at",
            "source",
            "rec_list_id",
            "delivery_id",
        ]
        read_only_fields = fields

    def get_kind(self, obj) -> str:
        return KIND_NAMES.get(obj.kind, str(obj.kind))

    def get_source(self, obj) -> str:
        return SOURCE_NAMES.get(obj.source, str(obj.source))


class InteractionFilterSerializer(serializers.Serializer):
    user_id = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,
        help_text="Someone else's events: needs `shop.view_interaction`.",
    )
    user_external_id = serializers.CharField(required=False, max_length=64)
    session_key = serializers.CharField(required=False, max_length=64)
    product_id = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    kind = serializers.ChoiceField(choices=EVENT_KIND_CHOICES, required=False)
    since = serializers.DateTimeField(required=False, help_text="occurred_at >= since (ISO 8601).")
    until = serializers.DateTimeField(required=False, help_text="occurred_at < until (ISO 8601).")


EVENT_EXAMPLE = {
    "event_id": "9f1c2e7a-0001",
    "product_sku": "85123A",
    "user_external_id": "crm-1007",
    "kind": "purchase",
    "value": 2,
    "occurred_at": "2024-05-01T10:00:00Z",
}


class InteractionListCreateApi(APIView):
    """Events. ``GET``: your own events (newest first); someone else's need
    ``shop.view_interaction``. ``POST``: record one event (for many, use the batch)."""

    parser_classes = [JSONParser]
    permission_classes = [IsAuthenticated]

    InputSerializer = EventInputSerializer
    OutputSerializer = InteractionOutputSerializer

    @extend_schema(
        operation_id="interactions_list",
        summary="List events",
        parameters=[InteractionFilterSerializer],
        examples=[
            OpenApiExample(
                "events",
                response_only=True,
                value={
                    "count": 1,
                    "next": None,
                    "previous": None,
                    "results": [
                        {
                            "id": 981,
                            "event_id": "9f1c2e7a-0001",
                            "product_id": 12,
                            "product_sku": "85123A",
                            "user_id": 42,
                            "session_key": "",
                            "kind": "purchase",
                            "value": 2.0,
                            "occurred_at": "2024-05-01T10:00:00Z",
                            "source": "api",
                            "rec_list_id": None,
                            "delivery_id": None,
                        }
                    ],
                },
            )
        ],
        responses=paginated(InteractionOutputSerializer, "PaginatedInteractionList"),
        tags=["events"],
    )
    def get(self, request):
        params = InteractionFilterSerializer(data=query_params(request))
        params.is_valid(raise_exception=True)
        f = params.validated_data
        others = any(k in f for k in ("user_id", "user_external_id", "session_key")) and not (
            f.get("user_id") in (None, request.user.pk)
            and "session_key" not in f
            and f.get("user_external_id") in (None, request.user.external_id)
        )
        if others and not can_act_for_others(request.user, Interaction, "view"):
            raise PermissionDenied("Reading someone else's events needs the shop.view_interaction permission.")
        qs = selectors.interaction_list(
            user=None if others else request.user,
            user_id=f.get("user_id") if others else None,
            user_external_id=f.get("user_external_id") if others else None,
            session_key=f.get("session_key") if others else None,
            product_id=f.get("product_id"),
            kind=KIND_BY_NAME[f["kind"]] if "kind" in f else None,
            since=f.get("since"),
            until=f.get("until"),
        )
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="interactions_create",
        summary="Record one event",
        request=EventInputSerializer,
        responses={
            201: OpenApiResponse(
                inline_serializer(
                    "EventRecorded",
                    {
                        "status": serializers.ChoiceField(choices=EVENT_STATUS_CHOICES),
                        "event_id": serializers.CharField(allow_null=True),
                    },
                ),
                description="Stored.",
            ),
            200: OpenApiResponse(
                inline_serializer(
                    "EventDuplicate",
                    {
                        "status": serializers.ChoiceField(choices=EVENT_STATUS_CHOICES),
                        "event_id": serializers.CharField(allow_null=True),
                    },
                ),
                description="An event with this `event_id` was already stored: nothing new was written.",
            ),
        },
        tags=["events"],
        examples=[
            OpenApiExample("a purchase", request_only=True, value=EVENT_EXAMPLE),
            OpenApiExample(
                "stored",
                response_only=True,
                status_codes=["201"],
                value={"status": "created", "event_id": "9f1c2e7a-0001"},
            ),
            OpenApiExample(
                "sent before",
                response_only=True,
                status_codes=["200"],
                value={"status": "duplicate", "event_id": "9f1c2e7a-0001"},
            ),
        ],
    )
    def post(self, request):
        for_anyone = can_act_for_others(request.user, Interaction, "add")
        event, errors = parse_event(0, request.data, actor=request.user, for_anyone=for_anyone)
        if errors:
            raise ValidationFailed(errors)
        result = interactions_bulk_record(events=[event], partial=False, client=request.user)
        created = result.created == 1
        return Response(
            {"status": "created" if created else "duplicate", "event_id": event.event_id},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class BatchReportSerializer(serializers.Serializer):
    received = serializers.IntegerField(help_text="Events in the request.")
    created = serializers.IntegerField(help_text="Events stored now.")
    duplicates = serializers.IntegerField(help_text="Events skipped: their event_id was already stored.")
    rejected = serializers.IntegerField(help_text="Events refused; see errors.")
    errors = row_errors_field("BatchRowError", rows="events", row="event")


class InteractionBatchApi(APIView):
    """Record up to 1,000 events in one request: the ingestion endpoint.

    **Partial semantics** (the default, ``"partial": true``): every event is validated;
    the good ones are stored in one transaction, the bad ones are reported in ``errors``
    by their index, and nothing else changes. ``"partial": false`` stores all or none.

    * **201** every event accepted (``created`` + ``duplicates`` = ``received``).
    * **200** some events rejected, the others stored: read ``errors``.
    * **400** nothing stored: the request itself is wrong (not ``{"events": [...]}``,
      empty, more than 1,000 events), every event was rejected, or ``partial`` is false
      and some event was rejected. The error shape then lists every bad event as
      ``events[i].<field>`` with ``index`` = i.

    **Idempotency**: give every event an ``event_id`` (unique among *your* events: each
    client account has its own namespace). An event whose id you already sent is
    skipped and counted in ``duplicates``, so resending a batch after a
    timeout stores each event once. Events without ``event_id`` are stored each time.

    **Who**: a shopper may send only their own events (no user field needed); a client
    with ``shop.add_interaction`` may send anyone's. Throttled per client in its own
    scope (``interactions_batch``).
    """

    parser_classes = [JSONParser]
    permission_classes = [IsAuthenticated]
    throttle_classes = [BulkEventsThrottle]

    class InputSerializer(serializers.Serializer):
        events = serializers.ListField(child=EventInputSerializer(), min_length=1, max_length=BATCH_MAX_EVENTS)
        partial = serializers.BooleanField(required=False, default=True, help_text="false: store all events or none.")

    OutputSerializer = BatchReportSerializer

    @extend_schema(
        operation_id="interactions_batch_create",
        summary="Record a batch of events",
        request=InputSerializer,
        responses={
            201: OpenApiResponse(BatchReportSerializer, description="Every event accepted."),
            200: OpenApiResponse(
                BatchReportSerializer, description="Some events rejected (see `errors`); the others stored."
            ),
            400: error_response(
                "400",
                "Nothing stored: see `fields` (per event: `events[i].<field>`).",
                error_body(
                    "validation_error",
                    "Invalid input: 1 problem; first: events[1].kind: unknown kind 'viewed'",
                    [
                        {
                            "field": "events[1].kind",
                            "index": 1,
                            "code": "invalid_choice",
                            "message": "unknown kind 'viewed'",
                        }
                    ],
                ),
            ),
        },
        tags=["events"],
        examples=[
            OpenApiExample(
                "two events",
                request_only=True,
                value={
                    "events": [
                        EVENT_EXAMPLE,
                        {"event_id": "9f1c2e7a-0002", "product_id": 12, "session_key": "a1b2c3", "kind": "view"},
                    ]
                },
            ),
            OpenApiExample(
                "all accepted",
                response_only=True,
                status_codes=["201"],
                value={"received": 2, "created": 1, "duplicates": 1, "rejected": 0, "errors": []},
            ),
            OpenApiExample(
                "partly rejected",
                response_only=True,
                status_codes=["200"],
                value={
                    "received": 3,
                    "created": 2,
                    "duplicates": 0,
                    "rejected": 1,
                    "errors": [
                        {
                            "index": 1,
                            "field": "product",
                            "code": "does_not_exist",
                            "message": "unknown product SKU 'NOPE'",
                        }
                    ],
                },
            ),
        ],
    )
    def post(self, request):
        events_raw, partial = batch_body(request.data, key="events", singular="event", max_rows=BATCH_MAX_EVENTS)

        actor = request.user
        for_anyone = can_act_for_others(actor, Interaction, "add")
        parsed: list[InteractionIn] = []
        positions: list[int] = []  # request index of each parsed event
        errors: list[RowError] = []
        for i, raw in enumerate(events_raw):
            event, row_errors = parse_event(i, raw, actor=actor, for_anyone=for_anyone)
            if row_errors:
                errors.extend(row_errors)
            else:
                parsed.append(event)
                positions.append(i)
        if errors and not partial:
            # Report the service's findings too, so one round trip shows every problem.
            errors.extend(_remap(interactions_validate(events=parsed), positions))
            _raise_rows(errors)
        if errors and not parsed:
            _raise_rows(errors)
        try:
            result = interactions_bulk_record(events=parsed, partial=partial, client=actor)
        except ValidationFailed as exc:
            _raise_rows(errors + _remap(exc.errors, positions))
        errors.extend(_remap(result.errors, positions))
        if result.created + result.duplicates == 0:
            _raise_rows(errors)
        errors.sort(key=lambda e: e.index)
        report = {
            "received": len(events_raw),
            "created": result.created,
            "duplicates": result.duplicates,
            "rejected": len({e.index for e in errors}),
            "errors": [
                {"index": e.index, "field": e.field or f"events[{e.index}]", "code": e.code, "message": e.message}
                for e in errors
            ],
        }
        return Response(report, status=status.HTTP_200_OK if errors else status.HTTP_201_CREATED)


def _remap(errors: list[RowError], positions: list[int]) -> list[RowError]:
    """Service errors index the parsed events; the client wants its own indices."""
    return [RowError(positions[e.index], e.field, e.message, e.code) for e in errors]


def _raise_rows(errors: list[RowError]):
    """Nothing stored: a 400 listing every bad event as ``events[i].<field>``."""
    exc = ValidationFailed(sorted(errors, key=lambda e: e.index))
    exc.container = "events"
    raise exc
