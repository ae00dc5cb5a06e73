"""Robust trending: the window follows the data (a history that ends in December 2011
still has a trend), a product needs a minimum of shoppers, a shopper counts once per
product and kind, scores are smoothed, and suspected noise never counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recommendations import noise, services
from recommendations.trending import trending_compute, trending_window
from shop.models import Interaction
from shop.services.interactions import interactions_bulk_insert
from tests.factories import ProductFactory, UserFactory

pytestmark = pytest.mark.django_db

END_2011 = datetime(2011, 12, 9, 12, 0, tzinfo=UTC)
P = Interaction.Kind.PURCHASE


@pytest.fixture
def history_2011(settings):
    """A store whose history ends on 2011-12-09: in its last two weeks A was bought by 12
    customers, B by 8, C by 5; older, D was bought by 20 (months before)."""
    settings.AFFINITY_TRENDING_MIN_WINDOW_EVENTS = 25  # what the last two weeks hold
    settings.AFFINITY_TRENDING_MIN_SUPPORT = 3
    settings.AFFINITY_TRENDING_SMOOTHING = 5.0
    a, b, c, d = (ProductFactory(name=n) for n in ("A", "B", "C", "D"))
    customers = [UserFactory() for _ in range(20)]
    rows = []
    for product, buyers in ((a, 12), (b, 8), (c, 5)):
        for i, user in enumerate(customers[:buyers]):
            rows.append(Interaction(user=user, product=product, kind=P, occurred_at=END_2011 - timedelta(days=i % 10)))
    for user in customers:
        rows.append(Interaction(user=user, product=d, kind=P, occurred_at=END_2011 - timedelta(days=120)))
    interactions_bulk_insert(rows=rows)
    return {"A": a, "B": b, "C": c, "D": d}


def names(items, products):
    by_id = {p.pk: n for n, p in products.items()}
    return [by_id.get(i.product_id, i.product_id) for i in items]


def test_the_window_ends_with_the_data_not_the_wall_clock(history_2011):
    window = trending_window()
    assert window.end == END_2011 and window.start == END_2011 - timedelta(days=14) and not window.extended
    items = trending_compute()
    assert names(items, history_2011)[:3] == ["A", "B", "C"]  # D's sales are months older
    assert "D" not in names(items, history_2011)
    assert all(i.supported for i in items)
    assert items[0].score == 1.0 and items[1].score < 1.0


def test_a_dozen_fresh_test_events_do_not_take_over(history_2011, settings):
    """Twelve events today from two test sessions: the last 14 days hold too few events,
    so the window reaches back into 2011; the test product has 2 shoppers, under the
    minimum support: "Trending now" does not show it."""
    before = names(trending_compute(), history_2011)
    fresh = ProductFactory(name="Fresh")
    now = datetime.now(UTC)
    interactions_bulk_insert(
        rows=[
            Interaction(session_key=f"test-{i % 2}", product=fresh, kind=P, occurred_at=now - timedelta(minutes=i))
            for i in range(12)
        ]
    )
    window = trending_window()
    assert window.extended and window.start < END_2011 and window.end > END_2011
    items = trending_compute()
    supported = [i for i in items if i.supported]
    assert names(supported, history_2011) == before
    tail = [i for i in items if not i.supported]
    assert [i.product_id for i in tail] == [fresh.pk] and tail[0].score < min(i.score for i in supported)
    shelf = services.trending_products(n=4, record_impression=False)
    assert fresh.pk not in [p.product.pk for p in shelf.picks]
    assert [p.product.name for p in shelf.picks][:3] == ["A", "B", "C"]


@pytest.mark.parametrize("shoppers", [1, 2])
def test_fewer_shoppers_than_the_minimum_support_move_nothing(history_2011, shoppers):
    """However many events they send, fewer than TRENDING_MIN_SUPPORT shoppers change
    neither which products trend nor their order."""
    before = [(i.product_id, i.score) for i in trending_compute() if i.supported]
    spam = ProductFactory(name="Spam")
    kinds = [P, Interaction.Kind.ADD_TO_CART, Interaction.Kind.WISHLIST, Interaction.Kind.RATING]
    rows = [
        Interaction(session_key=f"s{s}", product=spam, kind=kinds[m % 4], occurred_at=END_2011 - timedelta(minutes=m))
        for s in range(shoppers)
        for m in range(40)
    ]
    interactions_bulk_insert(rows=rows)
    after = [(i.product_id, i.score) for i in trending_compute() if i.supported]
    assert after == before


def test_the_minimum_support_reached_trends(history_2011):
    new = ProductFactory(name="New")
    rows = [
        Interaction(session_key=f"s{s}", product=new, kind=P, occurred_at=END_2011 - timedelta(hours=s))
        for s in range(3)
    ]
    interactions_bulk_insert(rows=rows)
    assert new.pk in [i.product_id for i in trending_compute() if i.supported]


def test_a_shopper_counts_once_and_scores_are_smoothed(history_2011, settings):
    """C (5 buyers) against E: 3 buyers, one of whom bought it 50 times. Per shopper and
    kind E counts 3, shrunk by 3 / (3 + 5); C counts 5, shrunk by 5 / (5 + 5)."""
    e = ProductFactory(name="E")
    customers = [UserFactory() for _ in range(3)]
    rows = [
        Interaction(user=customers[0], product=e, kind=P, occurred_at=END_2011 - timedelta(minutes=m))
        for m in range(50)
    ]
    rows += [Interaction(user=u, product=e, kind=P, occurred_at=END_2011 - timedelta(hours=1)) for u in customers[1:]]
    interactions_bulk_insert(rows=rows)
    items = {i.product_id: i for i in trending_compute()}
    a, c = items[history_2011["A"].pk], items[history_2011["C"].pk]
    weight = a.score  # A is the top: 1.0
    assert weight == 1.0
    top = 12 * 12 / 17  # A: 12 buyers, shrunk by 12 / (12 + 5)
    assert c.score == pytest.approx(5 * 5 / 10 / top)
    assert items[e.pk].score == pytest.approx(3 * 3 / 8 / top)


def test_suspected_noise_does_not_count(history_2011, settings):
    """Staff accounts are left out (noise.NOISE_EXCLUDE_STAFF): with them a product would
    have 3 shoppers, without them 2 -- under the minimum."""
    product = ProductFactory(name="Staff pick")
    buyers = [UserFactory(), UserFactory(), UserFactory(is_staff=True)]
    rows = [Interaction(user=u, product=product, kind=P, occurred_at=END_2011) for u in buyers]
    interactions_bulk_insert(rows=rows)
    assert product.pk in [i.product_id for i in trending_compute() if i.supported]  # the filter not run yet
    noise.noise_refresh()  # what the periodic task does
    assert product.pk not in [i.product_id for i in trending_compute() if i.supported]


def test_a_shopper_never_waits_for_trending_once_it_was_computed(history_2011, django_assert_max_num_queries):
    """Computing trending reads the whole window (seconds on a real store): a new serving
    epoch or an expired list serves the last list at once while a task computes the new
    one; a forgotten customer drops the last list, so their events leave trending now."""
    from django.core.cache import cache

    from recommendations import model_cache, serving_aids, trending

    first = trending.trending_items(model_cache.Snapshot(epoch=1))  # never computed: computed here
    assert [i.product_id for i in first[:3]] == [history_2011[k].pk for k in "ABC"]
    queued = f"{serving_aids.QUEUED_KEY}:{trending.TRENDING_TASK}"
    cache.delete(queued)
    with django_assert_max_num_queries(1):
        again = trending.trending_items(model_cache.Snapshot(epoch=2))  # a new epoch: the last list
    assert again == first
    assert cache.get(queued) == 1  # ... and its refresh queued (once)
    trending.trending_forget()
    with django_assert_max_num_queries(50):
        fresh = trending.trending_items(model_cache.Snapshot(epoch=3))  # computed again, not served stale
    assert fresh == first
    assert cache.get(trending.TRENDING_CACHE_KEY.format(epoch=3)) is not None  # the epoch's own list: computed
