"""Statistics of a campaign's uplift: pure functions (numbers in, numbers out).

Conversion of a group = customers who ordered within the attribution window after
their email was sent (treated) or withheld (holdout). Uplift = difference of the two
rates, with a two-proportion z-test (pooled standard error), a Wald confidence
interval of the difference (unpooled standard error), and Fisher's exact test, which
stays right when counts are small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as sps


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


def rate(x: int, n: int) -> float:
    return x / n if n else 0.0


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
        pooled = (x_treated + x_control) / (n_treated + n_control)
        se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_treated + 1 / n_control))
        if se_pooled > 0:
            z = diff / se_pooled
            p_value = float(2 * sps.norm.sf(abs(z)))
        else:
            z, p_value = None, None
        fisher_p = float(
            sps.fisher_exact(
                [[x_treated, n_treated - x_treated], [x_control, n_control - x_control]], alternative="two-sided"
            ).pvalue
        )
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
