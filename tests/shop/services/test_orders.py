"""shop.services.orders against the real database."""

import uuid

import pytest

from shop.models import Interaction, Order
from shop.services.errors import OutOfStock
from shop.services.orders import OrderLineIn, order_place
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_order_place_takes_stock_and_records_purchases():
    u = UserFactory()
    a, b = ProductFactory(stock=5), ProductFactory(stock=1)
    list_id = uuid.uuid4()
    order = order_place(
        user=u, lines=[OrderLineIn(product=a, quantity=2, rec_list_id=list_id), OrderLineIn(product=b, quantity=1)]
    )
    assert order.total == a.price * 2 + b.price
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.stock, b.stock) == (3, 0)
    purchases = Interaction.objects.filter(user=u, kind=Interaction.Kind.PURCHASE)
    assert sorted(purchases.values_list("value", flat=True)) == [1.0, 2.0]
    assert purchases.get(product=a).rec_list_id == list_id


def test_order_place_out_of_stock_writes_nothing():
    u = UserFactory()
    a, b = ProductFactory(stock=5), ProductFactory(stock=0)
    with pytest.raises(OutOfStock):
        order_place(user=u, lines=[OrderLineIn(product=a, quantity=1), OrderLineIn(product=b, quantity=1)])
    a.refresh_from_db()
    assert a.stock == 5 and Order.objects.count() == 0 and Interaction.objects.count() == 0


def test_order_place_untracked_stock_is_never_short_nor_taken():
    u = UserFactory()
    untracked = ProductFactory(stock=None)
    for _ in range(3):
        order_place(user=u, lines=[OrderLineIn(product=untracked, quantity=1000)])
    untracked.refresh_from_db()
    assert untracked.stock is None and untracked.in_stock
    assert Order.objects.count() == 3
