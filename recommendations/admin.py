"""Staff tools: model versions (metrics, chart by algorithm over time, train and
activate, live progress), experiments with their report, impressions, forgotten
customers. Actions and views call services; nothing here decides anything."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseBadRequest, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from . import data_quality, merchandising_admin, predictions_admin, selectors, services
from .artifacts import algorithm_names
from .charts import Interval, intervals_spec, metric_lines_spec
from .experiments import experiment_report
from .models import DEFAULT_SLOT, Experiment, ExperimentVariant, ForgottenUser, Impression, ModelVersion
from .version_report import params_text, selection_summary, version_page
from .versions import params_check

METRIC_COLUMNS = ("ndcg@10", "precision@10", "recall@10", "map@10")


def _metric(obj: ModelVersion, name: str) -> str:
    value = (obj.metrics or {}).get(name)
    return f"{value:.4f}" if isinstance(value, (int, float)) else "–"


def progress_payload(version: ModelVersion) -> dict:
    return {
        "id": version.pk,
        "label": version.label,
        "status": version.status,
        "progress": version.progress,
        "stage": version.stage,
        "error": (version.error.splitlines() or [""])[0][:300] if version.error else "",
        "is_active": version.is_active,
        "activation_note": version.activation_note,
        "ndcg": version.ndcg,
    }


class TrainForm(forms.Form):
    algorithm = forms.ChoiceField(help_text='"auto" tries every algorithm on a validation window and keeps the best.')
    params = forms.CharField(
        required=False,
        initial="{}",
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text='Algorithm parameters as JSON, e.g. {"lam": 400} for ease.',
    )
    slot = forms.SlugField(initial=DEFAULT_SLOT, max_length=40)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["algorithm"].choices = [("auto", "auto (model selection)")] + [(n, n) for n in algorithm_names()]

    def clean_params(self):
        raw = self.cleaned_data.get("params") or "{}"
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ValidationError("must be a JSON object")
        return value

    def clean(self):
        data = super().clean()
        if "algorithm" in data and "params" in data:
            try:
                data["params"] = params_check(algorithm=data["algorithm"], params=data["params"])
            except services.TrainingError as exc:
                self.add_error("params", str(exc))
        return data


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    change_list_template = "admin/recommendations/modelversion/change_list.html"
    change_form_template = "admin/recommendations/modelversion/change_form.html"
    list_display = (
        "label_column",
        "slot",
        "status_column",
        "ndcg_column",
        "precision_column",
        "recall_column",
        "map_column",
        "n_interactions",
        "seconds_column",
        "is_active",
        "trigger",
        "created_at",
    )
    list_filter = ("status", "algorithm", "slot", "is_active", "trigger")
    search_fields = ("algorithm", "slot", "activation_note", "error")
    date_hierarchy = "created_at"
    actions = ["activate_action", "deactivate_action", "retrain_action"]
    list_per_page = 50
    readonly_fields = (
        "algorithm",
        "requested_algorithm",
        "params_pretty",
        "slot",
        "status",
        "progress",
        "stage",
        "error",
        "trigger",
        "created_by",
        "data_since",
        "data_until",
        "data_read_at",
        "n_users",
        "n_items",
        "n_interactions",
        "metrics_table",
        "long_tail_table",
        "excluded_table",
        "selection_table",
        "timings_pretty",
        "training_seconds",
        "artifact",
        "artifact_size",
        "is_active",
        "activated_at",
        "activation_note",
        "tainted_at",
        "task_id",
        "created_at",
        "started_at",
        "finished_at",
    )
    fieldsets = (
        (None, {"fields": ("algorithm", "requested_algorithm", "params_pretty", "slot", "trigger", "created_by")}),
        (
            "Run",
            {
                "fields": (
                    "status",
                    "progress",
                    "stage",
                    "error",
                    "task_id",
                    "created_at",
                    "started_at",
                    "finished_at",
                    "training_seconds",
                    "timings_pretty",
                )
            },
        ),
        ("Data", {"fields": ("data_since", "data_until", "data_read_at", "n_users", "n_items", "n_interactions")}),
        (
            "Offline evaluation (the holdout protocol and why: see protocol, protocol_reason)",
            {"fields": ("metrics_table", "long_tail_table", "selection_table")},
        ),
        (
            "Data left out (suspected bots and noise: see the data report)",
            {"fields": ("excluded_table",)},
        ),
        (
            "Serving",
            {"fields": ("is_active", "activated_at", "activation_note", "tainted_at", "artifact", "artifact_size")},
        ),
    )

    # --- permissions: rows are written by the training service only
    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and (obj.is_active or obj.status == ModelVersion.Status.RUNNING):
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj) -> None:
        services.model_version_delete(version=obj)

    def delete_queryset(self, request, queryset) -> None:
        for version in queryset:
            try:
                services.model_version_delete(version=version)
            except services.TrainingError as exc:
                self.message_user(request, str(exc), messages.WARNING)

    # --- columns
    @admin.display(description="version", ordering="id")
    def label_column(self, obj):
        return obj.label

    @admin.display(description="status", ordering="status")
    def status_column(self, obj):
        if obj.status in (ModelVersion.Status.RUNNING, ModelVersion.Status.QUEUED):
            return format_html(
                '<span data-version-progress="{}"><progress max="100" value="{}"></progress> '
                '<span class="rec-stage">{}% {}</span></span>',
                obj.pk,
                obj.progress,
                obj.progress,
                obj.stage,
            )
        if obj.status == ModelVersion.Status.FAILED:
            return format_html('<span style="color:#ba2121" title="{}">failed</span>', obj.error[:500])
        if obj.tainted_at:
            return format_html('<span title="{}">retired</span>', obj.activation_note)
        return obj.status

    @admin.display(description="NDCG@10")
    def ndcg_column(self, obj):
        return _metric(obj, "ndcg@10")

    @admin.display(description="P@10")
    def precision_column(self, obj):
        return _metric(obj, "precision@10")

    @admin.display(description="R@10")
    def recall_column(self, obj):
        return _metric(obj, "recall@10")

    @admin.display(description="MAP@10")
    def map_column(self, obj):
        return _metric(obj, "map@10")

    @admin.display(description="seconds", ordering="training_seconds")
    def seconds_column(self, obj):
        return f"{obj.training_seconds:.1f}" if obj.training_seconds is not None else "–"

    @admin.display(description="params")
    def params_pretty(self, obj):
        return params_text(obj.params)

    @admin.display(description="timings (s)")
    def timings_pretty(self, obj):
        timings = {k: v for k, v in (obj.timings or {}).items() if isinstance(v, (int, float))}
        if not timings:
            return "–"
        return format_html(
            '<table class="rec-timings">{}</table>',
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", ((k, f"{v:.1f}") for k, v in timings.items())),
        )

    @admin.display(description="metrics")
    def metrics_table(self, obj):
        metrics = {k: v for k, v in (obj.metrics or {}).items() if not isinstance(v, (list, dict))}
        if not metrics:
            return "–"
        rows = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td></tr>",
            ((k, f"{v:.4f}" if isinstance(v, float) else v) for k, v in sorted(metrics.items())),
        )
        return format_html("<table>{}</table>", rows)

    @admin.display(description="long-tail re-ranking")
    def long_tail_table(self, obj):
        rows = (obj.metrics or {}).get("long_tail_tradeoff") or []
        if not rows:
            return "–"
        ndcg = next((key for key in rows[0] if key.startswith("ndcg@")), "ndcg@10")

        def cell(row: dict, key: str, spec: str) -> str:
            value = row.get(key)
            return format(value, spec) if isinstance(value, (int, float)) else "–"

        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    cell(r, "weight", "g"),
                    cell(r, ndcg, ".4f"),
                    cell(r, "long_tail_share", ".1%"),
                    cell(r, "popularity_lift", ".2f"),
                    cell(r, "coverage", ".1%"),
                    cell(r, "novelty", ".2f"),
                )
                for r in rows
            ),
        )
        return format_html(
            '<table class="long-tail-tradeoff"><tr><th>weight</th><th>{}</th><th>long-tail share</th>'
            "<th>popularity lift</th><th>coverage</th><th>novelty (bits)</th></tr>{}</table>"
            '<p class="help">Weight 0: the model as it ranks. A placement\'s long-tail weight re-ranks its '
            "lists towards each shopper's own mix of popular and long-tail products; popularity lift is how much "
            "more popular the picks are than what shoppers chose (0 = no bias).</p>",
            ndcg,
            body,
        )

    @admin.display(description="excluded")
    def excluded_table(self, obj):
        excluded = (obj.metrics or {}).get("excluded") or {}
        if not excluded:
            return "–"
        rules = excluded.get("rules") or {}
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    reason,
                    rules.get(reason, ""),
                    counts.get("customers", 0),
                    ", ".join(str(pk) for pk in (excluded.get("sample_customer_ids") or {}).get(reason, [])),
                )
                for reason, counts in sorted((excluded.get("by_reason") or {}).items())
            ),
        )
        state = "on" if excluded.get("enabled", True) else "off (nothing left out)"
        return format_html(
            "<p>Filter {}: {} customers and {} events left out of the training matrix "
            '(the events stay in the database). <a href="{}?version={}">The data report of this run</a>.</p>'
            '<table class="excluded-table"><tr><th>reason</th><th>rule</th><th>customers</th>'
            "<th>some of their ids</th></tr>{}</table>",
            state,
            excluded.get("customers", 0),
            excluded.get("events", 0),
            reverse("admin:recommendations_data_report"),
            obj.pk,
            body,
        )

    @admin.display(description="model selection")
    def selection_table(self, obj):
        rows = (obj.metrics or {}).get("selection") or []
        if not rows:
            return "–"
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    r.get("algorithm"),
                    params_text(r.get("params"))[:200],
                    r.get("status"),
                    f"{r['ndcg']:.4f}" if isinstance(r.get("ndcg"), float) else r.get("reason", ""),
                    f"{r['train_seconds']:.1f}" if isinstance(r.get("train_seconds"), float) else "",
                )
                for r in rows
            ),
        )
        return format_html(
            '<p class="rec-selection-summary">{}</p><details class="rec-selection"><summary>Every candidate</summary>'
            "<table><tr><th>algorithm</th><th>params</th><th>status</th><th>NDCG@10 on validation"
            "</th><th>fit s</th></tr>{}</table></details>",
            selection_summary(obj),
            body,
        )

    # --- actions
    @admin.action(description="Activate the selected version (its slot's active model)")
    def activate_action(self, request, queryset: QuerySet):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        try:
            version = services.model_version_activate(version=queryset.get(), by=request.user)
        except services.TrainingError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{version.label} is now active in slot {version.slot!r}.", messages.SUCCESS)

    @admin.action(description="Deactivate (the slot falls back to interests and trending)")
    def deactivate_action(self, request, queryset: QuerySet):
        for version in queryset.filter(is_active=True):
            services.model_version_deactivate(version=version)
            self.message_user(request, f"{version.label} deactivated.", messages.WARNING)

    @admin.action(description="Train again with the same settings")
    def retrain_action(self, request, queryset: QuerySet):
        with transaction.atomic():
            for old in queryset:
                requested = old.requested_algorithm or old.algorithm
                version = services.model_version_create(
                    algorithm=requested,
                    params=old.params if requested == old.algorithm else {},
                    slot=old.slot,
                    trigger=ModelVersion.Trigger.ADMIN,
                    created_by=request.user,
                )
                services.model_train_enqueue(version=version)
                self.message_user(request, f"Queued {version.label}.", messages.SUCCESS)

    # --- views
    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path("train/", self.admin_site.admin_view(self.train_view), name="{}_{}_train".format(*info)),
            path("progress.json", self.admin_site.admin_view(self.progress_view), name="{}_{}_progress".format(*info)),
            path("data-report/", self.admin_site.admin_view(self.data_report_view), name="recommendations_data_report"),
            *super().get_urls(),
        ]

    def data_report_view(self, request: HttpRequest):
        """The data report (``data_quality.report_build``) with charts: the whole
        store, or with ``?version=<id>`` the window that training run read."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        version = None
        raw = request.GET.get("version", "")
        if raw:
            if not raw.isdigit():
                return HttpResponseBadRequest("version must be a model version id (a whole number)")
            version = get_object_or_404(ModelVersion, pk=int(raw))
        since = version.data_since if version else None
        until = version.data_until if version else None
        report = data_quality.report_cached(since=since, until=until, refresh=request.GET.get("refresh") == "1")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Data report: {version.label}" if version else "Data report: the whole store",
            "report": report,
            "charts": data_quality.report_charts(report),
            "bots": report.finding("bots").figures,
            "version": version,
            "excluded": (version.metrics or {}).get("excluded") if version else None,
            "recent_versions": ModelVersion.objects.exclude(data_until=None).order_by("-id")[:10],
        }
        return TemplateResponse(request, "admin/recommendations/data_report.html", context)

    def train_view(self, request: HttpRequest):
        if not (
            request.user.is_staff
            and (request.user.has_perm("recommendations.add_modelversion") or request.user.is_superuser)
        ):
            self.message_user(
                request, "Training needs the recommendations.add_modelversion permission.", messages.ERROR
            )
            return HttpResponseRedirect(reverse("admin:recommendations_modelversion_changelist"))
        form = TrainForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            with transaction.atomic():
                version = services.model_version_create(
                    algorithm=form.cleaned_data["algorithm"],
                    params=form.cleaned_data["params"],
                    slot=form.cleaned_data["slot"],
                    trigger=ModelVersion.Trigger.ADMIN,
                    created_by=request.user,
                )
                services.model_train_enqueue(version=version)
            self.message_user(request, f"Queued {version.label}: its progress shows below.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:recommendations_modelversion_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "form": form,
            "title": "Train a recommendation model",
        }
        return TemplateResponse(request, "admin/recommendations/modelversion/train.html", context)

    def progress_view(self, request: HttpRequest):
        ids = [int(i) for i in request.GET.get("ids", "").split(",") if i.isdigit()][:100]
        qs = (
            ModelVersion.objects.filter(pk__in=ids)
            if ids
            else ModelVersion.objects.filter(status__in=[ModelVersion.Status.QUEUED, ModelVersion.Status.RUNNING])
        )
        return JsonResponse({"versions": [progress_payload(v) for v in qs.order_by("-id")[:100]]})

    def changelist_view(self, request, extra_context=None):
        extra = {
            "metrics_chart": metric_lines_spec(
                selectors.metrics_series(metric="ndcg@10"),
                title="NDCG@10 on the temporal holdout, by algorithm",
                metric="NDCG@10",
            ),
            "recall_chart": metric_lines_spec(
                selectors.metrics_series(metric="recall@10"),
                title="Recall@10 on the temporal holdout, by algorithm",
                metric="Recall@10",
            ),
            "progress_url": reverse("admin:recommendations_modelversion_progress"),
            "train_url": reverse("admin:recommendations_modelversion_train"),
        }
        return super().changelist_view(request, {**extra, **(extra_context or {})})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra = {"progress_url": reverse("admin:recommendations_modelversion_progress")}
        version = ModelVersion.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        if version is not None:
            extra.update(version_page(version))
        return super().change_view(request, object_id, form_url, {**extra, **(extra_context or {})})


