"""Storefront pages. Thin: parse the request, call selectors/services, render.

Recommendations come from `recommendations.services` (the serving contract): every
shown list has an id that the product links carry (``?rl=<id>``), so a click and a
later order are attributed to the list. Events (views, clicks, cart changes,
purchases) are recorded through `shop.services` as they happen; the next page's
recommendations read them.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import forms, placeholders, selectors, services
from .templatetags.storefront import display_name
from .models import Category, ConsentChange, Interaction, Product

logger = logging.getLogger(__name__)

PAGE_SIZE = 24
SHELF_SIZE = 8


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


def _record(request: HttpRequest, *, product: Product, kind: int, rec_list_id: uuid.UUID | None = None) -> None:
    """Record a shopper's event. A failure is logged, never shown: the page matters more."""
    who = _shopper(request)
    if who["user"] is None and not who["session_key"]:
        who["session_key"] = _session_key(request, create=True)
    try:
        services.interaction_record(
            product=product, kind=kind, rec_list_id=rec_list_id, source=Interaction.Source.WEB, **who
        )
    except Exception:  # noqa: BLE001 - an event must never break the page
        logger.exception("could not record %s of product %s", Interaction.Kind(kind).label, product.pk)


# --- recommendation shelves ----------------------------------------------------------
@dataclass
class ShelfItem:
    product: Product
    reason: str = ""
    reason_code: str = ""


@dataclass
class Shelf:
    """A row of products on a page: a recommendation list (with its id and a reason per
    pick) or a plain list such as "recently viewed"."""

    key: str
    title: str
    items: list[ShelfItem] = field(default_factory=list)
    list_id: uuid.UUID | None = None
    strategy: str = ""
    subtitle: str = ""


def _click_recorded(*, rec_list_id: uuid.UUID, product: Product, who: dict) -> bool:
    """Record the click on a recommended product (once per list, product and shopper:
    a reload is not a second click). False if the list did not show the product."""
    if selectors.click_exists(rec_list_id=rec_list_id, product=product, **who):
        return True
    try:
        _recs().click_record(rec_list_id=rec_list_id, product=product, source=Interaction.Source.WEB, **who)
    except ValueError as exc:  # an unknown list, or one that did not show this product
        logger.info("click not recorded: %s", exc)
        return False
    except Exception:  # noqa: BLE001 - an event must never break the page
        logger.exception("could not record the click on product %s from list %s", product.pk, rec_list_id)
        return False
    return True


def _recs():
    from recommendations import services as rec_services  # the serving contract

    return rec_services


def _shelf(key: str, title: str, call: str, *, subtitle: str = "", **kwargs) -> Shelf | None:
    """Ask the recommender for a list and make it a shelf; None if it is empty.

    The recommender is meant never to fail for a shopper; if it does anyway, the page
    is still served without that shelf and the error is logged.
    """
    try:
        rec_list = getattr(_recs(), call)(**kwargs)
    except Exception:  # noqa: BLE001 - recommendations are never worth a broken page
        logger.exception("recommendations: %s failed for %s", call, kwargs.get("context", key))
        return None
    if not rec_list.picks:
        return None
    return Shelf(
        key=key,
        title=title,
        subtitle=subtitle,
        list_id=rec_list.id,
        strategy=rec_list.strategy,
        items=[ShelfItem(product=p.product, reason=p.reason, reason_code=p.reason_code) for p in rec_list.picks],
    )


def _without(shelf: Shelf | None, product_ids: set[int], *, at_least: int = 3) -> Shelf | None:
    """The shelf minus products the page already shows (or the shopper just saw);
    None if too little is left to be worth a row.

    `similar_products` takes no exclusions, so its list may hold a product shown
    elsewhere on the page; dropping it here keeps the page free of repeats (the
    list's impression then names a product or two that was not displayed).
    """
    if shelf is None:
        return None
    shelf.items = [it for it in shelf.items if it.product.pk not in product_ids]
    return shelf if len(shelf.items) >= at_least else None


