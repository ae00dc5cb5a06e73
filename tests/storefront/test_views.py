"""Storefront pages against the real database: what each page shows, the events it
records through `shop.services`, and a bounded number of queries per page."""

from __future__ import annotations

import json
import re
import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from shop import selectors
from shop.models import Cart, CartItem, ConsentChange, Interaction, Order, OrderLine, Product, User
from tests.conftest import serving_caches_clear
from tests.factories import CategoryFactory, ProductFactory, UserFactory, interaction_make

pytestmark = pytest.mark.django_db

# The recommender promises "a handful of queries per call, independent of n".
# Page budgets below are the page's own queries plus this much per recommendation list
# (measured warm: the serving state and trending are cached after the first page).
REC_CALL_QUERIES = 10
PASSWORD = "correct-horse-battery"


def _forget_cached_state():
    serving_caches_clear(selectors.CATEGORY_CACHE_KEY)  # the recommender's view, the menu


@pytest.fixture(autouse=True)
def _fresh_caches():
    """The database is rolled back between tests; what was cached about it goes too."""
    _forget_cached_state()
    yield
    _forget_cached_state()


@pytest.fixture
def catalogue(db):
    """Two categories (one with a subcategory) and a few dozen products."""
    lights = CategoryFactory(name="Lights", slug="lights", colour="#c2410c")
    candles = CategoryFactory(name="Candles", slug="candles", colour="#b45309", parent=lights)
    kitchen = CategoryFactory(name="Kitchen", slug="kitchen", colour="#0369a1")
    products = {}
    for i in range(30):
        cat = (lights, candles, kitchen)[i % 3]
        word = {lights: "LANTERN", candles: "CANDLE", kitchen: "MUG"}[cat]
        products[i] = ProductFactory(
            name=f"{word} NUMBER {i}",
            slug=f"{word.lower()}-{i}",
            sku=f"T{i:04d}",
            category=cat,
            price=Decimal("1.00") + i,
            stock=0 if i in (4, 7) else 50,
        )
    # Background: other (anonymous) shoppers bought things, some more than others.
    for i, p in products.items():
        for s in range(1 + i % 4):
            interaction_make(product=p, session_key=f"earlier-shopper-{s}", kind=Interaction.Kind.PURCHASE)
    return {"lights": lights, "candles": candles, "kitchen": kitchen, "products": products}


def _links_with_list_ids(html: str) -> list[tuple[str, str]]:
    return re.findall(r'href="/product/([\w-]+)/\?rl=([0-9a-f-]{36})"', html)


def _shelf_html(html: str, key: str) -> str:
    m = re.search(rf'<section class="shelf"[^>]*data-shelf="{key}".*?</section>', html, re.S)
    return m.group(0) if m else ""


# --- home ---------------------------------------------------------------------------
def test_home_for_a_new_visitor_shows_trending_with_list_ids(client, catalogue, django_assert_max_num_queries):
    for p in list(catalogue["products"].values())[:5]:
        interaction_make(product=p, session_key="someone-else", kind=Interaction.Kind.PURCHASE)
    client.get("/")  # warm
    with django_assert_max_num_queries(4 + 2 * REC_CALL_QUERIES):
        r = client.get("/")
    html = r.content.decode()
    assert r.status_code == 200
    assert "Create an account" in html  # the hero for someone new
    trending = _shelf_html(html, "trending")
    assert trending, "no trending shelf"
    links = _links_with_list_ids(trending)
    assert links, "recommended products must link with their list id"
    assert len({rl for _, rl in links}) == 1
    assert 'class="why"' in trending and "<summary>Why this?</summary>" in trending


def _cards(shelf_html: str) -> list[tuple[str, str]]:
    """(product slug, reason) of every card of a shelf."""
    return re.findall(
        r'href="/product/([\w-]+)/\?rl=[0-9a-f-]{36}".*?<details class="why">.*?<p>(.*?)</p>', shelf_html, re.S
    )


