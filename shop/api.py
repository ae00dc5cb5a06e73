"""REST API v1 of the store: catalogue, customers, the shopper's own profile, events.

Thin by design: an endpoint that writes parses its input with its nested
``InputSerializer`` (or, for the event batch, the lean parser `parse_event` which
the ``InputSerializer`` documents), calls ONE service of `shop.services`, and
presents the result with its ``OutputSerializer``. Read-only lookups are viewsets.
Conventions shared by every app's endpoints (errors, pagination, throttling,
permissions) live in `shop.api_errors`, `shop.pagination`, `shop.throttling` and
`shop.permissions`; the schema at ``/api/v1/schema/`` documents all of it.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from decimal import Decimal

from django.db.models import Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import serializers, status, viewsets
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from . import selectors, services
from .api_errors import error_body
from .api_parsers import JSONParser
from .api_schema import error_response, paginated
from .models import Category, Interaction, Product, User
from .pagination import PageNumberPagination
from .permissions import HasModelPermission, can_act_for_others
from .services import KIND_BY_NAME, SOURCE_BY_NAME, InteractionIn, RowError
from .throttling import BulkEventsThrottle

BATCH_MAX_EVENTS = 1000
EVENT_KIND_CHOICES = sorted(KIND_BY_NAME)
EVENT_SOURCE_CHOICES = sorted(SOURCE_BY_NAME)
EVENT_STATUS_CHOICES = ["created", "duplicate"]
KIND_NAMES = {value: name for name, value in KIND_BY_NAME.items()}
SOURCE_NAMES = {value: name for name, value in SOURCE_BY_NAME.items()}


def query_params(request) -> dict[str, str]:
    """Query parameters for a filter serializer: a plain dict, so that ``?kind=`` is an
    empty value to validate (a 400), not silently "no filter" as for HTML forms."""
    return request.query_params.dict()


# =====================================================================================
# Catalogue (public reads)
# =====================================================================================
class CategorySerializer(serializers.ModelSerializer):
    parent_id = serializers.IntegerField(allow_null=True, read_only=True)

    class Meta:
        model = Category
        fields = ["id", "name", "slug", "parent_id", "description", "colour", "position"]
        read_only_fields = fields


CATEGORY_EXAMPLE = {
    "id": 3,
    "name": "Candles & lights",
    "slug": "candles-lights",
    "parent_id": None,
    "description": "",
    "colour": "#5b6c8f",
    "position": 0,
}
PRODUCT_EXAMPLE = {
    "id": 12,
    "sku": "85123A",
    "name": "White hanging heart t-light holder",
    "slug": "white-hanging-heart-t-light-holder-85123a",
    "description": "",
    "category": {"id": 3, "name": "Candles & lights", "slug": "candles-lights"},
    "price": "2.55",
    "currency": "GBP",
    "stock": 40,
    "in_stock": True,
    "is_active": True,
    "attributes": {},
    "image_url": "",
    "created_at": "2024-05-01T10:00:00Z",
    "updated_at": "2024-05-01T10:00:00Z",
}


@extend_schema_view(
    list=extend_schema(
        summary="List categories",
        description="All categories, in display order.",
        tags=["catalogue"],
        examples=[
            OpenApiExample(
                "categories",
                response_only=True,
                value={
                    "count": 2,
                    "next": None,
                    "previous": None,
                    "results": [
                        CATEGORY_EXAMPLE,
                        {**CATEGORY_EXAMPLE, "id": 4, "name": "Tea lights", "slug": "tea-lights", "parent_id": 3},
                    ],
                },
            )
        ],
    ),
    retrieve=extend_schema(
        summary="One category",
        tags=["catalogue"],
        examples=[OpenApiExample("category", response_only=True, value=CATEGORY_EXAMPLE)],
    ),
)
class CategoryViewSet(viewsets.ReadOnlyModelViewSet):
    """The category tree, flat (``parent_id`` links a category to its parent)."""

    queryset = Category.objects.order_by("position", "name", "id")
    serializer_class = CategorySerializer
    permission_classes = [AllowAny]


class ProductCategorySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    slug = serializers.CharField()


class ProductSerializer(serializers.ModelSerializer):
    category = ProductCategorySerializer(allow_null=True, read_only=True)
    in_stock = serializers.BooleanField(read_only=True)
    price = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True)
    image_url = serializers.CharField(
        read_only=True, help_text="Absolute image URL, or empty when the product has none (show a placeholder)."
    )

    class Meta:
        model = Product
        fields = [
            "id",
            "sku",
            "name",
            "slug",
            "description",
            "category",
            "price",
            "currency",
            "stock",
            "in_stock",
            "is_active",
            "attributes",
            "image_url",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


PRODUCT_ORDERINGS = {
    "name": ("name", "id"),
    "-name": ("-name", "-id"),
    "price": ("price", "name", "id"),
    "-price": ("-price", "name", "id"),
    "created_at": ("created_at", "id"),
    "-created_at": ("-created_at", "-id"),
}


@extend_schema_field({"type": "string", "format": "decimal", "pattern": r"^\d{1,10}(\.\d{1,2})?$", "example": "12.50"})
class PriceFilterField(serializers.DecimalField):
    """A price bound in a query: 0 or more, at most 10 whole digits and 2 decimals
    (documented as a pattern: a schema's minimum does not apply to decimal strings)."""

    def __init__(self, **kwargs):
        super().__init__(max_digits=12, decimal_places=2, min_value=Decimal("0"), **kwargs)


class ProductFilterSerializer(serializers.Serializer):
    """Query parameters of the product list."""

    category = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=2**63 - 1,
        help_text="Category id: products of this category and of every category below it.",
    )
    min_price = PriceFilterField(required=False)
    max_price = PriceFilterField(required=False)
    in_stock = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="true: only products with stock; false: only without."
    )
    active = serializers.BooleanField(
        required=False,
        default=True,
        help_text="false lists withdrawn products: needs the `shop.view_product` permission (else 403).",
    )
    sku = serializers.CharField(required=False, max_length=64, help_text="Exact SKU.")
    q = serializers.CharField(
        required=False,
        max_length=200,
        help_text="Search: words in the name, SKU, category or description (the store's "
        "search, prefixes match). Results come best match first.",
    )
    ordering = serializers.ChoiceField(
        choices=list(PRODUCT_ORDERINGS), required=False, help_text="Default: best match with `q`, else `name`."
    )

    def validate(self, attrs):
        low, high = attrs.get("min_price"), attrs.get("max_price")
        if low is not None and high is not None and low > high:
            raise ValidationError({"min_price": ["must not be more than max_price"]})
        return attrs


