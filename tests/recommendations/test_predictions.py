"""Customer predictions (recommendations.predictions): a run reads the order history,
fits BG/NBD + Gamma-Gamma, stores one shop.CustomerPrediction per customer, reports
progress and failures, runs in a real Celery worker; the customer's admin page shows
the predictions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.db.models import F
from django.urls import reverse

from recommendations import services
from recommendations.engine.clv import SpendModel, TransactionModel
from recommendations.models import PredictionRun
from recommendations.predictions import predictions_compute
from shop.models import CustomerPrediction, Interaction, Order, User
from shop.selectors import user_data_export
from tests.conftest import wait_for
from tests.factories import ProductFactory, UserFactory, interaction_make

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def orders(user: User, days_ago: list[float], totals: list[float], *, status: str = Order.Status.SHIPPED) -> None:
    Order.objects.bulk_create(
        Order(user=user, placed_at=NOW - timedelta(days=d), total=Decimal(str(t)), status=status)
        for d, t in zip(days_ago, totals, strict=True)
    )


def population(n: int = 120, seed: int = 3) -> list[User]:
    """Customers with varied rhythms: weekly, monthly, now and then; some lapsed."""
    rng = np.random.default_rng(seed)
    users = [UserFactory(email=f"pop{i}@customers.affinity.example") for i in range(n)]
    for user in users:
        gap = float(rng.choice([7, 30, 90, 180]))
        start = float(rng.uniform(100, 360))
        stop = float(rng.uniform(0, start)) if rng.random() < 0.4 else 0.0  # 40% lapsed at some point
        days = list(np.arange(start, stop, -gap * rng.uniform(0.7, 1.3)))[: int(rng.integers(1, 15))]
        orders(user, days, [round(float(rng.gamma(4, 10)), 2) for _ in days])
    return users


def run_now(**kwargs) -> PredictionRun:
    run = services.prediction_run_create(**kwargs)
    predictions_compute(run_id=run.pk, now=NOW)
    run.refresh_from_db()
    return run


@pytest.mark.django_db
def test_predictions_on_a_worked_example():
    population()
    worked = UserFactory(email="worked@customers.affinity.example")
    # Orders 100, 93 and 86 days ago (two on that last day: one purchase of 40 + 10):
    # x = 2 repeat purchase days, t_x = 14 days, T = 100 days, mean repeat value (30 + 50) / 2 = 40.
    orders(worked, [100, 93, 86, 86], [20, 30, 40, 10])
    orders(worked, [5], [999], status=Order.Status.CANCELLED)  # cancelled: never counts
    run = run_now()

    assert run.status == PredictionRun.Status.DONE and run.progress == 100, run.error
    assert run.source == "orders" and run.customers == 121 and run.data_end == NOW
    rhythm = TransactionModel(**{k: v for k, v in run.params["transactions"].items() if k != "log_likelihood"})
    spend_params = {k: run.params["spend"][k] for k in ("p", "q", "gamma")}
    spend = SpendModel(**spend_params)
    assert rhythm.model == "mbgnbd"

    p = CustomerPrediction.objects.get(user=worked)
    assert p.repeat_purchases == 2
    assert p.first_purchase_at == NOW - timedelta(days=100)
    assert p.last_purchase_at == NOW - timedelta(days=86)
    assert p.probability_alive == pytest.approx(rhythm.probability_alive(2, 14, 100)[0], rel=1e-9)
    assert p.expected_purchases_90d == pytest.approx(rhythm.expected_purchases(90, 2, 14, 100)[0], rel=1e-9)
    assert p.expected_order_value == pytest.approx(spend.expected_value(2, 40.0)[0], rel=1e-9)
    assert p.churn_risk == pytest.approx(1 - p.probability_alive)
    assert p.run_id == run.pk and p.currency == "GBP"
    # The predicted value is 12 discounted months of expected purchases x the expected order value.
    undiscounted = rhythm.expected_purchases(12 * 365.25 / 12, 2, 14, 100)[0] * p.expected_order_value
    assert 0.9 * undiscounted < p.predicted_value < undiscounted
    # inactive_at: the first whole day on which P(alive) is at most the win-back threshold (0.5)
    age = (p.inactive_at - p.first_purchase_at.replace(hour=0)) / timedelta(days=1)
    assert (
        rhythm.probability_alive(2, 14, np.ceil(age))[0] <= 0.5 < rhythm.probability_alive(2, 14, np.ceil(age) - 1)[0]
    )

    # the best customer is at the top percentile; percentiles span the population
    best = CustomerPrediction.objects.order_by("-predicted_value").first()
    assert best.value_percentile == 100
    assert CustomerPrediction.objects.filter(value_percentile__lte=10).exists()


@pytest.mark.django_db
def test_a_frequent_buyer_lapses_sooner_than_a_rare_one():
    population()
    weekly, rare = (UserFactory(email=f"{n}@customers.affinity.example") for n in ("weekly", "rare"))
    orders(weekly, [150 - 7 * i for i in range(15)], [30] * 15)  # every week until 52 days ago
    orders(rare, [300, 120], [30, 30])  # twice, 180 days apart
    run_now()
    w, r = CustomerPrediction.objects.get(user=weekly), CustomerPrediction.objects.get(user=rare)
    assert w.inactive_at - w.last_purchase_at < r.inactive_at - r.last_purchase_at
    assert w.expected_purchases_90d > r.expected_purchases_90d or w.probability_alive < 0.5
    assert w.inactive_at < NOW, "a weekly buyer silent for 7 weeks is predicted lapsed"


@pytest.mark.django_db
def test_a_second_run_replaces_the_predictions_and_drops_the_unpredicted():
    users = population(60)
    first = run_now()
    gone = users[0]
    Order.objects.filter(user=gone).update(status=Order.Status.CANCELLED)
    second = run_now()
    assert second.status == PredictionRun.Status.DONE
    assert not CustomerPrediction.objects.filter(user=gone).exists()
    assert set(CustomerPrediction.objects.values_list("run_id", flat=True)) == {second.pk}
    assert CustomerPrediction.objects.count() == first.customers - 1 == second.customers
    # a finished run is left alone when run again (a redelivered task)
    assert predictions_compute(run_id=second.pk, now=NOW).finished_at == second.finished_at


@pytest.mark.django_db
def test_without_orders_the_purchase_events_are_used():
    """A store that sends only events (no orders): purchases x product prices."""
    rng = np.random.default_rng(5)
    products = [ProductFactory(price=Decimal(p)) for p in ("10.00", "25.00")]
    for i in range(50):
        user = UserFactory(email=f"ev{i}@customers.affinity.example")
        for d in sorted(rng.choice(np.arange(1, 200), size=int(rng.integers(1, 8)), replace=False)):
            interaction_make(
                user=user,
                product=products[int(rng.integers(2))],
                kind=Interaction.Kind.PURCHASE,
                value=float(rng.integers(1, 4)),
                occurred_at=NOW - timedelta(days=int(d)),
            )
    run = run_now(model="bgnbd")
    assert run.status == PredictionRun.Status.DONE, run.error
    assert run.source == "purchases" and run.customers == 50 and run.params["transactions"]["model"] == "bgnbd"
    assert CustomerPrediction.objects.count() == 50


@pytest.mark.django_db
def test_failures_are_recorded_with_their_reason():
    run = run_now()
    assert run.status == PredictionRun.Status.FAILED
    assert "no orders" in run.error and run.finished_at is not None
    only_one_time = UserFactory()
    orders(only_one_time, [30], [10])
    run = run_now()
    assert run.status == PredictionRun.Status.FAILED and "no customer has a repeat purchase" in run.error
    with pytest.raises(services.PredictionError, match="unknown transactions model 'pareto'"):
        services.prediction_run_create(model="pareto")


@pytest.mark.integration
def test_the_task_computes_in_a_real_worker(celery_worker):
    population(40)
    run = services.prediction_run_create()
    services.predictions_compute_enqueue(run=run)  # autocommit: sent at once
    done = wait_for(
        lambda: PredictionRun.objects.filter(pk=run.pk, status__in=["done", "failed"]).first(),
        timeout=90,
        what="the prediction run to finish",
    )
    assert done.status == PredictionRun.Status.DONE, done.error or celery_worker.log()
    assert done.task_id and done.progress == 100 and done.stage == "done"
    assert CustomerPrediction.objects.filter(run_id=run.pk).count() == done.customers == 40


@pytest.mark.django_db
def test_the_customers_admin_page_shows_the_predictions(staff_client, django_capture_on_commit_callbacks):
    population(40)
    run_now()
    customer = CustomerPrediction.objects.order_by("-predicted_value").first().user
    page = staff_client.get(reverse("admin:shop_user_change", args=[customer.pk])).content.decode()
    assert 'id="customer-predictions"' in page
    prediction = customer.prediction
    assert f"{prediction.probability_alive:.0%}" in page and "Expected purchases, next 90 days" in page
    assert "top 1% of customers" in page and f"{prediction.predicted_value:,.2f} GBP" in page
    other = UserFactory()
    assert "Not predicted yet" in staff_client.get(reverse("admin:shop_user_change", args=[other.pk])).content.decode()

    runs = staff_client.get(reverse("admin:recommendations_predictionrun_changelist")).content.decode()
    assert "Compute customer predictions now" in runs
    assert staff_client.get(reverse("admin:recommendations_predictionrun_compute")).status_code == 405
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = staff_client.post(reverse("admin:recommendations_predictionrun_compute"))
    assert response.status_code == 302 and len(callbacks) == 1  # queued after commit
    assert PredictionRun.objects.filter(status=PredictionRun.Status.QUEUED).count() == 1


@pytest.mark.django_db
def test_a_historic_history_is_predicted_as_of_its_last_purchase():
    """The demo store's orders end in 2011: as of today everyone would be long gone."""
    population(60)
    Order.objects.update(placed_at=F("placed_at") - timedelta(days=3650))
    newest = Order.objects.order_by("-placed_at").values_list("placed_at", flat=True).first()
    run = run_now()
    assert run.status == PredictionRun.Status.DONE, run.error
    assert run.data_end == newest
    assert CustomerPrediction.objects.filter(probability_alive__gt=0.5).count() > 30


