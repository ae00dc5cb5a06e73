"""Non-API routes of this app (mounted in shop/urls.py)."""
from django.urls import path  # noqa: F401

urlpatterns: list = []