def _plain_shelf(key: str, title: str, products: list[Product], subtitle: str = "") -> Shelf | None:
    if not products:
        return None
    return Shelf(key=key, title=title, subtitle=subtitle, items=[ShelfItem(product=p) for p in products])


# --- pages ---------------------------------------------------------------------------
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    who = _shopper(request)
    shelves: list[Shelf] = []
    viewed = selectors.recently_viewed(n=SHELF_SIZE, **who)
    personal = _shelf("for-you", "Recommended for you", "recommend_for_user", context="home", n=SHELF_SIZE, **who)
    # A shopper we know nothing about gets the trending list once, not twice.
    if personal and not personal.strategy.startswith("trending"):
        personal.subtitle = (
            f"Picked for you, {request.user.get_short_name()}"
            if request.user.is_authenticated and request.user.first_name
            else "Picked from what you like and what you looked at"
        )
        shelves.append(personal)
    if viewed:
        last = viewed[0]
        because = _shelf(
            "because-viewed",
            f"Because you viewed {display_name(last.name)}",
            "similar_products",
            product=last,
            kind="also_bought",
            n=SHELF_SIZE,
            **who,
        )
        if because is None:
            because = _shelf(
                "because-viewed",
                f"Because you viewed {display_name(last.name)}",
                "similar_products",
                product=last,
                kind="similar",
                n=SHELF_SIZE,
                **who,
            )
        because = _without(because, {p.pk for p in viewed})
        if because:
            shelves.append(because)
    trending = _shelf(
        "trending", "Trending now", "trending_products", n=SHELF_SIZE, subtitle="What shoppers are buying this week"
    )
    if trending:
        shelves.append(trending)
    recent = _plain_shelf("recently-viewed", "Recently viewed", viewed)
    if recent:
        shelves.append(recent)
    return render(
        request,
        "shop/home.html",
        {
            "shelves": shelves,
            "is_new_visitor": not request.user.is_authenticated and not viewed,
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
        popular = _shelf(
            "popular-in-category", f"Popular in {node.name}", "trending_products", category=cat, n=SHELF_SIZE
        )
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
        fallback = _shelf("trending", "Popular right now", "trending_products", n=SHELF_SIZE)
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
    rec_list_id = _uuid_or_none(request.GET.get("rl"))
    if not request.user.is_authenticated:
        _session_key(request, create=True)
    who = _shopper(request)
    if rec_list_id is not None and not _click_recorded(rec_list_id=rec_list_id, product=item, who=who):
        rec_list_id = None  # not a list that showed this product: no attribution
    _record(request, product=item, kind=Interaction.Kind.VIEW, rec_list_id=rec_list_id)
    also = _shelf(
        "also-bought",
        "Customers also bought",
        "similar_products",
        product=item,
        kind="also_bought",
        n=SHELF_SIZE,
        **who,
    )
    similar = _shelf(
        "similar", "Similar products", "similar_products", product=item, kind="similar", n=SHELF_SIZE, **who
    )
    if also is not None:  # without a model both lists may fall back to the same products
        similar = _without(similar, {it.product.pk for it in also.items})
    return render(
        request,
        "shop/product.html",
        {
            "product": item,
            "breadcrumbs": selectors.category_path(category_id=item.category_id) if item.category_id else [],
            "rec_list_id": rec_list_id,
            "shelves": [s for s in (also, similar) if s],
            "max_quantity": max(1, min(item.stock, 99)),
        },
    )


@require_GET
def product_image(request: HttpRequest, pk: int) -> HttpResponse:
    """The product's generated picture (SVG), cached by browsers and proxies."""
    row = Product.objects.filter(pk=pk).values("name", "category__colour", "category__name").first()
    if row is None:
        raise Http404("No such product.")
    colour = row["category__colour"] or placeholders.DEFAULT_COLOUR
    label = row["category__name"] or ""
    etag = f'"{placeholders.etag_for(product_id=pk, name=row["name"], colour=colour, label=label)}"'
    cache_control = "public, max-age=86400, stale-while-revalidate=604800"
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        response = HttpResponseNotModified()
    else:
        response = HttpResponse(
            placeholders.product_svg(product_id=pk, name=row["name"], colour=colour, label=label),
            content_type="image/svg+xml; charset=utf-8",
        )
    response["ETag"] = etag
    response["Cache-Control"] = cache_control
    return response


# --- cart and checkout -----------------------------------------------------------------
def _cart_for_write(request: HttpRequest):
    if request.user.is_authenticated:
        return services.cart_get_or_create(user=request.user)
    return services.cart_get_or_create(session_key=_session_key(request, create=True))


@never_cache
@require_GET
def cart(request: HttpRequest) -> HttpResponse:
    who = _shopper(request)
    view = selectors.cart_view(cart=selectors.cart_find(**who))
    more = _shelf(
        "cart-recs",
        "You might also like",
        "recommend_for_user",
        context="cart",
        n=SHELF_SIZE,
        exclude_product_ids=[line.product.pk for line in view.lines],
        **who,
    )
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
        services.cart_add(
            cart=_cart_for_write(request),
            product=item,
            quantity=form.cleaned_data["quantity"] or 1,
            rec_list_id=form.cleaned_data["rl"],
        )
    except services.OutOfStock as exc:
        messages.error(request, f"Sorry, only {exc.product.stock} of {display_name(item.name)} left in stock.")
        return redirect(back)
    except services.ValidationFailed as exc:
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
    item = Product.objects.filter(pk=form.cleaned_data["product"]).first()
    if current is None or item is None:
        messages.error(request, "That product is not in your cart.")
        return redirect("shop:cart")
    try:
        services.cart_quantity_set(cart=current, product=item, quantity=form.cleaned_data["quantity"])
    except services.OutOfStock as exc:
        messages.error(request, f"Sorry, only {exc.product.stock} of {display_name(item.name)} left in stock.")
    else:
        messages.success(request, f"Updated {display_name(item.name)}.")
    return redirect("shop:cart")


@require_POST
def cart_remove(request: HttpRequest) -> HttpResponse:
    who = _shopper(request)
    current = selectors.cart_find(**who)
    item = Product.objects.filter(pk=_int_or_none(request.POST.get("product"))).first()
    if current is not None and item is not None and services.cart_remove(cart=current, product=item):
        messages.success(request, f"Removed {display_name(item.name)} from your cart.")
    return redirect(_next_url(request, reverse("shop:cart")))


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def checkout(request: HttpRequest) -> HttpResponse:
    current = selectors.cart_find(user=request.user)
    view = selectors.cart_view(cart=current)
    if request.method == "POST":
        if current is None or not view.lines:
            messages.error(request, "Your cart is empty.")
            return redirect("shop:cart")
        try:
            order = services.cart_checkout(cart=current)
        except services.OutOfStock as exc:
            messages.error(
                request,
                f"Sorry, only {exc.product.stock} of {display_name(exc.product.name)} "
                "left in stock: please change the quantity.",
            )
            return redirect("shop:cart")
        except services.ValidationFailed as exc:
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
    services.cart_merge(session_key=anonymous_key, user=user)


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    authentication_form = forms.LoginForm
    redirect_authenticated_user = True

    def form_valid(self, form):
        anonymous_key = self.request.session.session_key or ""
        response = super().form_valid(form)  # logs in (and rotates the session key)
        services.cart_merge(session_key=anonymous_key, user=form.get_user())
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
        user = services.user_register(
            email=data["email"],
            password=data["password1"],
            first_name=data["first_name"],
            interests=data["interests"],
            marketing_consent=data["marketing_consent"],
        )
        _log_in(request, user, anonymous_key=anonymous_key)
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
        services.user_preferences_update(
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
        services.user_forget(user=user)
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
