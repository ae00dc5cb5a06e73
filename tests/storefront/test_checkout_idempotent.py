"""Checkout is idempotent per cart: a double-submitted (or concurrently submitted)
checkout places one order and takes stock once; the repeats go to that order."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.test import Client
from django.urls import reverse

from shop.models import Cart, Order, Product
from shop.services.carts import cart_add, cart_checkout, cart_get_or_create
from tests.factories import ProductFactory, UserFactory


def _cart_with(user, product, quantity):
    cart = cart_get_or_create(user=user)
    cart_add(cart=cart, product=product, quantity=quantity)
    return cart


@pytest.mark.django_db
def test_a_second_submit_goes_to_the_order_the_first_placed(client):
    user, p = UserFactory(), ProductFactory(stock=10)
    _cart_with(user, p, 3)
    client.force_login(user)
    first = client.post(reverse("shop:checkout"))
    order = Order.objects.get()
    assert first.status_code == 302 and first.url == reverse("shop:order", args=[order.number])
    again = client.post(reverse("shop:checkout"))
    assert again.status_code == 302 and again.url == first.url
    assert Order.objects.count() == 1 and Product.objects.get(pk=p.pk).stock == 7
    assert Cart.objects.get(user=user).order_id == order.pk


@pytest.mark.django_db
def test_cart_checkout_service_is_idempotent_and_a_later_cart_orders_again():
    user, p = UserFactory(), ProductFactory(stock=10)
    cart = _cart_with(user, p, 2)
    order = cart_checkout(cart=cart)
    assert cart_checkout(cart=Cart.objects.get(pk=cart.pk)) == order
    assert Order.objects.count() == 1 and Product.objects.get(pk=p.pk).stock == 8
    _cart_with(user, p, 1)  # a new purchase from the same cart is a new order
    assert cart_checkout(cart=cart) != order
    assert Order.objects.count() == 2 and Product.objects.get(pk=p.pk).stock == 7


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="needs concurrent writers: SQLite's test database serialises connections (table locked), "
    "it cannot run ten checkouts at once",
)
def test_ten_concurrent_checkouts_of_one_cart_place_one_order(transactional_db):
    user, p = UserFactory(), ProductFactory(stock=50)
    _cart_with(user, p, 2)
    clients = []
    for _ in range(10):
        c = Client()
        c.force_login(user)
        clients.append(c)
    barrier = threading.Barrier(len(clients))
    results: list = [None] * len(clients)

    def submit(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = clients[i].post(reverse("shop:checkout"))
        except Exception as exc:  # noqa: BLE001 -- any failure is reported by the assert below
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    order = Order.objects.get()  # exactly one
    assert Product.objects.get(pk=p.pk).stock == 48  # taken once
    where = reverse("shop:order", args=[order.number])
    assert [(getattr(r, "status_code", r), getattr(r, "url", None)) for r in results] == [(302, where)] * 10
