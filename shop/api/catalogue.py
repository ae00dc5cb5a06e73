"""API v1 of the catalogue: categories and products.

Reads are public. Writes need the Django model permissions (``shop.add_product``,
``shop.change_product``, ``shop.delete_product``, the same for ``category``; `is_staff`
alone grants nothing): create (POST), update (PUT: every field, absent ones get their
defaults), partial update (PATCH), and DELETE -- a product is taken off sale
(``is_active=false``), a category is deleted only while empty (else 409).
``POST /api/v1/products/batch`` upserts up to 1,000 products by SKU, with the
conventions of ``POST /api/v1/interactions/batch``. Product input is checked by
`shop.services.catalogue.product_row_check`, the validator of ``import_catalogue``:
JSON types are checked here, values there.
"""

from __future__ import annotations

import re
from decimal import Decimal

from django.http import Http404
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import permissions, serializers, status, viewsets
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from shop import links, selectors
from shop.models import Category, Product
from shop.rest.errors import error_body
from shop.rest.parsers import JSONParser, batch_body, query_params
from shop.rest.permissions import HasModelPermission, can_act_for_others
from shop.rest.schema import error_response, row_errors_field
from shop.services import catalogue as catalogue_services
from shop.services.errors import RowError, ValidationFailed


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


def category_write_examples(status_code: str) -> list[OpenApiExample]:
    """The schema examples of a category create/replace/change: a request and its answer."""
    return [
        OpenApiExample("a category", request_only=True, value={"name": "Tea lights", "parent_id": 3}),
        OpenApiExample("category", response_only=True, status_codes=[status_code], value=CATEGORY_EXAMPLE),
    ]


ID_MAX = 2**63 - 1
CATEGORY_DEFAULTS = {"parent_id": None, "description": "", "colour": "#5b6c8f", "position": 0}
CATEGORY_CONFLICT = error_response(
    "409",
    "The parent already has a category of that name, or the slug is taken.",
    error_body(
        "conflict",
        "the parent already has a category named 'Mugs'",
        [{"field": "name", "code": "conflict", "message": "the parent already has a category named 'Mugs'"}],
    ),
)
CATEGORY_IN_USE = error_response(
    "409",
    "The category still holds products or categories.",
    error_body(
        "conflict",
        "category 'Mugs' still holds 3 product(s) and 0 subcategory(ies): move or delete them first",
    ),
)
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
    "image_url": "https://shop.example.com/img/p/12.svg",
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
    """The category tree, flat (``parent_id`` links a category to its parent). Anyone
    reads it; writes need ``shop.add_category`` / ``change_category`` / ``delete_category``."""

    queryset = Category.objects.order_by("position", "name", "id")
    serializer_class = CategorySerializer
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer):
        name = serializers.RegexField(r"\S", max_length=100, help_text="Unique among the parent's categories.")
        parent_id = serializers.IntegerField(
            required=False, allow_null=True, min_value=1, max_value=ID_MAX, help_text="null: a top-level category."
        )
        slug = serializers.SlugField(
            required=False, max_length=120, help_text="Default: made from the names of the path."
        )
        description = serializers.CharField(required=False, allow_blank=True)
        colour = serializers.RegexField(
            r"^#[0-9a-fA-F]{6}$", required=False, help_text="Hex colour of the placeholder images."
        )
        position = serializers.IntegerField(required=False, min_value=0, max_value=32767)

    def get_permissions(self):
        if self.action in {"list", "retrieve", None}:  # None: a method not routed here, a 405
            return [AllowAny()]
        return [HasModelPermission()]

    def _save(self, request, category: Category | None, *, partial: bool):
        data = self.InputSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if category is not None and not partial:  # PUT: what is not given gets its default
            values = {**CATEGORY_DEFAULTS, **values}
        saved = catalogue_services.category_save(category=category, values=values)
        return CategorySerializer(saved).data

    @extend_schema(
        summary="Create a category",
        examples=category_write_examples("201"),
        tags=["catalogue"],
        request=InputSerializer,
        responses={201: CategorySerializer, 409: CATEGORY_CONFLICT},
    )
    def create(self, request):
        return Response(self._save(request, None, partial=False), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Replace a category",
        examples=category_write_examples("200"),
        description="Every field: those not given get their defaults (top level, no description).",
        tags=["catalogue"],
        request=InputSerializer,
        responses={200: CategorySerializer, 409: CATEGORY_CONFLICT},
    )
    def update(self, request, pk=None):
        return Response(self._save(request, self.get_object(), partial=False))

    @extend_schema(
        summary="Change a category",
        examples=category_write_examples("200"),
        tags=["catalogue"],
        request=InputSerializer,
        responses={200: CategorySerializer, 409: CATEGORY_CONFLICT},
    )
    def partial_update(self, request, pk=None):
        return Response(self._save(request, self.get_object(), partial=True))

    @extend_schema(
        summary="Delete an empty category",
        description="Refused with 409 while products or categories are in it.",
        tags=["catalogue"],
        responses={204: None, 409: CATEGORY_IN_USE},
    )
    def destroy(self, request, pk=None):
        catalogue_services.category_delete(category=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProductCategorySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    slug = serializers.CharField()


class ProductSerializer(serializers.ModelSerializer):
    category = ProductCategorySerializer(allow_null=True, read_only=True)
    in_stock = serializers.BooleanField(read_only=True)
    price = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True)
    image_url = serializers.SerializerMethodField(
        help_text="Absolute image URL: the product's own image, else its generated picture (SVG; the same "
        "path ending in .png is a PNG)."
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

    def get_image_url(self, product: Product) -> str:
        return links.product_image_url(
            product_id=product.pk, image_url=product.image_url, request=self.context.get("request")
        )


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
        required=False,
        allow_null=True,
        default=None,
        help_text="true: only products with stock (or stock not tracked); false: only sold-out ones.",
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
        choices=list(selectors.PRODUCT_ORDERINGS),
        required=False,
        help_text="Default: best match with `q`, else `name`.",
    )

    def validate(self, attrs):
        low, high = attrs.get("min_price"), attrs.get("max_price")
        if low is not None and high is not None and low > high:
            raise ValidationError({"min_price": ["must not be more than max_price"]})
        return attrs


