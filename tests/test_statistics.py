"""The statistics of cohort differences against direct numpy/scipy computations: the head mean's
standard deviation, the rest of a cohort, Welch's t, Benjamini–Yekutieli, the cases without a
test, and a null test: random halves of the rows must rarely show any cell as different."""

import copy
import math
import threading

import numpy as np
import pytest
import scipy.stats
import torch
from tiny_models import random_inputs, tiny_config, tiny_model

from mrta import AttentionRecorder
from mrta.analysis.cohorts import ALL_ROWS, CohortSpec
from mrta.analysis.collect import Shard, collect_attention
from mrta.analysis.difference import (
    CohortMap,
    benjamini_yekutieli,
    cohort_difference,
    complement,
)

ROWS = 300
SPLITS = 60
Q = 0.05
FIRST_60, FIRST_160, ALL_BUT_ONE = (
    ("filter", "first 60"),
    ("filter", "first 160"),
    ("filter", "all but the first"),
)
POSITIVE = ("filter", "a > 0")


@pytest.fixture(scope="module")
def table():
    """A tiny model over random rows: its atlas (filters for nested cohorts, the null splits and
    a cohort that truly differs), the kept per-row weights, the rows of each filter."""
    model = tiny_model(list("abcdef"), list("xyz"), config=tiny_config(num_heads=4))
    num, ind, cat = random_inputs(ROWS, 6, 3, seed=1)
    y = torch.randint(0, 3, (ROWS,), generator=torch.Generator().manual_seed(2))
    rng = np.random.default_rng(3)
    index = np.arange(ROWS)
    filters = {
        "first 60": index < 60,
        "first 160": index < 160,
        "all but the first": index > 0,
        "a > 0": num[:, 0].numpy() > 0,
    }
    for i in range(SPLITS):
        filters[f"split {i}"] = np.isin(index, rng.permutation(ROWS)[: ROWS // 2])
    spec = CohortSpec(class_labels=("0", "1", "2"), filters=filters)
    atlas = collect_attention(model, (num, ind, cat), cohorts=spec, targets=y, batch_size=64)
    with AttentionRecorder(model, mode="keep") as kept, torch.no_grad():
        model.eval()(num, ind, cat)
    weights = {key: kept.weights(*key).double().numpy() for key in kept.keys}
    rows = {("filter", name): mask for name, mask in filters.items()}
    rows |= {("true", str(c)): y.numpy() == c for c in range(3)}
    rows[ALL_ROWS] = np.ones(ROWS, dtype=bool)
    return atlas, weights, rows


def view(w, head):
    """Per-row maps of one view: every head, one, or the head mean. Shape: ``(N, ...)``."""
    return w if head is None else w.mean(axis=1) if head == "mean" else w[:, head]


# -- moments ---------------------------------------------------------------------------------
def test_head_mean_std_is_that_of_each_rows_head_mean(table):
    atlas, weights, rows = table
    loose = 0
    for key, w in weights.items():
        for cohort in (ALL_ROWS, FIRST_60, ("true", "1")):
            chosen = atlas.cohort_map(*key, cohort, head="mean")
            per_row = w[rows[cohort]].mean(axis=1)  # (n, Tq, Tk)
            assert chosen.count == len(per_row)
            np.testing.assert_allclose(chosen.mean, per_row.mean(axis=0), atol=1e-6)
            np.testing.assert_allclose(chosen.std, per_row.std(axis=0), atol=1e-6)
            bound = atlas.cohort_map(*key, cohort).std.mean(axis=0)  # what was shown before
            assert (chosen.std <= bound + 1e-6).all()
            loose += int((bound > 1.2 * chosen.std + 1e-4).sum())
    assert loose > 0, "the mean of the heads' standard deviations overstates the head mean's"


def test_head_mean_moments_add_up_over_the_workers_of_a_sharded_collection(monkeypatch):
    model = tiny_model(list("ab"), list("x"), [4])
    num, ind, cat = random_inputs(50, 2, 1, seed=8)
    y = torch.arange(50) % 3
    one = collect_attention(model, (num, ind, cat), targets=y, batch_size=16)
    barrier, slots, local = threading.Barrier(2), {}, threading.local()

    def all_reduce(tensor, op=None, group=None):
        slots[local.rank] = tensor.clone()
        barrier.wait()
        total = slots[0] + slots[1]
        barrier.wait()
        tensor.copy_(total)

    def work(rank):
        local.rank = rank
        shard = Shard(rank, 2)
        atlases[rank] = collect_attention(
            models[rank], (num, ind, cat), targets=y, batch_size=16, shard=shard
        )

    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    models, atlases = [copy.deepcopy(model) for _ in range(2)], [None, None]
    threads = [threading.Thread(target=work, args=(rank,)) for rank in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for atlas in atlases:
        assert atlas is not None and atlas.cohorts == one.cohorts
        for key in one.map_keys:
            np.testing.assert_allclose(
                atlas.head_mean_stds[key], one.head_mean_stds[key], atol=1e-6
            )


@pytest.mark.parametrize("head", [None, 1, "mean"])
@pytest.mark.parametrize(
    "cohort, within",
    [(FIRST_60, ALL_ROWS), (FIRST_60, FIRST_160), (("true", "0"), ALL_ROWS)],
)
def test_the_rest_of_a_cohort_matches_numpy_on_the_rest_rows(table, head, cohort, within):
    atlas, weights, rows = table
    for key, w in weights.items():
        rest = atlas.rest(*key, cohort, within, head)
        others = view(w, head)[rows[within] & ~rows[cohort]]
        assert rest.count == len(others)
        np.testing.assert_allclose(rest.mean, others.mean(axis=0), atol=1e-6)
        np.testing.assert_allclose(rest.std, others.std(axis=0), atol=1e-5)


def test_complement_of_hand_made_moments_and_a_rest_of_no_rows():
    x = np.random.default_rng(4).normal(0.3, 0.1, (50, 3, 4))
    part, rest = x[:35], x[35:]
    whole_map = CohortMap(x.mean(0), x.std(0), 50)
    found = complement(whole_map, CohortMap(part.mean(0), part.std(0), 35))
    np.testing.assert_allclose(found.mean, rest.mean(0), rtol=1e-12)
    np.testing.assert_allclose(found.std, rest.std(0), rtol=1e-10)
    empty = complement(whole_map, whole_map)
    assert empty.count == 0 and np.isnan(empty.mean).all()
    with pytest.raises(ValueError, match="not part of whole"):
        complement(CohortMap(part.mean(0), part.std(0), 35), whole_map)


# -- tests -----------------------------------------------------------------------------------
def test_welch_t_df_and_p_match_scipy():
    rng = np.random.default_rng(5)
    xa = rng.normal(0.0, 1.0, (9, 2, 3, 4))
    xb = rng.normal(0.4, 2.5, (14, 2, 3, 4))
    result = cohort_difference(
        CohortMap(xa.mean(0), xa.std(0), 9), CohortMap(xb.mean(0), xb.std(0), 14)
    )
    expected = scipy.stats.ttest_ind(xa, xb, equal_var=False, axis=0)
    assert result.tested and result.cells_tested == xa[0].size
    np.testing.assert_allclose(result.t, expected.statistic, rtol=1e-10)
    np.testing.assert_allclose(result.df, expected.df, rtol=1e-10)
    np.testing.assert_allclose(result.p, expected.pvalue, rtol=1e-8)
    se = np.sqrt(xa.var(0, ddof=1) / 9 + xb.var(0, ddof=1) / 14)
    np.testing.assert_allclose(result.se, se, rtol=1e-12)


@pytest.mark.parametrize("head", [None, 0, "mean"])
def test_atlas_differences_match_scipy_on_the_kept_rows(table, head):
    atlas, weights, rows = table
    key = (1, "cat_num")
    w = view(weights[key], head)
    pairs = [
        (atlas.difference(*key, ("true", "0"), ("true", "2"), head), ("true", "0"), ("true", "2")),
        (atlas.difference_from_rest(*key, FIRST_60, head=head), FIRST_60, None),
    ]
    for result, a, b in pairs:
        others = ~rows[a] if b is None else rows[b]
        expected = scipy.stats.ttest_ind(w[rows[a]], w[others], equal_var=False, axis=0)
        assert result.tested
        np.testing.assert_allclose(result.t, expected.statistic, rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(result.df, expected.df, rtol=1e-3)
        np.testing.assert_allclose(result.p, expected.pvalue, rtol=1e-3, atol=1e-6)


def test_benjamini_yekutieli_matches_scipy():
    rng = np.random.default_rng(6)
    p = rng.uniform(size=(3, 4, 5)) ** 4  # many small p-values
    p[0, 0, :3] = p[1, 1, 1]  # ties
    p[2, 3, 4] = 1.0
    expected = scipy.stats.false_discovery_control(p.ravel(), method="by").reshape(p.shape)
    np.testing.assert_allclose(benjamini_yekutieli(p), expected, rtol=1e-12)
    assert benjamini_yekutieli(np.array([])).shape == (0,)
    with pytest.raises(ValueError, match="p must hold p-values"):
        benjamini_yekutieli(np.array([0.1, np.nan]))


def test_significance_is_by_over_the_cells_that_vary():
    rng = np.random.default_rng(7)
    xa = rng.normal(0.0, 1.0, (20, 6, 5))
    xb = rng.normal(0.0, 1.0, (25, 6, 5)) + np.linspace(0, 1.5, 5)  # columns shift more and more
    xa[:, 0], xb[:, 0] = 1.0, 1.0  # a constant row of cells: a trivial map's
    result = cohort_difference(
        CohortMap(xa.mean(0), xa.std(0), 20), CohortMap(xb.mean(0), xb.std(0), 25), q=0.1
    )
    assert result.cells_tested == 25
    assert np.isnan(result.p[0]).all() and not result.significant[0].any()
    adjusted = scipy.stats.false_discovery_control(result.p[1:].ravel(), method="by")
    np.testing.assert_allclose(result.p_adjusted[1:].ravel(), adjusted, rtol=1e-12)
    np.testing.assert_array_equal(result.significant[1:].ravel(), adjusted <= 0.1)
    np.testing.assert_array_equal(result.muted, ~result.significant)
    assert result.passing > 0 and result.expected_false == pytest.approx(0.1 * result.passing)
    caption = result.caption()
    for text in (
        f"{result.passing} of 25 cells tested (5 vary in neither cohort and have no test)",
        "q = 0.1",
        "Benjamini–Yekutieli",
        "any dependence",
        f"at most {0.1 * result.passing:.2f}".rstrip("0").rstrip(".")
        + f" of these {result.passing}",
    ):
        assert text in caption


def test_no_test_under_two_rows_nor_for_cohorts_that_may_share_rows(table):
    atlas, _, _ = table
    key = (0, "num_num")
    one = CohortMap(np.ones((2, 2)), np.zeros((2, 2)), 1)
    many = CohortMap(np.zeros((2, 2)), np.full((2, 2), 0.1), 50)
    untested = [
        cohort_difference(one, many),
        atlas.difference_from_rest(*key, ALL_BUT_ONE),  # a rest of one row
        atlas.difference_from_rest(*key, FIRST_160, FIRST_160),  # a rest of no rows
        atlas.difference(*key, FIRST_60, FIRST_160, "mean"),
        atlas.difference(*key, ("true", "0"), ALL_ROWS, "mean"),
        atlas.difference(*key, ("true", "0"), ("true", "1"), disjoint=False),
    ]
    for result in untested[:3]:
        assert "a test needs at least 2" in result.note
    for result in untested[3:]:
        assert "may share rows" in result.note and np.isnan(result.se).all()
    for result in untested:
        assert not result.tested and result.caption() == result.note
        assert not result.muted.any() and result.passing == 0 and np.isnan(result.p).all()
    assert atlas.difference(*key, ("true", "0"), ("true", "1")).tested


def test_a_rest_key_is_the_rest_and_is_tested_against_its_cohort(table):
    atlas, _, _ = table
    key, cohort = (1, "num_cat"), ("true", "2")
    rest = atlas.cohort_map(*key, ("rest", *cohort), head="mean")
    expected = atlas.rest(*key, cohort, ALL_ROWS, head="mean")
    np.testing.assert_array_equal(rest.mean, expected.mean)
    np.testing.assert_array_equal(rest.std, expected.std)
    by_key = atlas.difference(*key, cohort, ("rest", *cohort))
    by_rest = atlas.difference_from_rest(*key, cohort)
    assert by_key.tested
    np.testing.assert_array_equal(by_key.p, by_rest.p)


def test_bad_arguments_are_named(table):
    atlas, _, _ = table
    with pytest.raises(ValueError, match="q must be a false discovery rate"):
        atlas.difference(0, "num_num", ("true", "0"), ("true", "1"), q=2.0)
    with pytest.raises(ValueError, match="head must be"):
        atlas.cohort_map(0, "num_num", head=4)
    with pytest.raises(ValueError, match="not part of within"):
        atlas.rest(0, "num_num", FIRST_160, within=FIRST_60)


# -- the null --------------------------------------------------------------------------------
def test_random_halves_rarely_show_any_cell_as_different(table):
    """Under the null (a random half against the other half) BY bounds the chance that any cell
    of the map in view passes by q; counted over the splits, per map and view, within the
    binomial sampling margin. A cohort that truly differs does show cells, and testing each
    cell at 5 % without a correction would show some in most splits."""
    atlas, _, _ = table
    margin = Q + 2 * math.sqrt(Q * (1 - Q) / SPLITS)
    fractions, uncorrected = {}, {}
    for key in atlas.map_keys:
        for head in (None, "mean"):
            results = [
                atlas.difference_from_rest(*key, ("filter", f"split {i}"), head=head, q=Q)
                for i in range(SPLITS)
            ]
            assert all(r.tested and r.cells_tested == r.diff.size for r in results)
            fractions[key, head] = np.mean([r.passing > 0 for r in results])
            uncorrected[key, head] = np.mean([(r.p < Q).any() for r in results])
    print(
        f"splits with any cell passing, per map and view: {fractions}; uncorrected: {uncorrected}"
    )
    assert max(fractions.values()) <= margin, fractions
    assert uncorrected[(0, "num_num"), None] > 0.5  # 4 heads of 6 x 6 cells
    shown = [
        atlas.difference_from_rest(*key, POSITIVE, head="mean").passing for key in atlas.map_keys
    ]
    assert max(shown) > 0, "a cohort that truly differs shows cells"
