"""Admin of the customer-prediction runs: their status and progress, the fitted
models, and a button that computes the predictions now (in a worker)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from . import services
from .models import PredictionRun

PARAM_LABELS = {
    "transactions": "Purchase rhythm",
    "spend": "Order values (Gamma-Gamma)",
}


@admin.register(PredictionRun)
class PredictionRunAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "status",
        "progress_bar",
        "stage",
        "transactions_model",
        "customers",
        "repeat_customers",
        "created_at",
    )
    list_filter = ("status", "trigger", "transactions_model")
    readonly_fields = (
        "status",
        "trigger",
        "progress_bar",
        "stage",
        "transactions_model",
        "source",
        "data_end",
        "customers",
        "repeat_customers",
        "fitted",
        "error",
        "task_id",
        "created_at",
        "started_at",
        "finished_at",
    )
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_urls(self):
        compute = path(
            "compute/", self.admin_site.admin_view(self.compute_view), name="recommendations_predictionrun_compute"
        )
        return [compute, *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context=None):
        busy = PredictionRun.objects.filter(status__in=[PredictionRun.Status.QUEUED, PredictionRun.Status.RUNNING])
        extra = {"runs_busy": busy.exists(), **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def compute_view(self, request: HttpRequest):
        """POST: queue a run now (the worker computes it); back to the list."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm("recommendations.add_predictionrun"):
            raise PermissionDenied
        try:
            run = services.prediction_run_create(model=request.POST.get("model") or None)
        except services.PredictionError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            services.predictions_compute_enqueue(run=run)
            self.message_user(
                request, f"Customer predictions #{run.pk} queued; this page shows its progress.", messages.SUCCESS
            )
        return HttpResponseRedirect(reverse("admin:recommendations_predictionrun_changelist"))

    @admin.display(description="progress")
    def progress_bar(self, obj: PredictionRun) -> str:
        return format_html(
            '<progress max="100" value="{}">{}%</progress> {}%', obj.progress, obj.progress, obj.progress
        )

    @admin.display(description="fitted models")
    def fitted(self, obj: PredictionRun) -> str:
        params = obj.params or {}
        if not params:
            return "-"
        rows = []
        for key, label in PARAM_LABELS.items():
            values = params.get(key) or {}
            text = ", ".join(
                f"{name} = {value:.4g}" if isinstance(value, float) else f"{name} = {value}"
                for name, value in values.items()
            )
            rows.append((label, text))
        return format_html("<table>{}</table>", format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows))
