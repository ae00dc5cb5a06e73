"""REST API v1 of the campaigns app, for staff and their integrations: campaigns
(list, create, detail), schedule / pause / resume / cancel, a preview for a
customer, and the report; segments and templates to choose from.

Thin: parse with a serializer, call one service or selector, present the result.
Errors, pagination and throttling follow the API-wide conventions of ``shop``.

Who may call: an account holding the ``campaigns`` model permission of the action
(view_campaign for reads, add_campaign to create, change_campaign to schedule, pause,
resume or cancel; a preview, which shows a customer's recommendations, also needs
recommendations.view_recommendations). ``is_staff`` alone grants nothing.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from shop.models import Category, User
from shop.rest.fields import IntegerField
from shop.rest.pagination import PageNumberPagination
from shop.rest.permissions import ActionModelPermission
from shop.rest.schema import error_response, paginated

from . import attribution, lifecycle, selectors, services
from .models import Campaign, EmailTemplate, Segment
from .rendering import TemplateInvalid


class StateConflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The campaign is not in a state that allows this."
    default_code = "conflict"


VIEW_RECOMMENDATIONS = "recommendations.view_recommendations"


class CampaignPermission(ActionModelPermission):
    model = Campaign
    message = (
        "Campaigns need the matching campaigns.*_campaign permission "
        "(a preview also needs recommendations.view_recommendations)."
    )


def _pagination():
    return PageNumberPagination()


class PageParams(serializers.Serializer):
    page = IntegerField(required=False, min_value=1, help_text="Page number, from 1.")
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=100, help_text="1 to 100 (default 20).")


class CampaignListParams(PageParams):
    status = serializers.ChoiceField(choices=Campaign.Status.choices, required=False)


class PreviewParams(serializers.Serializer):
    customer = serializers.CharField(max_length=254, help_text="The customer's id or email address.")
    variant = IntegerField(
        required=False, min_value=1, help_text="A variant id of this campaign (default: the campaign's settings)."
    )


# --- output -------------------------------------------------------------------------------
class VariantSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(max_length=32)
    weight = serializers.IntegerField(min_value=1, max_value=1000, default=1)
    subject = serializers.CharField(max_length=255, allow_blank=True, default="")
    strategy = serializers.CharField(max_length=40, allow_blank=True, default="")


class CampaignSerializer(serializers.ModelSerializer):
    variants = VariantSerializer(many=True, read_only=True)
    exclude_category_ids = serializers.SerializerMethodField()

    class Meta:
        model = Campaign
        fields = (
            "id",
            "name",
            "kind",
            "status",
            "status_note",
            "segment",
            "template",
            "from_email",
            "strategy",
            "n_products",
            "exclude_purchased",
            "exclude_category_ids",
            "exclude_recently_sent_days",
            "scheduled_at",
            "trigger_delay_hours",
            "inactive_days",
            "price_drop_min_percent",
            "holdout_percent",
            "seed",
            "attribution_window_days",
            "max_error_rate",
            "audience_size",
            "sent_count",
            "error_count",
            "created_at",
            "started_at",
            "finished_at",
            "variants",
        )
        read_only_fields = fields

    def get_exclude_category_ids(self, obj: Campaign) -> list[int]:
        return sorted(c.pk for c in obj.exclude_categories.all())


def _campaigns():
    return Campaign.objects.prefetch_related("variants", "exclude_categories")


# --- campaigns ------------------------------------------------------------------------------
class CampaignListApi(APIView):
    permission_classes = [CampaignPermission]

    @property
    def permission_action(self) -> str:
        return "add" if self.request.method == "POST" else "view"

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200)
        kind = serializers.ChoiceField(choices=Campaign.Kind.choices, default=Campaign.Kind.ONE_OFF)
        segment = serializers.PrimaryKeyRelatedField(queryset=Segment.objects.all(), required=False, allow_null=True)
        template = serializers.PrimaryKeyRelatedField(queryset=EmailTemplate.objects.all())
        from_email = serializers.CharField(max_length=255, allow_blank=True, default="")
        strategy = serializers.CharField(max_length=40, default="auto")
        n_products = serializers.IntegerField(min_value=1, max_value=24, default=6)
        exclude_purchased = serializers.BooleanField(default=True)
        exclude_category_ids = serializers.PrimaryKeyRelatedField(
            queryset=Category.objects.all(), many=True, default=list
        )
        exclude_recently_sent_days = serializers.IntegerField(min_value=0, max_value=365, default=0)
        scheduled_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
        trigger_delay_hours = serializers.IntegerField(min_value=0, max_value=24 * 90, default=0)
        inactive_days = serializers.IntegerField(
            min_value=1, max_value=3650, required=False, allow_null=True, default=None
        )
        price_drop_min_percent = serializers.IntegerField(
            min_value=0, max_value=99, default=0, help_text="Price drop: the smallest drop in percent (0: any)."
        )
        holdout_percent = serializers.IntegerField(min_value=0, max_value=90, default=0)
        seed = serializers.IntegerField(min_value=1, max_value=2**31 - 1, required=False, allow_null=True, default=None)
        attribution_window_days = serializers.IntegerField(min_value=1, max_value=90, default=5)
        max_error_rate = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.2)
        variants = VariantSerializer(many=True, default=list)

    @extend_schema(
        operation_id="campaigns_list",
        summary="Campaigns",
        tags=["campaigns"],
        parameters=[CampaignListParams],
        responses=paginated(CampaignSerializer, "PaginatedCampaignList"),
    )
    def get(self, request):
        params = CampaignListParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        qs = _campaigns()
        if params.validated_data.get("status"):
            qs = qs.filter(status=params.validated_data["status"])
        paginator = _pagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(CampaignSerializer(page, many=True).data)

    @extend_schema(
        operation_id="campaigns_create",
        summary="Create a campaign (a draft: schedule it to send)",
        tags=["campaigns"],
        request=InputSerializer,
        responses={201: CampaignSerializer},
    )
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        campaign = services.campaign_create(
            name=d["name"],
            kind=d["kind"],
            segment=d.get("segment"),
            template=d["template"],
            from_email=d["from_email"],
            strategy=d["strategy"],
            n_products=d["n_products"],
            exclude_purchased=d["exclude_purchased"],
            exclude_category_ids=[c.pk for c in d["exclude_category_ids"]],
            exclude_recently_sent_days=d["exclude_recently_sent_days"],
            scheduled_at=d["scheduled_at"],
            trigger_delay_hours=d["trigger_delay_hours"],
            inactive_days=d["inactive_days"],
            price_drop_min_percent=d["price_drop_min_percent"],
            holdout_percent=d["holdout_percent"],
            seed=d["seed"],
            attribution_window_days=d["attribution_window_days"],
            max_error_rate=d["max_error_rate"],
            variants=[dict(v) for v in d["variants"]],
            created_by=request.user,
        )
        return Response(CampaignSerializer(_campaigns().get(pk=campaign.pk)).data, status=201)


class CampaignDetailApi(APIView):
    permission_classes = [CampaignPermission]
    permission_action = "view"

    @extend_schema(
        operation_id="campaigns_retrieve", summary="One campaign", tags=["campaigns"], responses=CampaignSerializer
    )
    def get(self, request, pk: int):
        return Response(CampaignSerializer(get_object_or_404(_campaigns(), pk=pk)).data)


CONFLICT = error_response(
    "409",
    "The campaign's state does not allow this (e.g. resuming a running campaign).",
    {"error": {"code": "conflict", "message": "a running campaign cannot be resumed", "fields": []}},
)


class _CampaignActionApi(APIView):
    permission_classes = [CampaignPermission]
    permission_action = "change"

    def act(self, campaign: Campaign, request) -> Campaign:
        raise NotImplementedError

    def post(self, request, pk: int):
        campaign = get_object_or_404(Campaign, pk=pk)
        try:
            campaign = self.act(campaign, request)
        except lifecycle.CampaignStateError as exc:
            raise StateConflict(str(exc)) from exc
        return Response(CampaignSerializer(_campaigns().get(pk=campaign.pk)).data)


class CampaignScheduleApi(_CampaignActionApi):
    class InputSerializer(serializers.Serializer):
        at = serializers.DateTimeField(
            required=False, allow_null=True, default=None, help_text="When to send (with a timezone); empty: now."
        )

    @extend_schema(
        operation_id="campaigns_schedule",
        summary="Schedule a campaign (now or at a time)",
        tags=["campaigns"],
        request=InputSerializer,
        responses={200: CampaignSerializer, 409: CONFLICT},
    )
    def post(self, request, pk: int):
        return super().post(request, pk)

    def act(self, campaign, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return services.campaign_schedule(campaign=campaign, at=data.validated_data["at"])


class CampaignPauseApi(_CampaignActionApi):
    @extend_schema(
        operation_id="campaigns_pause",
        summary="Pause a campaign",
        tags=["campaigns"],
        request=None,
        responses={200: CampaignSerializer, 409: CONFLICT},
    )
    def post(self, request, pk: int):
        return super().post(request, pk)

    def act(self, campaign, request):
        return lifecycle.campaign_pause(campaign=campaign, reason=f"Paused through the API by {request.user.email}")


class CampaignResumeApi(_CampaignActionApi):
    @extend_schema(
        operation_id="campaigns_resume",
        summary="Resume a paused campaign",
        tags=["campaigns"],
        request=None,
        responses={200: CampaignSerializer, 409: CONFLICT},
    )
    def post(self, request, pk: int):
        return super().post(request, pk)

    def act(self, campaign, request):
        return services.campaign_resume(campaign=campaign)


class CampaignCancelApi(_CampaignActionApi):
    @extend_schema(
        operation_id="campaigns_cancel",
        summary="Cancel a campaign (no more emails)",
        tags=["campaigns"],
        request=None,
        responses={200: CampaignSerializer, 409: CONFLICT},
    )
    def post(self, request, pk: int):
        return super().post(request, pk)

    def act(self, campaign, request):
        return lifecycle.campaign_cancel(campaign=campaign)


class CampaignPreviewApi(APIView):
    permission_classes = [CampaignPermission]
    permission_action = "view"
    required_permissions = (VIEW_RECOMMENDATIONS,)  # it shows a customer's picks

    class OutputSerializer(serializers.Serializer):
        customer = serializers.EmailField(source="customer_email")
        strategy = serializers.CharField()
        subject = serializers.CharField()
        text = serializers.CharField()
        html = serializers.CharField()
        products = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        operation_id="campaigns_preview",
        summary="Preview the campaign's email for a customer (their recommendations now)",
        tags=["campaigns"],
        parameters=[PreviewParams],
        responses=OutputSerializer,
    )
    def get(self, request, pk: int):
        campaign = get_object_or_404(Campaign.objects.select_related("template"), pk=pk)
        params = PreviewParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        raw = params.validated_data["customer"].strip()
        customer = (
            User.objects.filter(pk=int(raw)) if raw.isdigit() else User.objects.filter(email=raw.lower())
        ).first()
        if customer is None:
            raise ValidationError({"customer": [f"no customer {raw!r}"]})
        variant = None
        if params.validated_data.get("variant"):
            variant = campaign.variants.filter(pk=params.validated_data["variant"]).first()
            if variant is None:
                raise ValidationError({"variant": [f"not a variant of campaign {campaign.pk}"]})
        try:
            preview = selectors.email_preview(
                template=campaign.template, user=customer, campaign=campaign, variant=variant
            )
        except TemplateInvalid as exc:
            raise DjangoValidationError(exc.errors) from exc
        return Response(self.OutputSerializer(preview).data)


class UpliftSerializer(serializers.Serializer):
    treated_rate = serializers.FloatField()
    control_rate = serializers.FloatField()
    difference = serializers.FloatField(help_text="treated rate - control rate")
    relative = serializers.FloatField(allow_null=True, help_text="difference / control rate")
    ci_low = serializers.FloatField()
    ci_high = serializers.FloatField()
    z = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True, help_text="two-sided, two-proportion z-test")
    fisher_p = serializers.FloatField(allow_null=True, help_text="two-sided, Fisher's exact test")
    confidence = serializers.FloatField()
    significant = serializers.BooleanField()


class ReportGroupSerializer(serializers.Serializer):
    label = serializers.CharField()
    variant_id = serializers.IntegerField(allow_null=True)
    is_holdout = serializers.BooleanField()
    audience = serializers.IntegerField()
    sent = serializers.IntegerField()
    withheld = serializers.IntegerField()
    skipped = serializers.IntegerField()
    failed = serializers.IntegerField()
    open = serializers.IntegerField(help_text="Waiting or being sent.")
    opened = serializers.IntegerField()
    clicked = serializers.IntegerField()
    converted = serializers.IntegerField(help_text="Emails with an order within the window after a click.")
    revenue = serializers.CharField(help_text="Of the attributed orders (decimal as a string).")
    unsubscribed = serializers.IntegerField()
    ordered = serializers.IntegerField(help_text="Reached customers who ordered within the window (for uplift).")
    reached = serializers.IntegerField(help_text="Sent; for the holdout: withheld.")
    order_rate = serializers.FloatField()
    uplift = UpliftSerializer(allow_null=True)
    compared_with = serializers.CharField()


class ProgressSerializer(serializers.Serializer):
    status = serializers.CharField()
    audience = serializers.IntegerField()
    done = serializers.IntegerField()
    percent = serializers.FloatField()


class VisitLinkSerializer(serializers.Serializer):
    utm_content = serializers.CharField(help_text='Which link: "product-<id>", "shop", "preferences", "link".')
    n = serializers.IntegerField()


class VisitsSerializer(serializers.Serializer):
    visits = serializers.IntegerField(help_text="Store visits that arrived with this campaign's UTM parameters.")
    visitors = serializers.IntegerField(help_text="Distinct browser sessions among them.")
    by_link = VisitLinkSerializer(many=True)


class ReportSerializer(serializers.Serializer):
    campaign = serializers.IntegerField()
    status = serializers.CharField()
    attribution_window_days = serializers.IntegerField()
    groups = ReportGroupSerializer(many=True)
    total = ReportGroupSerializer()
    overall_uplift = UpliftSerializer(allow_null=True)
    skip_reasons = serializers.DictField(child=serializers.IntegerField())
    visits = VisitsSerializer()
    progress = ProgressSerializer()


class CampaignReportApi(APIView):
    permission_classes = [CampaignPermission]
    permission_action = "view"

    @extend_schema(
        operation_id="campaigns_report",
        summary="Report: funnel, revenue and uplift per variant and holdout",
        tags=["campaigns"],
        responses=ReportSerializer,
    )
    def get(self, request, pk: int):
        campaign = get_object_or_404(Campaign, pk=pk)
        attribution.conversions_attribute()  # incremental and idempotent: the report is current
        report = selectors.campaign_report(campaign=campaign)
        data = {**selectors.report_as_dict(report), "progress": selectors.campaign_progress(campaign=campaign)}
        return Response(ReportSerializer(data).data)


# --- what a campaign is made of ----------------------------------------------------------------
class SegmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Segment
        fields = ("id", "name", "description", "rules", "updated_at")
        read_only_fields = fields


class TemplateSerializer(serializers.ModelSerializer):
    class Meta:
        model = EmailTemplate
        fields = ("id", "name", "subject", "updated_at")
        read_only_fields = fields


class SegmentListApi(APIView):
    permission_classes = [CampaignPermission]
    permission_action = "view"

    @extend_schema(
        operation_id="segments_list",
        summary="Segments",
        tags=["campaigns"],
        parameters=[PageParams],
        responses=paginated(SegmentSerializer, "PaginatedSegmentList"),
    )
    def get(self, request):
        PageParams(data=request.query_params).is_valid(raise_exception=True)
        paginator = _pagination()
        page = paginator.paginate_queryset(Segment.objects.all(), request, view=self)
        return paginator.get_paginated_response(SegmentSerializer(page, many=True).data)


class TemplateListApi(APIView):
    permission_classes = [CampaignPermission]
    permission_action = "view"

    @extend_schema(
        operation_id="email_templates_list",
        summary="Email templates",
        tags=["campaigns"],
        parameters=[PageParams],
        responses=paginated(TemplateSerializer, "PaginatedEmailTemplateList"),
    )
    def get(self, request):
        PageParams(data=request.query_params).is_valid(raise_exception=True)
        paginator = _pagination()
        page = paginator.paginate_queryset(EmailTemplate.objects.all(), request, view=self)
        return paginator.get_paginated_response(TemplateSerializer(page, many=True).data)
