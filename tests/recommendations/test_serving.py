"""The serving contract (recommendations.services) against the real database."""

from __future__ import annotations

from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from recommendations import impressions, services
from recommendations.models import Impression
from shop.models import Interaction, Product
from shop.services.customers import user_forget
from shop.services.interactions import interaction_record
from tests.factories import CategoryFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db
ONE_ROUND_TRIP = connection.features.supports_slicing_ordering_in_compound  # PostgreSQL


def categories_of(rec):
    return [p.product.category_id for p in rec.picks]


# --- no model at all ---------------------------------------------------------------------------
def test_anonymous_without_model_gets_trending_and_an_impression(store):
    rec = services.recommend_for_user(n=6)
    assert rec.strategy == "trending"
    assert rec.model_version_id is None and rec.variant == ""
    assert len(rec.picks) == 6
    assert {p.reason_code for p in rec.picks} == {"trending"}
    # nothing personal to say: filler, labelled as what it is
    assert {p.reason for p in rec.picks} == {"Popular now"} and {p.source for p in rec.picks} == {"popular"}
    scores = [p.score for p in rec.picks]
    assert all(s > 0 for s in scores)
    impressions.drain()  # with Redis the list is queued first (``impressions``)
    shown = Impression.objects.get(pk=rec.id)
    assert shown.product_ids == [p.product.pk for p in rec.picks]
    assert shown.strategy == "trending" and shown.context == "home" and shown.user_id is None


def test_new_customer_with_interests_gets_their_categories(store, settings):
    settings.AFFINITY_RECOMMEND_MAX_PER_CATEGORY = 0  # no cap: check the level alone
    newcomer = UserFactory()
    newcomer.interests.set([store.categories[2]])
    rec = services.recommend_for_user(user=newcomer, n=5)
    assert rec.strategy == "fallback:interests"
    assert set(categories_of(rec)) == {store.categories[2].pk}
    assert {p.reason for p in rec.picks} == {"Matches your interest in Taste 2"}
    assert {p.reason_code for p in rec.picks} == {"interest"}


def test_anonymous_session_history_without_model(store, settings):
    settings.AFFINITY_RECOMMEND_MAX_PER_CATEGORY = 3
    product = store.by_category[store.categories[1].pk][5]
    interaction_record(product=product, kind=Interaction.Kind.VIEW, session_key="sess-1")
    rec = services.recommend_for_user(session_key="sess-1", n=8)
    assert rec.strategy == "fallback:session"
    first = rec.picks[:3]
    assert [p.product.category_id for p in first] == [store.categories[1].pk] * 3
    assert {p.reason for p in first} == {"Popular in Taste 1, which you browsed"}
    assert {p.reason_code for p in first} == {"session"} and {p.source for p in first} == {"history_category"}
    assert product.pk not in [p.product.pk for p in rec.picks]  # just viewed: not shown back
    # the cap of 3 per category makes room for other categories
    assert Counter(categories_of(rec))[store.categories[1].pk] == 3


def test_deleted_customer_gets_fallback_without_error(store):
    user = store.customers[0]
    user_forget(user=user)
    rec = services.recommend_for_user(user=user, n=4)  # a stale object of a deleted account
    assert rec.strategy == "trending"
    assert len(rec.picks) == 4
    impressions.drain()
    assert Impression.objects.get(pk=rec.id).user_id == user.pk


def test_empty_store_returns_an_empty_list(db):
    rec = services.recommend_for_user(n=5)
    assert rec.picks == [] and rec.strategy == "trending"


