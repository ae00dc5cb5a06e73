"""The live trends board's analytics and predicted audiences (recommendations.trends)
on fixture data whose answers are known: a product that rises in the last week of
data that ends in 2011, and customers whose histories say who wants a new product."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache

from recommendations import noise, services, trends
from shop.models import Interaction
from shop.services.interactions import interactions_bulk_insert
from tests.factories import CategoryFactory, ProductFactory, UserFactory, interaction_make

from .conftest import build_store, train

END = datetime(2011, 12, 9, 12, 0, tzinfo=UTC)  # the data ends here, long before "now"


@pytest.fixture(autouse=True)
def _no_cached_answers(settings):
    settings.AFFINITY_AUDIENCE_CACHE_SECONDS = 0
    cache.delete(noise.NOISE_CACHE_KEY)
    yield
    cache.delete(noise.NOISE_CACHE_KEY)


def events(product, per_day: float, *, start_days: float, end_days: float, kind=Interaction.Kind.VIEW, tag=""):
    """``per_day`` events of ``product`` spread evenly between ``start_days`` and
    ``end_days`` before END, each from its own anonymous session (no actor is a bot)."""
    n = round(per_day * (start_days - end_days))
    step = (start_days - end_days) / max(n, 1)
    return [
        Interaction(
            product=product,
            kind=kind,
            session_key=f"{tag}{product.pk}-{start_days}-{i}",
            value=1.0,
            occurred_at=END - timedelta(days=start_days - i * step - step / 2),
        )
        for i in range(n)
    ]


@pytest.fixture
def board_store(db):
    home, garden = CategoryFactory(name="Home", slug="home"), CategoryFactory(name="Garden", slug="garden")
    steady = ProductFactory(name="Steady lamp", category=home)  # busy, unchanged
    rising = ProductFactory(name="Rising planter", category=garden)  # quiet, then a burst
    mild = ProductFactory(name="Mild vase", category=home)  # a small, insignificant bump
    falling = ProductFactory(name="Falling rug", category=home)
    rows = [
        *events(steady, 20, start_days=63, end_days=0),
        *events(rising, 0.25, start_days=63, end_days=7),
        *events(rising, 6, start_days=7, end_days=0),
        *events(mild, 2, start_days=63, end_days=7),
        *events(mild, 2.3, start_days=7, end_days=0),
        *events(falling, 5, start_days=63, end_days=7),
        *events(falling, 1, start_days=7, end_days=0),
    ]
    interactions_bulk_insert(rows=rows)
    return {"steady": steady, "rising": rising, "mild": mild, "falling": falling, "garden": garden}


def test_the_rising_product_tops_the_board_with_windows_at_the_newest_event(board_store):
    board = trends.trends_board(window_hours=168, baseline_days=56)
    assert board.newest is not None and abs((board.newest - END).total_seconds()) < 86400
    assert board.recent_start == board.newest - timedelta(days=7)
    assert board.baseline_start == board.recent_start - timedelta(days=56)
    names = [r.name for r in board.products]
    assert names[0] == "Rising planter"
    top = board.products[0]
    assert top.recent == 42 and top.baseline == 14
    assert top.velocity > 5 and top.z > 5
    # busy but steady, a bump within chance, and a fall are not "rising"
    assert "Steady lamp" not in names and "Falling rug" not in names and "Mild vase" not in names
    assert [c.name for c in board.categories][0] == "Garden"
    # raw counts would have put the steady lamp first
    assert board.recent_total > 0 and board.baseline_total > 0
    # the chart has the top product's events per bucket
    line = board.series["lines"][0]
    assert line["name"] == "Rising planter" and sum(line["counts"]) >= 42
    assert len(board.series["edges"]) == trends.SERIES_BUCKETS


def test_the_board_follows_new_events(board_store):
    before = [r.name for r in trends.trends_board().products]
    assert "Mild vase" not in before
    # a burst on the vase in the last day of data
    interactions_bulk_insert(rows=events(board_store["mild"], 40, start_days=1, end_days=0, tag="burst"))
    after = [r.name for r in trends.trends_board().products]
    assert "Mild vase" in after


def test_purchases_signal_and_an_empty_store(db):
    assert trends.trends_board().products == []
    assert trends.trends_board().newest is None


def test_bad_board_parameters_are_named(db):
    with pytest.raises(trends.TrendsError, match="signal"):
        trends.trends_board(signal="clicks")
    with pytest.raises(trends.TrendsError, match="window"):
        trends.trends_board(window_hours=5)
    with pytest.raises(trends.TrendsError, match="baseline"):
        trends.trends_board(baseline_days=0)


def test_new_products_are_those_without_history(board_store):
    fresh = ProductFactory(name="Brand new bird bath", category=board_store["garden"])
    found = trends.new_products(size=10)
    assert [p.id for p in found] == [fresh.pk]
    assert found[0].events == 0


# --- predicted audiences -------------------------------------------------------------------
@pytest.fixture
def taste_store(db):
    return build_store(n_categories=3, per_category=8, n_customers=30, events=12)


def new_kettle(store):
    """A new product like category 0's (kettles, "kitchen thing"), with no events."""
    return ProductFactory(
        sku="NEW-KETTLE",
        name="Kettle 99",
        slug="kettle-99",
        category=store.categories[0],
        price=Decimal("5.00"),
        description="A kitchen thing number 99",
    )