def test_home_picks_come_from_a_new_customers_interests(client, catalogue):
    user = UserFactory()
    user.interests.set([catalogue["kitchen"]])
    client.force_login(user)
    html = client.get("/").content.decode()
    personal = _shelf_html(html, "for-you")
    assert personal, "a customer with interests gets a personal shelf"
    cards = _cards(personal)
    assert cards[0][0].startswith("mug-"), cards  # their interest first ...
    from_interest = [slug for slug, reason in cards if reason == "Matches your interest in Kitchen"]
    assert from_interest and all(slug.startswith("mug-") for slug in from_interest), cards
    assert all(reason for _, reason in cards)  # ... and every pick says why


def test_home_reacts_to_views_on_the_next_page(client, catalogue):
    before = client.get("/").content.decode()
    assert not _shelf_html(before, "recently-viewed")
    viewed = catalogue["products"][1]  # a candle
    client.get(reverse("shop:product", args=[viewed.slug]))
    after = client.get("/").content.decode()
    recent = _shelf_html(after, "recently-viewed")
    assert viewed.slug in recent
    because = _shelf_html(after, "because-viewed")
    assert because and "Because you viewed Candle Number 1" in because
    assert "Create an account" not in after  # no longer a stranger


def test_home_query_count_is_bounded_for_a_customer_with_history(client, catalogue, django_assert_max_num_queries):
    user = UserFactory()
    user.interests.set([catalogue["lights"]])
    for p in list(catalogue["products"].values())[:20]:
        interaction_make(user=user, product=p)
    client.force_login(user)
    client.get("/")
    # session, user, history, products, cart count + 3 recommendation lists
    with django_assert_max_num_queries(6 + 3 * REC_CALL_QUERIES):
        r = client.get("/")
    assert r.status_code == 200


# --- category -------------------------------------------------------------------------
def test_category_lists_its_products_and_its_subcategories(client, catalogue):
    r = client.get(reverse("shop:category", args=["lights"]))
    html = r.content.decode()
    assert r.status_code == 200
    assert "lantern-" in html and "candle-" in html  # a subcategory's products belong to the parent
    assert "mug-" not in re.sub(r'<section class="shelf".*?</section>', "", html, flags=re.S)
    assert r.context["page"].paginator.count == 20
    assert 'aria-current="page"' in html


def test_category_filters_sort_and_paginate(client, catalogue):
    url = reverse("shop:category", args=["kitchen"])
    r = client.get(url, {"min_price": "5", "max_price": "20", "sort": "price_desc", "in_stock": "on"})
    prices = [p.price for p in r.context["page"].object_list]
    assert prices == sorted(prices, reverse=True)
    assert all(Decimal("5") <= p <= Decimal("20") for p in prices)
    assert all(p.stock > 0 for p in r.context["page"].object_list)
    assert {p.pk for p in r.context["page"].object_list} == set(
        Product.objects.filter(category=catalogue["kitchen"], price__gte=5, price__lte=20, stock__gt=0).values_list(
            "pk", flat=True
        )
    )

    many = CategoryFactory(name="Many", slug="many")
    ProductFactory.create_batch(30, category=many)
    first = client.get(reverse("shop:category", args=["many"]))
    second = client.get(reverse("shop:category", args=["many"]), {"page": 2})
    assert len(first.context["page"].object_list) == 24 and len(second.context["page"].object_list) == 6
    assert not {p.pk for p in first.context["page"]} & {p.pk for p in second.context["page"]}
    assert "?page=2" in first.content.decode()


def test_category_reports_bad_filters_and_still_lists(client, catalogue):
    r = client.get(reverse("shop:category", args=["kitchen"]), {"min_price": "9", "max_price": "2", "sort": "bogus"})
    html = r.content.decode()
    assert r.status_code == 200
    assert "The maximum price is below the minimum." in html
    assert "Select a valid choice" in html
    # the valid filter (min price 9) still applies; the wrong ones are ignored
    assert r.context["page"].paginator.count == 8