# --- product writes ----------------------------------------------------------------------------
PRICE_PATTERN = r"^\d{1,10}(\.\d{1,2})?$"
_PRICE = re.compile(PRICE_PATTERN)
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
PRODUCT_INPUT_FIELDS = frozenset(
    {"sku", "name", "description", "category", "price", "currency", "stock", "active", "image_url", "attributes"}
)
PRODUCT_DEFAULTS = {
    "description": "",
    "category": None,
    "price": "0.00",
    "currency": "GBP",
    "stock": None,
    "active": True,
    "image_url": "",
    "attributes": {},
}
PRODUCT_INPUT_EXAMPLE = {
    "sku": "85123A",
    "name": "White hanging heart t-light holder",
    "category": "Home > Candles & lights",
    "price": "2.55",
    "currency": "GBP",
    "stock": 40,
    "active": True,
    "attributes": {"colour": "white"},
}
SKU_CONFLICT = error_response(
    "409",
    "Another product has this SKU.",
    error_body(
        "conflict",
        "a product with SKU '85123A' exists already",
        [{"field": "sku", "code": "conflict", "message": "a product with SKU '85123A' exists already"}],
    ),
)


class ProductInputSerializer(serializers.Serializer):
    """A product as written (documents what `product_input` accepts; a test keeps them equal)."""

    sku = serializers.RegexField(r"\S", max_length=64, help_text="Your unique product code.")
    name = serializers.RegexField(r"\S", max_length=255)
    description = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    category = serializers.CharField(
        required=False,
        allow_blank=True,
        allow_null=True,
        help_text="Path of names from the top, e.g. `Kitchen > Storage`: each level is matched by "
        "name under its parent and created when missing. Empty or null: no category.",
    )
    price = serializers.RegexField(PRICE_PATTERN, required=False, help_text="Decimal string; default 0.00.")
    currency = serializers.RegexField(r"^[A-Za-z]{3}$", required=False, help_text="ISO 4217; default GBP.")
    stock = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=catalogue_services.MAX_STOCK,
        help_text="Units in stock; null: stock not tracked (always available).",
    )
    active = serializers.BooleanField(required=False, help_text="On sale; default true.")
    image_url = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, max_length=200, help_text="An http(s) URL."
    )
    attributes = serializers.DictField(required=False, help_text="Any JSON object (colour, size, ...).")


class ProductBatchRowSerializer(ProductInputSerializer):
    """A row of the bulk upsert: ``name`` is needed only for a product not stored yet."""

    name = serializers.RegexField(r"\S", max_length=255, required=False, help_text="Required for a new product.")


