"""recommendations.engine.clv against published figures (CDNOW), values derived
independently (numerical integration over the latent rate and drop-out probability,
the untransformed hypergeometric formulas), simulation with known parameters, and
small worked examples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import special

from recommendations.engine import EmptyDataError, EngineError
from recommendations.engine.clv import (
    PurchaseHistory,
    SpendModel,
    TransactionModel,
    history_summarize,
    lifetime_value,
    spend_fit,
    transactions_fit,
)

DATA = Path(__file__).parent / "data" / "cdnow_summary.csv"


@pytest.fixture(scope="module")
def cdnow() -> np.ndarray:
    """The CDNOW summary of Fader, Hardie & Lee (2005): 2357 customers, x, t_x, T in
    weeks, zbar the mean value of the repeat purchases (see data/README.md)."""
    return np.genfromtxt(DATA, delimiter=",", names=True)


# --- published figures ------------------------------------------------------------------
def test_bgnbd_fit_recovers_the_published_cdnow_parameters(cdnow):
    model = transactions_fit(cdnow["x"], cdnow["t_x"], cdnow["T"])
    # Fader, Hardie & Lee (2005), "Counting your customers the easy way", section 5.
    assert model.r == pytest.approx(0.243, abs=1e-3)
    assert model.alpha == pytest.approx(4.414, abs=1e-3)
    assert model.a == pytest.approx(0.793, abs=1e-3)
    assert model.b == pytest.approx(2.426, abs=1e-3)
    assert model.log_likelihood == pytest.approx(-9582.4, abs=0.05)
    assert model.customers == 2357


def test_bgnbd_expectations_match_hardies_spreadsheet():
    model = TransactionModel("bgnbd", r=0.243, alpha=4.414, a=0.793, b=2.426)
    # The paper's worked customer: 2 repeat purchases, the last at 30.43 weeks, T = 38.86.
    assert model.expected_purchases(39, 2, 30.43, 38.86)[0] == pytest.approx(1.226, abs=1e-3)
    # E[X(t)] of a new customer, from Hardie's BG/NBD spreadsheet (rounded parameters:
    # the sheet's own are the unrounded MLE, hence the tolerance).
    times = [0.1429, 1.0, 3.0, 31.8571, 32.0, 78.0]
    expected = [0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576]
    np.testing.assert_allclose(model.expected_purchases_new(times), expected, rtol=2e-3, atol=1e-4)


def test_mbgnbd_fit_recovers_the_published_cdnow_parameters(cdnow):
    model = transactions_fit(cdnow["x"], cdnow["t_x"], cdnow["T"], model="mbgnbd")
    # Batislam et al. (2007) MBG/NBD on CDNOW as fitted by BTYDplus (R).
    assert (model.r, model.alpha, model.a, model.b) == (
        pytest.approx(0.525, abs=2e-3),
        pytest.approx(6.183, abs=2e-3),
        pytest.approx(0.891, abs=2e-3),
        pytest.approx(1.614, abs=2e-3),
    )


def test_gamma_gamma_fit_recovers_the_published_cdnow_parameters(cdnow):
    repeat = cdnow["x"] > 0
    model = spend_fit(cdnow["x"][repeat], cdnow["zbar"][repeat])
    # Fader, Hardie & Lee (2005), "RFM and CLV: using iso-value curves", p = 6.25, q = 3.74, gamma = 15.44.
    assert model.p == pytest.approx(6.25, abs=0.01)
    assert model.q == pytest.approx(3.74, abs=0.01)
    assert model.gamma == pytest.approx(15.44, abs=0.02)
    assert model.customers == 946
    # Customers without repeat purchases are left out of the fit, not an error.
    assert spend_fit(cdnow["x"], cdnow["zbar"]).params() == pytest.approx(model.params())


# --- independent derivations ---------------------------------------------------------------
def _posterior_integrals(model: TransactionModel, x: int, t_x: float, big_t: float, t: float) -> tuple[float, float]:
    """P(alive) and E[Y(t)] by integrating numerically, over lambda ~ Gamma(r, alpha)
    and p ~ Beta(a, b), the individual-level story: purchases at rate lambda, a
    drop-out with probability p after each repeat purchase (and after the first one
    too, MBG); while alive, (1 - exp(-lambda p t)) / p purchases are expected in t.
    Gauss-Laguerre in lambda (one rule per exponential rate), Gauss-Jacobi in p."""
    s = 1 if model.model == "mbgnbd" else 0
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    k = r - 1 + x  # lambda^(r-1) of the prior times lambda^x of the purchases
    u, wu = special.roots_genlaguerre(200, k)
    y, wy = special.roots_jacobi(200, b - 1, a - 1)  # weight (1-y)^(b-1) (1+y)^(a-1)
    p = (1 + y) / 2

    def integral(rate: float, g) -> float:  # integral of lambda^k e^{-rate lambda} p^(a-1) (1-p)^(b-1) g
        lam = u[:, None] / rate
        return float(np.einsum("i,j,ij->", wu, wy, g(lam, p[None, :]))) / rate ** (k + 1)

    def future(lam, q):
        return -np.expm1(-lam * q * t) / q

    alive = integral(alpha + big_t, lambda lam, q: (1 - q) ** (x + s))
    expected = integral(alpha + big_t, lambda lam, q: (1 - q) ** (x + s) * future(lam, q))
    dead = 0.0 if x == 0 and s == 0 else integral(alpha + t_x, lambda lam, q: q * (1 - q) ** (x - 1 + s))
    return alive / (alive + dead), expected / (alive + dead)


@pytest.mark.parametrize("kind", ["bgnbd", "mbgnbd"])
@pytest.mark.parametrize(("x", "t_x", "big_t"), [(0, 0.0, 20.0), (1, 3.0, 30.0), (4, 25.0, 30.0), (3, 5.0, 40.0)])
def test_closed_forms_equal_numerical_integration(kind, x, t_x, big_t):
    model = TransactionModel(kind, r=1.3, alpha=6.0, a=1.4, b=3.0)
    alive, expected = _posterior_integrals(model, x, t_x, big_t, t=20.0)
    assert model.probability_alive(x, t_x, big_t)[0] == pytest.approx(alive, rel=1e-5)
    assert model.expected_purchases(20.0, x, t_x, big_t)[0] == pytest.approx(expected, rel=1e-5)
    if kind == "bgnbd" and x == 0:
        assert alive == pytest.approx(1.0)  # BG/NBD: no repeat purchase, no chance to drop out


def test_pfaff_form_equals_the_papers_formula():
    """The paper's form, (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x;
    a+b+x-1; t/(alpha+T+t))] / [1 + delta a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)]."""
    model = TransactionModel("bgnbd", r=0.243, alpha=4.414, a=0.793, b=2.426)
    r, alpha, a, b = model.r, model.alpha, model.a, model.b
    x = np.array([0, 1, 2, 5, 12.0])
    t_x = np.array([0, 4.0, 30.43, 20.0, 35.0])
    big_t = np.full(5, 38.86)
    t = 39.0
    z = t / (alpha + big_t + t)
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, z)
    numerator = (a + b + x - 1) / (a - 1) * (1 - ((alpha + big_t) / (alpha + big_t + t)) ** (r + x) * hyp)
    denominator = 1 + (x > 0) * a / (b + x - 1) * ((alpha + big_t) / (alpha + t_x)) ** (r + x)
    np.testing.assert_allclose(model.expected_purchases(t, x, t_x, big_t), numerator / denominator, rtol=1e-9)


def test_frequent_buyers_get_finite_predictions_near_their_own_rate():
    model = TransactionModel("mbgnbd", r=2.0, alpha=30.0, a=0.5, b=4.0)
    x, big_t = np.array([300.0, 600.0, 3000.0]), np.array([370.0, 371.0, 371.0])
    expected = model.expected_purchases(90.0, x, big_t, big_t)  # bought today
    assert np.all(np.isfinite(expected))
    # their own rate (x / T per day) over 90 days, less the chance of dropping out meanwhile
    np.testing.assert_allclose(expected, 90 * x / big_t, rtol=0.15)
    assert np.all(expected < 90 * x / big_t)


def _simulate(kind: str, params: tuple[float, float, float, float], n: int, big_t: float, t: float, seed: int):
    """Customers who buy at rate lambda and drop out with probability p after each
    repeat purchase (and after the first, MBG); observed for big_t, then t more."""
    rng = np.random.default_rng(seed)
    r, alpha, a, b = params
    lam = rng.gamma(r, 1 / alpha, n)
    p = rng.beta(a, b, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    future = np.zeros(n)
    for i in range(n):
        now, alive = 0.0, not (kind == "mbgnbd" and rng.random() < p[i])
        while alive:
            now += rng.exponential(1 / lam[i])
            if now > big_t + t:
                break
            if now <= big_t:
                x[i] += 1
                t_x[i] = now
            else:
                future[i] += 1
            alive = rng.random() >= p[i]
    return x, t_x, np.full(n, big_t), future


@pytest.mark.parametrize("kind", ["bgnbd", "mbgnbd"])
def test_simulated_customers_parameters_recovered_and_predictions_calibrated(kind):
    truth = (0.8, 12.0, 1.5, 4.0)
    x, t_x, big_t, future = _simulate(kind, truth, n=6000, big_t=52.0, t=26.0, seed=7)
    model = transactions_fit(x, t_x, big_t, model=kind)
    fitted = np.array([model.r, model.alpha, model.a, model.b])
    np.testing.assert_allclose(fitted, truth, rtol=0.3)
    predicted = model.expected_purchases(26.0, x, t_x, big_t)
    assert predicted.sum() == pytest.approx(future.sum(), rel=0.08)
    # calibrated by group too: the customers predicted to buy most do buy most
    top = predicted >= np.quantile(predicted, 0.9)
    assert predicted[top].sum() == pytest.approx(future[top].sum(), rel=0.15)
    # the probability of being alive separates who buys again from who does not
    alive = model.probability_alive(x, t_x, big_t)
    assert alive[future > 0].mean() > alive[future == 0].mean() + 0.1


def test_a_fit_maximises_the_likelihood(cdnow):
    model = transactions_fit(cdnow["x"], cdnow["t_x"], cdnow["T"])
    for name in ("r", "alpha", "a", "b"):
        for factor in (0.97, 1.03):
            params = model.params() | {name: model.params()[name] * factor}
            other = TransactionModel("bgnbd", **params)
            assert other.log_likelihood_each(cdnow["x"], cdnow["t_x"], cdnow["T"]).sum() < model.log_likelihood


# --- worked examples ------------------------------------------------------------------------
def test_history_summarize_on_a_worked_example():
    # customer 7: days 0.2, 0.9 (same day: one purchase of 15), 3.5, 10.0 -> x = 2, t_x = 10, T = 20
    # customer 3: one purchase on day 5 -> x = 0, t_x = 0, T = 15, mean 0
    # customer 9: days 2, 4 with values 10, 30 -> x = 1, t_x = 2, T = 18, mean value 30
    history = history_summarize(
        [7, 7, 3, 7, 9, 7, 9],
        [0.2, 0.9, 5.0, 3.5, 2.0, 10.0, 4.0],
        [5.0, 10.0, 99.0, 20.0, 10.0, 40.0, 30.0],
        end=20.5,
    )
    assert isinstance(history, PurchaseHistory)
    assert history.customer_ids.tolist() == [3, 7, 9]
    assert history.frequency.tolist() == [0, 2, 1]
    assert history.recency.tolist() == [0, 10, 2]
    assert history.age.tolist() == [15, 20, 18]
    assert history.mean_value.tolist() == [0, 30, 30]  # repeat purchases only: (20 + 40) / 2
    weekly = history_summarize([1, 1, 1], [0.0, 6.0, 15.0], [1.0, 1.0, 1.0], end=21.0, period=7.0)
    assert (weekly.frequency[0], weekly.recency[0], weekly.age[0]) == (1, 2, 3)


def test_gamma_gamma_expected_value_on_a_worked_example():
    model = SpendModel(p=6.25, q=3.74, gamma=15.44)
    # (gamma + m x) p / (p x + q - 1): x = 2, m = 40 -> (15.44 + 80) 6.25 / (12.5 + 2.74)
    assert model.expected_value(2, 40.0)[0] == pytest.approx(95.44 * 6.25 / 15.24)
    assert model.expected_value(0, 0.0)[0] == pytest.approx(model.population_mean)
    assert model.population_mean == pytest.approx(6.25 * 15.44 / 2.74)
    # more purchases: closer to the customer's own mean
    assert abs(model.expected_value(50, 80.0)[0] - 80) < abs(model.expected_value(2, 80.0)[0] - 80)


def test_lifetime_value_is_purchases_times_value_and_discounting_lowers_it():
    transactions = TransactionModel("mbgnbd", r=0.5, alpha=6.0, a=0.9, b=1.6)
    spend = SpendModel(p=6.25, q=3.74, gamma=15.44)
    history = history_summarize([1, 1, 1, 2], [0, 10, 30, 20], [20, 30, 50, 15], end=40.0)
    undiscounted = lifetime_value(transactions, spend, history, horizon=52.0, step=4.0)
    expected = transactions.expected_purchases(52.0, history.frequency, history.recency, history.age)
    value = spend.expected_value(history.frequency, history.mean_value)
    np.testing.assert_allclose(undiscounted, expected * value, rtol=1e-9)
    discounted = lifetime_value(transactions, spend, history, horizon=52.0, step=4.0, discount_rate=0.01)
    assert np.all(discounted < undiscounted) and np.all(discounted > 0.85 * undiscounted)


def test_age_alive_below_is_where_probability_alive_crosses_the_threshold():
    model = TransactionModel("mbgnbd", r=0.5, alpha=6.0, a=0.9, b=1.6)
    x, t_x = np.array([0.0, 1, 5, 20]), np.array([0.0, 3, 20, 30])
    ages = model.age_alive_below(0.4, x, t_x)
    np.testing.assert_allclose(model.probability_alive(x, t_x, ages), 0.4, rtol=1e-9)
    assert np.all(ages >= t_x)
    bg = TransactionModel("bgnbd", r=0.5, alpha=6.0, a=0.9, b=1.6)
    assert bg.age_alive_below(0.4, [0.0], [0.0])[0] == np.inf
    # already below at the last purchase: the last purchase itself
    assert model.age_alive_below(0.99, [1.0], [3.0])[0] == 3.0


# --- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([1.5], [2.0], [3.0]), "whole numbers"),
        (([1], [4.0], [3.0]), "must not exceed age"),
        (([0], [1.0], [3.0]), "recency must be 0"),
        (([2], [0.0], [3.0]), "recency must be > 0"),
        (([1], [np.nan], [3.0]), "not a finite number"),
    ],
)
def test_bad_histories_are_named(args, message):
    with pytest.raises(EngineError, match=message):
        transactions_fit(*args)


def test_nothing_to_learn_is_an_empty_data_error():
    with pytest.raises(EmptyDataError, match="no customer has a repeat purchase"):
        transactions_fit([0, 0], [0, 0], [5, 9])
    with pytest.raises(EmptyDataError, match="repeat purchase of a positive value"):
        spend_fit([0, 3], [0.0, 0.0])
    with pytest.raises(EngineError, match="unknown transaction model 'pareto'"):
        transactions_fit([1], [1], [2], model="pareto")  # type: ignore[arg-type]
    with pytest.raises(EngineError, match="a transaction lies after the end"):
        history_summarize([1], [5.0], [1.0], end=4.0)


def test_expectation_without_2f1_when_the_dropout_probability_is_nearly_fixed():
    """a, b huge (the MLE's edge when everyone drops out alike): 2F1 is out of reach, the
    quadrature over the Beta's quantiles takes over and equals the point-mass answer."""
    model = TransactionModel("mbgnbd", r=0.5, alpha=15.0, a=1.7e6, b=1.2e7)
    x, t_x, big_t = np.array([0.0, 2, 1, 8]), np.array([0.0, 139, 5, 150]), np.array([162.0, 142, 150, 160])
    expected = model.expected_purchases(365.0, x, t_x, big_t)
    p = model.a / (model.a + model.b)
    k = 365.0 / (model.alpha + big_t)
    point_mass = model.probability_alive(x, t_x, big_t) * -np.expm1(-(model.r + x) * np.log1p(p * k)) / p
    np.testing.assert_allclose(expected, point_mass, rtol=1e-4)
    # and where 2F1 works, the quadrature agrees with it
    moderate = TransactionModel("bgnbd", r=0.243, alpha=4.414, a=0.793, b=2.426)
    x, t_x, big_t = np.array([0.0, 2, 7]), np.array([0.0, 30.43, 20]), np.array([38.86, 38.86, 30])
    np.testing.assert_allclose(
        moderate._expected_by_quadrature(39.0, x, t_x, big_t),
        moderate.expected_purchases(39.0, x, t_x, big_t),
        rtol=2e-4,
    )
