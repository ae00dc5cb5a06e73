"""Admin of placements and merchandising rules, and the rule preview (imported by
``admin``, which Django discovers).

The preview (``/admin/recommendations/merchandisingrule/<id>/preview/``): pick a
customer (id or email; none = an anonymous visitor), a placement and, for product
placements, a product; see the placement's list with the rule (even before its
window opens or while it is switched off) and without it, each product with its
rule effects. Nothing is recorded.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from shop.models import Product, User

from . import services
from .models import MerchandisingRule, Placement
from .placements import fallbacks_check
from .rules import RuleError, rule_check


class PlacementForm(forms.ModelForm):
    class Meta:
        model = Placement
        fields = ["key", "name", "strategy", "size", "fallbacks", "long_tail_weight", "is_active", "description"]

    def clean_fallbacks(self):
        try:
            return fallbacks_check(self.cleaned_data["fallbacks"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(Placement)
class PlacementAdmin(admin.ModelAdmin):
    form = PlacementForm
    list_display = ("key", "name", "strategy", "size", "fallbacks", "long_tail_weight", "is_active", "n_rules")
    list_editable = ("strategy", "size", "is_active")
    search_fields = ("key", "name")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(rule_count=Count("rules"))  # not a count query per row

    @admin.display(description="rules", ordering="rule_count")
    def n_rules(self, obj: Placement) -> int:
        return obj.rule_count


class RuleForm(forms.ModelForm):
    condition = forms.JSONField(
        required=False,
        initial=dict,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80, "spellcheck": "false"}),
        help_text=MerchandisingRule._meta.get_field("condition").help_text,
    )

    class Meta:
        model = MerchandisingRule
        fields = [
            "name",
            "action",
            "is_active",
            "placements",
            "condition",
            "weight",
            "product",
            "position",
            "starts_at",
            "ends_at",
        ]
        widgets = {"placements": forms.CheckboxSelectMultiple}

    def clean(self):
        super().clean()
        data = self.cleaned_data
        if self.errors:
            return data
        try:
            rule_check(
                action=data.get("action", ""),
                condition=data.get("condition") if data.get("condition") is not None else {},
                weight=data.get("weight"),
                product_id=data["product"].pk if data.get("product") else None,
                position=data.get("position"),
            )
        except RuleError as exc:
            field = exc.path.split(".")[0].split("[")[0]
            self.add_error(field if field in self.fields else None, str(exc))
        starts, ends = data.get("starts_at"), data.get("ends_at")
        if starts and ends and ends <= starts:
            self.add_error("ends_at", "The end must be after the start.")
        if data.get("condition") is None:
            data["condition"] = {}
        return data


@admin.register(MerchandisingRule)
class MerchandisingRuleAdmin(admin.ModelAdmin):
    form = RuleForm
    list_display = ("name", "action", "weight", "scope", "window", "live", "is_active")
    list_filter = ("action", "is_active", "placements")
    search_fields = ("name",)
    raw_id_fields = ("product",)
    readonly_fields = ("preview_link",)
    fieldsets = (
        (None, {"fields": ("name", "action", "is_active", "placements", "preview_link")}),
        ("Which products (boost, bury, include, exclude)", {"fields": ("condition", "weight")}),
        ("Pin", {"fields": ("product", "position")}),
        ("When", {"fields": ("starts_at", "ends_at")}),
    )

    @admin.display(description="applies to")
    def scope(self, obj: MerchandisingRule) -> str:
        keys = [p.key for p in obj.placements.all()]
        return ", ".join(keys) if keys else "every list"

    @admin.display(description="window")
    def window(self, obj: MerchandisingRule) -> str:
        start = f"{obj.starts_at:%Y-%m-%d %H:%M}" if obj.starts_at else "now"
        end = f"{obj.ends_at:%Y-%m-%d %H:%M}" if obj.ends_at else "open"
        return f"{start} – {end}"

    @admin.display(description="live now", boolean=True)
    def live(self, obj: MerchandisingRule) -> bool:
        now = timezone.now()
        return (
            obj.is_active
            and (obj.starts_at is None or obj.starts_at <= now)
            and (obj.ends_at is None or now < obj.ends_at)
        )

    @admin.display(description="preview")
    def preview_link(self, obj: MerchandisingRule) -> str:
        if obj.pk is None:
            return "Save the rule to preview it."
        url = reverse("admin:recommendations_merchandisingrule_preview", args=[obj.pk])
        return format_html('<a class="button" id="rule-preview-link" href="{}">Preview this rule</a>', url)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("placements")

    def get_urls(self):
        return [
            path(
                "<int:pk>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="recommendations_merchandisingrule_preview",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request, pk: int):
        rule = get_object_or_404(MerchandisingRule.objects.prefetch_related("placements"), pk=pk)
        if not self.has_view_permission(request, rule):
            raise PermissionDenied
        placements = services.placements_all()
        scoped = [p.key for p in rule.placements.all()]
        key = request.GET.get("placement") or (scoped[0] if scoped else "home")
        customer_text = (request.GET.get("customer") or "").strip()
        product_text = (request.GET.get("product") or "").strip()
        errors: list[str] = []
        customer = product = None
        if customer_text:
            lookup = Q(email__iexact=customer_text)
            if customer_text.isdigit():
                lookup |= Q(pk=int(customer_text))
            customer = User.objects.filter(lookup).first()
            if customer is None:
                errors.append(f"No customer with id or email {customer_text!r}.")
        if product_text:
            product = (
                Product.objects.select_related("category").filter(pk=int(product_text)).first()
                if product_text.isdigit()
                else Product.objects.select_related("category").filter(sku=product_text).first()
            )
            if product is None:
                errors.append(f"No product with id or SKU {product_text!r}.")
        if key not in placements:
            errors.append(f"Unknown placement {key!r}.")
        with_rule = without = None
        if not errors:
            try:
                with_rule, without = services.placement_preview(key, rule_id=rule.pk, user=customer, product=product)
            except (ValueError, LookupError) as exc:
                errors.append(str(exc))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Preview: {rule.name}",
            "rule": rule,
            "placements": sorted(placements.values(), key=lambda p: p.key),
            "placement": key,
            "customer_text": customer_text,
            "product_text": product_text,
            "customer": customer,
            "errors": errors,
            "columns": [
                ("with", "With this rule", _rows(with_rule, rule.pk)),
                ("without", "Without it", _rows(without, rule.pk)),
            ]
            if with_rule is not None and without is not None
            else [],
            "condition": json.dumps(rule.condition),
        }
        return TemplateResponse(request, "admin/recommendations/merchandisingrule/preview.html", context)


def _rows(rec, rule_id: int) -> list[dict]:
    if rec is None:
        return []
    return [
        {
            "rank": rank,
            "product": pick.product,
            "reason": pick.reason,
            "source": getattr(pick, "source", ""),
            "effects": [
                f"{e.action} {e.weight:+g}" + (f" (rule {e.rule_id}: {e.name})" if e.rule_id else f" ({e.name})")
                for e in pick.rule_effects
            ],
            "this_rule": any(e.rule_id == rule_id for e in pick.rule_effects),
        }
        for rank, pick in enumerate(rec.picks, start=1)
    ]
