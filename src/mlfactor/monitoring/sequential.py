"""Statistics that stay valid when looked at every day: mSPRT confidence sequences and the SRM check.

The difference of two means gets the mixture sequential probability ratio
test of Johari, Pekelis and Walsh ("Always valid inference", 2017): with a
normal mixing distribution of variance ``tau**2`` on the effect, the
likelihood ratio is a martingale under the null, so by Ville's inequality the
chance that it *ever* exceeds ``1/alpha`` is at most ``alpha``. Peeking daily
(or after every event) therefore does not inflate false positives; the
equivalent confidence sequence is what reports show.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from scipy import stats

DEFAULT_ALPHA = 0.05
SRM_ALPHA = 0.001  # a sample-ratio mismatch is flagged below this p-value
MIXING_SCALE = 0.1  # tau in units of the metric's standard deviation: tuned for small lifts
MIN_SAMPLES = 30  # per arm, before any decision


@dataclass(frozen=True)
class Moments:
    """Count, mean and (population) variance of one arm's metric."""

    count: int
    mean: float
    variance: float

    @classmethod
    def of(cls, count: int, total: float, squares: float) -> Moments:
        """Moments from running sums (count, sum, sum of squares)."""
        if count == 0:
            return cls(0, 0.0, 0.0)
        mean = total / count
        return cls(count, mean, max(0.0, squares / count - mean * mean))


@dataclass(frozen=True)
class Comparison:
    """Treatment minus control: the estimate, its always-valid interval and p-value."""

    difference: float
    lower: float
    upper: float
    p_value: float

    @property
    def significant(self) -> bool:
        """Whether the interval excludes 0."""
        return self.lower > 0.0 or self.upper < 0.0


def compare_means(
    control: Moments, treatment: Moments, *, alpha: float = DEFAULT_ALPHA, scale: float = MIXING_SCALE
) -> Comparison:
    """The mSPRT confidence sequence for ``treatment.mean - control.mean`` at level ``alpha``.

    Below :data:`MIN_SAMPLES` per arm the interval is infinite (p-value 1).
    """
    if min(control.count, treatment.count) < MIN_SAMPLES:
        return Comparison(treatment.mean - control.mean, -math.inf, math.inf, 1.0)
    pooled = (control.variance + treatment.variance) / 2.0
    variance = max(control.variance / control.count + treatment.variance / treatment.count, 1e-12)
    tau2 = max((scale * math.sqrt(pooled)) ** 2, 1e-12)
    difference = treatment.mean - control.mean
    ratio = (variance + tau2) / variance
    radius = math.sqrt(variance * (variance + tau2) / tau2 * (2.0 * math.log(1.0 / alpha) + math.log(ratio)))
    log_lr = 0.5 * math.log(1.0 / ratio) + tau2 * difference**2 / (2.0 * variance * (variance + tau2))
    p_value = math.exp(-log_lr) if log_lr > 0 else 1.0
    return Comparison(difference, difference - radius, difference + radius, min(1.0, p_value))


def naive_z_test(control: Moments, treatment: Moments) -> float:
    """The fixed-horizon two-sided z-test p-value (only valid when looked at once; for comparison)."""
    variance = control.variance / max(control.count, 1) + treatment.variance / max(treatment.count, 1)
    if variance <= 0:
        return 1.0
    z = (treatment.mean - control.mean) / math.sqrt(variance)
    return float(2.0 * stats.norm.sf(abs(z)))


@dataclass(frozen=True)
class RatioCheck:
    """The sample-ratio-mismatch check: observed against expected counts, p-value, verdict."""

    observed: dict[str, int]
    expected: dict[str, float]
    p_value: float
    mismatch: bool


def sample_ratio_check(counts: Mapping[str, int], weights: Mapping[str, float]) -> RatioCheck:
    """Chi-squared goodness of fit of per-variant counts to the configured weights (alert p < 0.001)."""
    total = sum(counts.get(name, 0) for name in weights)
    weight_sum = sum(weights.values())
    observed = {name: counts.get(name, 0) for name in weights}
    expected = {name: total * weight / weight_sum for name, weight in weights.items()}
    if total == 0 or len(weights) < 2:
        return RatioCheck(observed, expected, 1.0, False)
    live = [name for name in weights if expected[name] > 0]
    if any(observed[name] > 0 for name in weights if expected[name] == 0):
        return RatioCheck(observed, expected, 0.0, True)  # traffic on a variant weighted 0
    result = stats.chisquare([observed[n] for n in live], [expected[n] for n in live])
    p_value = float(result.pvalue)
    return RatioCheck(observed, expected, p_value, p_value < SRM_ALPHA)