@extend_schema_view(
    list=extend_schema(
        summary="List and search products",
        parameters=[ProductFilterSerializer],
        tags=["catalogue"],
        examples=[
            OpenApiExample(
                "a page of products",
                response_only=True,
                value={"count": 1, "next": None, "previous": None, "results": [PRODUCT_EXAMPLE]},
            )
        ],
    ),
    retrieve=extend_schema(
        summary="One product",
        description="Withdrawn products are a 404 unless you hold the `shop.view_product` permission.",
        tags=["catalogue"],
        examples=[OpenApiExample("product", response_only=True, value=PRODUCT_EXAMPLE)],
    ),
)
class ProductViewSet(viewsets.ReadOnlyModelViewSet):
    """The catalogue. Anyone may read it; withdrawn products only with permission."""

    serializer_class = ProductSerializer
    permission_classes = [AllowAny]
    queryset = Product.objects.select_related("category")

    def _sees_inactive(self) -> bool:
        return can_act_for_others(self.request.user, Product, "view")

    def get_queryset(self):
        qs = Product.objects.select_related("category")
        if self.action == "retrieve":
            return qs if self._sees_inactive() else qs.filter(is_active=True)
        params = ProductFilterSerializer(data=query_params(self.request))
        params.is_valid(raise_exception=True)
        f = params.validated_data
        if not f["active"] and not self._sees_inactive():
            raise PermissionDenied("Listing withdrawn products needs the shop.view_product permission.")
        searching = bool(f.get("q")) and f["active"]
        if searching:
            # The storefront's search (full text, ranked, on PostgreSQL): the same results as the shop.
            qs = selectors.product_search(query=f["q"])
        else:
            qs = qs.filter(is_active=f["active"])
            for word in selectors.search_terms(f.get("q") or ""):
                qs = qs.filter(Q(name__icontains=word) | Q(sku__icontains=word) | Q(description__icontains=word))
        if "category" in f:
            qs = qs.filter(category_id__in=_category_and_descendants(f["category"]))
        if "min_price" in f:
            qs = qs.filter(price__gte=f["min_price"])
        if "max_price" in f:
            qs = qs.filter(price__lte=f["max_price"])
        if f["in_stock"] is not None:
            qs = qs.filter(stock__gt=0) if f["in_stock"] else qs.filter(stock=0)
        if f.get("sku"):
            qs = qs.filter(sku=f["sku"])
        if searching and "ordering" not in f:
            return qs  # best match first
        return qs.order_by(*PRODUCT_ORDERINGS[f.get("ordering", "name")])