# --- with a model ---------------------------------------------------------------------------------
def test_model_picks_follow_taste_and_are_explained(store, trained, settings):
    settings.AFFINITY_RECOMMEND_MAX_PER_CATEGORY = 0
    settings.AFFINITY_CONSUMED_KINDS = ["purchase"]
    settings.AFFINITY_RECOMMEND_RECENT_EXCLUDE_DAYS = {}
    user = store.customers[5]
    taste = store.taste(user)
    rec = services.recommend_for_user(user=user, n=5)
    assert rec.strategy == f"model:item_knn#{trained.pk}"
    assert rec.model_version_id == trained.pk
    assert set(categories_of(rec)) == {taste.pk}
    history_names = set(Product.objects.filter(interactions__user=user).values_list("name", flat=True))
    for pick in rec.picks:
        assert pick.reason_code == "history" and pick.source == "model"
        # a history item is named only when it really points at the pick (explanations)
        if pick.reason != "Based on your recent activity":
            assert pick.reason.startswith("Because you ")
            assert any(name in pick.reason for name in history_names), pick.reason
    assert rec.picks[0].reason.startswith("Because you ")
    bought = set(
        Interaction.objects.filter(user=user, kind=Interaction.Kind.PURCHASE).values_list("product_id", flat=True)
    )
    assert not bought & {p.product.pk for p in rec.picks}


def test_a_click_changes_the_next_list_without_retraining(store, trained):
    newcomer = UserFactory()
    before = services.recommend_for_user(user=newcomer, n=5)
    assert before.strategy == "trending"
    liked = store.by_category[store.categories[3].pk][0]
    interaction_record(product=liked, kind=Interaction.Kind.CLICK, user=newcomer)
    after = services.recommend_for_user(user=newcomer, n=3)
    assert after.strategy == f"model:item_knn#{trained.pk}"
    assert set(categories_of(after)) == {store.categories[3].pk}
    assert all(p.reason == f"Because you looked at {liked.name}" for p in after.picks)


def test_filters_inactive_out_of_stock_bought_and_excluded(store, trained, settings):
    settings.AFFINITY_RECOMMEND_MAX_PER_CATEGORY = 0
    user = store.customers[1]
    first = services.recommend_for_user(user=user, n=6, record_impression=False)
    a, b, c = (p.product for p in first.picks[:3])
    Product.objects.filter(pk=a.pk).update(is_active=False)
    Product.objects.filter(pk=b.pk).update(stock=0)
    interaction_record(product=c, kind=Interaction.Kind.PURCHASE, user=user)
    skip = first.picks[3].product.pk
    again = services.recommend_for_user(user=user, n=6, exclude_product_ids=[skip], record_impression=False)
    shown = {p.product.pk for p in again.picks}
    assert not shown & {a.pk, b.pk, c.pk, skip}
    assert len(again.picks) == 6


def test_untracked_stock_is_recommendable(store, trained, settings):
    settings.AFFINITY_RECOMMEND_MAX_PER_CATEGORY = 0
    user = store.customers[1]
    first = services.recommend_for_user(user=user, n=6, record_impression=False)
    untracked = first.picks[0].product
    Product.objects.filter(pk=untracked.pk).update(stock=None)
    again = services.recommend_for_user(user=user, n=6, record_impression=False)
    assert untracked.pk in {p.product.pk for p in again.picks}
    # a quiet category's fallback (its newest products) keeps it and drops the sold-out one
    quiet = CategoryFactory()
    kept, sold_out = ProductFactory(category=quiet, stock=None), ProductFactory(category=quiet, stock=0)
    shown = {p.product.pk for p in services.trending_products(n=4, category=quiet, record_impression=False).picks}
    assert kept.pk in shown and sold_out.pk not in shown


def test_diversity_caps_products_per_category(store, trained, settings):
    settings.AFFINITY_RECOMMEND_MAX_PER_CATEGORY = 2
    user = store.customers[2]
    rec = services.recommend_for_user(user=user, n=8)
    counts = Counter(categories_of(rec))
    assert max(counts.values()) <= 2
    assert len(rec.picks) == 8
    # on a category page the list is about that one category: no cap there
    category = store.taste(user)
    in_category = services.recommend_for_user(user=user, n=6, category=category, context="category")
    assert set(categories_of(in_category)) == {category.pk}
    assert len(in_category.picks) == 6


