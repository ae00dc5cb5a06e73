"""Staff tools for campaigns: segments with a live count and sample, templates with
preview and test send, campaigns with actions, live status and a report, deliveries,
suppressions, tracking events and the embedded outbox. Views here parse the request,
call one service or selector, and render."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from html.parser import HTMLParser

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from shop.models import User

from . import attribution, audiences, lifecycle, selectors, services, social, suppressions
from .charts import funnel_spec, progress_percent
from .models import (
    Campaign,
    Conversion,
    Delivery,
    EmailTemplate,
    OutboxMessage,
    ProductChange,
    Segment,
    ShareConversion,
    ShareVisit,
    Suppression,
    TaggedVisit,
    TrackingEvent,
    Variant,
)
from .rendering import TemplateInvalid, sample_context, template_errors
from .segment_builder import builder_schema, product_options
from .segments import RuleError, rules_preview, segment_queryset


def _customer_lookup(query: str) -> User | None:
    query = (query or "").strip()
    if not query:
        return None
    if query.isdigit():
        return User.objects.filter(pk=int(query)).first()
    return User.objects.filter(email=query.lower()).first()


def _default_customer() -> User | None:
    """Someone with a history, so a preview shows real picks."""
    return (
        User.objects.filter(is_staff=False, orders__isnull=False).order_by("pk").first()
        or User.objects.filter(is_staff=False).order_by("pk").first()
    )


def _add_errors(form: forms.ModelForm, errors: dict) -> None:
    """A service's check on a form: each error on its field (on the form when the
    field is not shown, e.g. read-only once a campaign has started)."""
    for name, problems in errors.items():
        form.add_error(name if name in form.fields else None, problems)


def _value(form: forms.ModelForm, name: str):
    """A field's value as the form would save it: cleaned, or the object's own."""
    return form.cleaned_data[name] if name in form.cleaned_data else getattr(form.instance, name)


# --- emails shown in admin -------------------------------------------------------------------
class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self._href: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "a":
            self._href, self._text = dict(attrs).get("href") or "", []

    def handle_data(self, data) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag) -> None:
        if tag == "a" and self._href is not None:
            text = " ".join("".join(self._text).split()) or "(image)"
            self.links.append((text, self._href, self._href))
            self._href = None


def email_links(html: str) -> list[tuple[str, str, str]]:
    """Every link of an email: (its text, its URL, its URL), in order."""
    parser = _LinkParser()
    parser.feed(html)
    return parser.links


def email_frame(html: str, *, title: str) -> str:
    """An email's HTML in a sandboxed frame as tall as the email (no inner scroll bar
    hiding its footer). The sandbox allows no scripts, so the email's HTML runs no code;
    same-origin lets static/campaigns/email_frame.js read its height. Links open in a
    new tab, outside the sandbox, as they would from a mail client."""
    base = '<base target="_blank">'
    head = re.search(r"<head[^>]*>", html, flags=re.IGNORECASE)
    framed = html[: head.end()] + base + html[head.end() :] if head else base + html
    return format_html(
        '<iframe class="email-frame" sandbox="allow-same-origin allow-popups allow-popups-to-escape-sandbox" '
        'referrerpolicy="no-referrer" srcdoc="{}" title="{}"></iframe>',
        framed,
        title,
    )


# --- segments -------------------------------------------------------------------------------
class RulesField(forms.JSONField):
    """The rule tree as JSON: empty (not ``null``) when there is none yet."""

    default_error_messages = {
        "required": "Add at least one condition (or write the rules as JSON).",
        "invalid": "Enter valid JSON.",
    }

    def prepare_value(self, value):
        if value is None:
            return ""
        return super().prepare_value(value)


class SegmentForm(forms.ModelForm):
    rules = RulesField(
        label="Rules (JSON)",
        help_text="What the builder above writes. Edit it here for trees the builder does not show.",
        widget=forms.Textarea(
            attrs={"rows": 10, "cols": 90, "class": "vLargeTextField", "spellcheck": "false", "data-segment-rules": "1"}
        ),
    )

    class Meta:
        model = Segment
        fields = ("name", "description", "rules")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is None and not self.is_bound:
            self.initial["rules"] = None  # a new segment starts with no conditions, not the model's default

    def clean(self) -> dict:
        data = super().clean()
        if "rules" in data:
            _add_errors(self, services.segment_errors(rules=data["rules"], segment_id=self.instance.pk))
        return data


def _export_audience(modeladmin, request: HttpRequest, queryset: QuerySet[Segment], platform: str):
    """One segment as a custom-audience CSV download (campaigns.audiences)."""
    segments = list(queryset[:2])
    if len(segments) != 1:
        modeladmin.message_user(request, "Select exactly one segment to export.", messages.ERROR)
        return None
    segment = segments[0]
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{audiences.audience_filename(segment=segment, platform=platform)}"'
    )
    audiences.audience_write(segment=segment, platform=platform, out=response)
    return response


@admin.action(description="Export as a Meta custom audience (hashed emails)", permissions=["export_audience"])
def export_audience_meta(modeladmin, request, queryset):
    return _export_audience(modeladmin, request, queryset, "meta")


@admin.action(description="Export as a Google Customer Match list (hashed emails)", permissions=["export_audience"])
def export_audience_google(modeladmin, request, queryset):
    return _export_audience(modeladmin, request, queryset, "google")


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentForm
    list_display = ("name", "description", "updated_at")
    search_fields = ("name", "description")
    change_form_template = "admin/campaigns/segment/change_form.html"
    actions = [export_audience_meta, export_audience_google]

    def has_export_audience_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("campaigns.export_audience")

    class Media:
        js = ("campaigns/segment_builder.js", "campaigns/segment_preview.js")
        css = {"all": ("campaigns/segment_builder.css",)}

    def save_model(self, request, obj: Segment, form, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def get_urls(self):
        return [
            path("preview/", self.admin_site.admin_view(self.preview_view), name="campaigns_segment_preview"),
            path("products/", self.admin_site.admin_view(self.products_view), name="campaigns_segment_products"),
            *super().get_urls(),
        ]

    def preview_view(self, request: HttpRequest) -> JsonResponse:
        """POST {"rules": ..., "segment_id": ...} -> {"count", "sample"}, or {"errors"}
        naming what is wrong with the rules (the form refuses them on save too)."""
        if request.method != "POST":
            return JsonResponse({"errors": ["POST the rules as JSON"]}, status=405)
        if not self.has_view_permission(request):
            return JsonResponse({"errors": ["permission denied"]}, status=403)
        try:
            body = json.loads(request.body or b"{}")
            rules = body["rules"]
            if isinstance(rules, str):
                rules = json.loads(rules)
        except (ValueError, KeyError, TypeError) as exc:
            return JsonResponse({"errors": [f"not valid JSON: {exc}"]}, status=400)
        segment_id = body.get("segment_id")
        try:
            preview = rules_preview(rules, segment_id=int(segment_id) if segment_id else None)
        except RuleError as exc:  # an answer about the rules, not a failed request
            return JsonResponse({"errors": exc.messages})
        return JsonResponse({"count": preview.count, "sample": preview.sample})

    def products_view(self, request: HttpRequest) -> JsonResponse:
        """The product picker's choices: ?q=<name or SKU>, or ?ids=1,2 for saved ones."""
        if not self.has_view_permission(request):
            return JsonResponse({"results": []}, status=403)
        ids = [int(i) for i in request.GET.get("ids", "").split(",") if i.strip().isdigit()][:50]
        return JsonResponse({"results": product_options(query=request.GET.get("q", "")[:100], ids=ids)})

    def _builder_context(self, segment_id: int | None) -> dict:
        return {
            "preview_url": reverse("admin:campaigns_segment_preview"),
            "builder_schema": builder_schema(
                segment_id=segment_id, product_url=reverse("admin:campaigns_segment_products")
            ),
        }

    def change_view(self, request, object_id, form_url="", extra_context=None):
        segment_id = int(object_id) if str(object_id).isdigit() else None
        extra_context = {**self._builder_context(segment_id), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    def add_view(self, request, form_url="", extra_context=None):
        extra_context = {**self._builder_context(None), **(extra_context or {})}
        return super().add_view(request, form_url, extra_context)


# --- templates --------------------------------------------------------------------------------
class PreviewMixin:
    """A preview of an email for any customer, and a test send to a staff address."""

    preview_title = "Preview"

    def _preview_parts(self, obj) -> tuple[EmailTemplate, Campaign | None]:
        raise NotImplementedError

    def _default_preview_customer(self, obj) -> tuple[User | None, str]:
        """Whom a preview shows when staff name nobody, and why (shown on the page)."""
        return _default_customer(), "a customer with orders"

    def preview_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = get_object_or_404(self.model, pk=object_id)
        if not self.has_view_permission(request, obj):
            return HttpResponse(status=403)
        template, campaign = self._preview_parts(obj)
        query = request.GET.get("customer", "")
        if query:
            customer, chosen_because = _customer_lookup(query), ""
        else:
            customer, chosen_because = self._default_preview_customer(obj)
        variants = list(campaign.variants.all()) if campaign else []
        variant = next((v for v in variants if str(v.pk) == request.GET.get("variant")), None)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": obj,
            "title": f"{self.preview_title}: {obj}",
            "customer_query": query or (customer.email if customer else ""),
            "chosen_because": chosen_because,
            "variants": variants,
            "variant": variant,
            "staff_email": request.user.email,
            "test_send_url": reverse(f"admin:campaigns_{self.model._meta.model_name}_test_send", args=[obj.pk]),
        }
        if customer is None:
            context["error"] = f"No customer {query!r}." if query else f"There is no {chosen_because} yet."
        else:
            try:
                context["preview"] = selectors.email_preview(
                    template=template, user=customer, campaign=campaign, variant=variant
                )
                context["customer"] = customer
                context["preview_frame"] = email_frame(context["preview"].html, title="HTML part")
            except TemplateInvalid as exc:
                context["error"] = f"The template does not compile: {exc}"
            except ValueError as exc:
                context["error"] = str(exc)
        return TemplateResponse(request, "admin/campaigns/email_preview.html", context)

    def test_send_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        obj = get_object_or_404(self.model, pk=object_id)
        back = reverse(f"admin:campaigns_{self.model._meta.model_name}_preview", args=[obj.pk])
        if request.method != "POST" or not self.has_change_permission(request, obj):
            return HttpResponseRedirect(back)
        template, campaign = self._preview_parts(obj)
        customer = _customer_lookup(request.POST.get("customer", ""))
        variant = campaign.variants.filter(pk=request.POST.get("variant") or 0).first() if campaign else None
        query = f"?customer={customer.email}" if customer else ""
        if customer is None:
            self.message_user(request, "Choose a customer to send as.", messages.ERROR)
            return HttpResponseRedirect(back)
        try:
            message_id = services.email_test_send(
                template=template, customer=customer, to=request.POST.get("to", ""), campaign=campaign, variant=variant
            )
        except ValidationError as exc:
            self.message_user(request, " ".join(m for ms in exc.message_dict.values() for m in ms), messages.ERROR)
        except Exception as exc:  # noqa: BLE001 - show the mail server's answer to staff
            self.message_user(request, f"Sending failed: {type(exc).__name__}: {exc}", messages.ERROR)
        else:
            self.message_user(request, f"Test email sent to {request.POST.get('to')} ({message_id}).", messages.SUCCESS)
        return HttpResponseRedirect(back + query)

    def preview_urls(self) -> list:
        name = self.model._meta.model_name
        return [
            path(
                "<path:object_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name=f"campaigns_{name}_preview",
            ),
            path(
                "<path:object_id>/test-send/",
                self.admin_site.admin_view(require_POST(self.test_send_view)),
                name=f"campaigns_{name}_test_send",
            ),
        ]


