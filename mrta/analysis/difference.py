"""One cohort's map and the comparison of two: the difference of their means, its standard error,
and which cells are noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


# -- the atlas -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CohortMap:
    """One cohort's map: mean and population standard deviation per cell, and its row count.

    ``std_is_bound``: for head-averaged maps the standard deviation is the mean of the heads'
    standard deviations, an upper bound of the true one (heads co-vary across rows, and the
    recorder keeps no cross-head moments).

    Shape: ``mean``, ``std``: ``(H, Tq, Tk)``, or ``(Tq, Tk)`` for one head or the head mean.
    """

    mean: np.ndarray
    std: np.ndarray
    count: int
    std_is_bound: bool = False


@dataclass(frozen=True)
class MapDifference:
    """``a - b`` of two cohorts' mean maps, its standard error, and which cells are noise.

    Shape: all three like the cohorts' maps.
    """

    diff: np.ndarray
    se: np.ndarray
    muted: np.ndarray  # bool: |diff| < z * se


def cohort_difference(a: CohortMap, b: CohortMap, z: float = 2.0) -> MapDifference:
    """The difference of two cohorts' mean maps, with a standard error per cell.

    ``se = sqrt(s_a²/n_a + s_b²/n_b)`` with sample variances ``s² = std² · n/(n−1)``; a cohort of
    fewer than 2 rows has an infinite error (everything muted). Cells with ``|diff| < z·se``
    are muted. The errors assume independent cohorts; for overlapping ones (a cohort against
    all rows) the true error is smaller, so muting errs on the side of silence.
    """
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"cohort maps differ in shape: {a.mean.shape} and {b.mean.shape}")
    variance = np.zeros_like(a.mean, dtype=np.float64)
    for cohort in (a, b):
        if cohort.count < 2:
            variance = variance + np.inf
        else:
            variance = variance + cohort.std.astype(np.float64) ** 2 / (cohort.count - 1)
    diff = a.mean.astype(np.float64) - b.mean.astype(np.float64)
    se = np.sqrt(variance)
    return MapDifference(diff=diff, se=se, muted=~(np.abs(diff) >= z * se))
