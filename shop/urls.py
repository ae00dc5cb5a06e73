"""Root URL configuration: storefront, admin, health, API v1, email tracking (/c/)."""

from django.contrib import admin
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

urlpatterns = [
    path("admin/", admin.site.urls),
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