def _category_and_descendants(category_id: int) -> list[int]:
    """The category and all below it, from the database (one small query): a category
    created a moment ago filters correctly, unlike the storefront's cached tree."""
    children: dict[int | None, list[int]] = {}
    for pk, parent_id in Category.objects.values_list("pk", "parent_id"):
        children.setdefault(parent_id, []).append(pk)
    out, stack, seen = [], [category_id], set()
    while stack:
        pk = stack.pop()
        if pk not in seen:
            seen.add(pk)
            out.append(pk)
            stack.extend(children.get(pk, []))
    return out


# =====================================================================================
# Customers: profiles
# =====================================================================================
class InterestsField(serializers.SlugRelatedField):
    """Interests as category slugs."""

    def __init__(self, **kwargs):
        super().__init__(slug_field="slug", queryset=Category.objects.all(), **kwargs)


class CustomerOutputSerializer(serializers.ModelSerializer):
    interests = serializers.SlugRelatedField(
        slug_field="slug", many=True, read_only=True, help_text="Slugs of the categories the customer is interested in."
    )

    class Meta:
        model = User
        fields = [
            "id",
            "external_id",
            "email",
            "first_name",
            "last_name",
            "country",
            "interests",
            "marketing_consent",
            "consent_changed_at",
            "date_joined",
            "is_active",
        ]
        read_only_fields = fields


CUSTOMER_EXAMPLE = {
    "id": 42,
    "external_id": "crm-1007",
    "email": "ann@example.com",
    "first_name": "Ann",
    "last_name": "Lee",
    "country": "United Kingdom",
    "interests": ["candles-lights", "kitchen"],
    "marketing_consent": True,
    "consent_changed_at": "2024-05-01T10:00:00Z",
    "date_joined": "2024-05-01T10:00:00Z",
    "is_active": True,
}


class _ProfileFields(serializers.Serializer):
    first_name = serializers.CharField(required=False, allow_blank=True, max_length=150)
    last_name = serializers.CharField(required=False, allow_blank=True, max_length=150)
    country = serializers.CharField(required=False, allow_blank=True, max_length=64)
    interests = InterestsField(many=True, required=False, help_text="Category slugs (replaces the list).")
    marketing_consent = serializers.BooleanField(
        required=False, help_text="Consent to marketing emails; every change is recorded with source `api`."
    )

    def validate_interests(self, value):
        if len(value) > 100:
            raise ValidationError("at most 100 interests")
        return value


def _customers():
    """Customer accounts: staff accounts are never read or changed through these endpoints."""
    return User.objects.filter(is_staff=False, is_superuser=False).prefetch_related("interests").order_by("id")


class CustomerFilterSerializer(serializers.Serializer):
    external_id = serializers.CharField(required=False, max_length=64)
    email = serializers.EmailField(required=False)
    country = serializers.CharField(required=False, max_length=64)
    marketing_consent = serializers.BooleanField(required=False, allow_null=True, default=None)


