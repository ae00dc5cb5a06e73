"""Root URL configuration: storefront, admin, health, API v1, email tracking (/c/)."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import health
from .rest import errors as api_errors

api_v1 = [
    path("", include("shop.api.urls")),
    path("", include("recommendations.api_urls")),
    path("", include("campaigns.api_urls")),
    path("schema/", SpectacularAPIView.as_view(api_version="v1"), name="schema"),
    # The split view serves its init script as a URL of its own (?script): no inline
    # <script>, so the page works under script-src 'self'.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    re_path(r"^", api_errors.api_not_found),  # last: an unknown API URL is a JSON 404
]


def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    """The store's icon (resolved per request: with hashed static names in production,
    the manifest exists only after collectstatic)."""
    return HttpResponsePermanentRedirect(static("shop/favicon.svg"))


urlpatterns = [
    # the live trends board (campaigns.board): admin pages outside any one model's admin
    path("admin/trends/", include("campaigns.board", namespace="trends")),
    # the recommendation performance dashboard (recommendations.performance_views)
    path("admin/performance/", include("recommendations.performance_views", namespace="performance")),
    # the admin's start page for staff: key figures, common tasks, the app list (campaigns.admin_home)
    path("admin/", include("campaigns.admin_home", namespace="admin_home")),
    path("admin/", admin.site.urls),
    # browsers ask every page's host for /favicon.ico (admin pages name no icon): answer it
    path("favicon.ico", favicon),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("c/", include("campaigns.urls")),
    path("", include("storefront.urls")),
]

# Under /api/ these answer in the API's error shape; elsewhere Django's pages.
handler400 = "shop.rest.errors.bad_request"
handler403 = "shop.rest.errors.permission_denied"
handler404 = "shop.rest.errors.page_not_found"
handler500 = "shop.rest.errors.server_error"