def test_category_unknown_is_404(client, catalogue):
    assert client.get(reverse("shop:category", args=["nope"])).status_code == 404


def test_category_query_count(client, catalogue, django_assert_max_num_queries):
    ProductFactory.create_batch(10, category=catalogue["candles"])
    client.get(reverse("shop:category", args=["lights"]))
    with django_assert_max_num_queries(5 + REC_CALL_QUERIES):
        assert client.get(reverse("shop:category", args=["lights"]), {"page": 1}).status_code == 200
    with django_assert_max_num_queries(3):  # page 2: no "popular" shelf; count, products
        r = client.get(reverse("shop:category", args=["lights"]), {"page": 2})
    assert r.context["page"].number == 2 and r.context["popular"] is None


# --- search -----------------------------------------------------------------------------
def test_search_finds_by_word_and_by_prefix(client, catalogue):
    r = client.get(reverse("shop:search"), {"q": "lantern"})
    names = {p.name for p in r.context["page"].object_list}
    assert names and all(n.startswith("LANTERN") for n in names)
    r = client.get(reverse("shop:search"), {"q": "lant"})
    assert r.context["page"].paginator.count == 10
    r = client.get(reverse("shop:search"), {"q": "mug 14"})
    assert [p.name for p in r.context["page"].object_list] == ["MUG NUMBER 14"]


def test_search_without_results_suggests_popular_products(client, catalogue):
    r = client.get(reverse("shop:search"), {"q": "zebra"})
    html = r.content.decode()
    assert r.context["page"].paginator.count == 0
    assert "Nothing matched" in html
    assert _shelf_html(html, "trending")


def test_search_empty_query_and_odd_characters(client, catalogue):
    assert client.get(reverse("shop:search")).status_code == 200
    r = client.get(reverse("shop:search"), {"q": "'&|!:*()<>\\"})
    assert r.status_code == 200 and r.context["page"] is not None and r.context["page"].paginator.count == 0


def test_search_query_count(client, catalogue, django_assert_max_num_queries):
    # matching categories, count, page of products (+ the category tree on a cold cache)
    with django_assert_max_num_queries(4):
        assert client.get(reverse("shop:search"), {"q": "candle"}).status_code == 200


# --- product page and events ---------------------------------------------------------------
def test_product_page_records_a_view_for_an_anonymous_visitor(client, catalogue):
    p = catalogue["products"][0]
    r = client.get(reverse("shop:product", args=[p.slug]))
    assert r.status_code == 200
    assert "Add to cart" in r.content.decode()
    key = client.session.session_key
    assert key, "a visitor gets a session so their events can be kept"
    ev = Interaction.objects.get(session_key=key)
    assert (ev.kind, ev.product_id, ev.session_key, ev.user_id, ev.source) == (
        Interaction.Kind.VIEW,
        p.pk,
        key,
        None,
        Interaction.Source.WEB,
    )


def test_product_click_from_a_list_is_recorded_once_with_its_list_id(client, catalogue):
    user = UserFactory()
    client.force_login(user)
    slug, rl = _links_with_list_ids(_shelf_html(client.get("/").content.decode(), "trending"))[0]
    p = Product.objects.get(slug=slug)
    url = reverse("shop:product", args=[slug]) + f"?rl={rl}"
    client.get(url)
    client.get(url)  # a reload is not a second click
    clicks = Interaction.objects.filter(kind=Interaction.Kind.CLICK)
    assert clicks.count() == 1
    assert (str(clicks.get().rec_list_id), clicks.get().user_id, clicks.get().product_id) == (rl, user.pk, p.pk)
    assert Interaction.objects.filter(kind=Interaction.Kind.VIEW, rec_list_id=rl).count() == 2
    html = client.get(url).content.decode()
    assert f'name="rl" value="{rl}"' in html  # add to cart keeps the attribution