class CustomerListCreateApi(APIView):
    """Customers, for syncing with another system (CRM, another shop front).

    Needs ``shop.view_user`` to list and ``shop.add_user`` to create. Staff accounts
    are not customers and never appear here.
    """

    parser_classes = [JSONParser]
    permission_classes = [HasModelPermission]
    permission_model = User

    class InputSerializer(_ProfileFields):
        email = serializers.EmailField(max_length=254)
        external_id = serializers.CharField(
            required=False, allow_null=True, max_length=64, help_text="The customer's id in your system."
        )

    OutputSerializer = CustomerOutputSerializer

    @extend_schema(
        operation_id="customers_list",
        summary="List customers",
        parameters=[CustomerFilterSerializer],
        examples=[
            OpenApiExample(
                "customers",
                response_only=True,
                value={"count": 1, "next": None, "previous": None, "results": [CUSTOMER_EXAMPLE]},
            )
        ],
        responses=paginated(CustomerOutputSerializer, "PaginatedCustomerList"),
        tags=["customers"],
    )
    def get(self, request):
        params = CustomerFilterSerializer(data=query_params(request))
        params.is_valid(raise_exception=True)
        f = params.validated_data
        qs = _customers()
        for name in ("external_id", "country"):
            if f.get(name):
                qs = qs.filter(**{name: f[name]})
        if f.get("email"):
            qs = qs.filter(email=f["email"].lower())
        if f.get("marketing_consent") is not None:
            qs = qs.filter(marketing_consent=f["marketing_consent"])
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="customers_create",
        summary="Create a customer",
        request=InputSerializer,
        responses={201: CustomerOutputSerializer},
        tags=["customers"],
        examples=[
            OpenApiExample(
                "new customer",
                request_only=True,
                value={
                    "email": "ann@example.com",
                    "external_id": "crm-1007",
                    "first_name": "Ann",
                    "last_name": "Lee",
                    "country": "United Kingdom",
                    "interests": ["kitchen"],
                    "marketing_consent": True,
                },
            ),
            OpenApiExample("created", response_only=True, status_codes=["201"], value=CUSTOMER_EXAMPLE),
        ],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.customer_create(**data.validated_data)
        return Response(self.OutputSerializer(user).data, status=status.HTTP_201_CREATED)


