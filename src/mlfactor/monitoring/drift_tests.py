"""Per-feature drift tests on binned data, chosen by feature type and sample size like Evidently.

Evidently's defaults (reference of at most 1 000 rows: Kolmogorov-Smirnov for
numbers, chi-squared for categories; larger: normalised Wasserstein distance
for numbers, Jensen-Shannon distance for categories, both with threshold 0.1)
are followed with one change: the size that picks the test is the smaller of
the two samples, so a handful of live events is never judged by a distance
whose noise exceeds its threshold. Both sides are binned (the reference by
its profile), so every test here reads counts, never raw values; binning
only makes KS conservative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

SMALL_SAMPLE = 1000  # at most this many (in the smaller sample): p-value tests; above: distances
DISTANCE_THRESHOLD = 0.1  # Evidently's default for Wasserstein (normed) and Jensen-Shannon
KS = "ks"
CHI_SQUARED = "chi_squared"
WASSERSTEIN = "wasserstein"
JENSEN_SHANNON = "jensen_shannon"


@dataclass(frozen=True)
class DriftScore:
    """One feature's test: its name, score (p-value or distance), threshold and verdict."""

    test: str
    score: float
    threshold: float
    drifted: bool

    @property
    def is_p_value(self) -> bool:
        """Whether ``score`` is a p-value (drift when below) rather than a distance (drift when above)."""
        return self.test in (KS, CHI_SQUARED)


def ks_binned(ref_cells: np.ndarray, cur_cells: np.ndarray, alpha: float) -> DriftScore:
    """Two-sample KS on counts over the same ordered cells (statistic at the cell boundaries)."""
    n, m = float(ref_cells.sum()), float(cur_cells.sum())
    statistic = float(np.max(np.abs(np.cumsum(ref_cells) / n - np.cumsum(cur_cells) / m)))
    effective = max(1, round(n * m / (n + m)))
    p_value = float(stats.kstwo.sf(statistic, effective))
    return DriftScore(KS, p_value, alpha, p_value < alpha)


def wasserstein_binned(
    edges: np.ndarray,
    ref_cells: np.ndarray,
    cur_cells: np.ndarray,
    tails: tuple[float, float],
    scale: float,
    *,
    threshold: float = DISTANCE_THRESHOLD,
) -> DriftScore:
    """Wasserstein-1 distance between binned samples divided by the reference's standard deviation.

    ``cur_cells`` has the two open cells (below the first edge, above the
    last); ``tails`` = (sum of (first edge - x) below it, sum of (x - last
    edge) above it) make the open cells exact; inside a bin, mass is uniform.
    """
    ref_cdf = np.cumsum(ref_cells[:-1]) / ref_cells.sum()  # at each edge: F(e_i)
    cur_cdf = np.cumsum(cur_cells[:-1]) / cur_cells.sum()
    gap = np.abs(ref_cdf - cur_cdf)
    inside = float(np.sum(np.diff(edges) * (gap[:-1] + gap[1:]) / 2.0))
    m = float(cur_cells.sum())
    distance = (inside + (tails[0] + tails[1]) / m) / (scale if scale > 0 else 1.0)
    return DriftScore(WASSERSTEIN, distance, threshold, distance >= threshold)


def _present(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = (ref + cur) > 0
    return ref[keep], cur[keep]


def chi_squared(ref_counts: np.ndarray, cur_counts: np.ndarray, alpha: float) -> DriftScore:
    """Chi-squared test of homogeneity (two samples, no continuity correction) over categories."""
    ref, cur = _present(ref_counts, cur_counts)
    if ref.size < 2:
        return DriftScore(CHI_SQUARED, 1.0, alpha, False)
    result = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
    p_value = float(result.pvalue)
    return DriftScore(CHI_SQUARED, p_value, alpha, p_value < alpha)


def jensen_shannon(
    ref_counts: np.ndarray, cur_counts: np.ndarray, threshold: float = DISTANCE_THRESHOLD
) -> DriftScore:
    """Jensen-Shannon distance (natural log, as Evidently) between category shares."""
    ref, cur = _present(ref_counts, cur_counts)
    distance = float(jensenshannon(ref / ref.sum(), cur / cur.sum())) if ref.size > 1 else 0.0
    return DriftScore(JENSEN_SHANNON, distance, threshold, distance >= threshold)


def is_small(reference_rows: int, current_rows: int) -> bool:
    """Whether the p-value tests apply (the smaller sample has at most :data:`SMALL_SAMPLE` rows)."""
    return min(reference_rows, current_rows) <= SMALL_SAMPLE
