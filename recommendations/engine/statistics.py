"""Statistics of proportions: pure functions (numbers in, numbers out; numpy/scipy only).

* ``rate_wilson``: a proportion with its Wilson score interval (an A/B variant's
  click-through or conversion).
* ``two_proportion_z_test``: two-sided pooled z-test that two proportions differ.
* ``fisher_exact_p``: Fisher's exact test on the 2 x 2 table, right when counts are small.
* ``two_proportion_uplift``: a campaign's uplift. Conversion of a group = customers who
  ordered within the attribution window after their email was sent (treated) or withheld
  (holdout). Uplift = difference of the two rates, with the z-test (pooled standard
  error), a Wald confidence interval of the difference (unpooled standard error) and
  Fisher's exact test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as sps


# --- one proportion ---------------------------------------------------------------------
@dataclass(frozen=True)
class Rate:
    successes: int
    trials: int
    value: float | None
    low: float | None
    high: float | None


def rate(x: int, n: int) -> float:
    return x / n if n else 0.0


def rate_wilson(successes: int, trials: int, *, confidence: float = 0.95) -> Rate:
    """A proportion with its Wilson score interval (scipy.stats.binomtest)."""
    if trials <= 0:
        return Rate(successes, trials, None, None, None)
    ci = sps.binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return Rate(successes, trials, successes / trials, float(ci.low), float(ci.high))


# --- two proportions ----------------------------------------------------------------------
def two_proportion_z_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float | None, float | None]:
    """``(z, two-sided p)`` that x1/n1 and x2/n2 differ (pooled standard error);
    ``(None, None)`` when undefined (an empty group, or no variance at all)."""
    if n1 <= 0 or n2 <= 0:
        return None, None
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se <= 0:
        return None, None
    z = (x1 / n1 - x2 / n2) / se
    return z, float(2 * sps.norm.sf(abs(z)))


def two_proportion_p(a: Rate, b: Rate) -> float | None:
    """Two-sided p-value that two rates differ (pooled z-test); None if undefined."""
    return two_proportion_z_test(a.successes, a.trials, b.successes, b.trials)[1]


def fisher_exact_p(x1: int, n1: int, x2: int, n2: int) -> float:
    """Two-sided p-value of Fisher's exact test on [[x1, n1 - x1], [x2, n2 - x2]]."""
    return float(sps.fisher_exact([[x1, n1 - x1], [x2, n2 - x2]], alternative="two-sided").pvalue)


@dataclass(frozen=True)
class Uplift:
    treated_rate: float
    control_rate: float
    difference: float  # treated - control (absolute, in rate units)
    relative: float | None  # difference / control rate (None when control is 0)
    ci_low: float
    ci_high: float
    z: float | None
    p_value: float | None  # two-sided, z-test
    fisher_p: float | None  # two-sided, Fisher exact
    confidence: float
    significant: bool

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def two_proportion_uplift(
    *, x_treated: int, n_treated: int, x_control: int, n_control: int, confidence: float = 0.95
) -> Uplift:
    """Compare conversion of treated (x_treated of n_treated) with control."""
    for name, x, n in (("treated", x_treated, n_treated), ("control", x_control, n_control)):
        if n < 0 or x < 0 or x > n:
            raise ValueError(f"{name}: need 0 <= conversions <= size, got {x} of {n}")
    if not 0 < confidence < 1:
        raise ValueError("confidence is between 0 and 1")
    p1, p2 = rate(x_treated, n_treated), rate(x_control, n_control)
    diff = p1 - p2
    relative = diff / p2 if p2 else None
    z_crit = float(sps.norm.ppf(0.5 + confidence / 2))
    if n_treated and n_control:
        se = math.sqrt(p1 * (1 - p1) / n_treated + p2 * (1 - p2) / n_control)
        ci = (diff - z_crit * se, diff + z_crit * se)
        z, p_value = two_proportion_z_test(x_treated, n_treated, x_control, n_control)
        fisher_p = fisher_exact_p(x_treated, n_treated, x_control, n_control)
    else:
        ci, z, p_value, fisher_p = (float("nan"), float("nan")), None, None, None
    alpha = 1 - confidence
    significant = p_value is not None and p_value < alpha
    return Uplift(
        treated_rate=p1,
        control_rate=p2,
        difference=diff,
        relative=relative,
        ci_low=ci[0],
        ci_high=ci[1],
        z=z,
        p_value=p_value,
        fisher_p=fisher_p,
        confidence=confidence,
        significant=significant,
    )