class CustomerDetailApi(APIView):
    """One customer by Affinity id: read (``shop.view_user``), change
    (``shop.change_user``), forget (``shop.delete_user``: GDPR erasure)."""

    parser_classes = [JSONParser]
    permission_classes = [HasModelPermission]
    permission_model = User

    class InputSerializer(_ProfileFields):
        email = serializers.EmailField(required=False, max_length=254)

    OutputSerializer = CustomerOutputSerializer

    def _get(self, pk: int) -> User:
        return get_object_or_404(_customers(), pk=pk)

    @extend_schema(
        operation_id="customers_retrieve",
        summary="One customer",
        responses=CustomerOutputSerializer,
        tags=["customers"],
        examples=[OpenApiExample("customer", response_only=True, value=CUSTOMER_EXAMPLE)],
    )
    def get(self, request, pk: int):
        return Response(self.OutputSerializer(self._get(pk)).data)

    @extend_schema(
        operation_id="customers_partial_update",
        summary="Change a customer",
        request=InputSerializer,
        responses=CustomerOutputSerializer,
        examples=[
            OpenApiExample("new country", request_only=True, value={"country": "France"}),
            OpenApiExample("changed", response_only=True, value={**CUSTOMER_EXAMPLE, "country": "France"}),
        ],
        tags=["customers"],
    )
    def patch(self, request, pk: int):
        user = self._get(pk)
        data = self.InputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        user = services.user_profile_update(user=user, **data.validated_data)
        return Response(self.OutputSerializer(_customers().get(pk=user.pk)).data)

    @extend_schema(
        operation_id="customers_destroy",
        summary="Forget a customer",
        description="Deletes the account and everything the customer did (GDPR erasure); orders stay, anonymised.",
        responses={204: None},
        tags=["customers"],
    )
    def delete(self, request, pk: int):
        services.user_forget(user=self._get(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class CustomerByExternalIdApi(APIView):
    """One customer by their id in your system: read, or create-or-update (``PUT``,
    idempotent: the sync's one call). Creating needs ``shop.add_user``, updating
    ``shop.change_user``; fields left out are left as they are."""

    parser_classes = [JSONParser]
    permission_classes = [HasModelPermission]
    permission_model = User

    class InputSerializer(_ProfileFields):
        email = serializers.EmailField(required=False, max_length=254, help_text="Required to create.")

    OutputSerializer = CustomerOutputSerializer

    @extend_schema(
        operation_id="customers_external_retrieve",
        summary="One customer by external id",
        responses=CustomerOutputSerializer,
        tags=["customers"],
        examples=[OpenApiExample("customer", response_only=True, value=CUSTOMER_EXAMPLE)],
    )
    def get(self, request, external_id: str):
        return Response(self.OutputSerializer(get_object_or_404(_customers(), external_id=external_id)).data)

    @extend_schema(
        operation_id="customers_external_upsert",
        summary="Create or update a customer by external id",
        request=InputSerializer,
        responses={200: CustomerOutputSerializer, 201: CustomerOutputSerializer},
        tags=["customers"],
        examples=[
            OpenApiExample(
                "sync",
                request_only=True,
                value={
                    "email": "ann@example.com",
                    "first_name": "Ann",
                    "interests": ["kitchen"],
                    "marketing_consent": False,
                },
            ),
            OpenApiExample("updated", response_only=True, status_codes=["200"], value=CUSTOMER_EXAMPLE),
            OpenApiExample("created", response_only=True, status_codes=["201"], value=CUSTOMER_EXAMPLE),
        ],
    )
    def put(self, request, external_id: str):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        exists = User.objects.filter(external_id=external_id).exists()
        if not can_act_for_others(request.user, User, "change" if exists else "add"):
            raise PermissionDenied(
                f"{'Updating' if exists else 'Creating'} a customer needs the "
                f"shop.{'change' if exists else 'add'}_user permission."
            )
        user, created = services.customer_upsert(external_id=external_id, **data.validated_data)
        return Response(
            self.OutputSerializer(_customers().get(pk=user.pk)).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    def get_permissions(self):
        # PUT decides between add and change itself (above); GET needs view.
        return [IsAuthenticated()] if self.request and self.request.method == "PUT" else super().get_permissions()


class MeApi(APIView):
    """The logged-in shopper's own profile: read it, change names, country, interests
    and marketing consent. The email address is changed on the store's account page."""

    parser_classes = [JSONParser]
    permission_classes = [IsAuthenticated]

    class InputSerializer(_ProfileFields):
        pass

    OutputSerializer = CustomerOutputSerializer

    @extend_schema(
        operation_id="me_retrieve",
        summary="My profile",
        responses=CustomerOutputSerializer,
        tags=["me"],
        examples=[OpenApiExample("profile", response_only=True, value=CUSTOMER_EXAMPLE)],
    )
    def get(self, request):
        return Response(self.OutputSerializer(request.user).data)

    @extend_schema(
        operation_id="me_partial_update",
        summary="Change my profile",
        request=InputSerializer,
        responses=CustomerOutputSerializer,
        tags=["me"],
        examples=[
            OpenApiExample(
                "opt out, new interests",
                request_only=True,
                value={"interests": ["kitchen", "garden"], "marketing_consent": False},
            ),
            OpenApiExample(
                "changed",
                response_only=True,
                value={**CUSTOMER_EXAMPLE, "interests": ["garden", "kitchen"], "marketing_consent": False},
            ),
        ],
    )
    def patch(self, request):
        data = self.InputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        user = services.user_profile_update(user=request.user, **data.validated_data)
        return Response(self.OutputSerializer(User.objects.prefetch_related("interests").get(pk=user.pk)).data)


# =====================================================================================
# Interactions (events)
# =====================================================================================
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
        help_text="Your unique id of the event: an event whose id is already stored is skipped, "
        "so a retried request never stores it twice. Strongly recommended.",
    )
    product_id = serializers.IntegerField(required=False, min_value=1, help_text="Affinity product id…")
    product_sku = serializers.CharField(
        required=False, min_length=1, max_length=64, help_text="…or its SKU (one of the two)."
    )
    user_id = serializers.IntegerField(required=False, min_value=1, help_text="Affinity customer id…")
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
        "Not more than 5 minutes in the future.",
    )
    source = serializers.ChoiceField(choices=EVENT_SOURCE_CHOICES, required=False, default="api")
    rec_list_id = serializers.UUIDField(
        required=False, allow_null=True, help_text="Id of the recommendation list the product was shown in."
    )
    delivery_id = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="Id of the campaign email the event came from."
    )


