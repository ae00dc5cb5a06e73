"""The admin's recommendation performance dashboard (``/admin/performance/``): the
figures of ``performance.performance_report`` as tables and charts for staff who may
view the lists shown (``recommendations.view_impression``)."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.urls import path

from . import performance

app_name = "performance"

PERIODS = (7, 30, 90)


def _percent(value: float | None) -> float | None:
    return 100 * value if value is not None else None


def dashboard(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm("recommendations.view_impression"):
        raise PermissionDenied
    days_text = request.GET.get("days", "30")
    if days_text not in {str(d) for d in PERIODS}:
        return HttpResponseBadRequest(f"days must be one of {', '.join(map(str, PERIODS))}, got {days_text!r}")
    dimension = request.GET.get("by", "placement")
    if dimension not in performance.DIMENSIONS:
        return HttpResponseBadRequest(f"by must be one of {', '.join(performance.DIMENSIONS)}, got {dimension!r}")
    report = performance.performance_report(days=int(days_text))
    context = {
        **admin.site.each_context(request),
        "title": "Recommendation performance",
        "report": report,
        "days": int(days_text),
        "periods": PERIODS,
        "dimension": dimension,
        "dimension_label": performance.DIMENSIONS[dimension],
        "report_ctr_percent": _percent(report.total.ctr),
        "report_coverage_percent": _percent(report.coverage),
        "report_atc_percent": _percent(report.total.add_to_cart_rate),
        "report_conversion_percent": _percent(report.total.conversion),
        "dimensions": performance.DIMENSIONS,
        "rows": performance.table(report, dimension),
        "charts": [
            (f"chart-{metric}", performance.daily_spec(report, dimension, metric)) for metric in performance.METRICS
        ],
        "model_chart": performance.model_spec(report),
    }
    return TemplateResponse(request, "admin/recommendations/performance.html", context)


urlpatterns = [path("", admin.site.admin_view(dashboard), name="dashboard")]
