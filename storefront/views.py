"""Storefront pages. Thin: parse the request, call selectors/services, render.

Recommendations come as shelves (`storefront.shelves`, from `recommendations.services`,
the serving contract): every shown list has an id that the product links carry
(``?rl=<id>``), so a click and a later order are attributed to the list. Events
(views, clicks, cart changes, purchases) are recorded through `shop.services` as they
happen (a product page visit: `storefront.services.product_page_visit`); the next
page's recommendations read them.
"""

from __future__ import annotations

import json
import uuid
from functools import lru_cache

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    HttpResponseNotModified,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from shop import selectors
from shop.models import Category, ConsentChange
from shop.numbers import ID_MAX, int_parse
from shop.services import carts, customers
from shop.services.errors import OutOfStock, ValidationFailed

from . import feeds, forms, placeholders, services, shelves, social
from .templatetags.storefront import display_name

PAGE_SIZE = 24


# --- helpers -------------------------------------------------------------------------
def _session_key(request: HttpRequest, *, create: bool = False) -> str:
    """The anonymous session's key; with ``create`` a new visitor gets a session
    (and its cookie) so their events and cart can be kept."""
    if request.session.session_key is None and create:
        request.session.save()
        request.session.modified = True  # makes the middleware send the cookie
    return request.session.session_key or ""


def _shopper(request: HttpRequest) -> dict:
    """``user``/``session_key`` keyword arguments describing who is shopping."""
    if request.user.is_authenticated:
        return {"user": request.user, "session_key": ""}
    return {"user": None, "session_key": _session_key(request)}


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError):
        return None


