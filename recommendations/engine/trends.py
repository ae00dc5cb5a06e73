"""Rising items: how surprising each item's count in a recent window is against the
item's OWN baseline (pure numpy/scipy; the admin's live trends board uses it).

For every item we know its count in the recent window ``x`` and in the baseline
window before it ``b``. The windows have exposures ``R`` and ``B``: how much the whole
store did in each (all events counted), so a store-wide surge (Christmas) does not
make every item "rising" -- only items whose share grew.

* **Expected** recent count: ``b * R / B`` (the baseline rate scaled to the recent
  window's exposure).
* **Velocity** (the smoothed rate ratio): ``(x + prior) / (expected + prior)``; the
  prior pseudo-count keeps an item going from 0 to 1 event from looking like an
  infinite rise.
* **Significance**: under "no change" (the item's rate moves with the store's), the
  item's ``n = x + b`` events fall in the recent window independently with
  probability ``pi = R / (R + B)``, so ``x ~ Binomial(n, pi)`` -- the conditional test
  comparing two Poisson rates. The one-sided mid-p value ``P(X > x) + P(X = x) / 2``
  becomes a z-score (``z = Phi^-1(1 - p)``): 2 is unusual, 3 is strong evidence; an
  item with no events scores 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .errors import EngineError

__all__ = ["RisingStats", "rising_stats", "rising_order"]

Z_CAP = 37.0  # |z| beyond this is numerically infinite in float64 tails


@dataclass(frozen=True)
class RisingStats:
    """Per-item arrays aligned with the counts given to `rising_stats`."""

    expected: np.ndarray  # float64: baseline count scaled to the recent window
    velocity: np.ndarray  # float64: smoothed recent / expected
    p_value: np.ndarray  # float64: one-sided mid-p value of "not rising"
    z: np.ndarray  # float64: significance as a z-score (capped at +-Z_CAP)


def _counts(name: str, value: object) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 1:
        raise EngineError(f"{name} must be a 1-D array of counts, got shape {array.shape}")
    if array.size and (not np.all(np.isfinite(array)) or array.min() < 0 or np.any(array != np.round(array))):
        raise EngineError(f"{name} must hold whole, non-negative counts")
    return array


def rising_stats(
    recent: np.ndarray,
    baseline: np.ndarray,
    *,
    recent_exposure: float,
    baseline_exposure: float,
    prior: float = 1.0,
) -> RisingStats:
    """Velocity and significance of each item's recent count (module docstring).

    ``recent_exposure`` / ``baseline_exposure``: the store's totals in the two windows
    (> 0; a window's length in days works too). Raises ``EngineError`` on bad input."""
    x = _counts("recent", recent)
    b = _counts("baseline", baseline)
    if x.shape != b.shape:
        raise EngineError(f"recent has {x.size} items, baseline has {b.size}")
    for name, value in (("recent_exposure", recent_exposure), ("baseline_exposure", baseline_exposure)):
        if not np.isfinite(value) or value <= 0:
            raise EngineError(f"{name} must be a positive number, got {value!r}")
    if not np.isfinite(prior) or prior <= 0:
        raise EngineError(f"prior must be a positive number, got {prior!r}")
    share = recent_exposure / (recent_exposure + baseline_exposure)
    expected = b * (recent_exposure / baseline_exposure)
    velocity = (x + prior) / (expected + prior)
    n = x + b
    # mid-p: P(X > x) + P(X = x) / 2 for X ~ Binomial(n, share); n = 0 gives 0.5 (z = 0)
    p_value = stats.binom.sf(x, n, share) + 0.5 * stats.binom.pmf(x, n, share)
    p_value = np.clip(p_value, 0.0, 1.0)
    z = np.clip(stats.norm.isf(p_value), -Z_CAP, Z_CAP)
    return RisingStats(expected=expected, velocity=velocity, p_value=p_value, z=np.asarray(z, dtype=np.float64))


def rising_order(
    result: RisingStats,
    recent: np.ndarray,
    *,
    min_recent: int = 1,
    min_velocity: float = 1.0,
    min_z: float = 0.0,
) -> np.ndarray:
    """Positions of the rising items, most significant first: at least ``min_recent``
    recent events, a velocity above ``min_velocity`` and a z-score of at least
    ``min_z``. Ties go to the higher velocity, then the more recent events, then the
    lower position (deterministic)."""
    x = np.asarray(recent, dtype=np.float64)
    keep = np.flatnonzero((x >= min_recent) & (result.velocity > min_velocity) & (result.z >= min_z))
    order = np.lexsort((keep, -x[keep], -result.velocity[keep], -result.z[keep]))
    return keep[order]
