"""Reads of the storefront (`shop.selectors`) against the real database."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone

from shop import selectors
from shop.models import ConsentChange, Interaction
from shop.services.carts import cart_add, cart_get_or_create
from shop.services.customers import user_consent_set
from shop.services.orders import OrderLineIn, order_place
from tests.factories import CategoryFactory, ProductFactory, UserFactory, interaction_make

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_category_cache():
    cache.delete(selectors.CATEGORY_CACHE_KEY)
    yield
    cache.delete(selectors.CATEGORY_CACHE_KEY)


@pytest.fixture
def tree():
    home = CategoryFactory(name="Home", slug="home", position=1)
    lights = CategoryFactory(name="Lights", slug="lights", parent=home, position=1)
    candles = CategoryFactory(name="Candles", slug="candles", parent=lights, position=1)
    garden = CategoryFactory(name="Garden", slug="garden", position=2)
    return {"home": home, "lights": lights, "candles": candles, "garden": garden}


def test_category_tree_is_read_once_then_cached(tree, django_assert_num_queries):
    with django_assert_num_queries(1):
        selectors.category_nodes()
    with django_assert_num_queries(0):
        assert [c.slug for c in selectors.category_top_level()] == ["home", "garden"]
        assert set(selectors.category_descendant_ids(category_id=tree["home"].pk)) == {
            tree["home"].pk,
            tree["lights"].pk,
            tree["candles"].pk,
        }
        assert [c.slug for c in selectors.category_path(category_id=tree["candles"].pk)] == [
            "home",
            "lights",
            "candles",
        ]
        assert [c.slug for c in selectors.category_children(category_id=tree["home"].pk)] == ["lights"]


def test_category_by_slug_finds_a_category_added_after_caching(tree):
    selectors.category_nodes()
    CategoryFactory(name="Toys", slug="toys")
    node = selectors.category_by_slug(slug="toys")
    assert node is not None and node.name == "Toys"
    assert selectors.category_by_slug(slug="missing") is None


def test_product_browse_filters_and_sorts(tree):
    old = timezone.now() - timedelta(days=10)
    a = ProductFactory(name="Alpha", category=tree["candles"], price=Decimal("3.00"), stock=0, created_at=old)
    b = ProductFactory(name="Bravo", category=tree["lights"], price=Decimal("7.50"))
    c = ProductFactory(name="Charlie", category=tree["home"], price=Decimal("1.00"))
    ProductFactory(name="Delta", category=tree["garden"], price=Decimal("2.00"))
    ProductFactory(name="Echo", category=tree["home"], price=Decimal("2.00"), is_active=False)
    ids = selectors.category_descendant_ids(category_id=tree["home"].pk)
    assert list(selectors.product_browse(category_ids=ids)) == [a, b, c]
    assert list(selectors.product_browse(category_ids=ids, sort="price_asc")) == [c, a, b]
    assert list(selectors.product_browse(category_ids=ids, sort="price_desc")) == [b, a, c]
    assert list(selectors.product_browse(category_ids=ids, sort="newest"))[-1] == a
    assert list(selectors.product_browse(category_ids=ids, min_price=Decimal("2"), max_price=Decimal("5"))) == [a]
    assert list(selectors.product_browse(category_ids=ids, in_stock=True)) == [b, c]
    with pytest.raises(ValueError, match="unknown sort 'cheapest'"):
        selectors.product_browse(sort="cheapest")


@pytest.mark.parametrize("postgres", [True, False], ids=["full-text", "icontains-fallback"])
def test_product_search_both_engines(tree, settings, postgres):
    if postgres and not settings.DATABASE_IS_POSTGRES:
        pytest.skip("full-text search needs PostgreSQL")
    settings.DATABASE_IS_POSTGRES = postgres
    lantern = ProductFactory(name="MOROCCAN METAL LANTERN", sku="LAN01", category=tree["lights"], description="")
    lanterns = ProductFactory(name="SET OF 3 GLASS LANTERNS", sku="LAN02", category=tree["lights"], description="")
    mug = ProductFactory(name="ENAMEL MUG", sku="MUG01", category=tree["garden"], description="A lantern-shaped handle")
    ProductFactory(name="HIDDEN LANTERN", category=tree["lights"], is_active=False)
    found = list(selectors.product_search(query="lantern"))
    assert set(found) == {lantern, lanterns, mug}
    if postgres:  # ranked: name matches (weight A) before a description match (C)
        assert found[-1] == mug
    assert set(selectors.product_search(query="lant")) == {lantern, lanterns, mug}
    assert list(selectors.product_search(query="glass lanterns")) == [lanterns]
    assert list(selectors.product_search(query="MUG01")) == [mug]
    assert list(selectors.product_search(query="   ")) == []
    assert list(selectors.product_search(query="!!! ::: &&")) == []
    assert list(selectors.product_search(query="lantern", in_stock=True, category_ids=[tree["garden"].pk])) == [mug]


def test_search_finds_products_of_a_matching_category_after_name_matches(tree, settings):
    lamp = ProductFactory(name="DESK LAMP", category=tree["candles"], description="")
    pillar = ProductFactory(name="PILLAR CANDLE", category=tree["candles"], description="")
    ProductFactory(name="SPADE", category=tree["garden"], description="")
    found = list(selectors.product_search(query="candle"))  # the "Candles" category holds the lamp
    assert found == ([pillar, lamp] if settings.DATABASE_IS_POSTGRES else [lamp, pillar])  # ranked / by name
    assert set(selectors.product_search(query="lights")) == {lamp, pillar}  # subcategories of Lights too


def test_postgres_search_uses_its_index(tree, settings):
    if not settings.DATABASE_IS_POSTGRES:
        pytest.skip("full-text search needs PostgreSQL")
    from django.contrib.postgres.search import SearchQuery
    from django.db import connection

    from shop.models import Product

    # The document the search filters on is the expression the migration indexed.
    qs = Product.objects.annotate(document=selectors._search_document()).filter(
        document=SearchQuery("heart", config="english")
    )
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # tiny test table: use an index if one fits
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "product_search_document" in plan, plan


def test_postgres_search_understands_web_syntax_and_stems(tree, settings):
    if not settings.DATABASE_IS_POSTGRES:
        pytest.skip("full-text search needs PostgreSQL")
    heart = ProductFactory(name="WHITE HANGING HEART T-LIGHT HOLDER", category=tree["lights"], description="")
    ProductFactory(name="RED HANGING STAR", category=tree["lights"], description="")
    assert list(selectors.product_search(query="hanging -star")) == [heart]
    assert list(selectors.product_search(query="hearts")) == [heart]  # stemmed
    assert list(selectors.product_search(query='"hanging heart"')) == [heart]


def test_recently_viewed_is_distinct_newest_first_and_skips_inactive():
    user = UserFactory()
    p1, p2, p3, gone = ProductFactory.create_batch(4)
    gone.is_active = False
    gone.save()
    now = timezone.now()
    for i, p in enumerate([p1, p2, p1, gone, p3, p1]):
        interaction_make(user=user, product=p, occurred_at=now - timedelta(minutes=10 - i))
    interaction_make(user=user, product=p2, kind=Interaction.Kind.PURCHASE, occurred_at=now)
    assert selectors.recently_viewed(user=user) == [p1, p3, p2]
    assert selectors.recently_viewed(user=user, n=2) == [p1, p3]
    interaction_make(session_key="anon-1", product=p2)
    assert selectors.recently_viewed(session_key="anon-1") == [p2]
    assert selectors.recently_viewed() == []


def test_recently_viewed_costs_two_queries(django_assert_num_queries):
    user = UserFactory()
    for p in ProductFactory.create_batch(12):
        interaction_make(user=user, product=p)
    with django_assert_num_queries(2):
        assert len(selectors.recently_viewed(user=user, n=8)) == 8


def test_cart_view_and_count():
    user = UserFactory()
    cart = cart_get_or_create(user=user)
    p = ProductFactory(price=Decimal("2.50"), stock=10)
    q = ProductFactory(price=Decimal("1.25"), stock=1)
    cart_add(cart=cart, product=p, quantity=2)
    cart_add(cart=cart, product=q, quantity=1)
    q.stock = 0
    q.save()
    view = selectors.cart_view(cart=cart)
    assert [(line.product, line.quantity, line.amount, line.available) for line in view.lines] == [
        (p, 2, Decimal("5.00"), True),
        (q, 1, Decimal("1.25"), False),
    ]
    assert view.total == Decimal("6.25") and view.count == 3 and not view.can_check_out
    assert selectors.cart_item_count(user=user) == 3
    assert selectors.cart_item_count(session_key="nobody") == 0
    assert selectors.cart_view(cart=None).lines == []


def test_user_data_export_holds_everything_and_only_the_users(django_assert_max_num_queries):
    cat = CategoryFactory(name="Garden", slug="garden")
    user = UserFactory(email="me@example.com", marketing_consent=False, consent_changed_at=None)
    user.interests.set([cat])
    user_consent_set(user=user, consent=True, source=ConsentChange.Source.SIGNUP)
    user_consent_set(user=user, consent=False, source=ConsentChange.Source.PREFERENCES)
    p = ProductFactory(category=cat)
    order = order_place(lines=[OrderLineIn(product=p, quantity=3)], user=user)
    cart_add(cart=cart_get_or_create(user=user), product=p)
    interaction_make(user=user, product=p, kind=Interaction.Kind.RATING, value=4)
    interaction_make(user=UserFactory(), product=p)
    with django_assert_max_num_queries(9):
        data = selectors.user_data_export(user=user)
    assert data["predictions"] is None  # none computed yet
    assert data["profile"]["email"] == "me@example.com" and data["profile"]["marketing_consent"] is False
    assert data["interests"] == [{"id": cat.pk, "name": "Garden", "slug": "garden"}]
    assert [(c["consent"], c["source"]) for c in data["consent_history"]] == [(True, "signup"), (False, "preferences")]
    assert data["orders"][0]["number"] == str(order.number) and data["orders"][0]["lines"][0]["quantity"] == 3
    assert data["cart"][0]["product_id"] == p.pk
    assert sorted(i["kind"] for i in data["interactions"]) == ["add to cart", "purchase", "rating"]
    import json

    json.dumps(data)  # JSON-ready
