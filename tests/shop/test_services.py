"""shop.services against the real database."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from shop import services
from shop.models import Cart, ConsentChange, Interaction, Order, Product
from shop.services import InteractionIn, OutOfStock, ValidationFailed
from tests.factories import CategoryFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_register_records_consent_and_interests():
    cat = CategoryFactory()
    user = services.user_register(
        email="New@Shop.example", password="s3cret-pass!", interests=[cat], marketing_consent=True
    )
    assert user.email == "new@shop.example"
    assert list(user.interests.all()) == [cat]
    change = ConsentChange.objects.get(user=user)
    assert change.consent is True and change.source == "signup"
    assert user.consent_changed_at == change.changed_at


def test_consent_change_is_recorded_each_time_and_not_when_unchanged():
    user = services.user_register(email="c@shop.example", password=None, marketing_consent=True)
    assert services.user_consent_set(user=user, consent=False, source=ConsentChange.Source.PREFERENCES)
    assert not services.user_consent_set(user=user, consent=False, source=ConsentChange.Source.PREFERENCES)
    user.refresh_from_db()
    assert user.marketing_consent is False
    assert list(user.consent_changes.values_list("consent", "source")) == [(False, "preferences"), (True, "signup")]


def test_interaction_record_validates():
    p = ProductFactory()
    with pytest.raises(ValidationFailed, match="user or a session_key"):
        services.interaction_record(product=p, kind=Interaction.Kind.VIEW)
    with pytest.raises(ValidationFailed, match="finite"):
        services.interaction_record(product=p, kind=Interaction.Kind.VIEW, session_key="s", value=float("nan"))
    with pytest.raises(ValidationFailed, match="future"):
        services.interaction_record(product=p, kind=1, session_key="s", occurred_at=timezone.now() + timedelta(days=1))
    assert Interaction.objects.count() == 0
    i = services.interaction_record(product=p, kind=Interaction.Kind.VIEW, session_key="s")
    assert i.pk and i.source == Interaction.Source.WEB


def test_interaction_record_is_idempotent_with_event_id():
    p, u = ProductFactory(), UserFactory()
    a = services.interaction_record(product=p, kind=1, user=u, event_id="evt-1")
    b = services.interaction_record(product=p, kind=1, user=u, event_id="evt-1")
    assert a.pk == b.pk and Interaction.objects.count() == 1


def test_bulk_record_all_or_nothing_names_every_bad_row():
    p, u = ProductFactory(), UserFactory()
    events = [
        InteractionIn(product_id=p.pk, kind=1, user_id=u.pk),
        InteractionIn(product_id=999999, kind=1, user_id=u.pk),
        InteractionIn(product_id=p.pk, kind=99, session_key="x"),
    ]
    with pytest.raises(ValidationFailed) as exc:
        services.interactions_bulk_record(events=events)
    assert [(e.index, e.field) for e in exc.value.errors] == [(1, "product"), (2, "kind")]
    assert Interaction.objects.count() == 0


def test_bulk_record_partial_keeps_good_rows_and_skips_known_event_ids():
    p, u = ProductFactory(), UserFactory()
    events = [
        InteractionIn(product_id=p.pk, kind=1, user_id=u.pk, event_id="a"),
        InteractionIn(product_id=p.pk, kind=5, user_id=u.pk, value=-1, event_id="b"),
        InteractionIn(product_id=p.pk, kind=3, session_key="anon", event_id="c"),
    ]
    result = services.interactions_bulk_record(events=events, partial=True)
    assert (result.created, result.duplicates) == (2, 0)
    assert [e.index for e in result.errors] == [1]
    again = services.interactions_bulk_record(events=events, partial=True)
    assert (again.created, again.duplicates) == (0, 2)
    assert Interaction.objects.count() == 2


def test_order_place_takes_stock_and_records_purchases():
    u = UserFactory()
    a, b = ProductFactory(stock=5), ProductFactory(stock=1)
    list_id = uuid.uuid4()
    order = services.order_place(
        user=u,
        lines=[
            services.OrderLineIn(product=a, quantity=2, rec_list_id=list_id),
            services.OrderLineIn(product=b, quantity=1),
        ],
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
        services.order_place(
            user=u, lines=[services.OrderLineIn(product=a, quantity=1), services.OrderLineIn(product=b, quantity=1)]
        )
    a.refresh_from_db()
    assert a.stock == 5 and Order.objects.count() == 0 and Interaction.objects.count() == 0


def test_anonymous_cart_is_kept_on_login():
    p, q = ProductFactory(), ProductFactory()
    anon = services.cart_get_or_create(session_key="sess-1")
    services.cart_add(cart=anon, product=p, quantity=2)
    user = UserFactory()
    mine = services.cart_get_or_create(user=user)
    services.cart_add(cart=mine, product=p)
    services.cart_add(cart=mine, product=q)
    cart = services.cart_merge(session_key="sess-1", user=user)
    assert dict(cart.items.values_list("product_id", "quantity")) == {p.pk: 3, q.pk: 1}
    assert not Cart.objects.filter(session_key="sess-1").exists()
    # The anonymous session's events now belong to the customer.
    assert Interaction.objects.filter(session_key="sess-1", user=user).count() == 1


def test_checkout_creates_order_and_empties_cart():
    user = UserFactory()
    p = ProductFactory(stock=3)
    cart = services.cart_get_or_create(user=user)
    services.cart_add(cart=cart, product=p, quantity=2)
    order = services.cart_checkout(cart=cart)
    assert order.lines.get().quantity == 2 and cart.items.count() == 0


def test_user_forget_deletes_history_keeps_anonymous_orders():
    user = UserFactory()
    p = ProductFactory()
    services.interaction_record(product=p, kind=1, user=user)
    order = services.order_place(user=user, lines=[services.OrderLineIn(product=p, quantity=1)])
    received = []
    from shop.signals import user_forgotten

    def listener(sender, user_id, **kw):
        received.append(user_id)

    user_forgotten.connect(listener)
    try:
        services.user_forget(user=user)
    finally:
        user_forgotten.disconnect(listener)
    assert received and Interaction.objects.count() == 0
    order.refresh_from_db()
    assert order.user is None
    assert not type(user).objects.filter(email=user.email).exists()


def test_carts_expire_removes_only_old_anonymous_carts():
    old = Cart.objects.create(session_key="old")
    Cart.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=40))
    Cart.objects.create(session_key="fresh")
    Cart.objects.create(user=UserFactory())
    assert services.carts_expire(days=30) == 1
    assert set(Cart.objects.values_list("session_key", flat=True)) == {"fresh", None}
    assert Product.objects.count() == 0
