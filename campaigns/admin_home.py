"""The admin's start page for staff (``/admin/``): the key figures of the last 7
days (``overview.key_figures``), links to the common tasks, and the app list.

Mounted before ``admin.site.urls`` in the root URLconf; it renders the admin's own
index (``admin.site.index``: its app list, its login check) with the figures added."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import path

from .overview import key_figures

app_name = "admin_home"


def admin_index(request: HttpRequest) -> HttpResponse:
    figures = key_figures(days=7) if request.user.has_perm("recommendations.view_impression") else None
    return admin.site.index(request, extra_context={"figures": figures})


urlpatterns = [path("", admin.site.admin_view(admin_index), name="index")]
