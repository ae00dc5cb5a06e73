"""Fixtures of the recommendations tests: a small store whose shoppers have clear
tastes (each customer sticks to one category), and a clean serving state."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from shop.models import Category, Interaction, Product, User
from shop.services.interactions import interactions_bulk_insert
from tests.conftest import serving_caches_clear
from tests.factories import CategoryFactory, ProductFactory, UserFactory


@pytest.fixture(autouse=True)
def _fresh_serving_state(settings, tmp_path):
    """Artifacts in a private folder; no serving state carried over between tests
    (the database is rolled back, so epochs repeat)."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    serving_caches_clear()
    yield
    serving_caches_clear()


@dataclass
class Store:
    categories: list[Category]
    products: list[Product]  # products[c * per_category + i] is in categories[c]
    customers: list[User]  # customers[u] likes categories[u % len(categories)]
    per_category: int
    by_category: dict[int, list[Product]] = field(default_factory=dict)

    def taste(self, user: User) -> Category:
        return self.categories[self.customers.index(user) % len(self.categories)]


def build_store(
    *,
    n_categories: int = 4,
    per_category: int = 10,
    n_customers: int = 60,
    events: int = 14,
    days: int = 60,
    seed: int = 7,
) -> Store:
    """Customers who stay in their category: any sensible model recommends from it."""
    rng = random.Random(seed)
    categories = [CategoryFactory(name=f"Taste {c}", slug=f"taste-{c}") for c in range(n_categories)]
    products = []
    for c, category in enumerate(categories):
        for i in range(per_category):
            products.append(
                ProductFactory(
                    sku=f"T{c}-{i:03d}",
                    name=f"{['Kettle', 'Candle', 'Lamp', 'Mug', 'Scarf', 'Vase'][c % 6]} {i}",
                    slug=f"t{c}-{i}",
                    category=category,
                    price=Decimal("5.00"),
                    stock=50,
                    description=f"A {['kitchen', 'home', 'light', 'tea', 'warm', 'flower'][c % 6]} thing number {i}",
                )
            )
    customers = [UserFactory(email=f"taste{u}@customers.affinity.example") for u in range(n_customers)]
    now = timezone.now()
    rows = []
    for u, user in enumerate(customers):
        c = u % n_categories
        pool = products[c * per_category : (c + 1) * per_category]
        # popular items first in each category (power law), so neighbours are meaningful
        weights = [1.0 / (i + 1) for i in range(per_category)]
        for _ in range(events):
            product = rng.choices(pool, weights=weights)[0]
            kind = rng.choice(
                [Interaction.Kind.VIEW, Interaction.Kind.VIEW, Interaction.Kind.ADD_TO_CART, Interaction.Kind.PURCHASE]
            )
            rows.append(
                Interaction(
                    user=user,
                    product=product,
                    kind=kind,
                    value=1.0,
                    occurred_at=now - timedelta(days=rng.random() * days, minutes=5),
                )
            )
    interactions_bulk_insert(rows=rows)
    store = Store(categories, products, customers, per_category)
    store.by_category = {
        cat.pk: products[c * per_category : (c + 1) * per_category] for c, cat in enumerate(categories)
    }
    return store


@pytest.fixture
def store(db) -> Store:
    return build_store()


def train(algorithm: str, params: dict | None = None, slot: str = "default"):
    """Create and run a training in this process (the version, finished)."""
    from recommendations import services

    version = services.model_version_create(algorithm=algorithm, params=params or {}, slot=slot)
    return services.model_train(version_id=version.pk)


@pytest.fixture
def trained(store, settings):
    """The store with an item-kNN model trained in this process and active."""
    from recommendations import services

    version = services.model_version_create(algorithm="item_knn", params={"k": 20})
    version = services.model_train(version_id=version.pk)
    assert version.status == "succeeded", version.error
    assert version.is_active
    return version
