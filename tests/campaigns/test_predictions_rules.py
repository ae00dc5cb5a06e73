"""Customer predictions in campaigns: the segment rules on churn risk, predicted value
and expected purchases, and win-back emails timed by the predicted inactivity instead
of a fixed number of days."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import Campaign, Delivery
from campaigns.segments import RULE_HELP, RULE_NAMES, RuleError, rule_registry, rules_queryset, rules_validate
from campaigns.triggers import triggers_evaluate
from shop.models import CustomerPrediction, User

from .conftest import buy, make_campaign, make_customers
from .test_triggers import start


def predict(
    user: User,
    *,
    alive: float = 0.5,
    purchases: float = 1.0,
    value: float = 100.0,
    percentile: float = 50.0,
    inactive_at=None,
    last_purchase_at=None,
) -> CustomerPrediction:
    now = timezone.now()
    return CustomerPrediction.objects.create(
        user=user,
        probability_alive=alive,
        expected_purchases_90d=purchases,
        expected_order_value=40.0,
        predicted_value=value,
        value_percentile=percentile,
        repeat_purchases=2,
        first_purchase_at=now - timedelta(days=400),
        last_purchase_at=last_purchase_at or now - timedelta(days=30),
        inactive_at=inactive_at,
        run_id=1,
    )


@pytest.fixture
def predicted(db):
    """Ten customers, churn risk 0.05 .. 0.95, value 10 .. 100 (percentile 10 .. 100),
    expected purchases 0 .. 4.5; and one customer without a prediction."""
    users = make_customers(11, prefix="p")
    for i, user in enumerate(users[:10]):
        predict(user, alive=1 - (0.05 + 0.1 * i), value=10.0 * (i + 1), percentile=10.0 * (i + 1), purchases=0.5 * i)
    return users


def ids(rules) -> list[int]:
    return sorted(rules_queryset(rules).values_list("pk", flat=True))


def test_churn_risk_rule(predicted):
    assert ids({"rule": "churn_risk", "above": 0.7}) == [u.pk for u in predicted[7:10]]  # 0.75, 0.85, 0.95
    assert ids({"rule": "churn_risk", "below": 0.2}) == [u.pk for u in predicted[:2]]  # 0.05, 0.15
    assert ids({"rule": "churn_risk", "above": 0.3, "below": 0.5}) == [u.pk for u in predicted[3:5]]
    # a customer without a prediction matches no prediction rule, even negated ones stay exact
    assert predicted[10].pk not in ids({"rule": "churn_risk", "above": 0.0})
    assert predicted[10].pk in ids({"not": {"rule": "churn_risk", "above": 0.0}})


def test_predicted_value_rule(predicted):
    assert ids({"rule": "predicted_value", "top_percent": 10}) == [predicted[9].pk]
    assert ids({"rule": "predicted_value", "top_percent": 30}) == [u.pk for u in predicted[7:10]]
    assert ids({"rule": "predicted_value", "above": 55}) == [u.pk for u in predicted[5:10]]
    assert ids({"rule": "predicted_value", "top_percent": 100}) == [u.pk for u in predicted[:10]]
    combined = {"all": [{"rule": "predicted_value", "top_percent": 50}, {"rule": "churn_risk", "above": 0.7}]}
    assert ids(combined) == [u.pk for u in predicted[7:10]]


def test_expected_purchases_rule(predicted):
    assert ids({"rule": "expected_purchases", "above": 3.2}) == [u.pk for u in predicted[7:10]]
    assert ids({"rule": "expected_purchases", "below": 0.6}) == [u.pk for u in predicted[:2]]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"rule": "churn_risk"}, "all[0]: needs above and/or below"),
        ({"rule": "churn_risk", "above": 1.5}, "all[0].above: must be a number between 0 and 1, not 1.5"),
        ({"rule": "churn_risk", "above": "high"}, "all[0].above: must be a number between 0 and 1"),
        ({"rule": "churn_risk", "above": True}, "all[0].above: must be a number"),
        ({"rule": "predicted_value", "top_percent": 0}, "all[0].top_percent: must be above 0"),
        ({"rule": "predicted_value", "top_percent": 120}, "between 0 and 100, not 120"),
        ({"rule": "predicted_value", "above": -5}, "all[0].above: must be a number >= 0, not -5"),
        ({"rule": "expected_purchases", "within": 3}, "rule 'expected_purchases' does not take within"),
    ],
)
def test_prediction_rules_name_bad_input(db, rules, message):
    with pytest.raises(RuleError) as caught:
        rules_validate({"all": [rules]})
    assert any(message in m for m in caught.value.messages), caught.value.messages


def test_prediction_rules_are_in_the_builders_registry():
    registry = {r["name"]: r for r in rule_registry()}
    for name in ("churn_risk", "predicted_value", "expected_purchases"):
        assert name in RULE_NAMES and name in RULE_HELP
    assert registry["churn_risk"]["params"] == ["above", "below"]
    assert registry["predicted_value"]["params"] == ["top_percent", "above"]


# --- win-back timed by predictions ------------------------------------------------------------
def test_win_back_is_timed_by_the_predicted_inactivity(store, template):
    now = timezone.now()
    weekly, rare, unpredicted, stale, never = make_customers(5, prefix="w")
    # A weekly buyer silent for 12 days: the model says inactive since an hour ago, long
    # before the campaign's 60 fixed days.
    buy(weekly, store.products[:1], days_ago=12)
    predict(weekly, inactive_at=now - timedelta(hours=1), last_purchase_at=now - timedelta(days=12))
    # A twice-a-year buyer silent for 61 days: the fixed days would say due; the model says not yet.
    buy(rare, store.products[:1], days_ago=61)
    predict(rare, inactive_at=now + timedelta(days=150), last_purchase_at=now - timedelta(days=61))
    # No prediction: the fixed 60 days still apply.
    buy(unpredicted, store.products[:1], days_ago=61)
    # A prediction made before the customer's latest order is stale: the fixed days apply.
    buy(stale, store.products[:1], days_ago=61)
    predict(stale, inactive_at=now + timedelta(days=150), last_purchase_at=now - timedelta(days=200))
    # The model never times this one (no inactive_at): the fixed days apply.
    buy(never, store.products[:1], days_ago=61)
    predict(never, inactive_at=None, last_purchase_at=now - timedelta(days=61))
    campaign = start(make_campaign(template, kind=Campaign.Kind.WIN_BACK, inactive_days=60), hours_ago=72)

    assert triggers_evaluate(campaign=campaign) == 4
    due = set(Delivery.objects.values_list("user_id", flat=True))
    assert due == {weekly.pk, unpredicted.pk, stale.pk, never.pk}
    assert triggers_evaluate(campaign=campaign) == 0, "once per last order"
    # the key is the last order's time, the same whichever way the customer was timed
    key = Delivery.objects.get(user=weekly).trigger_key
    assert key == f"winback:{int(weekly.orders.get().placed_at.timestamp())}"


def test_win_back_prediction_ignored_once_the_customer_orders_again(store, template):
    now = timezone.now()
    (customer,) = make_customers(1, prefix="again")
    buy(customer, store.products[:1], days_ago=12)
    predict(customer, inactive_at=now - timedelta(hours=1), last_purchase_at=now - timedelta(days=12))
    buy(customer, store.products[1:2], days_ago=0.5)  # ordered after the prediction: not lapsed
    campaign = start(make_campaign(template, kind=Campaign.Kind.WIN_BACK, inactive_days=60), hours_ago=72)
    assert triggers_evaluate(campaign=campaign) == 0
