"""Segment rules -> querysets, against the real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import Segment
from campaigns.segments import (
    RuleError,
    ids_q,
    lookalike_user_ids,
    rfm_table,
    rules_preview,
    rules_queryset,
    rules_validate,
)
from shop.models import Interaction, Order, User
from shop.services.interactions import interaction_record

from .conftest import buy, make_customers, make_segment


def emails(rules, **kw) -> set[str]:
    return set(rules_queryset(rules, **kw).values_list("email", flat=True))


def e(user: User) -> str:
    return user.email


def test_consent_and_country(store):
    uk, fr = make_customers(2)
    fr.country = "France"
    fr.save()
    (no,) = make_customers(1, prefix="no", marketing_consent=False)
    assert emails({"rule": "consent"}) == {e(uk), e(fr)}
    assert emails({"rule": "consent", "value": False}) == {e(no)}
    assert emails({"rule": "country", "in": ["France"]}) == {e(fr)}


def test_bought_from_a_category_includes_its_subcategories_and_time(store):
    old, recent, kitchen, cancelled = make_customers(4)
    buy(old, store.in_category(store.candles)[:1], days_ago=100)
    buy(recent, store.in_category(store.candles)[:1], days_ago=3)
    buy(kitchen, store.in_category(store.kitchen)[:1], days_ago=3)
    order = buy(cancelled, store.in_category(store.candles)[:1], days_ago=3)
    Order.objects.filter(pk=order.pk).update(status=Order.Status.CANCELLED)
    assert emails({"rule": "bought_category", "category": "home"}) == {e(old), e(recent)}
    assert emails({"rule": "bought_category", "category": store.candles.pk, "days": 30}) == {e(recent)}


def test_interested_in_stated_interests_or_activity(store):
    stated, browsed, other = make_customers(3)
    stated.interests.add(store.kitchen)
    interaction_record(
        product=store.in_category(store.kitchen)[0],
        kind=Interaction.Kind.VIEW,
        user=browsed,
        occurred_at=timezone.now() - timedelta(days=2),
    )
    assert emails({"rule": "interested_in", "category": "kitchen"}) == {e(stated)}
    assert emails({"rule": "interested_in", "category": "kitchen", "include_activity": True}) == {e(stated), e(browsed)}
    assert emails({"rule": "interested_in", "category": "kitchen", "include_activity": True, "days": 1}) == {e(stated)}


def test_bought_within_and_not_since(store):
    recent, lapsed, never = make_customers(3)
    buy(recent, store.products[:1], days_ago=5)
    buy(lapsed, store.products[:1], days_ago=120)
    assert emails({"rule": "bought_within", "days": 30}) == {e(recent)}
    assert emails({"rule": "not_bought_within", "days": 90}) == {e(lapsed)}
    assert emails({"rule": "not_bought_within", "days": 90, "include_never": True}) == {e(lapsed), e(never)}


def test_joined_within(store):
    new, old = make_customers(2)
    User.objects.filter(pk=old.pk).update(date_joined=timezone.now() - timedelta(days=40))
    assert emails({"rule": "joined_within", "days": 14}) == {e(new)}


def test_rfm_quintiles_on_known_numbers(store):
    customers = make_customers(5)
    # customer i: i+1 orders, the last one (5 - i) * 10 days ago, spending grows with i
    for i, user in enumerate(customers):
        for k in range(i + 1):
            buy(user, store.products[:1], days_ago=(5 - i) * 10 + k, quantity=1 + i)
    table = rfm_table()
    assert [table[u.pk] for u in customers] == [(1, 1, 1), (2, 2, 2), (3, 3, 3), (4, 4, 4), (5, 5, 5)]
    best = emails({"rule": "rfm", "recency": [5], "frequency": [4, 5]})
    assert best == {e(customers[4])}
    assert emails({"rule": "rfm", "monetary": [1, 2]}) == {e(customers[0]), e(customers[1])}


def test_rfm_ties_share_a_score(store):
    a, b, c = make_customers(3)
    for user in (a, b):
        buy(user, store.products[:1], days_ago=3)
    buy(c, store.products[:1], days_ago=3)
    buy(c, store.products[:1], days_ago=2)
    table = rfm_table()
    assert table[a.pk][1] == table[b.pk][1] == 1 and table[c.pk][1] == 5


def test_fixed_list_by_ids_and_emails(store):
    a, b, c = make_customers(3)
    assert emails({"rule": "users", "ids": [a.pk], "emails": [c.email.upper()]}) == {e(a), e(c)}


def test_lookalikes_by_purchase_history(store):
    candles, kitchen = store.in_category(store.candles), store.in_category(store.kitchen)
    seed1, seed2, twin, half, stranger, nobody = make_customers(6)
    buy(seed1, candles[:3])
    buy(seed2, candles[1:4])
    buy(twin, candles[1:3])  # the seed's core
    buy(half, [candles[0], kitchen[0]])  # one candle in common
    buy(stranger, kitchen[:3])  # nothing in common
    ids = lookalike_user_ids(seed_ids=[seed1.pk, seed2.pk], size=10)
    assert ids == [twin.pk, half.pk]
    assert lookalike_user_ids(seed_ids=[seed1.pk, seed2.pk], size=1) == [twin.pk]
    seed = make_segment({"rule": "users", "ids": [seed1.pk, seed2.pk]}, name="seed")
    assert emails({"rule": "lookalike", "seed": {"segment": seed.pk}, "size": 5}) == {e(twin), e(half)}
    assert emails({"rule": "lookalike", "seed": {"emails": [seed1.email]}, "size": 5, "include_seed": True}) >= {
        e(seed1),
        e(twin),
    }


def test_combinators_and_segment_references(store):
    a, b, c = make_customers(3)
    c.country = "France"
    c.save()
    buy(a, store.products[:1], days_ago=2)
    france = make_segment({"rule": "country", "in": ["France"]}, name="France")
    rules = {
        "any": [
            {"all": [{"rule": "consent"}, {"rule": "bought_within", "days": 7}]},
            {"rule": "segment", "id": france.pk},
        ]
    }
    assert emails(rules) == {e(a), e(c)}
    assert emails({"all": [{"rule": "consent"}, {"not": {"rule": "segment", "id": france.pk}}]}) == {e(a), e(b)}


def test_a_long_id_list_is_one_parameter(store):
    users = make_customers(3)
    ids = [u.pk for u in users] + list(range(10_000_000, 10_040_000))  # 40,003 ids
    assert set(User.objects.filter(ids_q(ids)).values_list("pk", flat=True)) == {u.pk for u in users}


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([], "must be an object"),
        ({"rule": "bought_recently"}, "unknown rule 'bought_recently'"),
        ({"all": []}, "all: must be a non-empty list"),
        ({"all": [{"rule": "bought_within", "days": 0}]}, "all[0].days: must be a whole number of days"),
        ({"all": [{"rule": "bought_within"}]}, "all[0].days: is required"),
        ({"rule": "bought_category", "category": "no-such"}, "unknown category 'no-such'"),
        ({"rule": "country", "in": "France"}, "in: must be a non-empty list"),
        ({"rule": "rfm", "recency": [6]}, "quintile scores 1..5"),
        ({"rule": "rfm"}, "needs at least one of recency"),
        ({"rule": "users", "emails": ["ghost@example.com"]}, "unknown customer email(s): ghost@example.com"),
        ({"rule": "lookalike", "seed": {"ids": [1]}, "size": 0}, "size: must be a whole number between 1"),
        ({"rule": "consent", "value": True, "colour": "red"}, "does not take colour"),
        ({"all": [{"rule": "consent"}], "any": [{"rule": "consent"}]}, "holds nothing else"),
    ],
)
def test_invalid_rules_are_named_with_their_path(store, rules, message):
    with pytest.raises(RuleError) as info:
        rules_validate(rules)
    assert any(message in m for m in info.value.messages), info.value.messages


def test_preview_counts_and_samples(store):
    make_customers(15)
    preview = rules_preview({"rule": "consent"}, sample_size=5)
    assert preview.count == 15 and len(preview.sample) == 5
    assert set(preview.sample[0]) >= {"email", "country", "marketing_consent"}


def test_inactive_accounts_are_never_in_a_segment(store):
    active, inactive = make_customers(2)
    User.objects.filter(pk=inactive.pk).update(is_active=False)
    assert emails({"rule": "consent"}) == {e(active)}
    assert Segment.objects.count() == 0  # nothing written by evaluating rules
