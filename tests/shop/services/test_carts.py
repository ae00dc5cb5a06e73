"""shop.services.carts against the real database."""

from datetime import timedelta

import pytest
from django.utils import timezone

from shop.models import Cart, Interaction, Product
from shop.services.carts import cart_add, cart_checkout, cart_get_or_create, cart_merge, carts_expire
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_anonymous_cart_is_kept_on_login():
    p, q = ProductFactory(), ProductFactory()
    anon = cart_get_or_create(session_key="sess-1")
    cart_add(cart=anon, product=p, quantity=2)
    user = UserFactory()
    mine = cart_get_or_create(user=user)
    cart_add(cart=mine, product=p)
    cart_add(cart=mine, product=q)
    cart = cart_merge(session_key="sess-1", user=user)
    assert dict(cart.items.values_list("product_id", "quantity")) == {p.pk: 3, q.pk: 1}
    assert not Cart.objects.filter(session_key="sess-1").exists()
    # The anonymous session's events now belong to the customer.
    assert Interaction.objects.filter(session_key="sess-1", user=user).count() == 1


def test_checkout_creates_order_and_empties_cart():
    user = UserFactory()
    p = ProductFactory(stock=3)
    cart = cart_get_or_create(user=user)
    cart_add(cart=cart, product=p, quantity=2)
    order = cart_checkout(cart=cart)
    assert order.lines.get().quantity == 2 and cart.items.count() == 0


def test_carts_expire_removes_only_old_anonymous_carts():
    old = Cart.objects.create(session_key="old")
    Cart.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=40))
    Cart.objects.create(session_key="fresh")
    Cart.objects.create(user=UserFactory())
    assert carts_expire(days=30) == 1
    assert set(Cart.objects.values_list("session_key", flat=True)) == {"fresh", None}
    assert Product.objects.count() == 0
