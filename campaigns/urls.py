"""Email tracking routes (mounted at /c/ in shop/urls.py) and the email provider's
webhooks (django-anymail, /c/esp/<provider>/tracking/: campaigns.webhooks)."""

from django.urls import include, path

from . import views, webhooks

app_name = "campaigns"

urlpatterns = [
    path("o/<str:token>.gif", views.open_pixel, name="open"),
    path("k/<str:token>/", views.click, name="click"),
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("esp/", include((webhooks.urlpatterns, "anymail"))),
]