class EmailTemplateForm(forms.ModelForm):
    class Meta:
        model = EmailTemplate
        fields = ("name", "subject", "html_body", "text_body")
        widgets = {
            "html_body": forms.Textarea(attrs={"rows": 24, "cols": 100, "spellcheck": "false"}),
            "text_body": forms.Textarea(attrs={"rows": 14, "cols": 100, "spellcheck": "false"}),
        }

    def clean(self) -> dict:
        data = super().clean()
        parts = {name: _value(self, name) for name in ("subject", "html_body", "text_body")}
        _add_errors(self, template_errors(**parts))
        return data


@admin.register(EmailTemplate)
class EmailTemplateAdmin(PreviewMixin, admin.ModelAdmin):
    form = EmailTemplateForm
    list_display = ("name", "subject", "updated_at", "preview_link")
    search_fields = ("name", "subject")
    readonly_fields = ("variables",)
    preview_title = "Preview of template"

    def _preview_parts(self, obj):
        return obj, None

    def get_urls(self):
        return [*self.preview_urls(), *super().get_urls()]

    @admin.display(description="preview")
    def preview_link(self, obj: EmailTemplate) -> str:
        return format_html('<a href="{}">Preview</a>', reverse("admin:campaigns_emailtemplate_preview", args=[obj.pk]))

    @admin.display(description="variables you can use")
    def variables(self, obj) -> str:
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", json.dumps(sample_context(), indent=2))


