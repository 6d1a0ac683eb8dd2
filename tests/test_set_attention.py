"""Set-resolution analysis: per-row measures, their invariants, one set's maps, summaries by
row attributes, exports, and the vector form of rollout."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from test_set_runs import QUICK, TINY
from test_sets import planted_table

from mrta.analysis.labels import format_value
from mrta.analysis.rollout import pooled_importance, rollout_importance
from mrta.analysis.sets import ROLLOUT, measure_name
from mrta.data.sets import SetOptions
from mrta.pipelines.explain_sets import explain_sets, set_maps
from mrta.pipelines.train_run import train_run
from mrta.report.set_exports import write_set_exports


@pytest.fixture(scope="module")
def analysed():
    torch.manual_seed(0)
    frame = planted_table(60, seed=4)
    frame["day"] = np.arange(len(frame)) % 11
    run = train_run(
        frame, "label", model_config=TINY, train_config=QUICK, sets=SetOptions("g", "day")
    )
    return run, frame, explain_sets(run, frame)


def stochastic(rng, *shape):
    a = rng.random(shape)
    return a / a.sum(-1, keepdims=True)


@pytest.mark.parametrize(("n_num", "n_cat"), [(3, 4), (5, 0), (0, 2)])
def test_pooled_importance_equals_the_matrix_rollout(n_num, n_cat):
    rng = np.random.default_rng(n_num + n_cat)
    layers = []
    for _ in range(3):
        maps = {}
        if n_num:
            maps["num_num"] = stochastic(rng, 2, n_num, n_num)
        if n_cat:
            maps["cat_cat"] = stochastic(rng, 2, n_cat, n_cat)
        if n_num and n_cat:
            maps["num_cat"] = stochastic(rng, 2, n_num, n_cat)
            maps["cat_num"] = stochastic(rng, 2, n_cat, n_num)
        layers.append(maps)
    expected = rollout_importance(layers, n_num, n_cat)
    averaged = [{k: v.mean(axis=0) for k, v in maps.items()} for maps in layers]
    np.testing.assert_allclose(pooled_importance(averaged, n_num, n_cat), expected, atol=1e-12)


@pytest.mark.slow
def test_every_row_of_every_set_is_measured_once_and_measures_average_one(analysed):
    _, frame, explanation = analysed
    rows = explanation.rows
    assert sorted(rows["row"]) == list(range(len(frame)))  # every row, each once
    assert len(explanation.sets) == 60 and set(explanation.sets["g"]) == set(frame["g"])
    assert explanation.measures[0] == ROLLOUT and len(explanation.measures) == 1 + 4 * 1
    per_set = rows.groupby("g")[explanation.measures].mean()
    np.testing.assert_allclose(per_set.to_numpy(), 1.0, atol=1e-5)  # 1 is an even share
    positions = rows.groupby("g")["position"].apply(list)
    assert all(p == list(range(len(p))) for p in positions)
    days = explanation.values.groupby("g")["day"].apply(list)
    assert all(d == sorted(d) for d in days)  # positions follow the order-by column
    assert explanation.sets["correct"].dtype == bool
    assert set(explanation.sets["prediction"]) <= {"0", "1"}


@pytest.mark.slow
def test_a_sets_measures_do_not_depend_on_the_other_sets_in_its_batch(analysed):
    run, frame, explanation = analysed
    key = explanation.sets["g"].iloc[3]
    alone = explain_sets(run, frame[frame["g"] == key])
    columns = explanation.measures
    together = explanation.rows[explanation.rows["g"] == key][columns].to_numpy()
    np.testing.assert_allclose(alone.rows[columns].to_numpy(), together, atol=1e-5)


@pytest.mark.slow
def test_one_sets_maps_are_row_stochastic_and_match_its_measures(analysed):
    run, frame, explanation = analysed
    key = explanation.sets["g"].iloc[0]
    maps = set_maps(run, frame, key)
    n = int(explanation.sets["n_rows"].iloc[0])
    assert set(maps.maps) == set(explanation.map_keys)
    for (layer, map_id), weights in maps.maps.items():
        assert weights.shape == (TINY.num_heads, n, n)
        np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
        received = weights.mean(axis=(0, 1)) * n
        measured = explanation.set_rows(key).sort_values("position")[measure_name(layer, map_id)]
        np.testing.assert_allclose(received, measured.to_numpy(), atol=1e-5)
    days = [format_value(day) for day in maps.values["day"]]
    assert all(label.split(" (#")[0] == day for label, day in zip(maps.labels(), days, strict=True))
    assert len(set(maps.labels())) == n
    assert maps.labels("kind")[0].startswith(str(maps.values["kind"][0]))
    assert "amount=" in maps.hover()[0]
    with pytest.raises(KeyError, match="no group 'nope'"):
        set_maps(run, frame, "nope")


@pytest.mark.slow
def test_summaries_partition_the_rows_by_level_or_quantile(analysed):
    _, _, explanation = analysed
    by_kind = explanation.summary("kind")
    assert set(by_kind["group"]) == {"w", "x", "y", "z"}
    assert by_kind["rows"].sum() == len(explanation.rows)
    joined = explanation.rows.join(explanation.values[["kind"]])
    expected = joined.groupby("kind")[ROLLOUT].mean()
    np.testing.assert_allclose(
        by_kind.set_index("group")["mean"].loc[expected.index], expected.to_numpy()
    )
    by_amount = explanation.summary("amount", measure=measure_name(0, "num_cat"), bins=4)
    assert len(by_amount) == 4 and by_amount["rows"].sum() == len(explanation.rows)
    with pytest.raises(KeyError, match="no measure"):
        explanation.summary("kind", measure="nope")


@pytest.mark.slow
def test_exports_hold_sets_rows_summaries_and_one_sets_maps(analysed, tmp_path):
    run, frame, explanation = analysed
    key = explanation.sets["g"].iloc[0]
    maps = set_maps(run, frame, key)
    written = write_set_exports(explanation, tmp_path, maps)
    assert [p.name for p in written] == [
        "sets.csv",
        "rows.csv",
        "summary.csv",
        "set_maps.npz",
        "set_maps.csv",
    ]
    rows = pd.read_csv(tmp_path / "rows.csv")
    assert len(rows) == len(frame) and {"rollout", "kind", "amount"} <= set(rows.columns)
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert set(summary["column"]) == {"kind", "amount", "noise"}
    arrays = np.load(tmp_path / "set_maps.npz")
    np.testing.assert_array_equal(arrays["layer0_num_cat"], maps.maps[(0, "num_cat")])
    tidy = pd.read_csv(tmp_path / "set_maps.csv")
    n = maps.maps[(0, "num_cat")].shape[-1]
    assert len(tidy) == len(maps.maps) * TINY.num_heads * n * n


@pytest.mark.slow
def test_a_sample_of_sets_is_seeded_and_a_row_run_is_refused(analysed):
    run, frame, _ = analysed
    first = explain_sets(run, frame, max_sets=10, seed=1)
    assert first.sampled_from == 60 and len(first.sets) == 10
    assert list(explain_sets(run, frame, max_sets=10, seed=1).sets["g"]) == list(first.sets["g"])
    with pytest.raises(ValueError, match="max_sets must be at least 1"):
        explain_sets(run, frame, max_sets=0)
    row_run = copy.copy(run)
    row_run.sets = None
    with pytest.raises(ValueError, match="predicts one row at a time"):
        explain_sets(row_run, frame)
