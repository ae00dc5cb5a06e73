"""shop.services.customers against the real database."""

import pytest

from shop.models import ConsentChange, Interaction
from shop.services.customers import user_consent_set, user_forget, user_register
from shop.services.interactions import interaction_record
from shop.services.orders import OrderLineIn, order_place
from tests.factories import CategoryFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_register_records_consent_and_interests():
    cat = CategoryFactory()
    user = user_register(email="New@Shop.example", password="s3cret-pass!", interests=[cat], marketing_consent=True)
    assert user.email == "new@shop.example"
    assert list(user.interests.all()) == [cat]
    change = ConsentChange.objects.get(user=user)
    assert change.consent is True and change.source == "signup"
    assert user.consent_changed_at == change.changed_at


def test_consent_change_is_recorded_each_time_and_not_when_unchanged():
    user = user_register(email="c@shop.example", password=None, marketing_consent=True)
    assert user_consent_set(user=user, consent=False, source=ConsentChange.Source.PREFERENCES)
    assert not user_consent_set(user=user, consent=False, source=ConsentChange.Source.PREFERENCES)
    user.refresh_from_db()
    assert user.marketing_consent is False
    assert list(user.consent_changes.values_list("consent", "source")) == [(False, "preferences"), (True, "signup")]


def test_user_forget_deletes_history_keeps_anonymous_orders():
    user = UserFactory()
    p = ProductFactory()
    interaction_record(product=p, kind=1, user=user)
    order = order_place(user=user, lines=[OrderLineIn(product=p, quantity=1)])
    received = []
    from shop.signals import user_forgotten

    def listener(sender, user_id, **kw):
        received.append(user_id)

    user_forgotten.connect(listener)
    try:
        user_forget(user=user)
    finally:
        user_forgotten.disconnect(listener)
    assert received and Interaction.objects.count() == 0
    order.refresh_from_db()
    assert order.user is None
    assert not type(user).objects.filter(email=user.email).exists()
