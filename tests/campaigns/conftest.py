"""Fixtures of the campaigns tests: a small store with history (so the
recommendations service has something to say), customers, a template, segments and
campaigns built through the services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from campaigns import lifecycle, services, tracking
from campaigns.models import Campaign, Delivery, EmailTemplate, Segment
from shop.models import Category, Interaction, Product, User
from shop.selectors import CATEGORY_CACHE_KEY
from shop.services.interactions import interactions_bulk_insert
from shop.services.orders import OrderLineIn, order_place
from tests.conftest import serving_caches_clear
from tests.factories import CategoryFactory, ProductFactory, UserFactory

EMAILS = Path(__file__).resolve().parents[2] / "templates" / "campaigns" / "emails"


@pytest.fixture(autouse=True)
def _fresh_serving_state(settings, tmp_path):
    """No serving state of the recommendations app carried over between tests (the
    database is rolled back, so its epochs repeat)."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.SITE_URL = "https://shop.example.com"
    serving_caches_clear(CATEGORY_CACHE_KEY)  # and the store's category tree (segments read it)
    yield
    serving_caches_clear(CATEGORY_CACHE_KEY)


@dataclass
class Store:
    home: Category
    candles: Category  # a child of home
    kitchen: Category
    products: list[Product]

    def in_category(self, category: Category) -> list[Product]:
        return [p for p in self.products if p.category_id == category.pk]


def build_store() -> Store:
    home = CategoryFactory(name="Home", slug="home")
    candles = CategoryFactory(name="Candles", slug="candles", parent=home)
    kitchen = CategoryFactory(name="Kitchen", slug="kitchen")
    products = []
    for i in range(6):
        products.append(
            ProductFactory(
                sku=f"CAN{i}",
                name=f"Candle {i}",
                slug=f"candle-{i}",
                category=candles,
                price=Decimal("4.50"),
                stock=500,
            )
        )
    for i in range(6):
        products.append(
            ProductFactory(
                sku=f"KIT{i}",
                name=f"Kettle {i}",
                slug=f"kettle-{i}",
                category=kitchen,
                price=Decimal("20.00"),
                stock=500,
            )
        )
    # Some anonymous activity, so that trending has something for everyone.
    now = timezone.now()
    rows = [
        Interaction(session_key=f"s{j}", product=p, kind=Interaction.Kind.VIEW, occurred_at=now - timedelta(hours=j))
        for j, p in enumerate(products * 2)
    ]
    interactions_bulk_insert(rows=rows)
    return Store(home=home, candles=candles, kitchen=kitchen, products=products)


@pytest.fixture
def store(db) -> Store:
    return build_store()


def make_customers(n: int, *, prefix: str = "c", **fields) -> list[User]:
    return [UserFactory(email=f"{prefix}{i}@customers.affinity.example", **fields) for i in range(n)]


def buy(user: User, products: list[Product], *, days_ago: float = 1.0, quantity: int = 1):
    """An order placed ``days_ago`` days ago (through the store's service)."""
    lines = [OrderLineIn(product=p, quantity=quantity) for p in products]
    return order_place(lines=lines, user=user, placed_at=timezone.now() - timedelta(days=days_ago))


def default_template(**overrides) -> EmailTemplate:
    fields = {
        "name": "Recommended",
        "subject": "{{ greeting_name }}, picked for you",
        "html_body": (EMAILS / "recommendations.html").read_text(encoding="utf-8"),
        "text_body": (EMAILS / "recommendations.txt").read_text(encoding="utf-8"),
    }
    fields.update(overrides)
    template = EmailTemplate(**fields)
    template.full_clean()
    template.save()
    return template


@pytest.fixture
def template(db) -> EmailTemplate:
    return default_template()


def make_segment(rules: dict | None = None, name: str = "Everyone with consent") -> Segment:
    segment = Segment(name=name, rules=rules or {"all": [{"rule": "consent"}]})
    segment.full_clean()
    segment.save()
    return segment


def make_campaign(template: EmailTemplate, segment: Segment | None = None, **kwargs) -> Campaign:
    kwargs.setdefault("name", "Spring picks")
    if segment is None and kwargs.get("kind", Campaign.Kind.ONE_OFF) == Campaign.Kind.ONE_OFF:
        segment = make_segment()
    return services.campaign_create(template=template, segment=segment, **kwargs)


def launch(campaign: Campaign) -> Campaign:
    """Schedule now and build the audience in this process (the launch task's work,
    without queueing the send tasks)."""
    services.campaign_schedule(campaign=campaign)
    lifecycle.campaign_launch(campaign_id=campaign.pk)
    campaign.refresh_from_db()
    return campaign


def sent_delivery(campaign: Campaign, user: User, *, days_ago: float = 3, **fields) -> Delivery:
    """A delivery of ``campaign`` to ``user`` sent ``days_ago`` days ago."""
    at = timezone.now() - timedelta(days=days_ago)
    fields.setdefault("variant", campaign.variants.first())
    return Delivery.objects.create(
        campaign=campaign,
        user=user,
        email=user.email,
        status=Delivery.Status.SENT,
        sent_at=at,
        processed_at=at,
        message_id=f"<{user.pk}.{campaign.pk}@t>",
        **fields,
    )


def click(delivery: Delivery, *, days_ago: float) -> None:
    """A click in the email ``days_ago`` days ago."""
    tracking.delivery_click_record(delivery=delivery, path="/", at=timezone.now() - timedelta(days=days_ago))


@pytest.fixture
def unread_queue():
    """For tests that launch campaigns with committed transactions but send in-process:
    the send tasks the launch queues go to a queue of their own, emptied afterwards."""
    from shop.celery import app

    queue = f"test-unread-{uuid.uuid4().hex[:10]}"
    old_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    yield queue
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)
    app.conf.task_default_queue = old_queue