# --- campaigns -----------------------------------------------------------------------------------
def _audience_figures(campaign: Campaign) -> dict:
    """Who sending would reach now: the segment, less those without marketing consent,
    less suppressed addresses; the holdout's expected share. (Each email checks again.)"""
    if campaign.segment_id is None:
        return {"error": "The campaign has no segment."}
    try:
        members = segment_queryset(campaign.segment)
        in_segment = members.count()
        no_consent = members.filter(marketing_consent=False).count()
        audience = lifecycle.audience_queryset(campaign=campaign).count()
    except RuleError as exc:
        return {"error": f"The segment's rules are invalid: {exc}"}
    held_out = round(audience * campaign.holdout_percent / 100)
    return {
        "in_segment": in_segment,
        "no_consent": no_consent,
        "suppressed": in_segment - no_consent - audience,
        "audience": audience,
        "held_out": held_out,
        "emails": audience - held_out,
    }


def _can_send(campaign: Campaign) -> bool:
    return campaign.status in (Campaign.Status.DRAFT, Campaign.Status.SCHEDULED)


def _sends_later(campaign: Campaign) -> bool:
    """Its send time is in the future: scheduling it waits until then."""
    return campaign.scheduled_at is not None and campaign.scheduled_at > timezone.now()


def _scheduled_message(campaign: Campaign) -> str:
    """What `services.campaign_schedule` did, in words: sending now, later, or listening."""
    if campaign.is_triggered:
        return f"“{campaign}” is live: it emails each customer when their event happens."
    if _sends_later(campaign):
        return (
            f"“{campaign}” is scheduled for {timezone.localtime(campaign.scheduled_at):%Y-%m-%d %H:%M %Z}: "
            "its audience is built then, from the segment as it is at that time."
        )
    return f"Sending “{campaign}” now: its progress shows below."


