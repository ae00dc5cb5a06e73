"""API v1 routes of the campaigns app (mounted under /api/v1/ in shop/urls.py)."""
from django.urls import path  # noqa: F401

urlpatterns: list = []
