"""recommendations.engine.statistics on known numbers: Wilson interval, pooled
z-test, Fisher's exact test, a campaign's uplift."""

from __future__ import annotations

import pytest

from recommendations.engine.statistics import (
    Rate,
    fisher_exact_p,
    rate_wilson,
    two_proportion_p,
    two_proportion_uplift,
    two_proportion_z_test,
)


def test_rate_wilson_on_known_numbers():
    r = rate_wilson(6, 20)
    assert (r.successes, r.trials, r.value) == (6, 20, pytest.approx(0.3))
    # Wilson 95%: (p + z²/2n) / (1 + z²/n) -/+ z / (1 + z²/n) * sqrt(p(1 - p)/n + z²/4n²), z = 1.959964
    assert (r.low, r.high) == (pytest.approx(0.145477, abs=1e-5), pytest.approx(0.518973, abs=1e-5))
    assert rate_wilson(0, 0) == Rate(0, 0, None, None, None)


def test_two_proportion_z_test_and_p():
    z, p = two_proportion_z_test(60, 500, 40, 500)
    assert z == pytest.approx(2.108185, rel=1e-5) and p == pytest.approx(0.035015, abs=2e-5)
    assert two_proportion_p(rate_wilson(60, 500), rate_wilson(40, 500)) == p
    assert two_proportion_z_test(0, 10, 0, 10) == (None, None)  # no variance
    assert two_proportion_p(rate_wilson(1, 10), rate_wilson(0, 0)) is None  # an empty group


def test_fisher_exact_p():
    assert fisher_exact_p(60, 500, 40, 500) == pytest.approx(0.044762, abs=1e-5)
    assert fisher_exact_p(0, 50, 0, 50) == 1.0


def test_two_proportion_uplift_on_known_numbers():
    u = two_proportion_uplift(x_treated=60, n_treated=500, x_control=40, n_control=500)
    assert u.treated_rate == pytest.approx(0.12) and u.control_rate == pytest.approx(0.08)
    assert u.difference == pytest.approx(0.04) and u.relative == pytest.approx(0.5)
    # pooled p = 0.1; se = sqrt(0.1 * 0.9 * (2/500)) = 0.0189737; z = 0.04 / se
    assert u.z == pytest.approx(2.108185, rel=1e-5)
    assert u.p_value == pytest.approx(0.035015, abs=2e-5)
    # unpooled se = sqrt(.12*.88/500 + .08*.92/500) = 0.0189315; 95% CI = 0.04 -/+ 1.959964 * se
    assert (u.ci_low, u.ci_high) == (pytest.approx(0.002895, abs=2e-6), pytest.approx(0.077105, abs=2e-6))
    assert u.fisher_p == pytest.approx(0.044762, abs=1e-5)
    assert u.significant


def test_uplift_edge_cases():
    none = two_proportion_uplift(x_treated=0, n_treated=50, x_control=0, n_control=50)
    assert none.difference == 0 and none.p_value is None and none.fisher_p == 1.0 and not none.significant
    assert none.relative is None
    with pytest.raises(ValueError, match="treated"):
        two_proportion_uplift(x_treated=5, n_treated=3, x_control=0, n_control=1)