def test_product_page_ignores_a_malformed_or_foreign_list_id(client, catalogue):
    p = catalogue["products"][1]
    assert client.get(reverse("shop:product", args=[p.slug]), {"rl": "not-a-uuid"}).status_code == 200
    # a well-formed id of no list (or of a list that did not show this product) is no click
    r = client.get(reverse("shop:product", args=[p.slug]), {"rl": str(uuid.uuid4())})
    assert r.status_code == 200 and 'name="rl"' not in r.content.decode()
    assert not Interaction.objects.filter(kind=Interaction.Kind.CLICK).exists()
    assert not Interaction.objects.filter(rec_list_id__isnull=False).exists()


def test_inactive_or_unknown_product_is_404(client, catalogue):
    p = catalogue["products"][3]
    Product.objects.filter(pk=p.pk).update(is_active=False)
    assert client.get(reverse("shop:product", args=[p.slug])).status_code == 404
    assert client.get(reverse("shop:product", args=["nope"])).status_code == 404
    assert not Interaction.objects.filter(kind=Interaction.Kind.VIEW).exists()


def test_product_page_shows_recommendations_with_reasons(client, catalogue):
    for session in ("a", "b", "c"):
        for i in (0, 3, 6):
            interaction_make(product=catalogue["products"][i], session_key=session, kind=Interaction.Kind.PURCHASE)
    html = client.get(reverse("shop:product", args=[catalogue["products"][0].slug])).content.decode()
    shelves = [k for k in ("also-bought", "similar") if _shelf_html(html, k)]
    assert shelves, "the product page shows at least one recommendation shelf"
    for key in shelves:
        assert "Why this?" in _shelf_html(html, key)
        assert f"/product/{catalogue['products'][0].slug}/" not in _shelf_html(html, key)


def test_product_page_query_count(client, catalogue, django_assert_max_num_queries):
    p = catalogue["products"][5]
    client.get(reverse("shop:product", args=[p.slug]))
    with django_assert_max_num_queries(6 + 2 * REC_CALL_QUERIES):
        assert client.get(reverse("shop:product", args=[p.slug]), {"rl": str(uuid.uuid4())}).status_code == 200


# --- cart --------------------------------------------------------------------------------
def _add(client, product, quantity=1, rl=None, next_url=None):
    data = {"product": product.pk, "quantity": quantity}
    if rl:
        data["rl"] = str(rl)
    if next_url:
        data["next"] = next_url
    return client.post(reverse("shop:cart_add"), data)


def test_anonymous_cart_add_update_remove_records_events(client, catalogue):
    p, q = catalogue["products"][0], catalogue["products"][1]
    rl = uuid.uuid4()
    r = _add(client, p, 2, rl=rl, next_url=reverse("shop:product", args=[p.slug]))
    assert r.status_code == 302 and r.url == reverse("shop:product", args=[p.slug])
    _add(client, q)
    key = client.session.session_key
    cart = Cart.objects.get(session_key=key)
    assert {(i.product_id, i.quantity, i.rec_list_id) for i in cart.items.all()} == {(p.pk, 2, rl), (q.pk, 1, None)}
    add = Interaction.objects.get(kind=Interaction.Kind.ADD_TO_CART, product=p)
    assert (add.session_key, add.value, add.rec_list_id) == (key, 2.0, rl)

    page = client.get(reverse("shop:cart"))
    assert page.context["cart"].count == 3
    assert page.context["cart"].total == p.price * 2 + q.price
    assert 'data-testid="cart-count">3' in page.content.decode()

    client.post(reverse("shop:cart_update"), {"product": p.pk, "quantity": 5})
    assert cart.items.get(product=p).quantity == 5
    assert Interaction.objects.filter(kind=Interaction.Kind.ADD_TO_CART, product=p, value=3.0).exists()
    client.post(reverse("shop:cart_update"), {"product": p.pk, "quantity": 1})
    assert Interaction.objects.filter(kind=Interaction.Kind.REMOVE_FROM_CART, product=p, value=4.0).exists()
    client.post(reverse("shop:cart_remove"), {"product": q.pk})
    assert list(cart.items.values_list("product_id", flat=True)) == [p.pk]
    assert Interaction.objects.filter(kind=Interaction.Kind.REMOVE_FROM_CART, product=q).exists()
    client.post(reverse("shop:cart_update"), {"product": p.pk, "quantity": 0})
    assert not cart.items.exists()