def _next_url(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


# --- pages ---------------------------------------------------------------------------
NEW_ACCOUNT_SESSION_KEY = "account_new"


def _greeting(request: HttpRequest, *, viewed: bool) -> str:
    """The home page's title: "Welcome back" only to a customer who has been here
    before; a customer who has just signed up is welcomed, and an anonymous visitor
    with a history in this visit sees what the page is."""
    user = request.user
    if user.is_authenticated:
        name = f", {user.first_name}" if getattr(user, "first_name", "") else ""
        if request.session.get(NEW_ACCOUNT_SESSION_KEY):
            return f"Welcome to Affinity{name}"
        return f"Welcome back{name}"
    return "Picked for you" if viewed else "Welcome to Affinity"


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    who = _shopper(request)
    viewed = selectors.recently_viewed(n=shelves.SHELF_SIZE, **who)
    return render(
        request,
        "shop/home.html",
        {
            "shelves": shelves.home_shelves(viewed=viewed, **who),
            "is_new_visitor": not request.user.is_authenticated and not viewed,
            "greeting": _greeting(request, viewed=bool(viewed)),
            "categories": selectors.category_top_level(),
        },
    )


@require_GET
def category(request: HttpRequest, slug: str) -> HttpResponse:
    node = selectors.category_by_slug(slug=slug)
    if node is None:
        raise Http404("No such category.")
    cat = Category(id=node.id, name=node.name, slug=node.slug, colour=node.colour, parent_id=node.parent_id)
    form = forms.ProductFilterForm(request.GET)
    form.is_valid()
    products = selectors.product_browse(
        category_ids=selectors.category_descendant_ids(category_id=node.id), **form.filters()
    )
    page = Paginator(products, PAGE_SIZE).get_page(request.GET.get("page"))
    popular = None
    if page.number == 1:
        popular = shelves.category_shelf(category=cat)
    return render(
        request,
        "shop/category.html",
        {
            "category": node,
            "breadcrumbs": selectors.category_path(category_id=node.id)[:-1],
            "subcategories": selectors.category_children(category_id=node.id),
            "form": form,
            "page": page,
            "popular": popular,
        },
    )


@require_GET
def search(request: HttpRequest) -> HttpResponse:
    query = (request.GET.get("q") or "").strip()[:200]
    form = forms.ProductFilterForm(request.GET)
    form.is_valid()
    filters = form.filters()
    page = None
    if query:
        results = selectors.product_search(query=query, in_stock=filters["in_stock"])
        page = Paginator(results, PAGE_SIZE).get_page(request.GET.get("page"))
    fallback = None
    if not page or not page.paginator.count:
        fallback = shelves.search_fallback_shelf()
    return render(
        request,
        "shop/search.html",
        {
            "query": query,
            "page": page,
            "fallback": fallback,
            "form": form,
        },
    )


@require_GET
def product(request: HttpRequest, slug: str) -> HttpResponse:
    item = selectors.product_get_for_page(slug=slug)
    if item is None:
        raise Http404("No such product.")
    if not request.user.is_authenticated:
        _session_key(request, create=True)
    who = _shopper(request)
    rec_list_id = services.product_page_visit(product=item, rec_list_id=_uuid_or_none(request.GET.get("rl")), **who)
    return render(
        request,
        "shop/product.html",
        {
            "product": item,
            "breadcrumbs": selectors.category_path(category_id=item.category_id) if item.category_id else [],
            "rec_list_id": rec_list_id,
            "shelves": shelves.product_shelves(product=item, **who),
            "max_quantity": 99 if item.stock is None else max(1, min(item.stock, 99)),
            "share": social.share_links(product=item, request=request),
            "og": social.open_graph(product=item, request=request),
            "social_proof": social.social_proof(product_id=item.pk),
        },
    )


def _picture(request: HttpRequest, pk: int, *, png: bool) -> HttpResponse:
    """The product's generated picture, cached by browsers and proxies (ETag)."""
    row = selectors.product_picture_facts(product_id=pk)
    if row is None:
        raise Http404("No such product.")
    facts = {
        "product_id": pk,
        "name": row["name"],
        "colour": row["category__colour"] or placeholders.DEFAULT_COLOUR,
        "label": row["category__name"] or "",
    }
    etag = f'"{placeholders.etag_for(**facts)}{"p" if png else ""}"'
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        response: HttpResponse = HttpResponseNotModified()
    elif png:
        response = HttpResponse(_png(**facts), content_type="image/png")
    else:
        response = HttpResponse(placeholders.product_svg(**facts), content_type="image/svg+xml; charset=utf-8")
    response["ETag"] = etag
    response["Cache-Control"] = "public, max-age=86400, stale-while-revalidate=604800"
    return response


@lru_cache(maxsize=256)
def _png(*, product_id: int, name: str, colour: str, label: str) -> bytes:
    return placeholders.product_png(product_id=product_id, name=name, colour=colour, label=label)


@require_GET
def product_image(request: HttpRequest, pk: int) -> HttpResponse:
    """The product's generated picture (SVG): for pages."""
    return _picture(request, pk, png=False)


@require_GET
def product_image_png(request: HttpRequest, pk: int) -> HttpResponse:
    """The same picture as a PNG: for Open Graph / Twitter cards, emails and feeds."""
    return _picture(request, pk, png=True)


@require_GET
def product_feed(request: HttpRequest, fmt: str) -> HttpResponse:
    """The catalogue feed for ad and shopping platforms, behind PRODUCT_FEED_TOKEN
    (``?token=`` or ``Authorization: Bearer``): 404 when no token is configured,
    403 for a wrong one."""
    expected = settings.PRODUCT_FEED_TOKEN
    if not expected or fmt not in feeds.FORMATS:
        raise Http404("No such feed.")
    given = request.GET.get("token", "")
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        given = header.removeprefix("Bearer ").strip()
    if not constant_time_compare(given, expected):
        return HttpResponseForbidden("Feed token missing or wrong.", content_type="text/plain; charset=utf-8")
    response = StreamingHttpResponse(feeds.feed_stream(fmt), content_type=feeds.FORMATS[fmt])
    response["Cache-Control"] = "private, max-age=300"
    response["X-Robots-Tag"] = "noindex"
    return response


# --- cart and checkout -----------------------------------------------------------------
def _cart_for_write(request: HttpRequest):
    if request.user.is_authenticated:
        return carts.cart_get_or_create(user=request.user)
    return carts.cart_get_or_create(session_key=_session_key(request, create=True))


@never_cache
@require_GET
def cart(request: HttpRequest) -> HttpResponse:
    who = _shopper(request)
    view = selectors.cart_view(cart=selectors.cart_find(**who))
    more = shelves.cart_shelf(exclude_product_ids=[line.product.pk for line in view.lines], **who)
    return render(request, "shop/cart.html", {"cart": view, "shelves": [more] if more else []})


@require_POST
def cart_add(request: HttpRequest) -> HttpResponse:
    form = forms.CartAddForm(request.POST)
    back = _next_url(request, reverse("shop:cart"))
    if not form.is_valid():
        messages.error(
            request,
            "Could not add to the cart: "
            + "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items()),
        )
        return redirect(back)
    item = selectors.product_list().filter(pk=form.cleaned_data["product"]).first()
    if item is None:
        messages.error(request, "That product is no longer for sale.")
        return redirect(back)
    try:
        carts.cart_add(
            cart=_cart_for_write(request),
            product=item,
            quantity=form.cleaned_data["quantity"] or 1,
            rec_list_id=form.cleaned_data["rl"],
        )
    except OutOfStock as exc:
        messages.error(request, f"Sorry, only {exc.product.stock} of {display_name(item.name)} left in stock.")
        return redirect(back)
    except ValidationFailed as exc:
        messages.error(request, f"Could not add {display_name(item.name)}: {exc.errors[0].message}.")
        return redirect(back)
    messages.success(request, f"Added {display_name(item.name)} to your cart.")
    return redirect(back)


@require_POST
def cart_update(request: HttpRequest) -> HttpResponse:
    form = forms.CartUpdateForm(request.POST)
    if not form.is_valid():
        messages.error(
            request,
            "Could not change the quantity: "
            + "; ".join(f"{name}: {' '.join(errs)}" for name, errs in form.errors.items()),
        )
        return redirect("shop:cart")
    who = _shopper(request)
    current = selectors.cart_find(**who)
    item = selectors.product_get(product_id=form.cleaned_data["product"])
    if current is None or item is None:
        messages.error(request, "That product is not in your cart.")
        return redirect("shop:cart")
    try:
        carts.cart_quantity_set(cart=current, product=item, quantity=form.cleaned_data["quantity"])
    except OutOfStock as exc:
        messages.error(request, f"Sorry, only {exc.product.stock} of {display_name(item.name)} left in stock.")
    else:
        messages.success(request, f"Updated {display_name(item.name)}.")
    return redirect("shop:cart")


@require_POST
def cart_remove(request: HttpRequest) -> HttpResponse:
    who = _shopper(request)
    current = selectors.cart_find(**who)
    item = selectors.product_get(product_id=_int_or_none(request.POST.get("product")))
    if current is not None and item is not None and carts.cart_remove(cart=current, product=item):
        messages.success(request, f"Removed {display_name(item.name)} from your cart.")
    return redirect(_next_url(request, reverse("shop:cart")))


def _int_or_none(value) -> int | None:
    return int_parse(value, minimum=1, maximum=ID_MAX)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def checkout(request: HttpRequest) -> HttpResponse:
    current = selectors.cart_find(user=request.user)
    view = selectors.cart_view(cart=current)
    if request.method == "POST":
        if current is None:
            messages.error(request, "Your cart is empty.")
            return redirect("shop:cart")
        try:  # a repeated submit (the cart is empty now) gets the order it placed
            order = carts.cart_checkout(cart=current)
        except OutOfStock as exc:
            messages.error(
                request,
                f"Sorry, only {exc.product.stock} of {display_name(exc.product.name)} "
                "left in stock: please change the quantity.",
            )
            return redirect("shop:cart")
        except ValidationFailed as exc:
            if exc.errors[0].code == "empty":
                messages.error(request, "Your cart is empty.")
            else:
                messages.error(request, f"Could not place the order: {exc.errors[0].message}.")
            return redirect("shop:cart")
        messages.success(request, "Thank you! Your order is placed.")
        return redirect("shop:order", number=order.number)
    if not view.lines:
        messages.info(request, "Your cart is empty.")
        return redirect("shop:cart")
    return render(request, "shop/checkout.html", {"cart": view})


# --- accounts -----------------------------------------------------------------------
def _log_in(request: HttpRequest, user, *, anonymous_key: str) -> None:
    """Log in and keep what the visitor did before: their cart and history."""
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    carts.cart_merge(session_key=anonymous_key, user=user)


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    authentication_form = forms.LoginForm
    redirect_authenticated_user = True

    def form_valid(self, form):
        anonymous_key = self.request.session.session_key or ""
        response = super().form_valid(form)  # logs in (and rotates the session key)
        carts.cart_merge(session_key=anonymous_key, user=form.get_user())
        return response


@never_cache
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("shop:home")
    form = forms.SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        anonymous_key = request.session.session_key or ""
        user = customers.user_register(
            email=data["email"],
            password=data["password1"],
            first_name=data["first_name"],
            interests=data["interests"],
            marketing_consent=data["marketing_consent"],
        )
        _log_in(request, user, anonymous_key=anonymous_key)
        request.session[NEW_ACCOUNT_SESSION_KEY] = True  # "Welcome", not "Welcome back", in this visit
        messages.success(request, "Welcome to Affinity! Here are a few things we think you will like.")
        return redirect(_next_url(request, reverse("shop:home")))
    return render(request, "registration/signup.html", {"form": form, "next": request.GET.get("next", "")})


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "registration/password_reset_form.html"
    email_template_name = "registration/password_reset_email.txt"
    html_email_template_name = "registration/password_reset_email.html"
    subject_template_name = "registration/password_reset_subject.txt"
    success_url = reverse_lazy("shop:password_reset_done")


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "registration/password_reset_confirm.html"
    success_url = reverse_lazy("shop:password_reset_complete")


@never_cache
@login_required
@require_GET
def account_orders(request: HttpRequest) -> HttpResponse:
    orders = Paginator(selectors.user_orders(user=request.user), 10).get_page(request.GET.get("page"))
    return render(request, "shop/account/orders.html", {"page": orders, "section": "orders"})


@never_cache
@login_required
@require_GET
def order_detail(request: HttpRequest, number: uuid.UUID) -> HttpResponse:
    order = selectors.user_order_get(user=request.user, number=number)
    if order is None:
        raise Http404("No such order.")
    return render(request, "shop/account/order.html", {"order": order, "section": "orders"})


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def account_preferences(request: HttpRequest) -> HttpResponse:
    user = request.user
    initial = {"marketing_consent": user.marketing_consent, "interests": list(user.interests.all())}
    form = forms.PreferencesForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        customers.user_preferences_update(
            user=user,
            marketing_consent=form.cleaned_data["marketing_consent"],
            interests=form.cleaned_data["interests"],
            source=ConsentChange.Source.PREFERENCES,
        )
        messages.success(request, "Your preferences are saved.")
        return redirect("shop:preferences")
    return render(request, "shop/account/preferences.html", {"form": form, "section": "preferences"})


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def account_privacy(request: HttpRequest) -> HttpResponse:
    form = forms.DeleteAccountForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        user = request.user
        customers.user_forget(user=user)
        logout(request)
        messages.success(request, "Your account and everything we knew about you are deleted. Goodbye!")
        return redirect("shop:home")
    return render(request, "shop/account/privacy.html", {"form": form, "section": "privacy"})


@never_cache
@login_required
@require_GET
def account_export(request: HttpRequest) -> HttpResponse:
    data = selectors.user_data_export(user=request.user)
    data["exported_at"] = timezone.now().isoformat()
    response = HttpResponse(
        json.dumps(data, indent=2, ensure_ascii=False), content_type="application/json; charset=utf-8"
    )
    stamp = timezone.localdate().isoformat()
    response["Content-Disposition"] = f'attachment; filename="affinity-my-data-{stamp}.json"'
    return response
