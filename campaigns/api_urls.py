"""API v1 routes of the campaigns app (mounted under /api/v1/ in shop/urls.py).
No trailing slashes, like the rest of the API."""

from django.urls import path

from . import api

urlpatterns = [
    path("campaigns", api.CampaignListApi.as_view(), name="campaign-list"),
    path("campaigns/<int:pk>", api.CampaignDetailApi.as_view(), name="campaign-detail"),
    path("campaigns/<int:pk>/schedule", api.CampaignScheduleApi.as_view(), name="campaign-schedule"),
    path("campaigns/<int:pk>/pause", api.CampaignPauseApi.as_view(), name="campaign-pause"),
    path("campaigns/<int:pk>/resume", api.CampaignResumeApi.as_view(), name="campaign-resume"),
    path("campaigns/<int:pk>/cancel", api.CampaignCancelApi.as_view(), name="campaign-cancel"),
    path("campaigns/<int:pk>/preview", api.CampaignPreviewApi.as_view(), name="campaign-preview"),
    path("campaigns/<int:pk>/report", api.CampaignReportApi.as_view(), name="campaign-report"),
    path("segments", api.SegmentListApi.as_view(), name="segment-list"),
    path("email-templates", api.TemplateListApi.as_view(), name="email-template-list"),
]