def test_cart_add_rejects_bad_input_with_a_clear_message(client, catalogue):
    out = catalogue["products"][4]  # no stock
    r = _add(client, out)
    assert r.status_code == 302
    follow = client.get(reverse("shop:cart")).content.decode()
    assert "only 0 of Candle Number 4 left in stock" in follow
    assert not CartItem.objects.exists()
    client.post(reverse("shop:cart_add"), {"product": "abc"})
    assert (
        "Could not add to the cart: product: Enter a whole number." in client.get(reverse("shop:cart")).content.decode()
    )
    client.post(reverse("shop:cart_add"), {"product": 999999})
    assert "no longer for sale" in client.get(reverse("shop:cart")).content.decode()
    r = _add(client, catalogue["products"][0], next_url="https://evil.example/")
    assert r.url == reverse("shop:cart")  # no open redirect
    assert client.get(reverse("shop:cart_add")).status_code == 405


def test_cart_page_query_count(client, catalogue, django_assert_max_num_queries):
    for i in range(6):
        _add(client, catalogue["products"][i + 8])
    client.get(reverse("shop:cart"))  # warm
    with django_assert_max_num_queries(5 + REC_CALL_QUERIES):
        r = client.get(reverse("shop:cart"))
    assert len(r.context["cart"].lines) == 6


def test_login_keeps_the_anonymous_cart_and_history(client, catalogue):
    user = UserFactory(email="kim@example.com")
    p = catalogue["products"][0]
    client.get(reverse("shop:product", args=[p.slug]))
    _add(client, p, 2)
    anon_key = client.session.session_key
    r = client.post(reverse("shop:login"), {"username": "KIM@example.com ", "password": PASSWORD})
    assert r.status_code == 302, r.content.decode()
    assert client.session.session_key != anon_key  # rotated on login
    cart = Cart.objects.get(user=user)
    assert list(cart.items.values_list("product_id", "quantity")) == [(p.pk, 2)]
    assert not Cart.objects.filter(session_key=anon_key).exists()
    assert set(
        Interaction.objects.filter(kind__in=[Interaction.Kind.VIEW, Interaction.Kind.ADD_TO_CART]).values_list(
            "user_id", flat=True
        )
    ) == {user.pk}
    assert not Interaction.objects.filter(session_key=anon_key, user__isnull=True).exists()
    assert 'data-testid="cart-count">2' in client.get("/").content.decode()


def test_logout_is_a_post_and_ends_the_session(client, catalogue):
    client.force_login(UserFactory())
    assert "Log out" in client.get("/").content.decode()
    assert client.get(reverse("shop:logout")).status_code == 405  # no logging out by a link or an <img>
    r = client.post(reverse("shop:logout"))
    assert r.status_code == 302 and r.url == reverse("shop:home")
    assert "_auth_user_id" not in client.session
    assert "Log in" in client.get("/").content.decode()


def test_login_form_reports_a_wrong_password(client, catalogue):
    UserFactory(email="kim@example.com")
    r = client.post(reverse("shop:login"), {"username": "kim@example.com", "password": "nope"})
    assert r.status_code == 200
    assert "Please enter a correct email address and password" in r.content.decode()


