"""Customer-base predictions from purchase histories: who is still active, how many
purchases to expect, and what a customer is worth.

Two models, fitted by maximum likelihood with scipy:

* **Transactions**: BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the
  easy way") or its variant MBG/NBD (Batislam, Denizel & Filiztekin 2007), where a
  customer may also drop out right after the first purchase. Each customer buys as a
  Poisson process (rate lambda ~ Gamma(r, alpha)) and drops out after a purchase with
  probability p ~ Beta(a, b). Under BG/NBD a customer with no repeat purchase is
  always "alive"; MBG/NBD gives one-time buyers a real churn risk too.
* **Spend**: Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV"): the value of a
  customer's purchases is Gamma(p, nu) with nu ~ Gamma(q, gamma), independent of the
  purchase rhythm.

A customer's history is summarised as (``frequency`` x: repeat purchases, i.e. distinct
purchase periods after the first; ``recency`` t_x: time from the first to the last
purchase; ``age`` T: time from the first purchase to the end of the data; and
``mean_value``: the mean value of the repeat purchases). ``history_summarize`` builds it
from raw transactions. Times are in any unit (the fitted ``alpha`` carries it); the
app uses days.

The expectation formulas use the Pfaff transform of the Gauss hypergeometric function,
``(1-z)^(r+x) 2F1(r+x, b+x; c; z) = 2F1(r+x, a-1; c; -t/(alpha+T))``, which avoids
multiplying a huge 2F1 by a tiny power for frequent buyers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special

from .errors import EmptyDataError, EngineError

__all__ = [
    "TRANSACTION_MODELS",
    "PurchaseHistory",
    "SpendModel",
    "TransactionModel",
    "TransactionModelName",
    "history_summarize",
    "lifetime_value",
    "spend_fit",
    "transactions_fit",
]

TransactionModelName = Literal["bgnbd", "mbgnbd"]
TRANSACTION_MODELS: tuple[TransactionModelName, ...] = ("bgnbd", "mbgnbd")
Floats = NDArray[np.float64]


def _floats(values: ArrayLike, name: str) -> Floats:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        raise EngineError(f"{name} must be one-dimensional, not of shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise EngineError(f"{name} holds a value that is not a finite number")
    return array


def _history(frequency: ArrayLike, recency: ArrayLike, age: ArrayLike) -> tuple[Floats, Floats, Floats]:
    x = _floats(frequency, "frequency")
    t_x = _floats(recency, "recency")
    big_t = _floats(age, "age")
    x, t_x, big_t = np.broadcast_arrays(x, t_x, big_t)
    if np.any(x < 0) or np.any(x != np.floor(x)):
        raise EngineError("frequency must hold whole numbers >= 0 (repeat purchases)")
    if np.any(t_x < 0):
        raise EngineError("recency must be >= 0 (time from the first to the last purchase)")
    if np.any(t_x > big_t):
        raise EngineError("recency must not exceed age (the last purchase lies after the end of the data)")
    if np.any((x == 0) & (t_x != 0)):
        raise EngineError("recency must be 0 for a customer without repeat purchases")
    if np.any((x > 0) & (t_x <= 0)):
        raise EngineError("recency must be > 0 for a customer with repeat purchases")
    return x.astype(np.float64), t_x.astype(np.float64), big_t.astype(np.float64)


def _weights(weights: ArrayLike | None, n: int) -> Floats:
    if weights is None:
        return np.ones(n, dtype=np.float64)
    w = _floats(weights, "weights")
    if w.shape != (n,) or np.any(w < 0) or w.sum() <= 0:
        raise EngineError("weights must be one non-negative number per customer, not all zero")
    return w


# --- transactions: BG/NBD and MBG/NBD ----------------------------------------------------
@dataclass(frozen=True)
class TransactionModel:
    """A fitted BG/NBD (``model="bgnbd"``) or MBG/NBD (``"mbgnbd"``) model."""

    model: TransactionModelName
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float = float("nan")  # total over the fitted customers (weights applied)
    customers: int = 0

    def __post_init__(self) -> None:
        if self.model not in TRANSACTION_MODELS:
            raise EngineError(f"unknown transaction model {self.model!r}; one of {', '.join(TRANSACTION_MODELS)}")
        for name in ("r", "alpha", "a", "b"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise EngineError(f"{name} must be a positive number, not {value!r}")

    @property
    def _shift(self) -> int:
        """0 for BG/NBD, 1 for MBG/NBD (a drop-out chance at the first purchase too)."""
        return 1 if self.model == "mbgnbd" else 0

    def params(self) -> dict[str, float]:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b}

    def log_likelihood_each(self, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike) -> Floats:
        """Each customer's log-likelihood of their (x, t_x, T)."""
        x, t_x, big_t = _history(frequency, recency, age)
        return _transactions_ll(np.array([self.r, self.alpha, self.a, self.b]), x, t_x, big_t, self._shift)

    def _odds_dead(self, x: Floats, t_x: Floats, big_t: Floats) -> Floats:
        """P(dropped out) / P(alive) given the history (0 where dropping out is impossible)."""
        r, alpha, a, b, s = self.r, self.alpha, self.a, self.b, self._shift
        log_ratio = (r + x) * (np.log(alpha + big_t) - np.log(alpha + t_x))
        with np.errstate(divide="ignore", over="ignore"):
            odds = a / np.maximum(b + x - 1 + s, 1e-300) * np.exp(log_ratio)
        if s == 0:
            odds = np.where(x > 0, odds, 0.0)
        return odds

    def probability_alive(self, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike) -> Floats:
        """P(the customer has not dropped out) at the end of their observation."""
        x, t_x, big_t = _history(frequency, recency, age)
        return 1.0 / (1.0 + self._odds_dead(x, t_x, big_t))

    def expected_purchases(self, t: float, frequency: ArrayLike, recency: ArrayLike, age: ArrayLike) -> Floats:
        """Expected purchases in the next ``t`` time units, given each history."""
        if not (np.isfinite(t) and t >= 0):
            raise EngineError(f"the horizon must be a number >= 0, not {t!r}")
        x, t_x, big_t = _history(frequency, recency, age)
        r, alpha, a, b, s = self.r, self.alpha, self.a, self.b, self._shift
        c = a + b + x - 1 + s
        with np.errstate(all="ignore"):
            bracket = 1.0 - special.hyp2f1(r + x, a - 1.0, c, -t / (alpha + big_t))
            expected = np.asarray((c / (a - 1.0)) * bracket / (1.0 + self._odds_dead(x, t_x, big_t)), dtype=np.float64)
        bad = ~np.isfinite(expected)
        if np.any(bad):  # 2F1 out of reach (a or b huge: p nearly the same for everyone)
            expected[bad] = self._expected_by_quadrature(t, x[bad], t_x[bad], big_t[bad])
        return np.maximum(expected, 0.0)

    def _expected_by_quadrature(self, t: float, x: Floats, t_x: Floats, big_t: Floats) -> Floats:
        """The same expectation without 2F1: P(alive) x E_p[(1 - (1 + p t / (alpha + T))^-(r+x)) / p]
        with p ~ Beta(a, b + x + shift) (its posterior given the customer is alive), by
        Gauss-Legendre quadrature over the Beta's quantiles (any a, b)."""
        nodes, weights = np.polynomial.legendre.leggauss(64)
        u = (nodes + 1.0) / 2.0
        distinct, inverse = np.unique(x, return_inverse=True)  # the quantiles depend on x alone
        p = special.betaincinv(self.a, (self.b + distinct + self._shift)[:, None], u[None, :])[inverse.ravel()]
        n = (self.r + x)[:, None]
        k = (t / (self.alpha + big_t))[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(p > 0, -np.expm1(-n * np.log1p(p * k)) / p, n * k)
        alive_mean = (g * weights[None, :]).sum(axis=1) / 2.0
        return np.asarray(alive_mean / (1.0 + self._odds_dead(x, t_x, big_t)), dtype=np.float64)

    def expected_purchases_new(self, t: ArrayLike) -> Floats:
        """Expected repeat purchases within ``t`` of a customer's first purchase
        (unconditional: a customer picked at random from the population)."""
        times = _floats(t, "t")
        if np.any(times < 0):
            raise EngineError("times must be >= 0")
        r, alpha, a, b, s = self.r, self.alpha, self.a, self.b, self._shift
        c = a + b - 1 + s
        lead = (b if s else c) / (a - 1.0)
        return np.asarray(lead * (1.0 - special.hyp2f1(r, a - 1.0, c, -times / alpha)), dtype=np.float64)

    def age_alive_below(self, threshold: float, frequency: ArrayLike, recency: ArrayLike) -> Floats:
        """The age T at which P(alive) falls to ``threshold`` for a customer who buys
        nothing more (P(alive) only falls while they do not buy): ``inf`` where it
        never does (BG/NBD without a repeat purchase), ``recency`` where it already
        is at the last purchase."""
        if not 0.0 < threshold < 1.0:
            raise EngineError(f"the threshold must lie strictly between 0 and 1, not {threshold!r}")
        x = _floats(frequency, "frequency")
        t_x = _floats(recency, "recency")
        r, alpha, a, b, s = self.r, self.alpha, self.a, self.b, self._shift
        # 1 / (1 + k ((alpha+T)/(alpha+t_x))^(r+x)) = threshold, k = a / (b+x-1+s)
        k = a / np.maximum(b + x - 1 + s, 1e-300)
        target = (1.0 / threshold - 1.0) / k
        with np.errstate(divide="ignore", over="ignore"):
            ratio = np.where(target > 1.0, np.exp(np.log(np.maximum(target, 1e-300)) / (r + x)), 1.0)
        age = (alpha + t_x) * ratio - alpha
        if s == 0:
            age = np.where(x > 0, age, np.inf)
        return np.asarray(np.maximum(age, t_x), dtype=np.float64)


def _transactions_ll(params: Floats, x: Floats, t_x: Floats, big_t: Floats, shift: int) -> Floats:
    r, alpha, a, b = (float(v) for v in params)
    s = shift
    a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
    a2 = special.gammaln(a + b) + special.gammaln(b + x + s) - special.gammaln(b) - special.gammaln(a + b + x + s)
    a3 = -(r + x) * np.log(alpha + big_t)
    a4 = np.log(a) - np.log(np.maximum(b + x - 1 + s, 1e-300)) - (r + x) * np.log(alpha + t_x)
    if s == 0:
        a4 = np.where(x > 0, a4, -np.inf)
    return np.asarray(a1 + a2 + np.logaddexp(a3, a4), dtype=np.float64)


def _aggregate(*columns: Floats, weights: Floats) -> tuple[list[Floats], Floats]:
    """Identical rows merged, their weights summed (a store has many equal histories)."""
    stacked = np.column_stack(columns)
    unique, inverse = np.unique(stacked, axis=0, return_inverse=True)
    summed = np.bincount(inverse.ravel(), weights=weights, minlength=len(unique)).astype(np.float64)
    return [np.ascontiguousarray(unique[:, i]) for i in range(unique.shape[1])], summed


def _minimize(objective: Callable[[Floats], float], start: Floats) -> Floats:
    """The best of L-BFGS-B and Nelder-Mead over log-parameters."""
    best: Floats | None = None
    best_value = np.inf
    bounds = [(-15.0, 15.0)] * len(start)  # parameters within e^-15 .. e^15 (about 3e-7 .. 3e6)
    for method in ("L-BFGS-B", "Nelder-Mead"):
        if method == "Nelder-Mead":
            options = {"maxiter": 3000, "xatol": 1e-7, "fatol": 1e-11}
        else:
            options = {"maxiter": 2000, "ftol": 1e-13, "gtol": 1e-9}
        result = optimize.minimize(objective, start, method=method, options=options, bounds=bounds)
        value = float(result.fun)
        if np.isfinite(value) and value < best_value:
            best, best_value = np.asarray(result.x, dtype=np.float64), value
        if method == "L-BFGS-B" and result.success and np.all(np.abs(result.x) < 14.9):
            break  # converged inside the bounds: done
        start = np.asarray(result.x, dtype=np.float64) if np.all(np.isfinite(result.x)) else start
    if best is None:
        raise EngineError("the model could not be fitted: the likelihood is not finite anywhere tried")
    return best


def transactions_fit(
    frequency: ArrayLike,
    recency: ArrayLike,
    age: ArrayLike,
    *,
    model: TransactionModelName = "bgnbd",
    weights: ArrayLike | None = None,
    penalizer: float = 0.0,
) -> TransactionModel:
    """Maximum-likelihood BG/NBD or MBG/NBD parameters. ``penalizer`` (>= 0) adds
    ``penalizer * sum(param^2)`` (parameters in time units scaled so the oldest
    customer's age is 40) per customer, which keeps small or odd data from running
    to extreme values."""
    if model not in TRANSACTION_MODELS:
        raise EngineError(f"unknown transaction model {model!r}; one of {', '.join(TRANSACTION_MODELS)}")
    if not (np.isfinite(penalizer) and penalizer >= 0):
        raise EngineError(f"penalizer must be a number >= 0, not {penalizer!r}")
    x, t_x, big_t = _history(frequency, recency, age)
    w = _weights(weights, len(x))
    if len(x) == 0 or w.sum() <= 0:
        raise EmptyDataError("no customers to fit")
    if not np.any(x > 0):
        raise EmptyDataError("no customer has a repeat purchase: the purchase rhythm cannot be learnt")
    if np.max(big_t) <= 0:
        raise EmptyDataError("every customer's history is of length 0")
    scale = float(np.max(big_t)) / 40.0
    (ux, ut_x, ubig_t), uw = _aggregate(x, t_x / scale, big_t / scale, weights=w)
    total = float(uw.sum())
    shift = 1 if model == "mbgnbd" else 0

    def objective(log_params: Floats) -> float:
        params = np.exp(np.clip(log_params, -15, 15))
        ll = _transactions_ll(params, ux, ut_x, ubig_t, shift)
        value = -float(np.dot(uw, ll)) / total + penalizer * float(np.sum(params**2))
        return value if np.isfinite(value) else 1e300

    best = np.exp(_minimize(objective, np.zeros(4)))
    r, alpha, a, b = (float(v) for v in best)
    fitted = TransactionModel(model=model, r=r, alpha=alpha * scale, a=a, b=b)
    ll = float(np.dot(w, fitted.log_likelihood_each(x, t_x, big_t)))
    return TransactionModel(model=model, r=r, alpha=alpha * scale, a=a, b=b, log_likelihood=ll, customers=len(x))


# --- spend: Gamma-Gamma ------------------------------------------------------------------
@dataclass(frozen=True)
class SpendModel:
    """A fitted Gamma-Gamma model of the value of a customer's purchases."""

    p: float
    q: float
    gamma: float
    log_likelihood: float = float("nan")
    customers: int = 0

    def __post_init__(self) -> None:
        for name in ("p", "q", "gamma"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise EngineError(f"{name} must be a positive number, not {value!r}")

    def params(self) -> dict[str, float]:
        return {"p": self.p, "q": self.q, "gamma": self.gamma}

    @property
    def population_mean(self) -> float:
        """The mean purchase value of a customer we know nothing about (q > 1), else inf."""
        return self.p * self.gamma / (self.q - 1.0) if self.q > 1 else float("inf")

    def log_likelihood_each(self, frequency: ArrayLike, mean_value: ArrayLike) -> Floats:
        x, m = _spend_inputs(frequency, mean_value, fitting=True)
        return _spend_ll(np.array([self.p, self.q, self.gamma]), x, m)

    def expected_value(self, frequency: ArrayLike, mean_value: ArrayLike) -> Floats:
        """Expected value of a customer's future purchase: their observed mean shrunk
        towards the population mean, the less so the more purchases it rests on
        (x = 0: the population mean). Needs q > 1."""
        if self.q <= 1:
            raise EngineError(f"q must exceed 1 for an expected value (the population mean is infinite), not {self.q}")
        x, m = _spend_inputs(frequency, mean_value, fitting=False)
        p, q, g = self.p, self.q, self.gamma
        return np.asarray((g + m * x) * p / (p * x + q - 1.0), dtype=np.float64)


def _spend_inputs(frequency: ArrayLike, mean_value: ArrayLike, *, fitting: bool) -> tuple[Floats, Floats]:
    x = _floats(frequency, "frequency")
    m = _floats(mean_value, "mean_value")
    if x.shape != m.shape:
        raise EngineError(f"frequency and mean_value differ in length ({len(x)} and {len(m)})")
    if np.any(x < 0) or np.any(x != np.floor(x)):
        raise EngineError("frequency must hold whole numbers >= 0 (repeat purchases)")
    if np.any(m < 0):
        raise EngineError("mean_value must be >= 0")
    if fitting and (np.any(x <= 0) or np.any(m <= 0)):
        raise EngineError("the spend model is fitted on customers with repeat purchases of a positive mean value")
    return x, m


def _spend_ll(params: Floats, x: Floats, m: Floats) -> Floats:
    p, q, g = (float(v) for v in params)
    px = p * x
    return np.asarray(
        special.gammaln(px + q)
        - special.gammaln(px)
        - special.gammaln(q)
        + q * np.log(g)
        + (px - 1.0) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(x * m + g),
        dtype=np.float64,
    )


def spend_fit(
    frequency: ArrayLike,
    mean_value: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    penalizer: float = 0.0,
) -> SpendModel:
    """Maximum-likelihood Gamma-Gamma parameters from the customers with repeat
    purchases (others, and zero means, are left out of the fit)."""
    if not (np.isfinite(penalizer) and penalizer >= 0):
        raise EngineError(f"penalizer must be a number >= 0, not {penalizer!r}")
    x, m = _spend_inputs(frequency, mean_value, fitting=False)
    w = _weights(weights, len(x))
    keep = (x > 0) & (m > 0) & (w > 0)
    if not np.any(keep):
        raise EmptyDataError("no customer has a repeat purchase of a positive value: spend cannot be learnt")
    x, m, w = x[keep], m[keep], w[keep]
    scale = float(np.mean(m))
    (ux, um), uw = _aggregate(x, m / scale, weights=w)
    total = float(uw.sum())

    def objective(log_params: Floats) -> float:
        params = np.exp(np.clip(log_params, -15, 15))
        ll = _spend_ll(params, ux, um)
        value = -float(np.dot(uw, ll)) / total + penalizer * float(np.sum(params**2))
        return value if np.isfinite(value) else 1e300

    p, q, g = (float(v) for v in np.exp(_minimize(objective, np.zeros(3))))
    fitted = SpendModel(p=p, q=q, gamma=g * scale)
    ll = float(np.dot(w, fitted.log_likelihood_each(x, m)))
    return SpendModel(p=p, q=q, gamma=g * scale, log_likelihood=ll, customers=int(keep.sum()))


# --- summaries and value -------------------------------------------------------------------
@dataclass(frozen=True)
class PurchaseHistory:
    """One row per customer (sorted by id): the inputs of both models."""

    customer_ids: NDArray[np.int64]
    frequency: Floats  # repeat purchases: distinct purchase periods after the first
    recency: Floats  # first to last purchase, in periods
    age: Floats  # first purchase to the end of the data, in periods
    mean_value: Floats  # mean value of the repeat purchases (0 without any)
    first: Floats  # the first purchase's period index (times / period, floored)

    def __len__(self) -> int:
        return len(self.customer_ids)


def history_summarize(
    customer_ids: ArrayLike,
    times: ArrayLike,
    values: ArrayLike,
    *,
    end: float,
    period: float = 1.0,
) -> PurchaseHistory:
    """Summarise transactions (customer id, time, value; times in any unit, e.g. days
    since an epoch) observed up to ``end``. Purchases in the same period (``period``
    time units, floored) count as one purchase of their summed value; periods are
    counted from the epoch, so ``end`` is in period ``floor(end / period)``."""
    ids = np.asarray(customer_ids, dtype=np.int64)
    t = _floats(times, "times")
    v = _floats(values, "values")
    if not (len(ids) == len(t) == len(v)):
        raise EngineError(f"customer_ids, times and values differ in length ({len(ids)}, {len(t)}, {len(v)})")
    if not (np.isfinite(period) and period > 0):
        raise EngineError(f"period must be a positive number, not {period!r}")
    if len(t) and float(np.max(t)) > end:
        raise EngineError("a transaction lies after the end of the data")
    if len(ids) == 0:
        empty = np.zeros(0, dtype=np.float64)
        return PurchaseHistory(np.zeros(0, dtype=np.int64), empty, empty, empty, empty, empty)
    day = np.floor(t / period)
    # One row per (customer, period) with the summed value, sorted by customer then period.
    keys = np.column_stack([ids, day.astype(np.int64)])
    (uniq, inverse) = np.unique(keys, axis=0, return_inverse=True)
    day_values = np.bincount(inverse.ravel(), weights=v, minlength=len(uniq))
    cust, cust_start, counts = np.unique(uniq[:, 0], return_index=True, return_counts=True)
    days = uniq[:, 1].astype(np.float64)
    first = days[cust_start]
    last = days[cust_start + counts - 1]
    total = np.add.reduceat(day_values, cust_start)
    first_value = day_values[cust_start]
    frequency = (counts - 1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_value = np.where(frequency > 0, (total - first_value) / np.maximum(frequency, 1), 0.0)
    end_period = float(np.floor(end / period))
    return PurchaseHistory(
        customer_ids=cust.astype(np.int64),
        frequency=frequency,
        recency=last - first,
        age=end_period - first,
        mean_value=np.maximum(mean_value, 0.0),
        first=first,
    )


def lifetime_value(
    transactions: TransactionModel,
    spend: SpendModel,
    history: PurchaseHistory,
    *,
    horizon: float,
    step: float,
    discount_rate: float = 0.0,
) -> Floats:
    """Expected value of each customer's purchases over the next ``horizon`` time
    units: expected purchases in each ``step`` times the expected purchase value,
    discounted by ``discount_rate`` per step (``value / (1 + rate)^i`` for step i)."""
    if not (np.isfinite(horizon) and horizon > 0 and np.isfinite(step) and 0 < step <= horizon):
        raise EngineError(f"need 0 < step <= horizon, not step={step!r}, horizon={horizon!r}")
    if not (np.isfinite(discount_rate) and discount_rate >= 0):
        raise EngineError(f"discount_rate must be a number >= 0, not {discount_rate!r}")
    value = spend.expected_value(history.frequency, history.mean_value)
    steps = int(np.ceil(horizon / step - 1e-9))
    total = np.zeros(len(history), dtype=np.float64)
    before = np.zeros(len(history), dtype=np.float64)
    for i in range(1, steps + 1):
        upto = transactions.expected_purchases(min(i * step, horizon), history.frequency, history.recency, history.age)
        total += (upto - before) / (1.0 + discount_rate) ** i
        before = upto
    return np.asarray(total * value, dtype=np.float64)
