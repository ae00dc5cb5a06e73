"""What a customer has (``AFFINITY_CONSUMED_KINDS``: purchases and ratings by default)
is never recommended back to them: on the store's pages and the API
(``recommend_for_user``), in emails (``recommend_for_users_batch`` through
``campaigns.products``) and in the export (``manage.py recommend``, unless
``--include-consumed``)."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command

from campaigns.products import Exclusions, picks_for_users
from recommendations import services
from shop.models import Interaction
from shop.services.interactions import interaction_record

pytestmark = pytest.mark.django_db
KINDS = [Interaction.Kind.PURCHASE, Interaction.Kind.RATING]


@pytest.fixture(autouse=True)
def _only_consumed_kinds_excluded(settings):
    settings.AFFINITY_RECOMMEND_RECENT_EXCLUDE_DAYS = {}  # no windowed exclusions in the way
    settings.AFFINITY_RECOMMEND_MAX_PER_CATEGORY = 0


def consume(user, products) -> set[str]:
    """``user`` buys the first product and rates the second; their SKUs."""
    interaction_record(product=products[0], kind=Interaction.Kind.PURCHASE, user=user)
    interaction_record(product=products[1], kind=Interaction.Kind.RATING, user=user, value=4.0)
    return {products[0].sku, products[1].sku}


def export(tmp_path, *args: str) -> dict[str, list[str]]:
    path = tmp_path / "recs.csv"
    call_command(
        "recommend", "--all", "--n", "8", "--out", str(path), *args, stdout=io.StringIO(), stderr=io.StringIO()
    )
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["user", "rank", "sku", "score"]
    out: dict[str, list[str]] = {}
    for user, _rank, sku, _score in rows[1:]:
        out.setdefault(user, []).append(sku)
    return out


@pytest.mark.parametrize("kind", KINDS, ids=["purchase", "rating"])
def test_model_picks_consumed_are_not_recommended_back(store, trained, tmp_path, kind):
    user = store.customers[3]
    first = services.recommend_for_user(user=user, n=8, record_impression=False)
    product = first.picks[0].product
    interaction_record(product=product, kind=kind, user=user, value=4.0)
    served = services.recommend_for_user(user=user, n=8, record_impression=False)
    assert served.picks and product.pk not in {p.product.pk for p in served.picks}
    api = services.recommend_for_user(user_id=user.pk, context="api", n=8, record_impression=False)
    assert product.pk not in {p.product.pk for p in api.picks}
    batch = services.recommend_for_users_batch(user_ids=[user.pk], n=8)[user.pk]
    assert batch and product.pk not in {p.product.pk for p in batch}
    emails = picks_for_users(user_ids=[user.pk], strategy="auto", n=8, exclusions=Exclusions())[user.pk]
    assert emails and product.pk not in {p["id"] for p in emails}
    exported = export(tmp_path)[str(user.pk)]
    assert exported and product.sku not in exported


def test_fallbacks_never_recommend_back_what_was_bought_or_rated(store, tmp_path):
    """Trending is the same list for everyone: the top two, bought and rated by one
    customer, are dropped for them everywhere, and kept with --include-consumed."""
    top = services.trending_products(n=2, record_impression=False).products
    user = store.customers[5]
    consumed = consume(user, top)
    served = services.recommend_for_user(user=user, n=8, strategy="trending", record_impression=False)
    assert len(served.picks) == 8 and not consumed & {p.product.sku for p in served.picks}
    batch = services.recommend_for_users_batch(user_ids=[user.pk], n=8, strategy="trending")[user.pk]
    assert len(batch) == 8 and not consumed & {p.product.sku for p in batch}
    emails = picks_for_users(user_ids=[user.pk], strategy="trending", n=8, exclusions=Exclusions())[user.pk]
    assert len(emails) == 8 and not consumed & {p["sku"] for p in emails}
    exported = export(tmp_path, "--strategy", "trending")
    assert len(exported[str(user.pk)]) == 8 and not consumed & set(exported[str(user.pk)])
    assert consumed <= set(exported[str(store.customers[6].pk)])  # others still get them
    included = export(tmp_path, "--strategy", "trending", "--include-consumed")
    assert consumed <= set(included[str(user.pk)])
    # the campaign's own switch (exclude_purchased=False) is the same opt-out
    kept = picks_for_users(
        user_ids=[user.pk], strategy="trending", n=8, exclusions=Exclusions(exclude_purchased=False)
    )[user.pk]
    assert consumed <= {p["sku"] for p in kept}


def test_consumed_kinds_follow_the_setting(store, tmp_path, settings):
    """Ratings count as consumed only while CONSUMED_KINDS says so."""
    top = services.trending_products(n=2, record_impression=False).products
    user = store.customers[7]
    consume(user, top)
    settings.AFFINITY_CONSUMED_KINDS = ("purchase",)
    served = {p.product.sku for p in services.recommend_for_user(user=user, n=8, strategy="trending").picks}
    assert top[0].sku not in served and top[1].sku in served
    exported = set(export(tmp_path, "--strategy", "trending")[str(user.pk)])
    assert top[0].sku not in exported and top[1].sku in exported
