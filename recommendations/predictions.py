"""Customer predictions from the order history: the probability that each customer is
still active, the purchases to expect in the next 90 days, the value of one future
order and of the next 12 months, and when a silent customer should be won back.

A run (``PredictionRun``) reads every order that was not cancelled (or, in a store
that has no orders, the purchase events with their products' prices), summarises each
customer (repeat purchase days, first to last purchase, age), fits the transactions
model (MBG/NBD by default, ``AFFINITY_PREDICTION_MODEL``) and Gamma-Gamma on all
customers at once (``engine.clv``), and writes one ``shop.CustomerPrediction`` per
customer in batches, dropping the predictions of customers no longer predicted. It
reports its stage and progress on the run row as it goes; a failure is recorded on
the run with its reason and leaves the previous predictions in place. Predictions are
made as of now, or as of the newest purchase when that is older than
``AFFINITY_PREDICTION_HISTORIC_AFTER_DAYS`` (a historic data set such as the 2011 demo
store: today everyone there would be long gone).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from django.db import transaction
from django.utils import timezone
from scipy import stats

from shop.models import CustomerPrediction, Interaction, Order, User

from . import conf
from .engine.clv import (
    TRANSACTION_MODELS,
    PurchaseHistory,
    SpendModel,
    TransactionModel,
    history_summarize,
    lifetime_value,
    spend_fit,
    transactions_fit,
)
from .engine.errors import EmptyDataError, EngineError
from .models import PredictionRun

logger = logging.getLogger(__name__)

DAY_SECONDS = 86400.0
MONTH_DAYS = 365.25 / 12
WRITE_BATCH = 2000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class PredictionError(ValueError):
    """A prediction run cannot proceed (bad settings, not enough history); the message says why."""


@dataclass(frozen=True)
class Transactions:
    """Every purchase of the history: customer, time (s since the epoch), value."""

    user_ids: np.ndarray
    times: np.ndarray
    values: np.ndarray
    source: str  # "orders" or "purchases"
    currency: str

    def __len__(self) -> int:
        return len(self.user_ids)


def prediction_run_create(*, model: str | None = None, trigger: str = PredictionRun.Trigger.MANUAL) -> PredictionRun:
    """A queued run (the model name checked now). Start it with
    ``services.predictions_compute_enqueue`` or run it here with ``predictions_compute``."""
    model = model or conf.get("PREDICTION_MODEL")
    if model not in TRANSACTION_MODELS:
        raise PredictionError(f"unknown transactions model {model!r}; one of {', '.join(TRANSACTION_MODELS)}")
    return PredictionRun.objects.create(transactions_model=model, trigger=trigger)


def transactions_read(*, end: datetime) -> Transactions:
    """The purchases up to ``end``: orders not cancelled (their totals) when the store
    has any, else purchase events (quantity x the product's price)."""
    orders = Order.objects.exclude(status=Order.Status.CANCELLED).filter(user__isnull=False, placed_at__lte=end)
    users: list[int] = []
    times: list[float] = []
    values: list[float] = []
    currencies: Counter[str] = Counter()
    for user_id, placed_at, total, currency in orders.values_list("user_id", "placed_at", "total", "currency").iterator(
        chunk_size=20000
    ):
        users.append(user_id)
        times.append(placed_at.timestamp())
        values.append(float(total))
        currencies[currency] += 1
    source = "orders"
    if not users:
        source = "purchases"
        purchases = Interaction.objects.filter(
            kind=Interaction.Kind.PURCHASE, user__isnull=False, occurred_at__lte=end
        ).values_list("user_id", "occurred_at", "value", "product__price", "product__currency")
        for user_id, occurred_at, quantity, price, currency in purchases.iterator(chunk_size=20000):
            users.append(user_id)
            times.append(occurred_at.timestamp())
            values.append(max(float(quantity), 0.0) * float(price))
            currencies[currency] += 1
    return Transactions(
        user_ids=np.asarray(users, dtype=np.int64),
        times=np.asarray(times, dtype=np.float64),
        values=np.asarray(values, dtype=np.float64),
        source=source,
        currency=currencies.most_common(1)[0][0] if currencies else "GBP",
    )


def _progress(run: PredictionRun, percent: int, stage: str) -> None:
    run.progress, run.stage = percent, stage
    PredictionRun.objects.filter(pk=run.pk).update(progress=percent, stage=stage)
    logger.info("prediction run %s: %d%% %s", run.pk, percent, stage)


def _claim(run_id: int) -> PredictionRun | None:
    with transaction.atomic():
        run = PredictionRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status not in (PredictionRun.Status.QUEUED, PredictionRun.Status.RUNNING):
            return run
        run.status, run.started_at, run.error = PredictionRun.Status.RUNNING, timezone.now(), ""
        run.save(update_fields=["status", "started_at", "error"])
        return run


def predictions_compute(*, run_id: int, now: datetime | None = None) -> PredictionRun | None:
    """Run a queued prediction run to the end (safe to run twice: a finished run is
    left alone). Returns the run (None when it does not exist)."""
    run = _claim(run_id)
    if run is None or run.status != PredictionRun.Status.RUNNING:
        return run
    try:
        _compute(run, now or timezone.now())
    except (EngineError, PredictionError) as exc:
        _fail(run, str(exc))
    except Exception as exc:
        logger.exception("prediction run %s crashed", run.pk)
        _fail(run, f"{type(exc).__name__}: {exc}")
        raise
    return run


def _fail(run: PredictionRun, message: str) -> None:
    run.status, run.error, run.finished_at = PredictionRun.Status.FAILED, message, timezone.now()
    run.save(update_fields=["status", "error", "finished_at"])
    logger.warning("prediction run %s failed: %s", run.pk, message)


def _compute(run: PredictionRun, now: datetime) -> None:
    _progress(run, 5, "reading the order history")
    tx = transactions_read(end=now)
    if len(tx) == 0:
        raise PredictionError("no orders (and no purchase events) yet: there is nothing to predict from")
    newest = float(tx.times.max())
    if newest < now.timestamp() - float(conf.get("PREDICTION_HISTORIC_AFTER_DAYS")) * DAY_SECONDS:
        now = _at(newest)  # a historic data set: predict as of its last purchase
        _progress(run, 10, f"the history ends on {now:%Y-%m-%d}: predicting as of then")
    end_days = now.timestamp() / DAY_SECONDS
    history = history_summarize(tx.user_ids, tx.times / DAY_SECONDS, tx.values, end=end_days)
    repeat = int(np.count_nonzero(history.frequency))
    _progress(
        run, 20, f"fitting the purchase rhythm ({run.transactions_model}) on {len(history)} customers, {repeat} repeat"
    )
    penalizer = float(conf.get("PREDICTION_PENALIZER"))
    model = run.transactions_model if run.transactions_model in TRANSACTION_MODELS else "mbgnbd"
    rhythm = transactions_fit(history.frequency, history.recency, history.age, model=model, penalizer=penalizer)
    _progress(run, 45, "fitting the order values (Gamma-Gamma)")
    try:
        spend: SpendModel | None = spend_fit(history.frequency, history.mean_value, penalizer=penalizer)
    except EmptyDataError:
        # purchases without prices (a shop's own events, no catalogue): the purchase
        # rhythm is still predicted; the money figures stay empty rather than zero
        spend = None
        _progress(run, 50, "no order values (no prices): predicting purchases only, not value")
    if spend is not None and spend.q <= 1:
        raise PredictionError(
            f"the order values are too spread out for the Gamma-Gamma model (q = {spend.q:.3g} <= 1); "
            "set AFFINITY_PREDICTION_PENALIZER (e.g. 0.01) to regularise it"
        )
    _progress(run, 55, "predicting")
    predicted = _predict(rhythm, spend, history)
    _progress(run, 65, f"writing {len(history)} predictions")
    _write(run, tx, history, predicted, timezone.now())
    run.status, run.progress, run.stage = PredictionRun.Status.DONE, 100, "done"
    run.finished_at = timezone.now()
    run.source, run.data_end = tx.source, now
    run.customers, run.repeat_customers = len(history), repeat
    run.params = {
        "transactions": {"model": rhythm.model, **rhythm.params(), "log_likelihood": rhythm.log_likelihood},
        "spend": (
            {**spend.params(), "log_likelihood": spend.log_likelihood, "population_mean": spend.population_mean}
            if spend is not None
            else None
        ),
        "currency": tx.currency,
        "penalizer": penalizer,
    }
    run.save()


@dataclass(frozen=True)
class _Predicted:
    alive: np.ndarray
    purchases: np.ndarray
    order_value: np.ndarray
    value: np.ndarray
    percentile: np.ndarray
    inactive_day: np.ndarray  # day index since the epoch (inf: never)


def _predict(rhythm: TransactionModel, spend: SpendModel | None, history: PurchaseHistory) -> _Predicted:
    """The predictions of every customer; the money figures are NaN without ``spend``."""
    x, t_x, age = history.frequency, history.recency, history.age
    unknown = np.full(len(history), np.nan)
    if spend is None:
        order_value, value, percentile = unknown, unknown, unknown
    else:
        value = np.maximum(
            lifetime_value(
                rhythm,
                spend,
                history,
                horizon=float(conf.get("PREDICTION_VALUE_MONTHS")) * MONTH_DAYS,
                step=MONTH_DAYS,
                discount_rate=float(conf.get("PREDICTION_DISCOUNT_MONTHLY")),
            ),
            0.0,
        )
        order_value = spend.expected_value(x, history.mean_value)
        percentile = np.minimum(stats.rankdata(value, method="max") / len(value) * 100.0, 100.0)
    below = float(conf.get("PREDICTION_WINBACK_BELOW"))
    return _Predicted(
        alive=np.clip(rhythm.probability_alive(x, t_x, age), 0.0, 1.0),
        purchases=rhythm.expected_purchases(float(conf.get("PREDICTION_PURCHASES_DAYS")), x, t_x, age),
        order_value=order_value,
        value=value,
        percentile=percentile,
        inactive_day=history.first + np.ceil(rhythm.age_alive_below(below, x, t_x)),
    )


def _known(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _at(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=float(seconds))


# An inactivity date past this is no date: a one-time buyer under MBG/NBD can get an
# age of 10**30 days (P(alive) falls that slowly), which no datetime holds.
INACTIVE_LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def inactive_at(day: float) -> datetime | None:
    """The predicted inactivity date of a day index since the epoch; None when the model
    sees none in any horizon a marketer plans for (never, or after ``INACTIVE_LATEST``)."""
    if not np.isfinite(day) or day * DAY_SECONDS >= (INACTIVE_LATEST - EPOCH).total_seconds():
        return None
    return _at(day * DAY_SECONDS)


def _write(
    run: PredictionRun, tx: Transactions, history: PurchaseHistory, predicted: _Predicted, computed_at: datetime
) -> None:
    order = np.argsort(tx.user_ids, kind="stable")
    ids_sorted = tx.user_ids[order]
    times_sorted = tx.times[order]
    starts = np.searchsorted(ids_sorted, history.customer_ids, side="left")
    first_at = np.minimum.reduceat(times_sorted, starts)  # every customer has at least one purchase
    last_at = np.maximum.reduceat(times_sorted, starts)
    fields = [f.name for f in CustomerPrediction._meta.concrete_fields if f.name != "user"]
    n = len(history)
    for start in range(0, n, WRITE_BATCH):
        stop = min(start + WRITE_BATCH, n)
        ids = [int(i) for i in history.customer_ids[start:stop]]
        existing = set(User.objects.filter(pk__in=ids).values_list("pk", flat=True))  # forgotten meanwhile
        rows = []
        for j in range(start, stop):
            user_id = int(history.customer_ids[j])
            if user_id not in existing:
                continue
            inactive = float(predicted.inactive_day[j])
            rows.append(
                CustomerPrediction(
                    user_id=user_id,
                    probability_alive=float(predicted.alive[j]),
                    expected_purchases_90d=float(predicted.purchases[j]),
                    expected_order_value=_known(predicted.order_value[j]),
                    predicted_value=_known(predicted.value[j]),
                    value_percentile=_known(predicted.percentile[j]),
                    repeat_purchases=int(history.frequency[j]),
                    first_purchase_at=_at(first_at[j]),
                    last_purchase_at=_at(last_at[j]),
                    inactive_at=inactive_at(inactive),
                    currency=tx.currency,
                    computed_at=computed_at,
                    run_id=run.pk,
                )
            )
        CustomerPrediction.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["user"], update_fields=fields, batch_size=WRITE_BATCH
        )
        _progress(run, 65 + int(30 * stop / n), f"written {stop} of {n} predictions")
    # Customers no longer predicted (their orders were cancelled): their old rows go.
    CustomerPrediction.objects.exclude(run_id=run.pk).delete()


def customer_prediction(*, user_id: int) -> CustomerPrediction | None:
    """A customer's current prediction, if any."""
    return CustomerPrediction.objects.filter(user_id=user_id).first()