def _row_error(index: int, field: str, message: str, code: str = "invalid") -> RowError:
    return RowError(index, field, message, code)


def _int_or_error(raw, index: int, field: str, errors: list[RowError]):
    if raw is None:
        return None
    if type(raw) is not int:
        errors.append(_row_error(index, field, f"must be a whole number, not {type(raw).__name__}"))
        return None
    if not 1 <= raw <= 2**63 - 1:
        errors.append(_row_error(index, field, "out of range", "out_of_range"))
        return None
    return raw


def _str_or_error(raw, index: int, field: str, errors: list[RowError]):
    if raw is None:
        return None
    if type(raw) is not str:
        errors.append(_row_error(index, field, f"must be a string, not {type(raw).__name__}"))
        return None
    if not raw or len(raw) > 64:
        errors.append(_row_error(index, field, "1 to 64 characters", "max_length" if raw else "blank"))
        return None
    return raw


_ID_MAX = 2**63 - 1
_NO_ERRORS: list[RowError] = []


def _parse_event_fast(raw: dict, actor: User, for_anyone: bool) -> InteractionIn | None:
    """The common case in one pass: a well-formed event becomes an `InteractionIn`;
    anything unusual returns None and `parse_event` looks again, slowly, to say what
    is wrong. Accepts nothing the careful path would refuse (a test checks they agree)."""
    if not raw.keys() <= EVENT_FIELDS:
        return None
    get = raw.get
    product_id, user_id, delivery_id = get("product_id"), get("user_id"), get("delivery_id")
    for number in (product_id, user_id, delivery_id):
        if number is not None and (type(number) is not int or not 0 < number <= _ID_MAX):
            return None
    product_sku, user_external_id, session_key, event_id = (
        get("product_sku"),
        get("user_external_id"),
        get("session_key"),
        get("event_id"),
    )
    for text in (product_sku, user_external_id, session_key, event_id):
        if text is not None and (type(text) is not str or not 0 < len(text) <= 64):
            return None
    kind_name, source_name = get("kind"), get("source", "api")
    if type(kind_name) is not str or type(source_name) is not str:
        return None
    kind, source = KIND_BY_NAME.get(kind_name), SOURCE_BY_NAME.get(source_name)
    if kind is None or source is None:
        return None
    value = get("value", 1.0)
    if type(value) is float:
        if not math.isfinite(value):
            return None
    elif type(value) is not int:
        return None
    occurred_at = get("occurred_at")
    if occurred_at is not None:
        if type(occurred_at) is not str or len(occurred_at) > 40:
            return None
        try:
            occurred_at = datetime.fromisoformat(occurred_at)
        except ValueError:
            return None
        if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
            return None
    rec_list_id = get("rec_list_id")
    if rec_list_id is not None:
        if type(rec_list_id) is not str:
            return None
        try:
            rec_list_id = uuid.UUID(rec_list_id)
        except ValueError:
            return None
    if not for_anyone:
        if (user_id is not None and user_id != actor.pk) or (
            user_external_id is not None and user_external_id != actor.external_id
        ):
            return None
        user_id, user_external_id = actor.pk, None
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
    )