class VariantForm(forms.ModelForm):
    class Meta:
        model = Variant
        fields = ("name", "weight", "subject", "strategy")

    def clean(self) -> dict:
        data = super().clean()
        _add_errors(self, services.variant_errors(subject=_value(self, "subject"), strategy=_value(self, "strategy")))
        return data


class VariantInline(admin.TabularInline):
    model = Variant
    form = VariantForm
    extra = 0
    fields = ("name", "weight", "subject", "strategy")

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and (obj is None or obj.started_at is None)

    has_add_permission = has_change_permission
    has_delete_permission = has_change_permission


LOCKED_AFTER_START = (
    "kind",
    "segment",
    "template",
    "strategy",
    "n_products",
    "exclude_purchased",
    "exclude_categories",
    "exclude_recently_sent_days",
    "holdout_percent",
    "seed",
    "trigger_delay_hours",
    "inactive_days",
    "price_drop_min_percent",
    "from_email",
)


class CampaignForm(forms.ModelForm):
    price_drop_min_percent = forms.IntegerField(
        label="Price drop min percent",
        min_value=0,
        max_value=99,
        required=False,
        initial=0,
        help_text=Campaign._meta.get_field("price_drop_min_percent").help_text,
    )

    class Meta:
        model = Campaign
        fields = (
            "name",
            "kind",
            "segment",
            "template",
            "from_email",
            "strategy",
            "n_products",
            "exclude_purchased",
            "exclude_categories",
            "exclude_recently_sent_days",
            "scheduled_at",
            "trigger_delay_hours",
            "inactive_days",
            "price_drop_min_percent",
            "holdout_percent",
            "seed",
            "attribution_window_days",
            "max_error_rate",
        )

    def clean_price_drop_min_percent(self) -> int:
        return self.cleaned_data.get("price_drop_min_percent") or 0  # empty: any drop

    def clean(self) -> dict:
        data = super().clean()
        segment_id = (
            (data["segment"].pk if data["segment"] else None) if "segment" in data else self.instance.segment_id
        )
        _add_errors(
            self,
            services.campaign_errors(
                kind=_value(self, "kind"),
                segment_id=segment_id,
                inactive_days=_value(self, "inactive_days"),
                trigger_delay_hours=_value(self, "trigger_delay_hours"),
                strategy=_value(self, "strategy"),
                from_email=_value(self, "from_email"),
            ),
        )
        return data


