"""API v1 routes of the recommendations app (mounted under /api/v1/ in shop/urls.py).
No trailing slashes, like the rest of the API."""

from django.urls import path

from . import api

urlpatterns = [
    path("recommendations/me", api.MyRecommendationsApi.as_view(), name="recommendations-me"),
    path("recommendations/users/<int:user_id>", api.UserRecommendationsApi.as_view(), name="recommendations-user"),
    path("recommendations/session", api.SessionRecommendationsApi.as_view(), name="recommendations-session"),
    path("recommendations/trending", api.TrendingApi.as_view(), name="recommendations-trending"),
    path(
        "recommendations/products/<int:product_id>/similar",
        api.SimilarProductsApi.as_view(),
        name="recommendations-similar",
    ),
    path("recommendations/clicks", api.ClickApi.as_view(), name="recommendations-click"),
    path("models", api.ModelVersionListApi.as_view(), name="model-list"),
    path("models/train", api.ModelTrainApi.as_view(), name="model-train"),
    path("models/<int:pk>", api.ModelVersionDetailApi.as_view(), name="model-detail"),
    path("models/<int:pk>/activate", api.ModelActivateApi.as_view(), name="model-activate"),
]
