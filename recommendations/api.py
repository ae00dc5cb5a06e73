"""REST API v1 of the recommendations app: recommendations (for a customer, for me,
for an anonymous session, similar products, trending), clicks, and model versions
(list, detail, train, activate).

Thin: parse the query or body with a serializer, call one service or selector,
present the result. Errors, pagination and throttling follow the API-wide
conventions of ``shop`` (they apply to every DRF view).

Who may call what:

* ``recommendations/me``: the logged-in shopper (session or token).
* ``recommendations/users/<id>`` and ``recommendations/session``: an account holding
  ``recommendations.view_recommendations`` (staff or an integration's token; ``is_staff``
  alone is not enough); a shopper may also ask for their own browser session.
* ``recommendations/trending`` and ``recommendations/products/<id>/similar``: anyone
  (they reveal nothing about a person).
* ``recommendations/clicks``: the shopper who saw the list (account or session).
* ``models``: the ``recommendations`` model permissions (view / add = train /
  change = activate); ``is_staff`` alone grants nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from shop import links
from shop.models import Category, Product
from shop.rest.fields import IntegerField
from shop.rest.pagination import PageNumberPagination
from shop.rest.parsers import JSONParser
from shop.rest.permissions import ActionModelPermission
from shop.rest.schema import paginated

from . import explanations, selectors, services
from .artifacts import algorithm_names
from .models import ModelVersion

VIEW_RECOMMENDATIONS = "recommendations.view_recommendations"


# --- permissions -------------------------------------------------------------------------
def _may_view_anyone(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.has_perm(VIEW_RECOMMENDATIONS))


class CanViewRecommendations(BasePermission):
    message = "Recommendations of other shoppers need the recommendations.view_recommendations permission."

    def has_permission(self, request, view) -> bool:
        return _may_view_anyone(request.user)


class ModelVersionPermission(ActionModelPermission):
    """The model permission: view (GET), add (train), change (activate)."""

    model = ModelVersion
    message = "Model versions need the matching recommendations.*_modelversion permission."


# --- output -------------------------------------------------------------------------------
class PickProductSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    sku = serializers.CharField()
    name = serializers.CharField()
    slug = serializers.CharField()
    price = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    in_stock = serializers.BooleanField()
    image_url = serializers.SerializerMethodField(
        help_text="Absolute URL: the product's image, else its generated picture."
    )
    category = serializers.SerializerMethodField()

    def get_image_url(self, product) -> str:
        return links.product_image_url(
            product_id=product.pk, image_url=product.image_url, request=self.context.get("request")
        )

    def get_category(self, product) -> dict | None:
        c = product.category
        return {"id": c.pk, "name": c.name, "slug": c.slug} if c else None


class RuleEffectSerializer(serializers.Serializer):
    rule_id = serializers.IntegerField(allow_null=True, help_text="The rule; null for the request's own filter/boost.")
    action = serializers.ChoiceField(choices=["boost", "bury", "include", "exclude", "pin"])
    weight = serializers.FloatField(help_text="Added to the rank score (negative: buried).")
    name = serializers.CharField()


class PickSerializer(serializers.Serializer):
    rank = serializers.IntegerField()
    product = PickProductSerializer()
    score = serializers.FloatField()
    reason = serializers.CharField(help_text='Human text, e.g. "Because you bought X", "Trending now".')
    reason_code = serializers.ChoiceField(
        choices=["history", "session", "similar", "also_bought", "interest", "trending", "rule"]
    )
    source = serializers.ChoiceField(
        choices=sorted(explanations.SOURCES),
        help_text="What really produced the pick (model, co_purchase, similar_content, trending, popular: filler, "
        "interests, rule, pin, ...); the reason text matches it.",
    )
    rule_effects = RuleEffectSerializer(
        many=True, help_text="What merchandising rules (or the request's filter and boosts) did to this product."
    )


class RecommendationListSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="Send it back with clicks (rec_list_id) to attribute them.")
    context = serializers.CharField()
    strategy = serializers.CharField(
        help_text='What produced the list, e.g. "model:ease#12", "fallback:interests", "trending".'
    )
    model_version_id = serializers.IntegerField(allow_null=True)
    variant = serializers.CharField(help_text="A/B variant name, empty when no experiment applies.")
    placement = serializers.CharField(help_text="The placement whose rules the list follows (its key).")
    rule_ids = serializers.ListField(
        child=serializers.IntegerField(), help_text="The merchandising rules that changed the list."
    )
    items = PickSerializer(many=True)


def _present(rec, request=None) -> dict:
    """The list as JSON (built directly: the serializers above document it; this is
    the hot path, and DRF's field machinery costs more than the scoring)."""
    items = []
    for rank, pick in enumerate(rec.picks, start=1):
        p, c = pick.product, pick.product.category
        items.append(
            {
                "rank": rank,
                "product": {
                    "id": p.pk,
                    "sku": p.sku,
                    "name": p.name,
                    "slug": p.slug,
                    "price": f"{p.price:.2f}",
                    "currency": p.currency,
                    "in_stock": p.in_stock,
                    "image_url": links.product_image_url(product_id=p.pk, image_url=p.image_url, request=request),
                    "category": {"id": c.pk, "name": c.name, "slug": c.slug} if c is not None else None,
                },
                "score": pick.score,
                "reason": pick.reason,
                "reason_code": pick.reason_code,
                "source": pick.source,
                "rule_effects": [e.as_dict() for e in pick.rule_effects],
            }
        )
    return {
        "id": str(rec.id),
        "context": rec.context,
        "strategy": rec.strategy,
        "model_version_id": rec.model_version_id,
        "variant": rec.variant,
        "placement": rec.placement,
        "rule_ids": list(rec.rule_ids),
        "items": items,
    }


# --- input ---------------------------------------------------------------------------------
class QuerySerializer(serializers.Serializer):
    """Query-string input. DRF reads ``?name=`` (empty) as "not given"; here it is an
    error for a field that may not be blank, as the schema documents (minLength 1)."""

    def to_internal_value(self, data):
        blank = {
            name: [serializers.CharField.default_error_messages["blank"]]
            for name, field in self.fields.items()
            if isinstance(field, serializers.CharField)
            and not field.allow_blank
            and hasattr(data, "get")
            and data.get(name, None) == ""
        }
        if blank:
            raise ValidationError(blank)
        return super().to_internal_value(data)


class RecommendQuerySerializer(QuerySerializer):
    n = serializers.IntegerField(
        required=False, min_value=1, max_value=100, help_text="How many (default: the placement's size, else 10)."
    )
    placement = serializers.CharField(
        required=False,
        max_length=40,
        help_text='A placement\'s key ("home", "cart", "email", "api", ...; staff edit them in admin): its '
        "strategy, size, fallbacks and merchandising rules. Without it: the context's placement rules.",
    )
    filter = serializers.CharField(
        required=False,
        max_length=4000,
        help_text="Only products matching this condition (JSON, the rule language of merchandising rules), e.g. "
        '{"price":{"max":20}}, {"category":[3]}, {"new_days":30}, {"stock":{"min":5}}, '
        '{"attribute":{"key":"colour","in":["red"]}}, {"all":[...]}, {"any":[...]}, {"not":{...}}.',
    )
    boost = serializers.CharField(
        required=False,
        max_length=4000,
        help_text='Boosts (JSON list, at most 20): [{"if": condition, "weight": w}], w within ±10 (negative buries; '
        "1 moves a product past the whole list).",
    )
    context = serializers.ChoiceField(choices=list(services.CONTEXTS), required=False, default="api")
    strategy = serializers.CharField(
        required=False,
        default="auto",
        max_length=40,
        help_text='"auto" (active model with fallbacks), an algorithm name, "trending" or "interests".',
    )
    product_id = IntegerField(required=False, min_value=1, help_text="The product on screen, if any.")
    category_id = IntegerField(required=False, min_value=1, help_text="Only this category (and its children).")
    exclude = serializers.CharField(
        required=False,
        default="",
        allow_blank=True,
        help_text="Comma-separated product ids not to show (e.g. the cart).",
    )
    record = serializers.BooleanField(required=False, default=True, help_text="Record the list as shown (impression).")

    def validate_strategy(self, value: str) -> str:
        try:
            return services.strategy_check(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate_placement(self, value: str) -> str:
        known = services.placements_all()
        if value not in known:
            raise serializers.ValidationError(f"unknown placement {value!r}; use one of {sorted(known)}")
        return value

    @staticmethod
    def _json(value: str, name: str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError) as exc:  # too deep is not valid here either
            reason = exc if isinstance(exc, ValueError) else "nested too deeply"
            raise ValidationError({name: [f"{name} is not valid JSON: {reason}"]}) from None

    def _rules(self, attrs) -> list:
        """The request's filter and boosts, in the merchandising rules' language."""
        try:
            return services.request_rules(
                self._json(attrs["filter"], "filter") if "filter" in attrs else None,
                self._json(attrs["boost"], "boost") if "boost" in attrs else None,
            )
        except services.RuleError as exc:
            field = "boost" if exc.path.startswith("boost") else "filter"
            raise ValidationError({field: [str(exc)]}) from None

    def validate_exclude(self, value: str) -> list[int]:
        out = []
        for part in filter(None, (p.strip() for p in value.split(","))):
            if not part.isdigit() or int(part) < 1:
                raise serializers.ValidationError(f"not a product id: {part!r}")
            out.append(int(part))
        if len(out) > 500:
            raise serializers.ValidationError("at most 500 ids")
        return out

    def validate(self, attrs):
        attrs["rules"] = self._rules(attrs)
        if "product_id" in attrs:
            attrs["product"] = Product.objects.select_related("category").filter(pk=attrs["product_id"]).first()
            if attrs["product"] is None:
                raise ValidationError({"product_id": [f"unknown product {attrs['product_id']}"]})
        if "category_id" in attrs:
            attrs["category"] = Category.objects.filter(pk=attrs["category_id"]).first()
            if attrs["category"] is None:
                raise ValidationError({"category_id": [f"unknown category {attrs['category_id']}"]})
        return attrs


# Validated query strings that need no database lookup (no product_id / category_id),
# by their raw text: API clients repeat the same few ("?n=10"), and DRF's field
# machinery costs as much as a database round trip.
_QUERY_MEMO: dict[str, Mapping] = {}
_QUERY_MEMO_SIZE = 512


def _recommend_query(request) -> Mapping:
    raw = request.META.get("QUERY_STRING", "")
    memo = _QUERY_MEMO.get(raw)
    if memo is not None:
        return memo
    query = RecommendQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    q = dict(query.validated_data)
    q["exclude"] = tuple(q["exclude"])
    q = MappingProxyType(q)
    if "product_id" not in q and "category_id" not in q and not q["rules"] and len(raw) <= 256:
        if len(_QUERY_MEMO) >= _QUERY_MEMO_SIZE:
            _QUERY_MEMO.clear()
        _QUERY_MEMO[raw] = q
    return q


def _recommend(request, *, user=None, user_id: int | None = None, session_key: str = "") -> Response:
    q = _recommend_query(request)
    if "placement" in q:
        who = {"user_id": user_id} if user_id is not None else {"user": user}
        try:
            rec = services.placement_serve(
                q["placement"],
                **who,
                session_key=session_key,
                n=q.get("n"),
                product=q.get("product"),
                category=q.get("category"),
                model_strategy=q["strategy"],
                exclude_product_ids=q["exclude"],
                extra_rules=q["rules"],
                record_impression=q["record"],
            )
        except services.PlacementNotFound as exc:  # deleted since the query was validated
            raise ValidationError({"placement": [str(exc)]}) from None
        return Response(_present(rec, request))
    rec = services.recommend_for_user(
        user=user,
        user_id=user_id,
        session_key=session_key,
        context=q["context"],
        n=q.get("n", 10),
        product=q.get("product"),
        category=q.get("category"),
        strategy=q["strategy"],
        exclude_product_ids=q["exclude"],
        record_impression=q["record"],
        extra_rules=q["rules"],
    )
    return Response(_present(rec, request))


# --- recommendation endpoints -----------------------------------------------------------------
class MyRecommendationsApi(APIView):
    """Recommendations for the logged-in shopper, from their history read at call time."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        summary="Recommendations for me",
        parameters=[RecommendQuerySerializer],
        responses=RecommendationListSerializer,
        tags=["recommendations"],
    )
    def get(self, request):
        return _recommend(request, user=request.user, session_key=request.session.session_key or "")


class UserRecommendationsApi(APIView):
    """Recommendations for any customer (``recommendations.view_recommendations``)."""

    permission_classes = [CanViewRecommendations]

    @extend_schema(
        summary="Recommendations for a customer",
        parameters=[RecommendQuerySerializer],
        responses=RecommendationListSerializer,
        tags=["recommendations"],
    )
    def get(self, request, user_id: int):
        try:  # the customer's existence is checked in the history read's round trip
            return _recommend(request, user_id=user_id)
        except services.ShopperNotFound:
            raise NotFound(f"no customer with id {user_id}") from None


class SessionQuerySerializer(QuerySerializer):
    session_key = serializers.CharField(min_length=1, max_length=64, help_text="The visitor's session id.")


class SessionRecommendationsApi(APIView):
    """Recommendations for an anonymous visitor's session (another storefront asking
    for its visitor, or a browser asking for its own session)."""

    permission_classes = [AllowAny]

    @extend_schema(
        summary="Recommendations for an anonymous session",
        parameters=[SessionQuerySerializer, RecommendQuerySerializer],
        responses=RecommendationListSerializer,
        tags=["recommendations"],
    )
    def get(self, request):
        key = SessionQuerySerializer(data=request.query_params)
        key.is_valid(raise_exception=True)
        session_key = key.validated_data["session_key"]
        own = bool(request.session.session_key) and request.session.session_key == session_key
        if not own and not _may_view_anyone(request.user):
            self.permission_denied(request, message=CanViewRecommendations.message)
        return _recommend(request, session_key=session_key)


class TrendingQuerySerializer(QuerySerializer):
    n = serializers.IntegerField(required=False, default=10, min_value=1, max_value=100)
    category_id = IntegerField(required=False, min_value=1)


class TrendingApi(APIView):
    """What is popular right now (optionally in a category and its children)."""

    permission_classes = [AllowAny]

    @extend_schema(
        summary="Trending products",
        parameters=[TrendingQuerySerializer],
        responses=RecommendationListSerializer,
        tags=["recommendations"],
    )
    def get(self, request):
        query = TrendingQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        category = None
        if "category_id" in query.validated_data:
            category = Category.objects.filter(pk=query.validated_data["category_id"]).first()
            if category is None:
                raise ValidationError({"category_id": [f"unknown category {query.validated_data['category_id']}"]})
        rec = services.trending_products(n=query.validated_data["n"], category=category)
        return Response(_present(rec, request))


class SimilarQuerySerializer(QuerySerializer):
    n = serializers.IntegerField(required=False, default=8, min_value=1, max_value=100)
    kind = serializers.ChoiceField(choices=["also_bought", "similar"], required=False, default="also_bought")


class SimilarProductsApi(APIView):
    """ "Customers also bought" (``kind=also_bought``) or content-similar products
    (``kind=similar``) for one product; new products get content neighbours."""

    permission_classes = [AllowAny]

    @extend_schema(
        summary="Products like this one",
        parameters=[SimilarQuerySerializer],
        responses=RecommendationListSerializer,
        tags=["recommendations"],
    )
    def get(self, request, product_id: int):
        query = SimilarQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        product = get_object_or_404(Product.objects.select_related("category"), pk=product_id, is_active=True)
        rec = services.similar_products(
            product=product,
            n=query.validated_data["n"],
            kind=query.validated_data["kind"],
            user=request.user,
            session_key=request.session.session_key or "",
        )
        return Response(_present(rec, request))


class ClickApi(APIView):
    """Record that the shopper clicked a product of a recommendation list."""

    permission_classes = [AllowAny]
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer):
        rec_list_id = serializers.UUIDField()
        product_id = IntegerField(min_value=1)

    class OutputSerializer(serializers.Serializer):
        interaction_id = IntegerField()
        rec_list_id = serializers.UUIDField()

    @extend_schema(
        summary="Record a click on a recommendation",
        request=InputSerializer,
        responses={201: OutputSerializer},
        tags=["recommendations"],
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = request.user if request.user.is_authenticated else None
        session_key = request.session.session_key or ""
        if user is None and not session_key:
            request.session.save()
            session_key = request.session.session_key
        product = Product.objects.filter(pk=data.validated_data["product_id"]).first()
        if product is None:
            raise ValidationError({"product_id": [f"unknown product {data.validated_data['product_id']}"]})
        try:
            event = services.click_record(
                rec_list_id=data.validated_data["rec_list_id"], product=product, user=user, session_key=session_key
            )
        except ValueError as exc:
            raise ValidationError({"rec_list_id": [str(exc)]}) from None
        return Response(
            self.OutputSerializer({"interaction_id": event.pk, "rec_list_id": event.rec_list_id}).data,
            status=status.HTTP_201_CREATED,
        )


# --- model versions ----------------------------------------------------------------------------
class ModelVersionSerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True, help_text="queued, running, succeeded or failed.")
    trigger = serializers.CharField(read_only=True, help_text="admin, api, command, schedule or privacy.")
    tainted = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "algorithm",
            "requested_algorithm",
            "params",
            "slot",
            "status",
            "progress",
            "stage",
            "error",
            "trigger",
            "created_by",
            "data_since",
            "data_until",
            "n_users",
            "n_items",
            "n_interactions",
            "metrics",
            "timings",
            "training_seconds",
            "artifact_size",
            "is_active",
            "activated_at",
            "activation_note",
            "tainted",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_tainted(self, obj) -> bool:
        return obj.tainted_at is not None

    def get_created_by(self, obj) -> str | None:
        return obj.created_by.email if obj.created_by else None


class ModelVersionListApi(APIView):
    permission_classes = [ModelVersionPermission]
    permission_action = "view"

    class ListQuerySerializer(QuerySerializer):
        slot = serializers.CharField(required=False, max_length=40)
        algorithm = serializers.CharField(required=False, max_length=40)
        status = serializers.ChoiceField(choices=ModelVersion.Status.values, required=False)

    @extend_schema(
        summary="Model versions",
        tags=["models"],
        operation_id="models_list",
        parameters=[ListQuerySerializer, OpenApiParameter("page", int, description="Page number (1-based).")],
        responses=paginated(ModelVersionSerializer, "PaginatedModelVersionList"),
    )
    def get(self, request):
        query = self.ListQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        qs = selectors.model_version_list(**query.validated_data)
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(ModelVersionSerializer(page, many=True).data)


class ModelVersionDetailApi(APIView):
    permission_classes = [ModelVersionPermission]
    permission_action = "view"

    @extend_schema(summary="One model version (progress, metrics)", tags=["models"], responses=ModelVersionSerializer)
    def get(self, request, pk: int):
        return Response(
            ModelVersionSerializer(get_object_or_404(ModelVersion.objects.select_related("created_by"), pk=pk)).data
        )


class ModelTrainApi(APIView):
    """Queue a training run; poll the returned version for progress."""

    permission_classes = [ModelVersionPermission]
    parser_classes = [JSONParser]
    permission_action = "add"

    class InputSerializer(serializers.Serializer):
        algorithm = serializers.CharField(
            required=False,
            default="auto",
            max_length=40,
            help_text='"auto" (model selection) or an engine algorithm name.',
        )
        params = serializers.DictField(required=False, default=dict, help_text="Algorithm parameters.")
        slot = serializers.SlugField(required=False, default="default", max_length=40)

        def validate_algorithm(self, value: str) -> str:
            if value != "auto" and value not in algorithm_names():
                raise serializers.ValidationError(
                    f"unknown algorithm {value!r}; use 'auto' or one of {algorithm_names()}"
                )
            return value

    @extend_schema(
        summary="Train a model", tags=["models"], request=InputSerializer, responses={202: ModelVersionSerializer}
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            version = services.model_version_create(
                **data.validated_data, trigger=ModelVersion.Trigger.API, created_by=request.user
            )
        except services.TrainingError as exc:
            raise ValidationError({"params": [str(exc)]}) from None
        services.model_train_enqueue(version=version)
        return Response(ModelVersionSerializer(version).data, status=status.HTTP_202_ACCEPTED)


class ModelActivateApi(APIView):
    """Make a succeeded version the active one of its slot (staff decision)."""

    permission_classes = [ModelVersionPermission]
    permission_action = "change"

    @extend_schema(
        summary="Activate a model version", tags=["models"], request=None, responses={200: ModelVersionSerializer}
    )
    def post(self, request, pk: int):
        version = get_object_or_404(ModelVersion, pk=pk)
        try:
            version = services.model_version_activate(version=version, by=request.user)
        except services.TrainingError as exc:
            raise ValidationError({"version": [str(exc)]}) from None
        return Response(ModelVersionSerializer(version).data)