def parse_event(index: int, raw, *, actor: User, for_anyone: bool) -> tuple[InteractionIn | None, list[RowError]]:
    """One JSON event -> an `InteractionIn`, or the reasons it is not one.

    Types, names and formats are checked here (what a client can get wrong in JSON);
    the rules about values and the references (unknown product, user) are checked by
    the service, in bulk. Written by hand rather than with a serializer per row: for a
    batch of 1,000 events it is ~30x faster, and ingestion speed matters.

    ``for_anyone`` (the client may send anyone's events) unset: the event must be the
    actor's own -- no user given means the actor, another user is refused.
    """
    if type(raw) is not dict:
        return None, [_row_error(index, "", f"an event is a JSON object, not {type(raw).__name__}")]
    event = _parse_event_fast(raw, actor, for_anyone)
    if event is not None:
        return event, _NO_ERRORS
    return _parse_event_careful(index, raw, actor=actor, for_anyone=for_anyone)


def _parse_event_careful(
    index: int, raw: dict, *, actor: User, for_anyone: bool
) -> tuple[InteractionIn | None, list[RowError]]:
    """Every problem of one event, named."""
    errors: list[RowError] = []
    unknown = raw.keys() - EVENT_FIELDS
    if unknown:
        for name in sorted(unknown)[:5]:
            errors.append(_row_error(index, name, "unknown field", "unknown_field"))
    product_id = _int_or_error(raw.get("product_id"), index, "product_id", errors)
    product_sku = _str_or_error(raw.get("product_sku"), index, "product_sku", errors)
    user_id = _int_or_error(raw.get("user_id"), index, "user_id", errors)
    user_external_id = _str_or_error(raw.get("user_external_id"), index, "user_external_id", errors)
    session_key = _str_or_error(raw.get("session_key"), index, "session_key", errors) or ""
    event_id = _str_or_error(raw.get("event_id"), index, "event_id", errors)
    delivery_id = _int_or_error(raw.get("delivery_id"), index, "delivery_id", errors)

    kind_name = raw.get("kind")
    kind = KIND_BY_NAME.get(kind_name) if type(kind_name) is str else None
    if kind is None:
        errors.append(
            _row_error(
                index,
                "kind",
                f"unknown kind {kind_name!r}; one of {sorted(KIND_BY_NAME)}",
                "required" if kind_name is None else "invalid_choice",
            )
        )
    source_name = raw.get("source", "api")
    source = SOURCE_BY_NAME.get(source_name) if type(source_name) is str else None
    if source is None:
        errors.append(
            _row_error(
                index, "source", f"unknown source {source_name!r}; one of {sorted(SOURCE_BY_NAME)}", "invalid_choice"
            )
        )
    value = raw.get("value", 1.0)
    if type(value) not in (int, float) or not math.isfinite(value):
        errors.append(_row_error(index, "value", f"must be a number, not {value!r}"[:120]))
        value = 1.0
    occurred_at = raw.get("occurred_at")
    if occurred_at is not None:
        if type(occurred_at) is not str or len(occurred_at) > 40:
            errors.append(_row_error(index, "occurred_at", "must be an ISO 8601 date-time string"))
            occurred_at = None
        else:
            try:
                occurred_at = datetime.fromisoformat(occurred_at)
            except ValueError:
                errors.append(_row_error(index, "occurred_at", f"not an ISO 8601 date-time: {occurred_at!r}"))
                occurred_at = None
            else:
                if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
                    errors.append(
                        _row_error(index, "occurred_at", "needs a timezone (e.g. Z or +01:00)", "naive_datetime")
                    )
                    occurred_at = None
    rec_list_id = raw.get("rec_list_id")
    if rec_list_id is not None:
        try:
            rec_list_id = uuid.UUID(rec_list_id) if type(rec_list_id) is str else None
        except ValueError:
            rec_list_id = None
        if rec_list_id is None:
            errors.append(_row_error(index, "rec_list_id", "must be a UUID"))

    if not for_anyone:
        own = (user_id is None or user_id == actor.pk) and (
            user_external_id is None or (actor.external_id is not None and user_external_id == actor.external_id)
        )
        if not own:
            errors.append(_row_error(index, "user", "you may only send your own events", "permission_denied"))
        user_id, user_external_id = actor.pk, None
    if errors:
        return None, errors
    return InteractionIn(
        product_id=product_id,
        product_sku=product_sku,
        kind=kind,
        user_id=user_id,
        user_external_id=user_external_id,
        session_key=session_key,
        value=value,
        occurred_at=occurred_at,
        source=source,
        event_id=event_id,
        delivery_id=delivery_id,
        rec_list_id=rec_list_id,
    ), []


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
        qs = Interaction.objects.select_related("product").order_by("-occurred_at", "-id")
        others = any(k in f for k in ("user_id", "user_external_id", "session_key")) and not (
            f.get("user_id") in (None, request.user.pk)
            and "session_key" not in f
            and f.get("user_external_id") in (None, request.user.external_id)
        )
        if others:
            if not can_act_for_others(request.user, Interaction, "view"):
                raise PermissionDenied("Reading someone else's events needs the shop.view_interaction permission.")
            if "user_id" in f:
                qs = qs.filter(user_id=f["user_id"])
            if "user_external_id" in f:
                qs = qs.filter(user__external_id=f["user_external_id"])
            if "session_key" in f:
                qs = qs.filter(session_key=f["session_key"])
        else:
            qs = qs.filter(user=request.user)
        if "product_id" in f:
            qs = qs.filter(product_id=f["product_id"])
        if "kind" in f:
            qs = qs.filter(kind=KIND_BY_NAME[f["kind"]])
        if "since" in f:
            qs = qs.filter(occurred_at__gte=f["since"])
        if "until" in f:
            qs = qs.filter(occurred_at__lt=f["until"])
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
            raise services.ValidationFailed(errors)
        result = services.interactions_bulk_record(events=[event], partial=False)
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
    errors = serializers.ListField(
        child=inline_serializer(
            "BatchRowError",
            {
                "index": serializers.IntegerField(help_text="0-based position of the event in `events`."),
                "field": serializers.CharField(help_text="The bad field, or `events[i]` for the event as a whole."),
                "code": serializers.CharField(),
                "message": serializers.CharField(),
            },
        ),
        help_text="One entry per problem, in row order (an event may have several).",
    )


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

    **Idempotency**: give every event an ``event_id``. An event whose id is already
    stored is skipped and counted in ``duplicates``, so resending a batch after a
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
        body = request.data
        if type(body) is not dict or "events" not in body:
            raise ValidationError(
                {
                    "events": [
                        serializers.ErrorDetail(
                            'the body is {"events": [...]}, a JSON object with a list of events', code="required"
                        )
                    ]
                }
            )
        unknown = set(body) - {"events", "partial"}
        if unknown:
            raise ValidationError(
                {name: [serializers.ErrorDetail("unknown field", code="unknown_field")] for name in sorted(unknown)[:5]}
            )
        events_raw, partial = body["events"], body.get("partial", True)
        if type(partial) is not bool:
            raise ValidationError({"partial": [serializers.ErrorDetail("must be true or false", code="invalid")]})
        if type(events_raw) is not list:
            raise ValidationError({"events": [serializers.ErrorDetail("must be a list", code="not_a_list")]})
        if not events_raw:
            raise ValidationError({"events": [serializers.ErrorDetail("send at least one event", code="empty")]})
        if len(events_raw) > BATCH_MAX_EVENTS:
            raise ValidationError(
                {
                    "events": [
                        serializers.ErrorDetail(
                            f"at most {BATCH_MAX_EVENTS} events per request, not {len(events_raw)}", code="max_length"
                        )
                    ]
                }
            )

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
            errors.extend(_remap(services.interactions_validate(events=parsed), positions))
            _raise_rows(errors)
        if errors and not parsed:
            _raise_rows(errors)
        try:
            result = services.interactions_bulk_record(events=parsed, partial=partial)
        except services.ValidationFailed as exc:
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
    exc = services.ValidationFailed(sorted(errors, key=lambda e: e.index))
    exc.container = "events"
    raise exc