# --- checkout ----------------------------------------------------------------------------
def test_checkout_requires_login_then_places_the_order(client, catalogue, django_assert_max_num_queries):
    p, q = catalogue["products"][0], catalogue["products"][2]
    rl = uuid.uuid4()
    _add(client, p, 2, rl=rl)
    _add(client, q, 1)
    r = client.get(reverse("shop:checkout"))
    assert r.status_code == 302 and r.url.startswith(reverse("shop:login"))
    user = UserFactory()
    client.post(
        reverse("shop:login") + "?next=/checkout/", {"username": user.email, "password": PASSWORD, "next": "/checkout/"}
    )
    with django_assert_max_num_queries(6):
        page = client.get(reverse("shop:checkout"))
    assert "Place order" in page.content.decode()
    r = client.post(reverse("shop:checkout"))
    order = Order.objects.get()
    assert r.status_code == 302 and r.url == reverse("shop:order", args=[order.number])
    assert order.user == user and order.total == p.price * 2 + q.price
    assert {(l.product_id, l.quantity, l.rec_list_id) for l in OrderLine.objects.all()} == {
        (p.pk, 2, rl),
        (q.pk, 1, None),
    }
    assert set(
        Interaction.objects.filter(kind=Interaction.Kind.PURCHASE, user=user).values_list("product_id", "user_id")
    ) == {(p.pk, user.pk), (q.pk, user.pk)}
    assert Product.objects.get(pk=p.pk).stock == 48
    assert not CartItem.objects.exists()
    confirmation = client.get(r.url).content.decode()
    assert "Thank you! Your order is placed." in confirmation
    # a second submit (double click) does not place a second order
    again = client.post(reverse("shop:checkout"))
    assert again.status_code == 302 and Order.objects.count() == 1


def test_checkout_with_too_little_stock_keeps_the_cart(client, catalogue):
    user = UserFactory()
    client.force_login(user)
    p = catalogue["products"][0]
    _add(client, p, 3)
    Product.objects.filter(pk=p.pk).update(stock=1)
    r = client.post(reverse("shop:checkout"))
    assert r.status_code == 302 and r.url == reverse("shop:cart")
    assert not Order.objects.exists() and CartItem.objects.get().quantity == 3
    assert "only 1 of Lantern Number 0 left" in client.get(reverse("shop:cart")).content.decode()


def test_untracked_stock_is_shown_available_and_sold_any_number_of_times(client, catalogue):
    user = UserFactory()
    client.force_login(user)
    p = catalogue["products"][0]
    Product.objects.filter(pk=p.pk).update(stock=None)
    html = client.get(reverse("shop:product", args=[p.slug])).content.decode()
    assert "In stock" in html and "Add to cart" in html and 'max="99"' in html
    for _ in range(2):
        _add(client, p, 50)
        assert client.post(reverse("shop:checkout")).status_code == 302
    p.refresh_from_db()
    assert p.stock is None and Order.objects.count() == 2


# --- sign-up, accounts ----------------------------------------------------------------------
def test_signup_with_interests_and_consent_logs_in_with_personal_picks(client, catalogue):
    r = client.post(
        reverse("shop:signup"),
        {
            "email": "New.Person@Example.com",
            "first_name": "Ada",
            "password1": "a-long-pass-phrase",
            "password2": "a-long-pass-phrase",
            "interests": [catalogue["kitchen"].pk],
            "marketing_consent": "on",
        },
    )
    assert r.status_code == 302 and r.url == "/"
    user = User.objects.get(email="new.person@example.com")
    assert list(user.interests.all()) == [catalogue["kitchen"]]
    assert user.marketing_consent
    assert list(user.consent_changes.values_list("consent", "source")) == [(True, ConsentChange.Source.SIGNUP)]
    home = client.get("/").content.decode()
    assert "Welcome to Affinity" in home
    cards = _cards(_shelf_html(home, "for-you"))
    assert cards and cards[0] == (cards[0][0], "Matches your interest in Kitchen") and cards[0][0].startswith("mug-")