def test_product_page_context_uses_the_product_on_screen(store, trained, settings):
    settings.AFFINITY_RECOMMEND_MAX_PER_CATEGORY = 0
    product = store.by_category[store.categories[0].pk][3]
    rec = services.recommend_for_user(session_key="fresh-visitor", product=product, context="product", n=4)
    assert product.pk not in [p.product.pk for p in rec.picks]
    assert rec.strategy.startswith("model:")
    assert set(categories_of(rec)) == {store.categories[0].pk}
    assert {p.reason for p in rec.picks} <= {f"Because you viewed {product.name}", "Based on your recent activity"}
    assert rec.picks[0].reason == f"Because you viewed {product.name}"
    assert {p.reason_code for p in rec.picks} == {"session"}


def test_strategies(store, trained):
    user = store.customers[3]
    assert services.recommend_for_user(user=user, strategy="trending").strategy == "trending"
    assert services.recommend_for_user(user=user, strategy="item_knn").strategy == f"model:item_knn#{trained.pk}"
    # an algorithm with no trained version: the fallbacks answer
    assert services.recommend_for_user(user=user, strategy="ease").strategy == "fallback:history"
    user.interests.set([store.categories[0]])
    assert services.recommend_for_user(user=user, strategy="interests").strategy == "fallback:interests"
    with pytest.raises(ValueError, match="unknown strategy 'magic'"):
        services.recommend_for_user(user=user, strategy="magic")
    with pytest.raises(ValueError, match="unknown context"):
        services.recommend_for_user(user=user, context="sidebar")
    with pytest.raises(ValueError, match="n must be"):
        services.recommend_for_user(user=user, n=0)


def test_query_count_is_small_and_independent_of_n(store, trained, settings, django_assert_max_num_queries):
    # (a second product query happens only when filters or the category cap leave the
    # first batch short; without a cap this store never needs it)
    settings.AFFINITY_RECOMMEND_MAX_PER_CATEGORY = 0
    user = store.customers[4]
    services.recommend_for_user(user=user, n=3)  # warm: model loaded, trending computed
    # one UNION ALL (history, purchases, interests, serving epoch), products, the impression
    # (wrapped in a savepoint inside the test's transaction: +2); 3 more without UNION support
    with django_assert_max_num_queries(5 if ONE_ROUND_TRIP else 8):
        services.recommend_for_user(user=user, n=5, session_key="s-1")
    counts = []
    for n in (3, 20):
        with CaptureQueriesContext(connection) as ctx:
            services.recommend_for_user(user=user, n=n)
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]


def test_anonymous_query_count(store, trained, django_assert_max_num_queries):
    services.recommend_for_user(session_key="warm", n=3)
    with django_assert_max_num_queries(5 if ONE_ROUND_TRIP else 6):  # history + epoch, products, impression
        services.recommend_for_user(session_key="abc", n=10)


# --- similar products, trending, batch ---------------------------------------------------------------
def test_also_bought_uses_the_model_neighbours(store, trained):
    product = store.by_category[store.categories[2].pk][0]
    rec = services.similar_products(product=product, n=5)
    assert rec.strategy == f"model:item_knn#{trained.pk}"
    assert product.pk not in [p.product.pk for p in rec.picks]
    assert set(categories_of(rec)[:3]) == {store.categories[2].pk}
    assert rec.picks[0].reason == f"Customers who bought {product.name} also bought this"
    assert rec.picks[0].reason_code == "also_bought"


def test_also_bought_without_model_uses_co_purchases(store):
    product = store.by_category[store.categories[1].pk][0]
    rec = services.similar_products(product=product, n=4)
    assert rec.strategy in ("fallback:co_purchase", "fallback:category")
    assert len(rec.picks) == 4
    assert product.pk not in [p.product.pk for p in rec.picks]