def test_content_ranks_who_bought_similar_items_first_for_a_new_product(taste_store):
    product = new_kettle(taste_store)
    found = trends.likely_buyers(product_id=product.pk, size=30)
    assert found.method == "content"  # no model at all
    assert found.user_ids, "somebody should be predicted"
    tastes = [taste_store.customers.index(taste_store_customer(taste_store, uid)) % 3 for uid in found.user_ids]
    # every kettle customer (taste 0) ranks above every other customer
    n_kettle = sum(1 for u in range(len(taste_store.customers)) if u % 3 == 0)
    assert tastes[:n_kettle] == [0] * n_kettle
    assert found.scores == sorted(found.scores, reverse=True)


def taste_store_customer(store, uid):
    return next(c for c in store.customers if c.pk == uid)


def test_the_active_model_scores_a_product_it_knows(taste_store, settings):
    version = train("item_knn", {"k": 10})
    assert version.is_active
    known = taste_store.products[taste_store.per_category + 1]  # category 1
    found = trends.likely_buyers(product_id=known.pk, size=10)
    assert found.method == "model" and found.model.startswith("item_knn")
    tastes = [taste_store.customers.index(taste_store_customer(taste_store, uid)) % 3 for uid in found.user_ids]
    assert tastes and all(t == 1 for t in tastes)
    # a product the model has never seen falls back to content
    product = new_kettle(taste_store)
    assert trends.likely_buyers(product_id=product.pk, size=5).method == "content"


def test_buyers_and_inactive_customers_are_left_out(taste_store):
    product = new_kettle(taste_store)
    first = trends.likely_buyers(product_id=product.pk, size=3).user_ids
    buyer = taste_store_customer(taste_store, first[0])
    interaction_make(user=buyer, product=product, kind=Interaction.Kind.PURCHASE, occurred_at=None)
    gone = taste_store_customer(taste_store, first[1])
    gone.is_active = False
    gone.save(update_fields=["is_active"])
    again = trends.likely_buyers(product_id=product.pk, size=30).user_ids
    assert buyer.pk not in again and gone.pk not in again


