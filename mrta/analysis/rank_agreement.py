"""Do two importances rank the columns alike? Spearman's rho with a p-value valid at 4 columns.

scipy's :func:`scipy.stats.spearmanr` p-value is a large-sample approximation: at 4 columns it
calls a perfect agreement ``p = 0.000``, while only 2 of the 24 orders of 4 columns agree that
well (one forwards, one backwards). Here the p-value is a permutation p-value:

- up to :data:`EXACT_MAX_COLUMNS` columns, **exact**: every one of the ``n!`` orders of one
  vector against the other is enumerated, and ``p`` is the fraction of them whose ``|rho|`` is
  at least the observed one; that is, the probability, if the two rankings were unrelated (every
  order equally likely), of an agreement or disagreement at least as strong as the one seen;
- above, :func:`scipy.stats.permutation_test` (``permutation_type="pairings"``) estimates the
  same probability from seeded random orders, as ``(k + 1) / (n_resamples + 1)`` where ``k``
  random orders reach the observed ``|rho|``.

Ties get average ranks (as :func:`scipy.stats.rankdata` does by default), both in rho and in
every permuted order, so the null distribution is that of the tied ranks themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from numbers import Integral

import numpy as np
from scipy import stats

EXACT_MAX_COLUMNS = 9  # 9! = 362,880 orders: ~30 ms; 10! would be ten times as many
PERMUTATION_RESAMPLES = 9999  # p resolves to 1e-4; its Monte Carlo error at p = 0.05 is 0.002
EXACT = "exact"
PERMUTATION = "permutation"


@dataclass(frozen=True)
class RankAgreement:
    """Spearman's rho of two vectors over ``columns`` entries, its two-sided p-value and how
    the p-value was found: ``"exact"`` (enumeration) or ``"permutation"`` (random orders)."""

    spearman: float
    p_value: float
    method: str
    columns: int


@lru_cache(maxsize=EXACT_MAX_COLUMNS)
def all_orders(n: int) -> np.ndarray:
    """Every permutation of ``range(n)``, one per row, built by insertion (cached, read-only).

    Shape: ``(n!, n)`` int8.
    """
    if isinstance(n, bool) or not isinstance(n, Integral) or not 1 <= n <= EXACT_MAX_COLUMNS:
        raise ValueError(f"n must be an integer in [1, {EXACT_MAX_COLUMNS}], got {n!r}")
    orders = np.zeros((1, 1), dtype=np.int8)
    for size in range(2, n + 1):
        # insert the new element `size - 1` at every position of every shorter order
        grown = np.empty((len(orders) * size, size), dtype=np.int8)
        for position in range(size):
            rows = grown[position * len(orders) : (position + 1) * len(orders)]
            rows[:, :position] = orders[:, :position]
            rows[:, position] = size - 1
            rows[:, position + 1 :] = orders[:, position:]
        orders = grown
    orders.setflags(write=False)
    return orders


def _vector(values: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite, got NaN or infinite values")
    if len(array) >= 1 and np.ptp(array) == 0:
        raise ValueError(f"{name} is constant: it ranks nothing, so rho is undefined")
    return array


def _rho(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson correlation along ``axis`` (of ranks: Spearman's rho)."""
    xc = x - x.mean(axis=axis, keepdims=True)
    yc = y - y.mean(axis=axis, keepdims=True)
    return (xc * yc).sum(axis=axis) / np.sqrt((xc**2).sum(axis=axis) * (yc**2).sum(axis=axis))


def exact_spearman_p(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """``(rho, p)``: Spearman's rho of ``a`` and ``b`` and its exact two-sided p-value, the
    fraction of the ``n!`` orders of ``b``'s ranks against ``a``'s whose ``|rho|`` is at least
    the observed one (compared in exact integer arithmetic, so equal ``|rho|`` always count).

    Shape: a, b ``(n,)`` with ``2 <= n <=`` :data:`EXACT_MAX_COLUMNS` -> two numbers.
    """
    ra, rb = _ranks(a, b)
    n = len(ra)
    if n > EXACT_MAX_COLUMNS:
        raise ValueError(
            f"a has {n} entries: exact enumeration stops at {EXACT_MAX_COLUMNS} "
            "(use spearman_agreement, which switches to a permutation test)"
        )
    # Doubled average ranks are integers; |rho| >= |rho_obs| <=> |n*S - sum(a)*sum(b)| >= the
    # observed one, where S = sum(a_i * b_perm(i)): integers, so ties are compared exactly.
    ia, ib = np.rint(2 * ra).astype(np.int64), np.rint(2 * rb).astype(np.int64)
    centre = int(ia.sum()) * int(ib.sum())
    observed = abs(n * int(ia @ ib) - centre)
    sums = ib[all_orders(n)] @ ia  # (n!,)
    p = np.count_nonzero(np.abs(n * sums - centre) >= observed) / len(sums)
    return float(_rho(ra, rb)), float(p)


def _ranks(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = _vector(a, "a"), _vector(b, "b")
    if len(a) != len(b):
        raise ValueError(f"a and b must have the same length, got {len(a)} and {len(b)}")
    if len(a) < 2:
        raise ValueError(f"a and b need at least 2 entries to be ranked, got {len(a)}")
    return stats.rankdata(a), stats.rankdata(b)


def spearman_agreement(
    a: np.ndarray,
    b: np.ndarray,
    *,
    n_resamples: int = PERMUTATION_RESAMPLES,
    seed: int = 0,
) -> RankAgreement:
    """Spearman's rho of ``a`` and ``b`` with a two-sided permutation p-value: exact by
    enumeration up to :data:`EXACT_MAX_COLUMNS` entries, else from ``n_resamples`` seeded
    random orders (:func:`scipy.stats.permutation_test`, ``permutation_type="pairings"``, on
    ``|rho|``). See the module's docstring for what the p-value means.

    Raises ``ValueError`` for vectors of different lengths, fewer than 2 entries, non-finite
    values, or a constant vector (rho undefined).

    Shape: a, b ``(n,)``.
    """
    ra, rb = _ranks(a, b)
    n = len(ra)
    if n <= EXACT_MAX_COLUMNS:
        rho, p = exact_spearman_p(ra, rb)
        return RankAgreement(rho, p, EXACT, n)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, Integral) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    result = stats.permutation_test(
        (ra, rb),
        lambda x, y, axis: np.abs(_rho(x, y, axis=axis)),
        permutation_type="pairings",
        vectorized=True,
        n_resamples=n_resamples,
        alternative="greater",
        rng=np.random.default_rng(seed),
    )
    return RankAgreement(float(_rho(ra, rb)), float(result.pvalue), PERMUTATION, n)
