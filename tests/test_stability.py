"""Seed stability: heads matched across members, Kendall's W against direct computations and
scipy's Friedman test, its null, and cells marked unstable only by a significant disagreement."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from mrta.analysis.stability import (
    cell_stability,
    concordance,
    importance_agreement,
    kendalls_w,
    map_stabilities,
    match_heads,
    stability_summary,
)
from mrta.pipelines.explain import explain
from mrta.runs.run import Run


def random_maps(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    logits = rng.normal(scale=2.0, size=shape)
    weights = np.exp(logits)
    return weights / weights.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("seed", range(5))
def test_a_permuted_noisy_copy_of_the_heads_is_matched_back(seed):
    rng = np.random.default_rng(seed)
    reference = random_maps(rng, (6, 4, 7))  # (H, Tq, Tk)
    order = rng.permutation(6)
    noisy = reference[order] + rng.uniform(0, 0.02, size=reference.shape)
    noisy /= noisy.sum(axis=-1, keepdims=True)
    heads = match_heads(reference, noisy)
    assert np.array_equal(order[heads], np.arange(6))  # head h of the copy's match is head h
    assert sorted(heads) == list(range(6))
    assert np.array_equal(match_heads(reference, reference), np.arange(6))


def test_heads_of_other_shapes_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="cannot be matched"):
        match_heads(random_maps(rng, (2, 3, 4)), random_maps(rng, (2, 3, 5)))


def direct_w(scores: np.ndarray) -> float:
    """Kendall's W written out: average ranks per member, S, and the ties' T."""
    m, n = scores.shape
    ranks = np.array([stats.rankdata(-row) for row in scores])
    totals = ranks.sum(axis=0)
    s = sum((r - m * (n + 1) / 2) ** 2 for r in totals)
    ties = 0.0
    for row in scores:
        for value in set(row.tolist()):
            t = int(np.sum(row == value))
            ties += t**3 - t
    return 12 * s / (m**2 * (n**3 - n) - m * ties)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("tied", [False, True])
def test_w_is_the_direct_formula_and_friedmans_statistic_scaled(seed, tied):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(4, 7))
    if tied:
        scores = np.round(scores)  # several ties per member
    w = kendalls_w(scores)
    assert w == pytest.approx(direct_w(scores))
    friedman = stats.friedmanchisquare(*scores.T).statistic  # blocks: members, groups: columns
    assert w == pytest.approx(friedman / (4 * (7 - 1)))


def test_identical_rankings_give_one_even_with_ties_and_reversed_ones_less():
    scores = np.array([[3.0, 1.0, 1.0, 0.5, 2.0]] * 3)
    assert kendalls_w(scores) == pytest.approx(1.0)  # the tie correction keeps it at 1
    assert kendalls_w(np.array([[1.0, 2, 3, 4], [4, 3, 2, 1]])) == pytest.approx(0.0)
    assert np.isnan(kendalls_w(np.ones((3, 4))))  # nothing ranked


def test_unrelated_rankings_give_one_over_m_on_average_and_a_high_p_value():
    rng = np.random.default_rng(0)
    ws = [kendalls_w(rng.normal(size=(4, 10))) for _ in range(400)]
    assert np.mean(ws) == pytest.approx(1 / 4, abs=0.02)
    unrelated = concordance(rng.normal(size=(3, 12)), permutations=500)
    assert unrelated.null == pytest.approx(1 / 3) and unrelated.p_value > 0.05
    assert "do not agree" in unrelated.sentence("permutation importances")


def test_agreeing_members_give_a_small_permutation_p_value_and_say_so():
    rng = np.random.default_rng(1)
    truth = np.arange(10, dtype=float)
    scores = truth + rng.normal(scale=0.5, size=(3, 10))
    found = concordance(scores, permutations=999)
    assert found.w > 0.9 and found.p_value == pytest.approx(1 / 1000)
    assert "agree on the ranking of the columns more than" in found.sentence("rollouts")
    assert concordance(scores, permutations=999, seed=3).w == found.w


def test_scores_that_cannot_be_ranked_are_refused():
    with pytest.raises(ValueError, match="at least 2 of each"):
        kendalls_w(np.ones((1, 4)))
    with pytest.raises(ValueError, match="must be finite"):
        kendalls_w(np.array([[1.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(ValueError, match="same columns"):
        importance_agreement([{"a": 1.0, "b": 2.0}, {"a": 1.0, "c": 2.0}])
    agreement = importance_agreement(
        [{"a": 1.0, "b": 2.0, "c": 0.1}, {"c": 0.0, "a": 3.0, "b": 9.0}]
    )
    assert agreement.w == pytest.approx(1.0)


def test_a_cell_is_unstable_only_where_members_disagree_significantly_against_uniform():
    members, h, tq, tk = 3, 2, 1, 4
    uniform = 1 / tk
    heads = np.full((members, h, tq, tk), uniform)
    # cell 0: well above uniform in every member (stable); cell 1: above in member 0 and
    # below in member 1, with small errors (unstable); cell 2: a hair on either side of
    # uniform, within its error (noise, not unstable); cell 3 takes up the rows' sums.
    heads[:, :, 0, 0] = 0.45
    heads[0, :, 0, 1], heads[1, :, 0, 1], heads[2, :, 0, 1] = 0.35, 0.10, 0.25
    heads[0, :, 0, 2], heads[1, :, 0, 2], heads[2, :, 0, 2] = 0.252, 0.248, 0.25
    heads[..., 3] = 1 - heads[..., :3].sum(axis=-1)
    ses = np.full((members, tq, tk), 0.005)
    found = cell_stability(heads, ses)
    assert found.unstable.tolist() == [[False, True, False, False]]
    assert found.unstable_cells == 1
    np.testing.assert_allclose(found.mean, heads.mean(axis=1).mean(axis=0))
    np.testing.assert_allclose(found.sd, heads.mean(axis=1).std(axis=0, ddof=1))
    assert found.mean_cell_sd == pytest.approx(float(found.sd.mean()))
    assert found.heads.shape == (members, h) and list(found.heads[0]) == [0, 1]
    # with errors large enough, the same disagreement is not significant
    assert not cell_stability(heads, np.full_like(ses, 0.5)).unstable.any()
    # over so many rows that cell 2's hair is significant, it is still too small to count
    tiny = cell_stability(heads, np.full_like(ses, 1e-7))
    assert tiny.unstable.tolist() == [[False, True, False, False]]
    assert cell_stability(heads, np.full_like(ses, 1e-7), min_effect=0.0).unstable[0, 2]


def test_matched_heads_are_averaged_head_for_head():
    rng = np.random.default_rng(2)
    base = random_maps(rng, (3, 2, 5))
    members = np.stack([base, base[[2, 0, 1]], base[[1, 2, 0]]])  # (N, H, Tq, Tk)
    found = cell_stability(members, np.full((3, 2, 5), 0.01))
    np.testing.assert_allclose(found.matched_mean, base)
    np.testing.assert_allclose(found.matched_sd, 0, atol=1e-12)
    assert found.heads.tolist() == [[0, 1, 2], [1, 2, 0], [2, 0, 1]]
    with pytest.raises(ValueError, match="at least 2 members"):
        cell_stability(members[:1], np.full((1, 2, 5), 0.01))


@pytest.fixture(scope="module")
def fixture_atlas():
    run = Run.load(Path(__file__).parent / "fixtures" / "run_v1_row")
    return explain(run, run.frame, max_rows=80).atlas


def test_an_atlas_with_its_heads_reordered_is_matched_back_and_entirely_stable(fixture_atlas):
    atlas = fixture_atlas
    order = {key: np.roll(np.arange(m.shape[1]), 1) for key, m in atlas.means.items()}
    reordered = dataclasses.replace(
        atlas,
        means={key: m[:, order[key]] for key, m in atlas.means.items()},
        stds={key: s[:, order[key]] for key, s in atlas.stds.items()},
    )
    maps = map_stabilities([atlas, reordered, atlas])
    assert [(m.layer, m.map_id) for m in maps] == atlas.map_keys
    for m in maps:
        assert np.array_equal(
            order[(m.layer, m.map_id)][m.cells.heads[1]], np.arange(len(m.cells.heads[1]))
        )
        assert m.cells.unstable_cells == 0 and m.cells.mean_cell_sd == pytest.approx(0, abs=1e-7)
    agreement = {"rollout": importance_agreement([{"a": 1.0, "b": 0.0}] * 3)}
    summary = stability_summary(maps, agreement)
    assert summary["seeds"] == 3 and summary["importance_agreement"] == {"rollout": 1.0}
    assert summary["maps"][0].keys() == {"layer", "map_id", "mean_cell_sd", "unstable_cells"}
    first = summary["head_matching"][0]
    assert first.keys() == {"layer", "map_id", "member", "heads"} and first["member"] == 1
    assert len(summary["head_matching"]) == 2 * len(maps)  # members 1 and 2, every map
