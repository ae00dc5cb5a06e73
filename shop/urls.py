"""Root URL configuration: storefront, admin, health, API v1, tracking."""
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import health

api_v1 = [
    path("", include("shop.api_urls")),
    path("", include("recommendations.api_urls")),
    path("", include("campaigns.api_urls")),
    path("schema/", SpectacularAPIView.as_view(api_version="v1"), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("c/", include("campaigns.urls")),
    path("r/", include("recommendations.urls")),
    path("", include("shop.store_urls")),
]
