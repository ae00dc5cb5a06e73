"""API v1 routes of the shop app (mounted under /api/v1/ in shop/urls.py).

No trailing slashes: ``/api/v1/products/12``, ``POST /api/v1/interactions/batch``.
"""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter(trailing_slash=False)
router.register("categories", api.CategoryViewSet, basename="category")
router.register("products", api.ProductViewSet, basename="product")

urlpatterns = [
    *router.urls,
    path("customers", api.CustomerListCreateApi.as_view(), name="customer-list"),
    path("customers/<int:pk>", api.CustomerDetailApi.as_view(), name="customer-detail"),
    path("customers/external/<str:external_id>", api.CustomerByExternalIdApi.as_view(), name="customer-external"),
    path("me", api.MeApi.as_view(), name="me"),
    path("interactions", api.InteractionListCreateApi.as_view(), name="interaction-list"),
    path("interactions/batch", api.InteractionBatchApi.as_view(), name="interaction-batch"),
]