@admin.register(Campaign)
class CampaignAdmin(PreviewMixin, admin.ModelAdmin):
    form = CampaignForm
    list_display = (
        "name",
        "kind",
        "status_badge",
        "segment",
        "audience_size",
        "sent_count",
        "progress",
        "scheduled_at",
        "report_link",
    )
    list_filter = ("status", "kind")
    search_fields = ("name",)
    list_select_related = ("segment", "template")
    autocomplete_fields = ("segment", "template")
    filter_horizontal = ("exclude_categories",)
    inlines = [VariantInline]
    actions = ["send_or_schedule", "pause", "resume", "cancel"]
    change_form_template = "admin/campaigns/campaign/change_form.html"
    preview_title = "Preview of campaign"

    class Media:
        css = {"all": ("admin/css/affinity-charts.css",)}  # the list's progress bars

    fieldsets = (
        (None, {"fields": ("name", "kind", "segment", "audience_now", "template", "from_email")}),
        (
            "Recommendations",
            {
                "fields": (
                    "strategy",
                    "n_products",
                    "exclude_purchased",
                    "exclude_categories",
                    "exclude_recently_sent_days",
                )
            },
        ),
        ("When", {"fields": ("scheduled_at", "trigger_delay_hours", "inactive_days", "price_drop_min_percent")}),
        (
            "Measurement and safety",
            {"fields": ("holdout_percent", "seed", "attribution_window_days", "max_error_rate")},
        ),
        (
            "State",
            {
                "fields": (
                    "status",
                    "status_note",
                    "audience_size",
                    "sent_count",
                    "error_count",
                    "started_at",
                    "finished_at",
                )
            },
        ),
    )
    readonly_fields = (
        "status",
        "status_note",
        "audience_size",
        "sent_count",
        "error_count",
        "started_at",
        "finished_at",
        "audience_now",
    )

    def _preview_parts(self, obj: Campaign):
        return obj.template, obj

    def _default_preview_customer(self, obj: Campaign) -> tuple[User | None, str]:
        """A member of the campaign's audience (one with orders when there is one: their
        picks say more), else of its segment, else any customer."""
        if obj.segment_id is None:
            return _default_customer(), "a customer with orders"
        try:
            audience = lifecycle.audience_queryset(campaign=obj).order_by("pk")
            member = audience.filter(orders__isnull=False).first() or audience.first()
            if member is not None:
                return member, f"a member of the segment “{obj.segment}” who would get this email"
            member = segment_queryset(obj.segment).order_by("pk").first()
        except RuleError:
            member = None
        if member is not None:
            return member, f"a member of the segment “{obj.segment}” (nobody in it would get the email now)"
        return None, f"member of the segment “{obj.segment}”"

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.started_at is not None:
            fields += LOCKED_AFTER_START
        return fields

    def save_model(self, request, obj: Campaign, form, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        lifecycle.variants_ensure(campaign=form.instance)

    def get_urls(self):
        return [
            *self.preview_urls(),
            path(
                "<path:object_id>/report/",
                self.admin_site.admin_view(self.report_view),
                name="campaigns_campaign_report",
            ),
            path(
                "<path:object_id>/status/",
                self.admin_site.admin_view(self.status_view),
                name="campaigns_campaign_status",
            ),
            path(
                "<path:object_id>/send/",
                self.admin_site.admin_view(self.send_view),
                name="campaigns_campaign_send",
            ),
            *super().get_urls(),
        ]

    @admin.display(description="audience now")
    def audience_now(self, obj: Campaign) -> str:
        """Before sending: who the segment holds now with consent and not suppressed
        (checked again when each email goes)."""
        if obj is None or obj.pk is None or obj.segment_id is None:
            return "—"
        if obj.started_at is not None and obj.kind == Campaign.Kind.ONE_OFF:
            return f"{obj.audience_size:,} (built when it started)"
        try:
            qs = lifecycle.audience_queryset(campaign=obj)
            count = qs.count()
            sample = list(qs.order_by("pk").values_list("email", flat=True)[:5])
        except Exception as exc:  # noqa: BLE001 - a broken segment must not break the page
            return f"cannot evaluate the segment: {exc}"
        return format_html(
            "<strong>{}</strong> customer(s) with consent, not suppressed. First: {}",
            f"{count:,}",
            ", ".join(sample) or "—",
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Campaign) -> str:
        colours = {"running": "#0f6b5c", "paused": "#b7791f", "cancelled": "#9b2c2c", "completed": "#2b6cb0"}
        return format_html(
            '<strong style="color:{}" title="{}">{}</strong>',
            colours.get(obj.status, "#555"),
            obj.status_note,
            obj.get_status_display(),
        )

    @admin.display(description="progress")
    def progress(self, obj: Campaign) -> str:
        if not obj.audience_size:
            return "—"
        pct = progress_percent(obj.sent_count, obj.audience_size)
        return format_html(
            '<progress class="campaign-progress" value="{}" max="100" title="{}% sent">{}%</progress>', pct, pct, pct
        )

    @admin.display(description="report")
    def report_link(self, obj: Campaign) -> str:
        return format_html('<a href="{}">Report</a>', reverse("admin:campaigns_campaign_report", args=[obj.pk]))

    def _act(self, request, queryset: QuerySet[Campaign], verb: str, fn) -> None:
        done, problems = 0, []
        for campaign in queryset:
            try:
                fn(campaign)
                done += 1
            except (lifecycle.CampaignStateError, ValidationError) as exc:
                problems.append(f"{campaign}: {exc}")
        if done:
            self.message_user(request, f"{verb} {done} campaign(s).", messages.SUCCESS)
        for problem in problems:
            self.message_user(request, problem, messages.ERROR)

    @admin.action(description="Send now, or at their scheduled time")
    def send_or_schedule(self, request, queryset):
        for campaign in queryset:
            try:
                campaign = services.campaign_schedule(campaign=campaign, at=campaign.scheduled_at)
            except (lifecycle.CampaignStateError, ValidationError) as exc:
                self.message_user(request, f"{campaign}: {exc}", messages.ERROR)
            else:
                self.message_user(request, _scheduled_message(campaign), messages.SUCCESS)

    def send_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """GET: what sending would do (the audience after consent and suppressions, when);
        POST: send now or schedule, and say truthfully which happened."""
        campaign = get_object_or_404(Campaign.objects.select_related("segment", "template"), pk=object_id)
        change_url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
        if not self.has_change_permission(request, campaign):
            return HttpResponseRedirect(change_url)
        if request.method == "POST":
            try:
                campaign = services.campaign_schedule(campaign=campaign, at=campaign.scheduled_at)
            except (lifecycle.CampaignStateError, ValidationError) as exc:
                self.message_user(request, f"Not sent: {exc}", messages.ERROR)
            else:
                self.message_user(request, _scheduled_message(campaign), messages.SUCCESS)
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": Campaign._meta,
            "original": campaign,
            "title": f"Send “{campaign}”?",
            "audience": _audience_figures(campaign),
            "can_send": _can_send(campaign),
            "later": _sends_later(campaign),
            "preview_url": reverse("admin:campaigns_campaign_preview", args=[campaign.pk]),
        }
        return TemplateResponse(request, "admin/campaigns/campaign/send_confirm.html", context)

    @admin.action(description="Pause")
    def pause(self, request, queryset):
        self._act(
            request,
            queryset,
            "Paused",
            lambda c: lifecycle.campaign_pause(campaign=c, reason=f"Paused by {request.user.email}"),
        )

    @admin.action(description="Resume")
    def resume(self, request, queryset):
        self._act(request, queryset, "Resumed", lambda c: services.campaign_resume(campaign=c))

    @admin.action(description="Cancel (no more emails)")
    def cancel(self, request, queryset):
        self._act(request, queryset, "Cancelled", lambda c: lifecycle.campaign_cancel(campaign=c))

    def status_view(self, request: HttpRequest, object_id: str) -> JsonResponse:
        campaign = get_object_or_404(Campaign, pk=object_id)
        if not self.has_view_permission(request, campaign):
            return JsonResponse({}, status=403)
        return JsonResponse(selectors.campaign_progress(campaign=campaign))

    def report_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        campaign = get_object_or_404(Campaign.objects.select_related("segment", "template"), pk=object_id)
        if not self.has_view_permission(request, campaign):
            return HttpResponse(status=403)
        attribution.conversions_attribute()  # incremental: orders since the last tick count at once
        report = selectors.campaign_report(campaign=campaign)
        context = {
            **self.admin_site.each_context(request),
            "opts": Campaign._meta,
            "original": campaign,
            "title": f"Report: {campaign}",
            "report": report,
            "chart": funnel_spec(report),
            "progress": selectors.campaign_progress(campaign=campaign),
        }
        return TemplateResponse(request, "admin/campaigns/campaign/report.html", context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        campaign = Campaign.objects.filter(pk=object_id).first()
        if campaign is not None:
            extra_context["progress"] = selectors.campaign_progress(campaign=campaign)
            extra_context["can_send"] = _can_send(campaign)
            extra_context["send_later"] = _sends_later(campaign)
            extra_context["status_url"] = reverse("admin:campaigns_campaign_status", args=[campaign.pk])
        return super().change_view(request, object_id, form_url, extra_context)


# --- deliveries and what happened to them ---------------------------------------------------------
class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class TrackingEventInline(admin.TabularInline):
    model = TrackingEvent
    extra = 0
    fields = ("occurred_at", "kind", "product", "detail")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "campaign",
        "variant",
        "email",
        "status",
        "skip_reason",
        "is_holdout",
        "sent_at",
        "opened_at",
        "clicked_at",
        "attempts",
    )
    list_filter = ("status", "skip_reason", "is_holdout", "recovered", ("campaign", admin.RelatedOnlyFieldListFilter))
    search_fields = ("email", "message_id", "trigger_key")
    list_select_related = ("campaign", "variant")
    show_full_result_count = False
    inlines = [TrackingEventInline]
    raw_id_fields = ("user",)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class SuppressionForm(forms.ModelForm):
    class Meta:
        model = Suppression
        fields = ("email", "reason", "note")

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    form = SuppressionForm
    list_display = ("email", "reason", "created_at", "note")
    list_filter = ("reason",)
    search_fields = ("email", "note")
    fields = ("email", "reason", "note")
    readonly_fields = ()

    def get_readonly_fields(self, request, obj=None):
        return ("email", "reason") if obj else ()

    def get_changeform_initial_data(self, request):
        return {"reason": Suppression.Reason.MANUAL}

    def save_model(self, request, obj: Suppression, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = suppressions.suppression_add(
            email=obj.email, reason=obj.reason, note=obj.note or f"added by {request.user.email}"
        )
        obj.pk = created.pk


@admin.register(TrackingEvent)
class TrackingEventAdmin(ReadOnlyAdmin):
    list_display = ("occurred_at", "kind", "delivery", "product", "detail")
    list_filter = ("kind",)
    list_select_related = ("delivery", "product")
    show_full_result_count = False


@admin.register(Conversion)
class ConversionAdmin(ReadOnlyAdmin):
    list_display = ("ordered_at", "order", "revenue", "delivery", "clicked_at")
    list_select_related = ("delivery", "order")
    raw_id_fields = ("delivery", "order")


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    """The embedded outbox: every email "sent" without an email server."""

    list_display = ("sent_at", "recipients", "subject")
    search_fields = ("subject", "message_id", "to")
    date_hierarchy = "sent_at"
    show_full_result_count = False
    fields = ("sent_at", "message_id", "from_email", "to", "subject", "header_list", "rendered", "text_body")
    readonly_fields = fields

    @admin.display(description="to")
    def recipients(self, obj: OutboxMessage) -> str:
        return ", ".join(obj.to)

    @admin.display(description="headers")
    def header_list(self, obj: OutboxMessage) -> str:
        return format_html(
            "<pre style='white-space:pre-wrap'>{}</pre>", "\n".join(f"{k}: {v}" for k, v in obj.headers.items())
        )

    class Media:
        js = ("campaigns/email_frame.js",)
        css = {"all": ("campaigns/email_frame.css",)}

    @admin.display(description="HTML")
    def rendered(self, obj: OutboxMessage) -> str:
        if not obj.html:
            return "—"
        return format_html(
            '{}<details class="email-links"><summary>Links in this email ({})</summary><ul>{}</ul></details>',
            email_frame(obj.html, title="Email"),
            len(links := email_links(obj.html)),
            format_html_join("", '<li>{} → <a href="{}" target="_blank" rel="noopener">{}</a></li>', links),
        )

    @admin.display(description="plain text")
    def text_body(self, obj: OutboxMessage) -> str:
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", obj.text)

    def has_delete_permission(self, request, obj=None) -> bool:
        return True


@admin.register(ProductChange)
class ProductChangeAdmin(ReadOnlyAdmin):
    """What happened to products that back-in-stock and price-drop campaigns react to
    (written by the store's changes; read-only here)."""

    list_display = ("occurred_at", "product", "kind", "price_before", "price_after")
    list_filter = ("kind",)
    search_fields = ("product__sku", "product__name")
    list_select_related = ("product",)
    raw_id_fields = ("product",)
    date_hierarchy = "occurred_at"


# --- social: shared links and UTM-tagged visits -----------------------------------------------
@admin.register(ShareVisit)
class ShareVisitAdmin(ReadOnlyAdmin):
    """Visits through links customers shared; the report ranks the sharers."""

    list_display = ("created_at", "sharer", "channel", "product", "visitor", "signed_up")
    list_filter = ("channel", "signed_up")
    search_fields = ("sharer__email", "visitor__email", "path")
    list_select_related = ("sharer", "product", "visitor")
    raw_id_fields = ("sharer", "product", "visitor")
    date_hierarchy = "created_at"
    change_list_template = "admin/campaigns/sharevisit/change_list.html"

    def get_urls(self):
        return [
            path("report/", self.admin_site.admin_view(self.report_view), name="campaigns_sharevisit_report"),
            *super().get_urls(),
        ]

    def report_view(self, request: HttpRequest) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        days = request.GET.get("days", "")
        since = timezone.now() - timedelta(days=int(days)) if days.isdigit() and 0 < int(days) < 3660 else None
        context = {
            **self.admin_site.each_context(request),
            "title": "Sharers: visits, sign-ups and orders through shared links",
            "opts": self.model._meta,
            "rows": social.share_report(since=since),
            "days": int(days) if since else None,
        }
        return TemplateResponse(request, "admin/campaigns/sharevisit/report.html", context)


@admin.register(ShareConversion)
class ShareConversionAdmin(ReadOnlyAdmin):
    list_display = ("ordered_at", "sharer", "order", "revenue", "visit")
    list_select_related = ("sharer", "order", "visit")
    raw_id_fields = ("sharer", "order", "visit")
    search_fields = ("sharer__email",)
    date_hierarchy = "ordered_at"


@admin.register(TaggedVisit)
class TaggedVisitAdmin(ReadOnlyAdmin):
    """Visits that arrived with UTM parameters (emails, shares, ads): by source,
    medium, campaign and link (utm_content)."""

    list_display = ("created_at", "utm_source", "utm_medium", "utm_campaign", "utm_content", "campaign", "path", "user")
    list_filter = ("utm_source", "utm_medium", "campaign")
    search_fields = ("utm_campaign", "utm_content", "path", "user__email")
    list_select_related = ("campaign", "user")
    raw_id_fields = ("campaign", "user")
    date_hierarchy = "created_at"
