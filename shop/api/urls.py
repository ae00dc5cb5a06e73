"""API v1 routes of the shop app (mounted under /api/v1/ in shop/urls.py).

No trailing slashes: ``/api/v1/products/12``, ``POST /api/v1/interactions/batch``.
"""

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import catalogue, customers, interactions

router = SimpleRouter(trailing_slash=False)
router.register("categories", catalogue.CategoryViewSet, basename="category")
router.register("products", catalogue.ProductViewSet, basename="product")

urlpatterns = [
    path("products/batch", catalogue.ProductBatchApi.as_view(), name="product-batch"),
    *router.urls,
    path("customers", customers.CustomerListCreateApi.as_view(), name="customer-list"),
    path("customers/<int:pk>", customers.CustomerDetailApi.as_view(), name="customer-detail"),
    path("customers/external/<str:external_id>", customers.CustomerByExternalIdApi.as_view(), name="customer-external"),
    path("me", customers.MeApi.as_view(), name="me"),
    path("interactions", interactions.InteractionListCreateApi.as_view(), name="interaction-list"),
    path("interactions/batch", interactions.InteractionBatchApi.as_view(), name="interaction-batch"),
]
