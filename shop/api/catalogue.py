"""API v1 of the catalogue: categories and products, public reads."""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import AllowAny

from shop import selectors
from shop.models import Category, Product
from shop.rest.parsers import query_params
from shop.rest.permissions import can_act_for_others


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
        choices=list(selectors.PRODUCT_ORDERINGS),
        required=False,
        help_text="Default: best match with `q`, else `name`.",
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