class ExperimentVariantForm(forms.ModelForm):
    class Meta:
        model = ExperimentVariant
        fields = ("name", "weight", "strategy", "model_version")

    def clean(self):
        data = super().clean()
        if not data.get("strategy") and not data.get("model_version"):
            raise ValidationError("Give a strategy (auto, an algorithm, trending, interests) or a model version.")
        if data.get("strategy"):
            try:
                services.strategy_check(data["strategy"])
            except ValueError as exc:
                self.add_error("strategy", str(exc))
        version = data.get("model_version")
        if version is not None and (version.status != ModelVersion.Status.SUCCEEDED or version.tainted_at):
            self.add_error("model_version", f"{version.label} cannot serve (not succeeded, or retired).")
        return data


class ExperimentVariantInline(admin.TabularInline):
    model = ExperimentVariant
    form = ExperimentVariantForm
    extra = 2
    autocomplete_fields = ()
    raw_id_fields = ("model_version",)


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    list_display = ("name", "key", "context", "is_active", "started_at", "ended_at", "report_link")
    list_filter = ("is_active", "context")
    search_fields = ("name", "key")
    inlines = [ExperimentVariantInline]
    readonly_fields = ("is_active", "started_at", "ended_at")
    actions = ["start_action", "stop_action"]
    prepopulated_fields = {"key": ("name",)}

    @admin.display(description="report")
    def report_link(self, obj):
        return format_html('<a href="{}">report</a>', reverse("admin:recommendations_experiment_report", args=[obj.pk]))

    @admin.action(description="Start the selected experiment")
    def start_action(self, request, queryset):
        for experiment in queryset:
            try:
                services.experiment_start(experiment=experiment)
                self.message_user(request, f"{experiment} started.", messages.SUCCESS)
            except ValueError as exc:
                self.message_user(request, str(exc), messages.ERROR)

    @admin.action(description="Stop the selected experiments")
    def stop_action(self, request, queryset):
        for experiment in queryset:
            services.experiment_stop(experiment=experiment)
        self.message_user(request, "Stopped.", messages.SUCCESS)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        services.experiment_variants_changed(experiment=form.instance)

    def get_urls(self):
        return [
            path(
                "<int:pk>/report/",
                self.admin_site.admin_view(self.report_view),
                name="recommendations_experiment_report",
            ),
            *super().get_urls(),
        ]

    def report_view(self, request, pk: int):
        experiment = get_object_or_404(Experiment, pk=pk)
        if not self.has_view_permission(request, experiment):
            return HttpResponseRedirect(reverse("admin:index"))
        rows = experiment_report(experiment=experiment)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "experiment": experiment,
            "rows": rows,
            "title": f"Experiment report: {experiment.name}",
            "ctr_chart": intervals_spec(
                [Interval(r.name, r.ctr.value, r.ctr.low, r.ctr.high) for r in rows],
                title="Click-through (lists with a click), 95% Wilson interval",
                axis="Click-through (share of lists shown)",
            ),
            "conversion_chart": intervals_spec(
                [Interval(r.name, r.conversion.value, r.conversion.low, r.conversion.high) for r in rows],
                title="Conversion (lists with an attributed order), 95% Wilson interval",
                axis="Conversion (share of lists shown)",
            ),
        }
        return TemplateResponse(request, "admin/recommendations/experiment/report.html", context)


@admin.register(Impression)
class ImpressionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "context",
        "placement",
        "strategy",
        "model_version",
        "variant",
        "user_id",
        "n_items",
    )
    list_filter = ("context", "placement", "variant", "experiment")
    search_fields = ("=id", "strategy", "=user_id", "=session_key")
    date_hierarchy = "created_at"
    list_select_related = ("model_version",)
    readonly_fields = [f.name for f in Impression._meta.fields]
    show_full_result_count = False

    @admin.display(description="items")
    def n_items(self, obj):
        return len(obj.product_ids or [])

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ForgottenUser)
class ForgottenUserAdmin(admin.ModelAdmin):
    list_display = ("user_id", "forgotten_at", "had_interactions", "retired_versions", "retrain_version")
    readonly_fields = ("user_id", "forgotten_at", "had_interactions", "retired_versions", "retrain_version")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# placements and merchandising rules are registered by their own module
__all__ = ["merchandising_admin", "predictions_admin"]