class ProductPatchSerializer(ProductInputSerializer):
    sku = serializers.RegexField(r"\S", max_length=64, required=False, help_text="A new SKU for the product.")
    name = serializers.RegexField(r"\S", max_length=255, required=False)


_STRING = {"sku": False, "name": False, "price": False, "currency": False, "description": True, "category": True}
_STRING_MAX = {"sku": 64, "name": 255, "image_url": 200}


def _json_errors(raw: dict, index: int, required: tuple[str, ...]) -> list[RowError]:
    """JSON types and the formats the schema states; values are `product_row_check`'s."""
    errors = [
        RowError(index, name, "unknown field", "unknown_field")
        for name in sorted(raw.keys() - PRODUCT_INPUT_FIELDS)[:5]
    ]
    errors += [RowError(index, name, "this field is required", "required") for name in required if name not in raw]
    for name, value in raw.items():
        if name not in PRODUCT_INPUT_FIELDS:
            continue
        message = None
        if name in _STRING or name == "image_url":
            nullable = _STRING.get(name, True)
            if value is None:
                message = None if nullable else "may not be null"
            elif type(value) is not str:
                message = f"must be a string, not {type(value).__name__}"
            elif len(value) > _STRING_MAX.get(name, len(value)):
                errors.append(RowError(index, name, f"at most {_STRING_MAX[name]} characters", "max_length"))
            elif name in {"sku", "name"} and not value.strip():
                errors.append(RowError(index, name, "may not be blank", "blank"))
            elif name == "price" and not _PRICE.match(value):
                message = f"price {value!r} is not a decimal like 12.50"
            elif name == "currency" and not _CURRENCY.match(value):
                message = f"currency {value!r} is not 3 letters"
        elif name == "stock" and value is not None and type(value) is not int:
            message = f"must be a whole number or null, not {type(value).__name__}"
        elif name == "active" and type(value) is not bool:
            message = "must be true or false"
        elif name == "attributes" and type(value) is not dict:
            message = "must be a JSON object"
        if message:
            errors.append(RowError(index, name, message, "null" if value is None else "invalid"))
    return errors


def product_input(raw, *, required: tuple[str, ...], defaults: dict | None = None, index: int = 0):
    """A request's product -> a checked `ProductRow`, or `ValidationFailed` naming every problem."""
    row = product_row_parse(raw, index=index, required=required, defaults=defaults)
    if isinstance(row, list):
        raise ValidationFailed(row)
    return row


def product_row_parse(raw, *, index: int, required: tuple[str, ...] = ("sku",), defaults: dict | None = None):
    if type(raw) is not dict:
        return [RowError(index, "", f"a product is a JSON object, not {type(raw).__name__}")]
    errors = _json_errors(raw, index, required)
    if errors:
        return errors
    return catalogue_services.product_row_check({**(defaults or {}), **raw}, index=index)


