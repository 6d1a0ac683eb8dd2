"""One cohort's map, the rest of a cohort within another, and the comparison of two disjoint
cohorts cell by cell.

Each cell is tested by Welch's t (unequal variances) with Welch–Satterthwaite degrees of freedom,
two-sided, and the cells of the map in view are one family whose false discovery rate is held
at ``q`` by the Benjamini–Yekutieli procedure. BY is valid under any dependence between the
tests, which covers the cells of one row of an attention map (they sum to 1, so they are
negatively dependent, where Benjamini–Hochberg's guarantee does not hold). ``q`` is the only
threshold: a cell is shown as different when its BY-adjusted p-value is at most ``q``; there is
no separate z cut, which would test every cell at its own level regardless of how many are shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

DEFAULT_Q = 0.05  # false discovery rate of a difference map


@dataclass(frozen=True)
class CohortMap:
    """One cohort's map: per cell the mean and population standard deviation over its rows, and
    its row count.

    Shape: ``mean``, ``std``: ``(H, Tq, Tk)``, or ``(Tq, Tk)`` for one head or the head mean.
    """

    mean: np.ndarray
    std: np.ndarray
    count: int


def complement(whole: CohortMap, part: CohortMap) -> CohortMap:
    """The rows of ``whole`` that are not in ``part``; the caller guarantees that every row of
    ``part`` is one of ``whole``'s.

    From the moments of the two, in float64: ``n_r = n_w − n_p``, the sums ``n·mean``
    subtracted, ``mean_r = (n_w·mean_w − n_p·mean_p) / n_r``, and the sums of squares about each
    cohort's own mean (``n·std²``) subtracted along with the part of ``whole``'s that lies
    between the two means: ``n_r·std_r² = n_w·std_w² − n_p·std_p² − n_p·n_w/n_r·(mean_p −
    mean_w)²`` (Chan et al.'s pairwise update, run backwards). Working on centred moments
    cancels no raw sum of squares against a squared mean, so precision is that of the moments
    given: the atlas stores them in float32 (relative rounding 6e-8), which the subtraction
    amplifies by ``n_w / n_r`` at most; a small negative variance from that rounding is clamped
    to 0. A rest of no rows has NaN maps.

    Shape: like the inputs' maps.
    """
    if whole.mean.shape != part.mean.shape:
        raise ValueError(f"cohort maps differ in shape: {whole.mean.shape} and {part.mean.shape}")
    n_w, n_p = whole.count, part.count
    n_r = n_w - n_p
    if n_r < 0:
        raise ValueError(f"part has {n_p} rows, more than whole's {n_w}: it is not part of whole")
    if n_r == 0:
        empty = np.full(whole.mean.shape, np.nan)
        return CohortMap(empty, empty.copy(), 0)
    mean_w, mean_p = (m.astype(np.float64) for m in (whole.mean, part.mean))
    var_w, var_p = (s.astype(np.float64) ** 2 for s in (whole.std, part.std))
    mean_r = (n_w * mean_w - n_p * mean_p) / n_r
    squares_r = n_w * var_w - n_p * var_p - n_p * n_w / n_r * (mean_p - mean_w) ** 2
    return CohortMap(mean_r, np.sqrt(np.clip(squares_r, 0, None) / n_r), n_r)


@dataclass(frozen=True)
class MapDifference:
    """``a − b`` of two cohorts' mean maps, tested cell by cell (see the module docstring).

    Attributes:
        diff: the difference of the means.
        se: its standard error, ``sqrt(s_a²/n_a + s_b²/n_b)`` with sample variances ``s²``; inf
            when a cohort has fewer than 2 rows, NaN when the cohorts may share rows.
        t: Welch's t, ``diff / se``.
        df: Welch–Satterthwaite degrees of freedom.
        p: two-sided p-value of ``t`` on ``df`` degrees of freedom.
        p_adjusted: Benjamini–Yekutieli adjusted p-value over the cells tested.
        significant: ``p_adjusted <= q``; all False when untested.
        q: the false discovery rate.
        tested: False when a cohort has fewer than 2 rows or the cohorts may share rows: then
            ``t``, ``df``, ``p`` and ``p_adjusted`` are NaN and ``note`` says why.
        cells_tested: the size of the family: cells that vary in at least one cohort. A cell
            that varies in neither has no test (NaN ``t``, ``df``, ``p``, ``p_adjusted``; never
            significant) and does not count.
        note: why there is no test; empty when tested.

    Shape: the arrays like the cohorts' maps.
    """

    diff: np.ndarray
    se: np.ndarray
    t: np.ndarray
    df: np.ndarray
    p: np.ndarray
    p_adjusted: np.ndarray
    significant: np.ndarray
    q: float
    tested: bool
    cells_tested: int
    note: str = ""

    @property
    def muted(self) -> np.ndarray:
        """Cells to grey out: those not significant; none when untested (the difference is
        then shown as is, with :attr:`note`). Shape: like :attr:`diff`."""
        return ~self.significant if self.tested else np.zeros(self.diff.shape, dtype=bool)

    @property
    def passing(self) -> int:
        """How many cells are significant."""
        return int(self.significant.sum())

    @property
    def expected_false(self) -> float:
        """How many of the passing cells chance may explain, ``q · passing``: the procedure
        holds the expected share of chance passes among the passing cells at ``q`` or less."""
        return self.q * self.passing

    def caption(self) -> str:
        """One sentence: how many cells pass, how many of them chance may explain, and how."""
        if not self.tested:
            return self.note
        untestable = self.diff.size - self.cells_tested
        skipped = f" ({untestable} vary in neither cohort and have no test)" if untestable else ""
        return (
            f"{self.passing} of {self.cells_tested} cells tested{skipped} differ at a false "
            f"discovery rate of q = {self.q:g} (Welch's t, Benjamini–Yekutieli, valid under any "
            "dependence between cells, such as the negative dependence of the cells of one "
            "attention row): the expected share of chance passes among them is at most "
            f"{self.q:g} (at most {_number(self.expected_false)} of these {self.passing}), and if "
            "the cohorts did not differ at all, the chance that any cell would pass is at most "
            f"{self.q:g}."
        )


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def benjamini_yekutieli(p: np.ndarray) -> np.ndarray:
    """Benjamini–Yekutieli adjusted p-values, every cell one family (as
    ``scipy.stats.false_discovery_control(p.ravel(), method="by")``): with ``m`` p-values in
    increasing order ``p_(1) ≤ … ≤ p_(m)`` and ``c(m) = Σ_{i≤m} 1/i``, ``p̃_(k) = min(1,
    min_{j ≥ k} p_(j)·m·c(m)/j)``. Rejecting ``p̃ ≤ q`` holds the false discovery rate at ``q``
    under any dependence.

    Shape: like ``p``.
    """
    p = np.asarray(p, dtype=np.float64)
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("p must hold p-values in [0, 1], without NaN")
    flat = p.ravel()
    m = flat.size
    order = np.argsort(flat, kind="stable")
    rank = np.arange(1, m + 1)
    scaled = flat[order] * m * np.sum(1.0 / rank) / rank
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return adjusted.reshape(p.shape)


def cohort_difference(
    a: CohortMap, b: CohortMap, q: float = DEFAULT_Q, *, disjoint: bool = True
) -> MapDifference:
    """``a − b`` per cell with Welch's t-test and Benjamini–Yekutieli control at ``q`` over all
    the cells given (every head's, when ``a`` and ``b`` hold several).

    With sample variances ``s² = std²·n/(n−1)`` and ``v = s²/n``: ``se = sqrt(v_a + v_b)``,
    ``t = diff / se``, ``df = (v_a + v_b)² / (v_a²/(n_a−1) + v_b²/(n_b−1))``, ``p = 2·T_df(−|t|)``.
    Welch's test needs two independent samples: pass ``disjoint=False`` when the cohorts may
    share rows (their means then co-vary, by an amount these moments do not hold), and there is
    no test; nor is there one when a cohort has fewer than 2 rows.

    Shape: ``a``'s and ``b``'s maps alike; the result's arrays like them.
    """
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"cohort maps differ in shape: {a.mean.shape} and {b.mean.shape}")
    if not 0 < q < 1:
        raise ValueError(f"q must be a false discovery rate in (0, 1), got {q!r}")
    diff = a.mean.astype(np.float64) - b.mean.astype(np.float64)
    untested = {name: np.full(diff.shape, np.nan) for name in ("t", "df", "p", "p_adjusted")}
    untested |= {
        "significant": np.zeros(diff.shape, dtype=bool),
        "q": q,
        "tested": False,
        "cells_tested": 0,
    }
    if min(a.count, b.count) < 2:
        note = (
            f"No test: the cohorts have {a.count} and {b.count} rows, and a test needs at "
            "least 2 in each; the difference is shown as it is."
        )
        return MapDifference(diff, np.full(diff.shape, np.inf), **untested, note=note)
    if not disjoint:
        note = (
            "No test: the two cohorts may share rows, so their means co-vary and the error of "
            "the difference is unknown; the difference is shown as it is (compare a cohort "
            "with the rest of the rows for a test)."
        )
        return MapDifference(diff, np.full(diff.shape, np.nan), **untested, note=note)
    v_a, v_b = (c.std.astype(np.float64) ** 2 / (c.count - 1) for c in (a, b))
    variance = v_a + v_b
    with np.errstate(divide="ignore", invalid="ignore"):
        df = variance**2 / (v_a**2 / (a.count - 1) + v_b**2 / (b.count - 1))
    return t_tested(diff, variance, df, q)


def t_tested(
    diff: np.ndarray,
    variance: np.ndarray,
    df: np.ndarray | float,
    q: float,
    result: type[MapDifference] = MapDifference,
) -> MapDifference:
    """``diff`` tested cell by cell: ``t = diff / sqrt(variance)`` (the variance of ``diff``) on
    ``df`` degrees of freedom, two-sided, Benjamini–Yekutieli adjusted over the cells whose
    variance is above 0 (the others have no test and never pass), significant where the
    adjusted p-value is at most ``q``; returned as `result` (a :class:`MapDifference`).

    Shape: ``diff``, ``variance`` and an array ``df`` alike; the result's arrays like them.
    """
    testable = variance > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(variance)
        t = np.where(testable, diff / se, np.nan)
    df = np.where(testable, df, np.nan)
    p = np.where(testable, 2 * special.stdtr(df, -np.abs(t)), np.nan)
    p_adjusted = np.full(diff.shape, np.nan)
    p_adjusted[testable] = benjamini_yekutieli(p[testable])
    return result(
        diff=diff,
        se=se,
        t=t,
        df=df,
        p=p,
        p_adjusted=p_adjusted,
        significant=p_adjusted <= q,  # False where NaN: no test
        q=q,
        tested=True,
        cells_tested=int(testable.sum()),
    )
