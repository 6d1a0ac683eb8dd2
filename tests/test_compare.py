"""Comparing two runs on the same rows: the paired test against a direct computation, the shared
maps and what is left out, a run against itself, two seeds, a planted change, the refusals and
the exports of ``mrta compare``."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from test_train import QUICK, TINY_MODEL, tiny_frame
from tiny_models import random_inputs, tiny_model

from mrta.analysis.comparison import paired_difference, shared_maps
from mrta.analysis.paired import accumulate, record_paired
from mrta.cli import main
from mrta.config import ModelConfig, TrainConfig
from mrta.csvfile import write_csv
from mrta.errors import RunError
from mrta.pipelines.compare import compare_runs
from mrta.pipelines.train_run import train_run
from mrta.report.compare_exports import TIDY_COLUMNS

FEW_EPOCHS = replace(QUICK, max_epochs=3)


# -- the statistics, against a direct computation --------------------------------------------
def test_the_paired_test_is_the_one_sample_t_on_the_differences_with_by_control():
    rng = np.random.default_rng(0)
    n = 40
    a = rng.random((n, 2, 3))
    b = a + rng.normal([[0.0, 0.05, -0.2], [0.01, 0.0, 0.3]], 0.1, size=(n, 2, 3))
    a[:, 1, 1], b[:, 1, 1] = 0.5, 0.25  # the same difference on every row: no test
    moments = None
    for rows in (slice(0, 13), slice(13, n)):  # two batches, as a pass adds them
        moments = accumulate(moments, torch.from_numpy(a[rows] - b[rows]))
    result = paired_difference(moments, q=0.05)

    d = a - b
    np.testing.assert_allclose(result.diff, d.mean(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        result.se.ravel()[[0, 1, 2, 3, 5]],
        (d.std(axis=0, ddof=1) / np.sqrt(n)).ravel()[[0, 1, 2, 3, 5]],
        rtol=1e-9,
    )
    expected = stats.ttest_rel(a, b, axis=0)
    tested = np.ones((2, 3), dtype=bool)
    tested[1, 1] = False
    np.testing.assert_allclose(result.t[tested], expected.statistic[tested], rtol=1e-7)
    np.testing.assert_allclose(result.p[tested], expected.pvalue[tested], rtol=1e-6)
    assert np.all(result.df[tested] == n - 1)
    by = stats.false_discovery_control(expected.pvalue[tested], method="by")
    np.testing.assert_allclose(result.p_adjusted[tested], by, rtol=1e-6)
    assert np.isnan(result.p[1, 1]) and not result.significant[1, 1]
    assert result.cells_tested == 5
    assert np.array_equal(result.significant[tested], by <= 0.05)
    assert "5 cells tested" in result.caption() and "paired t" in result.caption()
    least = paired_difference(moments, q=0.05, min_effect=0.1)
    expected_large = np.zeros((2, 3), dtype=bool)
    expected_large[tested] = (by <= 0.05) & (np.abs(d.mean(axis=0)[tested]) >= 0.1)
    assert np.array_equal(least.significant, expected_large)
    assert "by at least 0.1" in least.caption()


def test_one_row_is_not_tested_and_q_is_checked():
    moments = accumulate(None, torch.ones(1, 2, 2))
    result = paired_difference(moments)
    assert not result.tested and "1 row" in result.note and not result.muted.any()
    with pytest.raises(ValueError, match="q must be"):
        paired_difference(moments, q=1.5)


def test_the_paired_pass_keeps_the_moments_of_both_models_and_of_each_rows_difference():
    model_a = tiny_model(["n1", "n2", "n3"], ["c1", "c2"], seed=0).eval()
    model_b = tiny_model(["n1", "n2", "n3"], ["c1", "c2"], seed=1).eval()
    data = random_inputs(37, 3, 2)
    maps = shared_maps(model_a, model_b)
    sums = record_paired(model_a, model_b, data, data, maps, batch_size=8)
    with torch.no_grad():
        for shared in maps:
            block_a = _weights(model_a, data, shared.layer, shared.map_id)  # (N, H, Tq, Tk)
            block_b = _weights(model_b, data, shared.layer, shared.map_id)
            moments = sums[(shared.layer, shared.map_id)]
            mean_a, mean_b = block_a.mean(axis=1), block_b.mean(axis=1)
            np.testing.assert_allclose(moments.a.mean(), mean_a.mean(axis=0), atol=1e-7)
            np.testing.assert_allclose(moments.b.mean(), mean_b.mean(axis=0), atol=1e-7)
            d = mean_a - mean_b
            np.testing.assert_allclose(moments.difference.mean(), d.mean(axis=0), atol=1e-7)
            np.testing.assert_allclose(moments.difference.std(), d.std(axis=0), atol=1e-7)
            np.testing.assert_allclose(
                moments.heads.std(), (block_a - block_b).std(axis=0), atol=1e-7
            )
            assert moments.difference.count == 37


def _weights(model, data, layer: int, map_id: str) -> np.ndarray:
    from mrta.analysis.recorder import AttentionRecorder

    with AttentionRecorder(model, mode="keep") as kept:
        model(*data)
    return kept.weights(layer, map_id).double().numpy()


def test_maps_are_compared_on_the_tokens_both_runs_have():
    model_a = tiny_model(["a", "b"], ["c"], seed=0)
    model_b = tiny_model(["b", "z"], ["c", "d"], seed=0, config=_config(num_heads=4))
    maps = {(m.layer, m.map_id): m for m in shared_maps(model_a, model_b)}
    assert set(maps) == {
        (layer, m) for layer in (0, 1) for m in ("num_num", "cat_cat", "cat_num", "num_cat")
    }
    num_num, cat_num = maps[(0, "num_num")], maps[(0, "cat_num")]
    assert num_num.queries == num_num.keys == ("b",)
    assert num_num.left_out == {"a": (("a",), ("a",)), "b": (("z",), ("z",))}
    assert cat_num.queries == ("c",) and cat_num.keys == ("b",)
    assert cat_num.left_out == {"a": ((), ("a",)), "b": (("d",), ("z",))}
    assert not num_num.complete and maps[(0, "num_cat")].left_out["a"] == (("a",), ())
    assert num_num.heads is None, "2 heads against 4 do not line up"
    assert [p.tolist() for p in num_num.positions["b"]] == [[0], [0]]
    assert [p.tolist() for p in num_num.positions["a"]] == [[1], [1]]
    assert shared_maps(model_a, tiny_model(["x"], ["y"])) == []


def _config(**changes) -> ModelConfig:
    from tiny_models import tiny_config

    return replace(tiny_config(), **changes)


# -- whole runs --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs():
    """Two seeds of one tiny table, and a run on other columns only."""
    frame = tiny_frame("binary", rows=240)
    first = train_run(frame, "y", model_config=TINY_MODEL, train_config=FEW_EPOCHS)
    second = train_run(
        frame, "y", model_config=TINY_MODEL, train_config=replace(FEW_EPOCHS, seed=1)
    )
    other = frame.rename(columns={"x1": "u1", "x2": "u2", "color": "hue", "size": "fit"})
    apart = train_run(other, "y", model_config=TINY_MODEL, train_config=FEW_EPOCHS)
    return frame, first, second, apart


@pytest.mark.slow
def test_a_run_compared_with_itself_has_divergence_0_and_rank_correlation_1(runs):
    frame, first, _, _ = runs
    comparison = compare_runs(first, first, frame)
    assert len(comparison.maps) == 4
    for compared in comparison.maps:
        assert compared.divergence == 0.0
        assert np.array_equal(compared.mean_a, compared.mean_b)
        assert compared.difference.passing == 0 and not compared.difference.diff.any()
    assert set(comparison.rank_correlation) == {"permutation", "rollout", "value_norm", "relevance"}
    assert all(r["spearman"] == 1.0 for r in comparison.rank_correlation.values())
    assert comparison.notes == ()


@pytest.mark.slow
def test_two_seeds_of_one_table_differ(runs):
    frame, first, second, _ = runs
    comparison = compare_runs(first, second, frame, names=("seed 0", "seed 1"))
    assert all(compared.divergence > 0 for compared in comparison.maps)
    assert sum(compared.difference.passing for compared in comparison.maps) > 0
    assert comparison.runs == ("seed 0", "seed 1")
    assert comparison.metrics["a"] == first.metrics and comparison.metrics["b"] == second.metrics


@pytest.mark.slow
def test_a_run_of_several_seed_members_is_compared_by_its_member_0(runs):
    frame, first, _, _ = runs
    members = train_run(frame, "y", model_config=TINY_MODEL, train_config=FEW_EPOCHS, seeds=2,
                        parallel=False)  # fmt: skip
    comparison = compare_runs(members, first, frame, names=("pair", "one"))
    assert comparison.notes == (
        "Run pair has 2 seed members: its maps and importances are member 0's; its metrics are "
        "those of the members' mean.",
    )
    itself = compare_runs(members, members.member(0), frame)
    assert all(compared.divergence == 0.0 for compared in itself.maps)


@pytest.mark.slow
def test_runs_that_share_no_column_are_refused_naming_the_columns_of_each(runs):
    frame, first, _, apart = runs
    with pytest.raises(RunError) as refused:
        compare_runs(first, apart, frame, names=("one", "two"))
    message = str(refused.value)
    assert "share no map" in message and "\n" not in message
    assert "one reads 'x1', 'x2', 'color', 'size'" in message
    assert "two reads 'u1', 'u2', 'hue', 'fit'" in message


def planted_table(partner: str, rows: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Four numerical and three categorical columns; the label is planted on ``c1`` × `partner`
    (the slope of `partner` flips with ``c1``'s level) and on ``x4`` alone."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            **{f"x{i}": rng.normal(size=rows) for i in range(1, 5)},
            "c1": rng.choice(["a", "b", "c"], rows),
            "c2": rng.choice(["p", "q", "r"], rows),
            "c3": rng.choice(["u", "v"], rows),
        }
    )
    slope = frame["c1"].map({"a": 2.0, "b": -2.0, "c": 0.0}).to_numpy()
    logit = slope * frame[partner].to_numpy() + frame["x4"].to_numpy()
    frame["y"] = np.where(logit + 0.3 * rng.normal(size=rows) > 0, "yes", "no")
    return frame


@pytest.mark.slow
def test_a_changed_planted_relationship_shows_where_it_was_planted_and_little_elsewhere():
    """Table A plants ``c1`` × ``x1``; its copy B has the same rows with the label of ``c1`` ×
    ``x2`` instead. Both trained alike (one seed, a fixed number of epochs): every categorical
    query's attention moves from ``x1`` (A) to ``x2`` (B), significantly, and these are the
    largest changes of its row; the cells that touch none of the changed columns (``c1``,
    ``x1``, ``x2``) barely move: two separately trained models differ in almost every cell by
    some small amount, which thousands of paired rows detect, so a cell counts as different only
    by at least a tenth of the uniform weight (the effect the stability analysis requires)."""
    config = TrainConfig(
        time_budget=None, max_epochs=30, learning_rate=3e-3, patience=100, threads=1
    )
    # linear tokens: what 30 epochs of this tiny model were calibrated on (with periodic ones,
    # one of c1's levels has not yet moved its attention off x1 significantly by then)
    model = ModelConfig(
        d_token=16, d_model=16, num_layers=1, num_heads=2, dropout=0.0, numerical_embedding="linear"
    )
    table_a = planted_table("x1")
    table_b = table_a.assign(y=planted_table("x2")["y"])
    run_a = train_run(table_a, "y", model_config=model, train_config=config)
    run_b = train_run(table_b, "y", model_config=model, train_config=config)
    comparison = compare_runs(run_a, run_b, table_a)

    cat_num = comparison.map(0, "cat_num")
    keys = list(cat_num.shared.keys)
    x1, x2 = keys.index("x1"), keys.index("x2")
    difference = cat_num.difference
    assert difference.significant[:, [x1, x2]].all()
    assert (difference.diff[:, x1] > 0).all() and (difference.diff[:, x2] < 0).all()
    largest = np.argsort(-np.abs(difference.diff), axis=1)[:, :2]
    assert all(set(row) == {x1, x2} for row in largest.tolist())

    changed = {"c1", "x1", "x2"}
    elsewhere = moved = 0
    for compared in comparison.maps:
        d = compared.difference
        assert d.min_effect == pytest.approx(0.1 / len(compared.shared.keys))
        assert not (d.significant & (np.abs(d.diff) < d.min_effect)).any()
        for i, query in enumerate(compared.shared.queries):
            for j, key in enumerate(compared.shared.keys):
                if {query, key} & changed:
                    continue
                elsewhere += 1
                moved += bool(d.significant[i, j])
    assert elsewhere == 16
    assert moved <= 2, f"{moved} of the {elsewhere} cells away from the change moved"


# -- the command line ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(runs, tmp_path_factory):
    frame, first, second, apart = runs
    folder = tmp_path_factory.mktemp("compare")
    for name, run in (("seed0", first), ("seed1", second), ("apart", apart)):
        run.save(folder / name)
    write_csv(frame, folder / "rows.csv", index=False)
    return folder


@pytest.mark.slow
def test_mrta_compare_writes_the_json_the_tidy_csv_and_the_report(saved, capsys):
    out = saved / "out"
    code = main(
        ["compare", str(saved / "seed0"), str(saved / "seed1"), "--data", str(saved / "rows.csv"),
         "--out", str(out), "--report"]
    )  # fmt: skip
    assert code == 0
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["runs"] == ["seed0", "seed1"]
    assert [(m["layer"], m["map_id"]) for m in summary["maps"]] == [
        (0, "num_num"), (0, "cat_cat"), (0, "cat_num"), (0, "num_cat")
    ]  # fmt: skip
    assert all(m["divergence"] > 0 for m in summary["maps"])
    assert set(summary["importance_rank_correlation"]) == {
        "permutation", "rollout", "value_norm", "relevance"
    }  # fmt: skip
    assert set(summary["metrics"]) == {"a", "b"}
    tidy = pd.read_csv(out / "comparison.csv")
    assert list(tidy.columns) == list(TIDY_COLUMNS)
    assert len(tidy) == sum(len(m["queries"]) * len(m["keys"]) for m in summary["maps"])
    np.testing.assert_allclose(tidy["difference"], tidy["weight_a"] - tidy["weight_b"], atol=1e-6)
    report = (out / "comparison.html").read_text()
    assert "seed0 against seed1" in report and "plotly" in report
    assert "Divergence per map" in report and "Spearman" in report
    assert "divergence" in capsys.readouterr().out


@pytest.mark.slow
def test_mrta_compare_refuses_to_overwrite_and_runs_without_a_shared_map(saved, capsys):
    out = saved / "taken"
    out.mkdir()
    (out / "comparison.json").write_text("{}")
    args = [
        "compare",
        str(saved / "seed0"),
        str(saved / "seed1"),
        "--data",
        str(saved / "rows.csv"),
    ]
    assert main([*args, "--out", str(out)]) == 1
    error = capsys.readouterr().err
    assert "already holds comparison.json" in error and "--overwrite" in error
    assert "Traceback" not in error and error.count("\n") == 1
    assert (out / "comparison.json").read_text() == "{}", "nothing was written"
    assert main([*args, "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "comparison.json").read_text())["runs"] == ["seed0", "seed1"]
    capsys.readouterr()

    apart = [
        "compare",
        str(saved / "seed0"),
        str(saved / "apart"),
        "--data",
        str(saved / "rows.csv"),
    ]
    assert main([*apart, "--out", str(saved / "never")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("mrta: error: The runs share no map") and error.count("\n") == 1
    assert "seed0 reads 'x1'" in error and "apart reads 'u1'" in error
    assert not (saved / "never").exists()
