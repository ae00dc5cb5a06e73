"""Storefront routes. Namespace ``shop``, as when the pages lived in the shop app: templates,
emails and other apps reverse ``shop:...``."""

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from . import views

app_name = "shop"

urlpatterns = [
    path("", views.home, name="home"),
    path("category/<slug:slug>/", views.category, name="category"),
    path("search/", views.search, name="search"),
    path("product/<slug:slug>/", views.product, name="product"),
    path("img/p/<int:pk>.svg", views.product_image, name="product_image"),
    path("img/p/<int:pk>.png", views.product_image_png, name="product_image_png"),
    path("feeds/<str:fmt>", views.product_feed, name="product_feed"),
    # cart and checkout
    path("cart/", views.cart, name="cart"),
    path("cart/add/", views.cart_add, name="cart_add"),
    path("cart/update/", views.cart_update, name="cart_update"),
    path("cart/remove/", views.cart_remove, name="cart_remove"),
    path("checkout/", views.checkout, name="checkout"),
    # accounts
    path("signup/", views.signup, name="signup"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password-reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="registration/password_reset_done.html"),
        name="password_reset_done",
    ),
    path("reset/<uidb64>/<token>/", views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path(
        "reset/done/",
        auth_views.PasswordResetCompleteView.as_view(template_name="registration/password_reset_complete.html"),
        name="password_reset_complete",
    ),
    path(
        "password-change/",
        auth_views.PasswordChangeView.as_view(
            template_name="registration/password_change_form.html",
            extra_context={"section": "password"},
            success_url=reverse_lazy("shop:password_change_done"),
        ),
        name="password_change",
    ),
    path(
        "password-change/done/",
        auth_views.PasswordChangeDoneView.as_view(
            template_name="registration/password_change_done.html", extra_context={"section": "password"}
        ),
        name="password_change_done",
    ),
    path("account/", views.account_orders, name="account"),
    path("account/orders/<uuid:number>/", views.order_detail, name="order"),
    path("account/preferences/", views.account_preferences, name="preferences"),
    path("account/privacy/", views.account_privacy, name="privacy"),
    path("account/privacy/my-data.json", views.account_export, name="export"),
]
