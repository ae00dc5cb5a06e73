"""Rules the database itself enforces."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from shop.models import Cart, CartItem, Category, Interaction, Order, OrderLine, Product, User
from tests.factories import CategoryFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def _violates(fn) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        fn()


def test_negative_price_rejected_by_database():
    p = ProductFactory()
    _violates(lambda: Product.objects.filter(pk=p.pk).update(price=Decimal("-0.01")))


def test_duplicate_sku_rejected_by_database():
    ProductFactory(sku="85123A")
    _violates(lambda: ProductFactory(sku="85123A"))


def test_negative_stock_and_bad_currency_rejected():
    p = ProductFactory()
    _violates(lambda: Product.objects.filter(pk=p.pk).update(stock=-1))
    _violates(lambda: Product.objects.filter(pk=p.pk).update(currency="gb1"))


def test_user_email_unique_and_login_by_email():
    u = User.objects.create_user(email="Ann@Example.com", password="pw-123456-x")
    assert u.email == "ann@example.com"
    assert User.USERNAME_FIELD == "email"
    _violates(lambda: User.objects.create_user(email="ann@example.com"))


def test_interaction_needs_user_or_session():
    p = ProductFactory()
    _violates(lambda: Interaction.objects.create(product=p, kind=Interaction.Kind.VIEW))


def test_interaction_rating_range_and_kind_checked():
    p, u = ProductFactory(), UserFactory()
    _violates(lambda: Interaction.objects.create(product=p, user=u, kind=Interaction.Kind.RATING, value=7))
    _violates(lambda: Interaction.objects.create(product=p, user=u, kind=42))


def test_interaction_event_id_unique():
    p, u = ProductFactory(), UserFactory()
    Interaction.objects.create(product=p, user=u, kind=1, event_id="e-1")
    _violates(lambda: Interaction.objects.create(product=p, user=u, kind=1, event_id="e-1"))


def test_category_tree_and_unique_name_per_parent():
    home = CategoryFactory(name="Home", slug="home")
    candles = CategoryFactory(name="Candles", slug="home-candles", parent=home)
    assert candles.ancestors() == [home]
    _violates(lambda: Category.objects.create(name="Candles", slug="other-candles", parent=home))
    _violates(lambda: Category.objects.create(name="Bad", slug="bad", colour="red"))


def test_cart_item_quantity_and_uniqueness():
    cart = Cart.objects.create(session_key="s1")
    p = ProductFactory()
    CartItem.objects.create(cart=cart, product=p, quantity=1)
    _violates(lambda: CartItem.objects.create(cart=cart, product=p, quantity=2))
    _violates(lambda: Cart.objects.create())


def test_order_line_positive_quantity_and_price():
    order = Order.objects.create(total=0)
    p = ProductFactory()
    _violates(lambda: OrderLine.objects.create(order=order, product=p, quantity=0, unit_price=1))
    _violates(lambda: OrderLine.objects.create(order=order, product=p, quantity=1, unit_price=-1))
    _violates(lambda: Order.objects.filter(pk=order.pk).update(total=-5))


def test_untracked_stock_is_always_available():
    p = ProductFactory(stock=None)
    assert p.in_stock and p.has_stock_for(10**6) and not p.stock_tracked
    tracked = ProductFactory(stock=2)
    assert tracked.in_stock and tracked.has_stock_for(2) and not tracked.has_stock_for(3)
    assert not ProductFactory(stock=0).in_stock


def test_stock_must_not_be_negative_but_may_be_null():
    p = ProductFactory(stock=None)
    _violates(lambda: Product.objects.filter(pk=p.pk).update(stock=-1))