def test_the_greeting_says_welcome_back_only_to_a_returning_customer(client, catalogue):
    assert '<h1 class="page-title">' not in client.get("/").content.decode()  # a new visitor: the hero
    client.get(reverse("shop:product", args=[catalogue["products"][0].slug]))
    assert '<h1 class="page-title">Picked for you</h1>' in client.get("/").content.decode()
    fields = {"email": "ada@example.com", "first_name": "Ada", "password1": "a-long-pass-phrase"}
    client.post(reverse("shop:signup"), {**fields, "password2": fields["password1"]})
    home = client.get("/").content.decode()
    assert '<h1 class="page-title">Welcome to Affinity, Ada</h1>' in home and "Welcome back" not in home
    assert "Welcome back" not in client.get("/").content.decode()  # still this visit
    client.logout()
    client.post(reverse("shop:login"), {"username": "ada@example.com", "password": "a-long-pass-phrase"})
    assert '<h1 class="page-title">Welcome back, Ada</h1>' in client.get("/").content.decode()


def test_signup_reports_every_problem(client, catalogue):
    UserFactory(email="taken@example.com")
    r = client.post(
        reverse("shop:signup"),
        {
            "email": "TAKEN@example.com",
            "password1": "abc",
            "password2": "abd",
        },
    )
    html = r.content.decode()
    assert r.status_code == 200
    assert "already exists" in html
    assert "The two passwords differ." in html
    r = client.post(
        reverse("shop:signup"), {"email": "x@example.com", "password1": "12345678", "password2": "12345678"}
    )
    assert "too common" in r.content.decode() or "entirely numeric" in r.content.decode()
    assert 'aria-invalid="true"' in r.content.decode()
    assert User.objects.count() == 1


def test_account_pages_need_login(client, catalogue):
    for name in ("account", "preferences", "privacy", "export", "checkout"):
        r = client.get(reverse(f"shop:{name}"))
        assert r.status_code == 302 and r.url.startswith(reverse("shop:login")), name


def test_orders_list_and_detail_only_show_ones_own_orders(client, catalogue, django_assert_max_num_queries):
    from shop.services.orders import OrderLineIn, order_place

    user, other = UserFactory(), UserFactory()
    mine = [order_place(lines=[OrderLineIn(product=catalogue["products"][i], quantity=1)], user=user) for i in range(3)]
    theirs = order_place(lines=[OrderLineIn(product=catalogue["products"][5], quantity=1)], user=other)
    client.force_login(user)
    with django_assert_max_num_queries(7):
        r = client.get(reverse("shop:account"))
    assert [o.pk for o in r.context["page"].object_list] == [o.pk for o in reversed(mine)]
    assert client.get(reverse("shop:order", args=[mine[0].number])).status_code == 200
    assert client.get(reverse("shop:order", args=[theirs.number])).status_code == 404


def test_preferences_turn_marketing_off_and_change_interests(client, catalogue):
    user = UserFactory(marketing_consent=True)
    client.force_login(user)
    page = client.get(reverse("shop:preferences")).content.decode()
    assert re.search(r'<input type="checkbox" name="marketing_consent"[^>]*checked', page)
    # "Lights" holds no products itself (only its subcategory "Candles" does): not offered
    r = client.post(reverse("shop:preferences"), {"interests": [catalogue["lights"].pk]})
    assert (
        r.status_code == 200 and f"{catalogue['lights'].pk} is not one of the available choices" in r.content.decode()
    )
    assert user.consent_changes.count() == 0
    r = client.post(reverse("shop:preferences"), {"interests": [catalogue["candles"].pk]})
    assert r.status_code == 302
    user.refresh_from_db()
    assert not user.marketing_consent
    assert list(user.consent_changes.values_list("consent", "source")) == [(False, ConsentChange.Source.PREFERENCES)]
    assert list(user.interests.all()) == [catalogue["candles"]]
    page = client.get(reverse("shop:preferences")).content.decode()
    assert "Your preferences are saved." in page
    assert re.search(r'<p class="choice-group-title">Lights</p>', page)  # leaves grouped under their parent
    client.post(reverse("shop:preferences"), {"interests": [catalogue["candles"].pk]})  # unchanged
    assert user.consent_changes.count() == 1


