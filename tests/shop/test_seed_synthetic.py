"""seed_synthetic: the generator's structure (pure) and the store it writes; the
bulk-load path it takes (shop.bulk: indexes dropped and rebuilt exactly)."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Min

from shop.importers import synthetic
from shop.importers.synthetic_load import synthetic_seed
from shop.models import Category, ConsentChange, Interaction, Order, OrderLine, Product, User
from shop.services.interactions import interactions_bulk_copy
from tests.shop.test_bulk import table_schema

UTC = UTC
END = datetime(2025, 3, 31, tzinfo=UTC)


@pytest.fixture(scope="module")
def store():
    return synthetic.generate(users=2000, products=1500, interactions=60_000, seed=3, categories=12, end=END)


def test_exact_counts_and_kinds(store):
    assert len(store.event_kind) == 60_000
    assert store.n_users == 2000 and store.n_products == 1500
    assert len(store.categories) == 12 and len(set(store.categories)) == 12
    assert set(np.unique(store.event_kind)) == {synthetic.VIEW, synthetic.ADD_TO_CART, synthetic.PURCHASE}
    n = np.bincount(store.event_kind)
    assert n[synthetic.VIEW] > n[synthetic.ADD_TO_CART] > n[synthetic.PURCHASE] > 0
    # One order line per purchase event; every order has a line.
    assert len(store.line_order) == n[synthetic.PURCHASE]
    assert set(np.unique(store.line_order)) == set(range(len(store.order_user)))


def test_deterministic_for_a_seed(store):
    again = synthetic.generate(users=2000, products=1500, interactions=60_000, seed=3, categories=12, end=END)
    for name in ("event_user", "event_product", "event_kind", "event_time_us", "product_price_pence", "line_quantity"):
        assert np.array_equal(getattr(store, name), getattr(again, name)), name
    assert store.product_name == again.product_name and store.user_last == again.user_last
    other = synthetic.generate(users=2000, products=1500, interactions=60_000, seed=4, categories=12, end=END)
    assert not np.array_equal(store.event_product, other.event_product)


def test_popularity_is_a_power_law(store):
    counts = np.sort(np.bincount(store.event_product, minlength=store.n_products))[::-1]
    top1 = counts[: store.n_products // 100].sum() / counts.sum()
    assert top1 > 0.25  # the top 1% of products get a large share
    assert np.median(counts) < counts.mean() / 2  # most products are rarely touched
    users = np.bincount(store.event_user, minlength=store.n_users)
    assert users.max() > 10 * np.median(users)  # a few very active shoppers


def test_shoppers_have_category_tastes(store):
    """Each shopper's events concentrate on few categories (Dirichlet, alpha < 1)."""
    cats = store.product_category[store.event_product]
    shares = []
    for u in np.flatnonzero(np.bincount(store.event_user) >= 30)[:200]:
        mine = np.bincount(cats[store.event_user == u], minlength=len(store.categories))
        shares.append(np.sort(mine)[::-1][:2].sum() / mine.sum())
    assert np.mean(shares) > 0.6  # two favourite categories hold most of a shopper's events


def test_funnel_view_before_cart_before_purchase(store):
    first = defaultdict(dict)
    for u, p, k, t in zip(
        store.event_user.tolist(), store.event_product.tolist(), store.event_kind.tolist(), store.event_time_us.tolist()
    ):
        d = first[(u, p)]
        d[k] = min(d.get(k, t), t)
    bought = 0
    for d in first.values():
        if synthetic.ADD_TO_CART in d:
            assert d[synthetic.VIEW] <= d[synthetic.ADD_TO_CART]
        if synthetic.PURCHASE in d:
            bought += 1
            assert d[synthetic.VIEW] <= d[synthetic.ADD_TO_CART] <= d[synthetic.PURCHASE]
    assert bought > 100