def test_similar_content_also_for_a_product_newer_than_the_model(store, settings):
    settings.AFFINITY_RECOMMEND_MAX_PER_CATEGORY = 0
    content = services.model_version_create(algorithm="content", slot="content")
    content = services.model_train(version_id=content.pk)
    assert content.status == "succeeded", content.error
    known = store.by_category[store.categories[0].pk][1]
    rec = services.similar_products(product=known, n=4, kind="similar")
    assert rec.strategy == f"model:content#{content.pk}"
    assert rec.picks[0].reason == f"Similar to {known.name}" and rec.picks[0].reason_code == "similar"
    assert set(categories_of(rec)) == {store.categories[0].pk}
    newcomer = ProductFactory(
        name="Kettle 99", slug="kettle-99", category=store.categories[0], description="A kitchen thing number 99"
    )
    rec = services.similar_products(product=newcomer, n=4, kind="similar")
    assert rec.strategy == f"model:content#{content.pk}"
    assert set(categories_of(rec)) == {store.categories[0].pk}
    with pytest.raises(ValueError, match="unknown kind"):
        services.similar_products(product=known, kind="cheaper")


def test_trending_products_in_a_category(store):
    category = store.categories[1]
    rec = services.trending_products(n=5, category=category)
    assert set(categories_of(rec)) == {category.pk}
    assert {p.reason for p in rec.picks} == {"Popular in Taste 1"}
    assert len(services.trending_products(n=7, record_impression=False).picks) == 7


def test_batch_scores_many_customers_with_a_bounded_number_of_queries(store, trained, django_assert_max_num_queries):
    ids = [u.pk for u in store.customers[:40]]
    services.recommend_for_users_batch(user_ids=ids[:2], n=3)
    with django_assert_max_num_queries(6):
        result = services.recommend_for_users_batch(user_ids=ids + [10**9], n=4)
    assert set(result) == set(ids) | {10**9}
    assert all(len(picks) == 4 for picks in result.values())
    for uid in ids[:8]:
        bought = set(
            Interaction.objects.filter(user_id=uid, kind=Interaction.Kind.PURCHASE).values_list("product_id", flat=True)
        )
        assert not bought & {p.product.pk for p in result[uid]}
    assert {p.reason_code for p in result[10**9]} == {"trending"}
    assert Impression.objects.count() == 0


# --- clicks -------------------------------------------------------------------------
def test_click_record_attributes_to_the_list(store):
    user = store.customers[0]
    rec = services.recommend_for_user(user=user, n=3)
    product = rec.picks[1].product
    event = services.click_record(rec_list_id=rec.id, product=product, user=user)
    assert event.kind == Interaction.Kind.CLICK and event.rec_list_id == rec.id and event.user_id == user.pk
    with pytest.raises(ValueError, match="not in recommendation list"):
        services.click_record(
            rec_list_id=rec.id,
            product=store.products[-1] if store.products[-1] != product else store.products[0],
            user=user,
        )
    with pytest.raises(ValueError, match="unknown recommendation list"):
        services.click_record(rec_list_id="6f1c1d52-1111-4111-8111-111111111111", product=product, user=user)
    with pytest.raises(ValueError, match="not a UUID"):
        services.click_record(rec_list_id="nope", product=product, user=user)


@pytest.mark.django_db(transaction=True)
def test_impressions_outside_a_transaction_and_a_failed_one(caplog, settings):
    """The direct path (no queue: one round trip, asynchronous commit on PostgreSQL)
    stores the row; a failing insert is logged and leaves the connection usable."""
    from recommendations.serving import RecommendationList, _record
    from tests.recommendations.conftest import build_store

    settings.AFFINITY_IMPRESSIONS_QUEUE = False

    store = build_store(n_customers=8)
    rec = services.recommend_for_user(user=store.customers[0], n=3)
    assert Impression.objects.get(pk=rec.id).product_ids == [p.product.pk for p in rec.picks]
    broken = RecommendationList(id=rec.id, picks=[], context="home", strategy="x", model_version_id=None, variant="")
    _record(broken, user_id=None, session_key="", experiment_id=None)  # duplicate primary key
    assert "could not record impression" in caplog.text
    assert Impression.objects.count() == 1  # and the connection still works
    assert len(services.recommend_for_user(n=2).picks) == 2