def test_a_customer_with_similar_purchases_ranks_above_one_without(db):
    kitchen, garden = CategoryFactory(name="Kitchen", slug="kitchen"), CategoryFactory(name="Garden", slug="garden")
    kettle = ProductFactory(name="Copper kettle", description="stovetop kettle for tea", category=kitchen)
    teapot = ProductFactory(name="Teapot", description="brew loose leaf tea", category=kitchen)
    spade = ProductFactory(name="Garden spade", description="dig the vegetable beds", category=garden)
    similar, other = UserFactory(), UserFactory()
    for product in (kettle, teapot):
        interaction_make(user=similar, product=product, kind=Interaction.Kind.PURCHASE)
    interaction_make(user=other, product=spade, kind=Interaction.Kind.PURCHASE)
    new = ProductFactory(name="Whistling kettle", description="a kettle for tea on the hob", category=kitchen)
    found = trends.likely_buyers(product_id=new.pk, size=10)
    assert found.user_ids[0] == similar.pk
    assert other.pk not in found.user_ids[:1]
    if other.pk in found.user_ids:
        assert found.scores[found.user_ids.index(other.pk)] < found.scores[0]


def test_many_products_in_one_read_and_unknown_products_named(taste_store):
    a, b = new_kettle(taste_store), taste_store.products[9]
    found = trends.likely_buyers_many(product_ids=[a.pk, b.pk, a.pk], size=4)
    assert set(found) == {a.pk, b.pk}
    assert all(len(f.user_ids) <= 4 for f in found.values())
    with pytest.raises(trends.TrendsError, match="unknown product"):
        trends.likely_buyers_many(product_ids=[a.pk, 987654321], size=4)
    with pytest.raises(trends.TrendsError, match="size"):
        trends.likely_buyers(product_id=a.pk, size=0)


def test_audiences_are_cached_until_new_events(taste_store, settings):
    settings.AFFINITY_AUDIENCE_CACHE_SECONDS = 60
    product = new_kettle(taste_store)
    first = trends.likely_buyers(product_id=product.pk, size=3)
    buyer = taste_store_customer(taste_store, first.user_ids[0])
    # no new event: the cached answer
    assert services.likely_buyers(product_id=product.pk, size=3) == first
    # a new event (the top customer buys it) is a new key: computed afresh
    interaction_make(user=buyer, product=product, kind=Interaction.Kind.PURCHASE)
    assert buyer.pk not in services.likely_buyers(product_id=product.pk, size=3).user_ids


# --- a shop's own data: purchases only, no catalogue text --------------------------------------
def test_own_purchases_without_a_catalogue(db, tmp_path):
    from django.core.management import call_command

    from shop.models import Product, User
    from tests.own_data import make_shape

    shape = make_shape(tmp_path, "purchases-only", customers=60, products=40, kinds=("purchase",))
    call_command("import_interactions", str(shape.events), verbosity=0)
    board = trends.trends_board(signal="purchases", window_hours=672, baseline_days=365)
    assert board.newest is not None and board.newest.year == 2024  # the windows end where the data does
    assert train("item_knn", {"k": 20}).is_active

    groups = 4  # make_shape's default: customer C<i> and product SKU-...-<j> belong to group i % 4, j % 4
    product = Product.objects.get(sku="SKU-PUR-0001")
    found = trends.likely_buyers(product_id=product.pk, size=60)
    assert found.method == "model"
    external = dict(User.objects.filter(pk__in=found.user_ids).values_list("pk", "external_id"))
    buyers = set(
        Interaction.objects.filter(product=product, kind=Interaction.Kind.PURCHASE).values_list("user_id", flat=True)
    )
    assert not buyers & set(found.user_ids)
    # the product's own taste group who have not bought it yet come first, not chance (1 in 4)
    eligible = User.objects.filter(external_id__isnull=False).exclude(pk__in=buyers)
    own = {u.pk for u in eligible if int(u.external_id[1:]) % groups == 1}
    assert own and set(found.user_ids[: len(own)]) == own, [external[u] for u in found.user_ids[: len(own)]]

    # a new product with no text and no category: nothing to go on, so nobody (not a guess)
    blank = ProductFactory(sku="SKU-NEW", name="Product SKU-NEW", description="", category=None)
    nothing = trends.likely_buyers(product_id=blank.pk, size=10)
    assert nothing.method in ("content", "none") and nothing.user_ids == []
