"""Exact rank-agreement p-values by enumeration, and seeded permutation tests above 9 columns."""

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from mrta.analysis.rank_agreement import (
    EXACT,
    EXACT_MAX_COLUMNS,
    PERMUTATION,
    all_orders,
    exact_spearman_p,
    spearman_agreement,
)


def brute_force_p(a, b):
    """The definition, one order at a time: the share of orders of b with |rho| >= observed."""
    ra, rb = stats.rankdata(a), stats.rankdata(b)

    def rho(order):
        return np.corrcoef(ra, order)[0, 1]

    observed = abs(rho(rb))
    orders = list(itertools.permutations(rb))
    hits = sum(abs(rho(np.array(order))) >= observed - 1e-12 for order in orders)
    return hits / len(orders)


def test_perfect_agreement_at_4_columns_is_p_2_of_24():
    result = spearman_agreement([0.1, 0.2, 0.3, 0.4], [1, 2, 3, 9])
    assert result.spearman == pytest.approx(1.0)
    assert result.p_value == 2 / 24  # one order forwards, one backwards
    assert (result.method, result.columns) == (EXACT, 4)
    assert spearman_agreement([0.1, 0.2, 0.3, 0.4], [4, 3, 2, 1]).p_value == 2 / 24


def test_perfect_agreement_at_5_columns_is_p_2_of_120():
    result = spearman_agreement([5, 4, 3, 2, 1], [50, 40, 30, 20, 10])
    assert (result.spearman, result.p_value) == (pytest.approx(1.0), 2 / 120)


def test_one_swap_at_5_columns_by_hand():
    """rho = 1 - 6 * 2 / (5 * 24) = 0.9. |rho| >= 0.9 needs sum d^2 <= 2 (the identity and the
    4 swaps of neighbours) or >= 38 (their 5 reverses): 10 of 120 orders."""
    result = spearman_agreement([1, 2, 3, 4, 5], [1, 2, 3, 5, 4])
    assert result.spearman == pytest.approx(0.9)
    assert result.p_value == 10 / 120
    assert result.p_value == brute_force_p([1, 2, 3, 4, 5], [1, 2, 3, 5, 4])


@pytest.mark.parametrize("seed", range(4))
def test_exact_p_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 4, 6).astype(float)  # ties on both sides
    b = rng.integers(0, 4, 6).astype(float)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        a[0], b[0] = 9.0, 9.0
    rho, p = exact_spearman_p(a, b)
    assert rho == pytest.approx(stats.spearmanr(a, b).statistic)
    assert p == pytest.approx(brute_force_p(a, b), abs=1e-12)


def test_all_orders_are_every_permutation_once():
    for n in (1, 3, 6):
        orders = all_orders(n)
        assert orders.shape == (math.factorial(n), n)
        assert len({tuple(row) for row in orders}) == math.factorial(n)
        assert (np.sort(orders, axis=1) == np.arange(n)).all()
    assert not all_orders(4).flags.writeable
    with pytest.raises(ValueError, match="n must be an integer"):
        all_orders(EXACT_MAX_COLUMNS + 1)


def test_nine_columns_are_still_exact():
    a = np.arange(9.0)
    b = a.copy()
    b[[0, 1]] = b[[1, 0]]
    result = spearman_agreement(a, b)
    assert result.method == EXACT and result.columns == 9
    assert result.p_value * math.factorial(9) == pytest.approx(round(result.p_value * 362880))


def test_above_9_columns_a_seeded_permutation_test():
    rng = np.random.default_rng(0)
    a = rng.normal(size=12)
    b = a + rng.normal(scale=1.5, size=12)
    first = spearman_agreement(a, b, n_resamples=2000, seed=3)
    assert (first.method, first.columns) == (PERMUTATION, 12)
    assert first == spearman_agreement(a, b, n_resamples=2000, seed=3)
    assert first.spearman == pytest.approx(stats.spearmanr(a, b).statistic)
    # (k + 1) / (n + 1): never zero, and on the grid of the resamples
    assert first.p_value * 2001 == pytest.approx(round(first.p_value * 2001))
    # against the large-sample p-value, which is fair at 12 columns: within Monte Carlo error
    assert first.p_value == pytest.approx(stats.spearmanr(a, b).pvalue, abs=0.03)


def test_a_perfect_order_at_12_columns_gets_the_smallest_p():
    result = spearman_agreement(np.arange(12), np.arange(12) ** 2, n_resamples=999)
    assert result.p_value == 1 / 1000 and result.spearman == pytest.approx(1.0)


def test_two_columns_always_agree_or_disagree_perfectly():
    assert spearman_agreement([1, 2], [3, 1]).p_value == 1.0


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ([1, 2, 3], [1, 2], "same length"),
        ([1], [1], "is constant|at least 2"),
        ([1, 1, 1], [1, 2, 3], "a is constant"),
        ([1, 2, 3], [2, 2, 2], "b is constant"),
        ([1, np.nan, 3], [1, 2, 3], "a must be finite"),
        ([[1, 2], [3, 4]], [1, 2], "a must be 1-D"),
    ],
)
def test_bad_vectors_are_named(a, b, message):
    with pytest.raises(ValueError, match=message):
        spearman_agreement(a, b)


def test_bad_resample_count_is_named():
    with pytest.raises(ValueError, match="n_resamples"):
        spearman_agreement(np.arange(10), np.arange(10), n_resamples=0)