def _id(raw) -> int:
    try:
        pk = int(raw)
    except (TypeError, ValueError):
        raise Http404 from None
    if not 0 < pk <= ID_MAX:
        raise Http404
    return pk


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
    parser_classes = [JSONParser]
    queryset = Product.objects.select_related("category")

    def get_permissions(self):
        if self.action in {"list", "retrieve", None}:  # None: a method not routed here, a 405
            return [AllowAny()]
        return [HasModelPermission()]

    def _sees_inactive(self) -> bool:
        return can_act_for_others(self.request.user, Product, "view")

    def _stored(self) -> Product:
        """The product a write is about, withdrawn or not (writers may see them all)."""
        product = Product.objects.select_related("category").filter(pk=_id(self.kwargs["pk"])).first()
        if product is None:
            raise Http404
        return product

    @extend_schema(
        summary="Create a product",
        description="`sku` and `name` are required. A taken SKU is a 409: update that product, "
        "or upsert with `POST /api/v1/products/batch`.",
        tags=["catalogue"],
        request=ProductInputSerializer,
        responses={201: ProductSerializer, 409: SKU_CONFLICT},
        examples=[
            OpenApiExample("a product", request_only=True, value=PRODUCT_INPUT_EXAMPLE),
            OpenApiExample("product", response_only=True, status_codes=["201"], value=PRODUCT_EXAMPLE),
        ],
    )
    def create(self, request):
        row = product_input(request.data, required=("sku", "name"))
        product = catalogue_services.product_create(row=row)
        return Response(ProductSerializer(product, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Replace a product",
        examples=[
            OpenApiExample("changes", request_only=True, value=PRODUCT_INPUT_EXAMPLE),
            OpenApiExample("product", response_only=True, status_codes=["200"], value=PRODUCT_EXAMPLE),
        ],
        description="Every field: those not given get their defaults (no description, no "
        "category, price 0.00, GBP, stock not tracked, active, no image, no attributes).",
        tags=["catalogue"],
        request=ProductInputSerializer,
        responses={200: ProductSerializer, 409: SKU_CONFLICT},
    )
    def update(self, request, pk=None):
        product = self._stored()
        row = product_input(request.data, required=("sku", "name"), defaults=PRODUCT_DEFAULTS)
        return Response(
            ProductSerializer(
                catalogue_services.product_update(product=product, row=row), context={"request": request}
            ).data
        )

    @extend_schema(
        summary="Change a product",
        examples=[
            OpenApiExample("changes", request_only=True, value={"stock": 12, "price": "2.95"}),
            OpenApiExample("product", response_only=True, status_codes=["200"], value=PRODUCT_EXAMPLE),
        ],
        description="Only the fields given change.",
        tags=["catalogue"],
        request=ProductPatchSerializer,
        responses={200: ProductSerializer, 409: SKU_CONFLICT},
    )
    def partial_update(self, request, pk=None):
        product = self._stored()
        row = product_input(request.data, required=(), defaults={"sku": product.sku})
        return Response(
            ProductSerializer(
                catalogue_services.product_update(product=product, row=row), context={"request": request}
            ).data
        )

    @extend_schema(
        summary="Take a product off sale",
        description="Sets `is_active` to false; the product and its history stay (PATCH "
        "`active: true` puts it back on sale).",
        tags=["catalogue"],
        responses={204: None},
    )
    def destroy(self, request, pk=None):
        catalogue_services.product_deactivate(product=self._stored())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def get_queryset(self):
        if self.action == "retrieve":
            return selectors.product_list(include_inactive=self._sees_inactive())
        params = ProductFilterSerializer(data=query_params(self.request))
        params.is_valid(raise_exception=True)
        f = params.validated_data
        if not f["active"] and not self._sees_inactive():
            raise PermissionDenied("Listing withdrawn products needs the shop.view_product permission.")
        return selectors.product_filter(
            active=f["active"],
            q=f.get("q") or "",
            category_id=f.get("category"),
            min_price=f.get("min_price"),
            max_price=f.get("max_price"),
            in_stock=f["in_stock"],
            sku=f.get("sku") or "",
            ordering=f.get("ordering"),
        )


# --- bulk upsert ---------------------------------------------------------------------------------
BATCH_MAX_PRODUCTS = 1000


class BatchPermission(permissions.BasePermission):
    """An upsert creates and changes: both ``shop.add_product`` and ``shop.change_product``."""

    message = "Upserting products needs the shop.add_product and shop.change_product permissions."

    def has_permission(self, request, view) -> bool:
        return can_act_for_others(request.user, Product, "add") and can_act_for_others(request.user, Product, "change")


class ProductBatchReportSerializer(serializers.Serializer):
    received = serializers.IntegerField(help_text="Products in the request.")
    created = serializers.IntegerField(help_text="Products created now.")
    updated = serializers.IntegerField(help_text="Products changed now.")
    unchanged = serializers.IntegerField(help_text="Products given exactly as stored: nothing to do.")
    rejected = serializers.IntegerField(help_text="Products refused; see errors.")
    results = serializers.ListField(
        child=inline_serializer(
            "ProductBatchResult",
            {
                "index": serializers.IntegerField(help_text="0-based position in `products`."),
                "sku": serializers.CharField(),
                "status": serializers.ChoiceField(choices=["created", "updated", "unchanged"]),
                "id": serializers.IntegerField(help_text="The product's id."),
            },
        ),
        help_text="One entry per stored product, in request order.",
    )
    errors = row_errors_field("ProductBatchRowError", rows="products", row="product")


class ProductBatchApi(APIView):
    """Create or update up to 1,000 products by SKU in one request.

    Each row is a product as ``POST /api/v1/products`` takes it, with only ``sku``
    required (``name`` too for a product that does not exist yet); the fields a row
    leaves out keep their stored values. A row equal to what is stored is
    ``unchanged``. Rows are checked as ``import_catalogue`` checks a file's lines.

    **Partial semantics** (the default, ``"partial": true``), as
    ``POST /api/v1/interactions/batch``: the good rows are stored in one transaction,
    the bad ones reported in ``errors`` by index; ``"partial": false`` stores all or none.

    * **201** every row stored (created, updated or unchanged).
    * **200** some rows rejected, the others stored: read ``errors``.
    * **400** nothing stored: the request itself is wrong, every row was rejected, or
      ``partial`` is false and some row was rejected (``products[i].<field>``).

    Needs both ``shop.add_product`` and ``shop.change_product``.
    """

    parser_classes = [JSONParser]
    permission_classes = [BatchPermission]

    class InputSerializer(serializers.Serializer):
        products = serializers.ListField(child=ProductBatchRowSerializer(), min_length=1, max_length=BATCH_MAX_PRODUCTS)
        partial = serializers.BooleanField(required=False, default=True, help_text="false: store all rows or none.")

    @extend_schema(
        operation_id="products_batch_upsert",
        summary="Create or update products by SKU",
        request=InputSerializer,
        responses={
            201: OpenApiResponse(ProductBatchReportSerializer, description="Every row stored."),
            200: OpenApiResponse(
                ProductBatchReportSerializer, description="Some rows rejected (see `errors`); the others stored."
            ),
            400: error_response(
                "400",
                "Nothing stored: see `fields` (per row: `products[i].<field>`).",
                error_body(
                    "validation_error",
                    "Invalid input: 1 problem; first: products[1].price: price 'abc' is not a decimal like 12.50",
                    [
                        {
                            "field": "products[1].price",
                            "index": 1,
                            "code": "invalid",
                            "message": "price 'abc' is not a decimal like 12.50",
                        }
                    ],
                ),
            ),
        },
        tags=["catalogue"],
        examples=[
            OpenApiExample(
                "two products",
                request_only=True,
                value={"products": [PRODUCT_INPUT_EXAMPLE, {"sku": "22423", "stock": 0}]},
            ),
            OpenApiExample(
                "all stored",
                response_only=True,
                status_codes=["201"],
                value={
                    "received": 2,
                    "created": 1,
                    "updated": 1,
                    "unchanged": 0,
                    "rejected": 0,
                    "results": [
                        {"index": 0, "sku": "85123A", "status": "created", "id": 12},
                        {"index": 1, "sku": "22423", "status": "updated", "id": 7},
                    ],
                    "errors": [],
                },
            ),
            OpenApiExample(
                "partly rejected",
                response_only=True,
                status_codes=["200"],
                value={
                    "received": 2,
                    "created": 1,
                    "updated": 0,
                    "unchanged": 0,
                    "rejected": 1,
                    "results": [{"index": 0, "sku": "85123A", "status": "created", "id": 12}],
                    "errors": [
                        {
                            "index": 1,
                            "field": "name",
                            "code": "required_for_new",
                            "message": "name is required for a new product",
                        }
                    ],
                },
            ),
        ],
    )
    def post(self, request):
        rows_raw, partial = batch_body(request.data, key="products", singular="product", max_rows=BATCH_MAX_PRODUCTS)

        rows: list[catalogue_services.ProductRow] = []
        errors: list[RowError] = []
        for i, raw in enumerate(rows_raw):
            row = product_row_parse(raw, index=i)
            if isinstance(row, list):
                errors.extend(row)
            else:
                rows.append(row)
        if errors and (not partial or not rows):
            # Report what the service would find too, so one round trip shows every problem.
            errors += catalogue_services.products_upsert(rows=rows, partial=True, dry_run=True).errors
            _raise_rows(errors)
        try:
            result = catalogue_services.products_upsert(rows=rows, partial=partial)
        except ValidationFailed as exc:
            _raise_rows(errors + exc.errors)
        errors += result.errors
        if not result.outcomes:
            _raise_rows(errors)
        errors.sort(key=lambda e: e.index)
        report = {
            "received": len(rows_raw),
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "rejected": len({e.index for e in errors}),
            "results": [
                {"index": o.index, "sku": o.sku, "status": o.status, "id": o.product_id} for o in result.outcomes
            ],
            "errors": [
                {"index": e.index, "field": e.field or f"products[{e.index}]", "code": e.code, "message": e.message}
                for e in errors
            ],
        }
        return Response(report, status=status.HTTP_200_OK if errors else status.HTTP_201_CREATED)


def _raise_rows(errors: list[RowError]):
    """Nothing stored: a 400 listing every bad row as ``products[i].<field>``."""
    exc = ValidationFailed(sorted(errors, key=lambda e: e.index))
    exc.container = "products"
    raise exc
