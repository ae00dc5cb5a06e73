"""Factories for tests (factory_boy). One place for all apps' test data."""

from __future__ import annotations

from decimal import Decimal

import factory
from django.utils import timezone

from shop.models import Category, Interaction, Order, OrderLine, Product, User
from shop.services.interactions import interaction_record


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Category {n}")
    slug = factory.Sequence(lambda n: f"category-{n}")
    colour = "#3366aa"


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU{n:05d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    slug = factory.Sequence(lambda n: f"product-{n}")
    description = "A useful thing."
    category = factory.SubFactory(CategoryFactory)
    price = Decimal("9.99")
    stock = 100
    is_active = True


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"customer{n}@customers.affinity.example")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    country = "United Kingdom"
    marketing_consent = True
    consent_changed_at = factory.LazyFunction(timezone.now)
    password = factory.django.Password("correct-horse-battery")


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    user = factory.SubFactory(UserFactory)
    total = Decimal("0")


class OrderLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrderLine

    order = factory.SubFactory(OrderFactory)
    product = factory.SubFactory(ProductFactory)
    quantity = 1
    unit_price = Decimal("9.99")


def interaction_make(
    *, user=None, product, kind=Interaction.Kind.VIEW, session_key="", value=1.0, occurred_at=None, **extra
) -> Interaction:
    """Create an interaction through the one writer, `shop.services.interactions`."""
    return interaction_record(
        product=product,
        kind=kind,
        user=user,
        session_key=session_key,
        value=value,
        occurred_at=occurred_at,
        **extra,
    )
