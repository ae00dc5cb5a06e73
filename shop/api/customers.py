"""API v1 of customers: the sync with another system (CRM, another shop front) and
the logged-in shopper's own profile (``/me``)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from shop import selectors
from shop.models import Category, User
from shop.rest.pagination import PageNumberPagination
from shop.rest.parsers import JSONParser, query_params
from shop.rest.permissions import HasModelPermission, can_act_for_others
from shop.rest.schema import paginated
from shop.services.customers import customer_create, customer_upsert, user_forget, user_profile_update


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
        qs = selectors.customer_list(**params.validated_data)
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
        user = customer_create(**data.validated_data)
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
        return get_object_or_404(selectors.customer_list(), pk=pk)

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
        user = user_profile_update(user=user, **data.validated_data)
        return Response(self.OutputSerializer(selectors.customer_list().get(pk=user.pk)).data)

    @extend_schema(
        operation_id="customers_destroy",
        summary="Forget a customer",
        description="Deletes the account and everything the customer did (GDPR erasure); orders stay, anonymised.",
        responses={204: None},
        tags=["customers"],
    )
    def delete(self, request, pk: int):
        user_forget(user=self._get(pk))
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
        return Response(
            self.OutputSerializer(get_object_or_404(selectors.customer_list(), external_id=external_id)).data
        )

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
        user, created = customer_upsert(external_id=external_id, **data.validated_data)
        return Response(
            self.OutputSerializer(selectors.customer_list().get(pk=user.pk)).data,
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
        user = user_profile_update(user=request.user, **data.validated_data)
        return Response(self.OutputSerializer(User.objects.prefetch_related("interests").get(pk=user.pk)).data)