def test_export_downloads_everything_about_the_customer(client, catalogue):
    from shop.services.customers import user_consent_set
    from shop.services.orders import OrderLineIn, order_place

    user = UserFactory(email="me@example.com")
    user.interests.set([catalogue["kitchen"]])
    user_consent_set(user=user, consent=False, source=ConsentChange.Source.PREFERENCES)
    order = order_place(lines=[OrderLineIn(product=catalogue["products"][0], quantity=2)], user=user)
    interaction_make(user=user, product=catalogue["products"][1])
    other = UserFactory()
    interaction_make(user=other, product=catalogue["products"][2])
    client.force_login(user)
    r = client.get(reverse("shop:export"))
    assert r.status_code == 200 and r["Content-Type"].startswith("application/json")
    assert r["Content-Disposition"].startswith('attachment; filename="affinity-my-data-')
    data = json.loads(r.content)
    assert data["profile"]["email"] == "me@example.com"
    assert [i["slug"] for i in data["interests"]] == ["kitchen"]
    assert [c["source"] for c in data["consent_history"]] == ["preferences"]
    assert data["orders"][0]["number"] == str(order.number)
    assert data["orders"][0]["lines"][0]["quantity"] == 2
    assert sorted(i["kind"] for i in data["interactions"]) == ["purchase", "view"]
    assert all(i["product_id"] != catalogue["products"][2].pk for i in data["interactions"])


def test_delete_account_needs_the_password_then_forgets_the_customer(client, catalogue):
    from shop.services.orders import OrderLineIn, order_place

    user = UserFactory(email="bye@example.com")
    order = order_place(lines=[OrderLineIn(product=catalogue["products"][0], quantity=1)], user=user)
    interaction_make(user=user, product=catalogue["products"][1])
    client.force_login(user)
    r = client.post(reverse("shop:privacy"), {"password": "wrong", "confirm": "on"})
    assert r.status_code == 200 and "That is not your password." in r.content.decode()
    r = client.post(reverse("shop:privacy"), {"password": PASSWORD})
    assert "This field is required." in r.content.decode()
    assert User.objects.filter(pk=user.pk).exists()
    r = client.post(reverse("shop:privacy"), {"password": PASSWORD, "confirm": "on"})
    assert r.status_code == 302 and r.url == "/"
    assert not User.objects.filter(email="bye@example.com").exists()
    assert not Interaction.objects.filter(user_id=user.pk).exists()
    order.refresh_from_db()
    assert order.user_id is None
    assert "_auth_user_id" not in client.session
    r = client.post(reverse("shop:login"), {"username": "bye@example.com", "password": PASSWORD})
    assert r.status_code == 200 and "Please enter a correct email address" in r.content.decode()


# --- password reset over real SMTP ----------------------------------------------------------
@pytest.mark.integration
def test_password_reset_by_email_through_a_real_smtp_server(client, catalogue, smtp_server, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = smtp_server.host, smtp_server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    user = UserFactory(email="forgetful@example.com", first_name="Sam")
    r = client.post(reverse("shop:password_reset"), {"email": "forgetful@example.com"})
    assert r.status_code == 302 and r.url == reverse("shop:password_reset_done")
    assert smtp_server.recipients() == ["forgetful@example.com"]
    msg = smtp_server.messages[0]
    assert msg["Subject"] == "Reset your Affinity password"
    text = (
        next(part for part in msg.walk() if part.get_content_type() == "text/plain").get_payload(decode=True).decode()
    )
    link = re.search(r"https?://[^/\s]+(/reset/[^\s]+/)", text).group(1)
    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    r = client.post(
        form.redirect_chain[-1][0], {"new_password1": "brand-new-secret-9", "new_password2": "brand-new-secret-9"}
    )
    assert r.status_code == 302 and r.url == reverse("shop:password_reset_complete")
    user.refresh_from_db()
    assert user.check_password("brand-new-secret-9")
    # an unknown address gets the same answer and no email
    client.post(reverse("shop:password_reset"), {"email": "nobody@example.com"})
    assert smtp_server.recipients() == ["forgetful@example.com"]