@pytest.mark.django_db
def test_the_customers_data_export_holds_their_predictions():
    """Profiling is personal data: the customer's export (GDPR access) includes it."""
    population(40)
    run_now()
    prediction = CustomerPrediction.objects.select_related("user").first()
    exported = user_data_export(user=prediction.user)["predictions"]
    assert exported["probability_active"] == prediction.probability_alive
    assert exported["churn_risk"] == pytest.approx(1 - prediction.probability_alive)
    assert exported["predicted_value_12_months"] == prediction.predicted_value


def test_an_inactivity_date_beyond_any_horizon_is_none_not_a_crash():
    """A one-time buyer under MBG/NBD can be predicted inactive after 10**30 days: no
    datetime holds that (it crashed every run on the demo store); it is "none"."""
    from recommendations.predictions import DAY_SECONDS, EPOCH, inactive_at

    assert inactive_at(float("inf")) is None
    assert inactive_at(1e30) is None
    day = 20_000.0  # 2024-10-04
    assert inactive_at(day) == EPOCH + timedelta(seconds=day * DAY_SECONDS)


@pytest.mark.django_db
def test_purchases_without_prices_predict_the_rhythm_and_leave_value_empty(staff_client):
    """A shop's own purchase events with no catalogue (products without a price): the
    churn risk and expected purchases are predicted; the money figures stay empty, not
    zero, and segments on value leave those customers out."""
    rng = np.random.default_rng(11)
    products = [ProductFactory(price=Decimal("0.00")) for _ in range(3)]
    for i in range(60):
        user = UserFactory(email=f"np{i}@customers.affinity.example")
        for d in sorted(rng.choice(np.arange(1, 200), size=int(rng.integers(1, 8)), replace=False)):
            interaction_make(
                user=user,
                product=products[int(rng.integers(3))],
                kind=Interaction.Kind.PURCHASE,
                value=2.0,
                occurred_at=NOW - timedelta(days=int(d)),
            )
    run = run_now()
    assert run.status == PredictionRun.Status.DONE, run.error
    assert run.params["spend"] is None
    rows = CustomerPrediction.objects.all()
    assert rows.count() == 60
    assert not rows.filter(predicted_value__isnull=False).exists()
    assert not rows.filter(expected_order_value__isnull=False).exists()
    assert rows.filter(expected_purchases_90d__gt=0).count() > 30 and rows.filter(probability_alive__gt=0).exists()
    one = rows.first()
    page = staff_client.get(reverse("admin:shop_user_change", args=[one.user_id])).content.decode()
    assert "not predicted: the purchases carry no prices" in page