def test_time_span_seasonality_and_order(store):
    times = store.event_time_us
    assert np.all(np.diff(times) >= 0)  # in time order
    start = int((END - timedelta(days=180)).timestamp() * 1e6)
    assert times.min() >= start - 3 * 86_400 * 1_000_000 and times.max() <= int(END.timestamp() * 1e6)
    days = (times // 86_400_000_000 + 3) % 7  # 0 = Monday
    per_day = np.bincount(days, minlength=7) / len(days)
    assert per_day[5] > per_day[1] and per_day[6] > per_day[2]  # weekends are busier
    assert np.array_equal(np.sort(store.order_time_us), np.sort(store.order_time_us))


def test_categories_beyond_the_standard_tree():
    paths = synthetic.choose_categories(40)
    assert len(paths) == 40 and len(set(paths)) == 40
    assert all(" > " in p for p in paths)
    assert synthetic.choose_categories(3) == [
        "Home > Candles & Lights",
        "Kitchen > Cake & Baking",
        "Bags > Shopping & Travel Bags",
    ]


def test_generator_rejects_nonsense():
    with pytest.raises(ValueError):
        synthetic.generate(users=0, products=1, interactions=1)
    with pytest.raises(ValueError):
        synthetic.generate(users=1, products=1, interactions=1, days=0)


def test_tiny_store_still_has_exact_counts():
    s = synthetic.generate(users=1, products=1, interactions=7, seed=9, categories=3, end=END)
    assert len(s.event_kind) == 7 and set(s.event_product.tolist()) == {0}


# --- in the database -------------------------------------------------------------------------------
def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_synthetic", *args, "--no-progress", "--end-date", "2025-03-31", stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_seed_writes_the_generated_store():
    out = seed("--users", "300", "--products", "200", "--interactions", "5000", "--seed", "7", "--categories", "8")
    s = synthetic.generate(users=300, products=200, interactions=5000, seed=7, categories=8, end=END)
    assert "Synthetic store (seed 7) created" in out
    assert Product.objects.filter(sku__startswith="SYN7-").count() == 200
    assert User.objects.filter(external_id__startswith="syn7-").count() == 300
    assert Interaction.objects.count() == 5000
    kinds = dict(Interaction.objects.values_list("kind").annotate(n=Count("id")))
    expected = np.bincount(s.event_kind)
    assert kinds == {k: int(expected[k]) for k in (1, 3, 5)}
    assert Order.objects.count() == len(s.order_user)
    assert OrderLine.objects.count() == kinds[Interaction.Kind.PURCHASE]
    assert ConsentChange.objects.filter(source=ConsentChange.Source.IMPORT).count() == 300
    assert User.objects.filter(marketing_consent=True).count() == int(s.user_consent.sum())
    assert Category.objects.filter(parent__isnull=False, products__isnull=False).distinct().count() <= 8
    # Values survive the trip: a product's price, an order's total, times aware.
    p = Product.objects.get(sku="SYN7-0000001")
    assert int(p.price * 100) == int(s.product_price_pence[0]) and p.name == s.product_name[0]
    for order in Order.objects.prefetch_related("lines")[:20]:
        assert order.total == sum(l.unit_price * l.quantity for l in order.lines.all())
        assert order.placed_at.tzinfo is not None and order.user_id is not None
    # Funnel in the database: first view <= first cart <= first purchase per customer-product.
    firsts = defaultdict(dict)
    for row in Interaction.objects.values("user_id", "product_id", "kind").annotate(t=Min("occurred_at")):
        firsts[(row["user_id"], row["product_id"])][row["kind"]] = row["t"]
    for d in firsts.values():
        if 5 in d:
            assert d[1] <= d[3] <= d[5]
    # The order's time is its purchases' time.
    order = Order.objects.first()
    assert set(
        Interaction.objects.filter(user=order.user_id, kind=5, occurred_at=order.placed_at).values_list(
            "product_id", flat=True
        )
    ) == set(order.lines.values_list("product_id", flat=True))


@pytest.mark.django_db
def test_same_seed_twice_is_refused_and_another_seed_adds_a_second_store():
    seed("--users", "50", "--products", "40", "--interactions", "500", "--seed", "1")
    before = Interaction.objects.count()
    with pytest.raises(CommandError, match="seed 1 is already in this database"):
        seed("--users", "50", "--products", "40", "--interactions", "500", "--seed", "1")
    assert Interaction.objects.count() == before
    seed("--users", "50", "--products", "40", "--interactions", "500", "--seed", "2")
    assert Interaction.objects.count() == 1000 and Product.objects.count() == 80


@pytest.mark.django_db
def test_bad_arguments():
    with pytest.raises(CommandError, match="positive integer"):
        call_command("seed_synthetic", "--users", "0", "--products", "1", "--interactions", "1")
    with pytest.raises(CommandError, match="not YYYY-MM-DD"):
        call_command(
            "seed_synthetic",
            "--users",
            "1",
            "--products",
            "1",
            "--interactions",
            "1",
            "--end-date",
            "31/03/2025",
            "--no-progress",
        )
    with pytest.raises(CommandError, match="in the future"):
        call_command(
            "seed_synthetic",
            "--users",
            "1",
            "--products",
            "1",
            "--interactions",
            "1",
            "--end-date",
            "2999-01-01",
            "--no-progress",
        )
    assert not Product.objects.exists()


# --- a large seed takes the bulk path of shop.bulk ----------------------------------------------
@pytest.mark.django_db
def test_large_seed_defers_and_rebuilds_indexes_exactly():
    """120k events into empty tables take the bulk path: indexes (and, on PostgreSQL,
    foreign keys) are dropped and rebuilt inside the transaction."""
    tables = [Interaction._meta.db_table, OrderLine._meta.db_table, Product._meta.db_table]
    before = table_schema(tables)
    report = synthetic_seed(users=3000, products=1000, interactions=120_000, seed=11, end=END)
    assert report.bulk_load is True
    assert table_schema(tables) == before
    assert Interaction.objects.count() == 120_000
    # The rebuilt foreign keys still hold the rows to the rules.
    with pytest.raises(IntegrityError), transaction.atomic():
        interactions_bulk_copy(rows=[(None, "s", 10**12, 1, 1.0, END, 4)])
        connection.check_constraints()  # deferred foreign keys, checked now
