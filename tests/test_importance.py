"""Column importances under canonical ids: per input column (a date's tokens summed), the
rollout per example agreeing with the atlas, the test rows split so that no row both ranks and
scores, the exports' keys, the cache round trip, and set runs refused with a message."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from test_train import tiny_frame
from tiny_models import model_for, tiny_config

from mrta.analysis.collect import collect_attention
from mrta.analysis.deletion import Faithfulness
from mrta.analysis.importance import (
    METHOD_NOTES,
    METHOD_TITLES,
    METHODS,
    ColumnImportances,
    MethodImportance,
    attention_importances,
    column_streams,
    input_columns,
    rollout_per_example,
)
from mrta.config import ModelConfig, TrainConfig
from mrta.data.preprocessing import Preprocessor
from mrta.data.schema import infer_schema
from mrta.data.sets import SetOptions
from mrta.errors import RunError
from mrta.pipelines.analysis_cache import load_explanation, save_explanation
from mrta.pipelines.explain import explain, importance_rows, run_checks
from mrta.pipelines.train_run import train_run
from mrta.report.exports import analysis_summary
from mrta.report.run_exports import write_exports


def dated_frame(rows: int = 120) -> pd.DataFrame:
    frame = tiny_frame(rows=rows)
    days = pd.date_range("2024-01-01", periods=rows, freq="D")
    frame.insert(2, "when", days.strftime("%Y-%m-%d"))
    return frame


def test_a_date_column_is_one_input_column_of_several_tokens():
    schema = infer_schema(dated_frame(), "y")
    columns = input_columns(schema)
    assert list(columns) == ["x1", "x2", "when", "color", "size"]
    assert len(columns["when"]) > 1 and columns["x1"] == ["x1"]
    assert column_streams(schema) == {
        "x1": "num",
        "x2": "num",
        "when": "num",
        "color": "cat",
        "size": "cat",
    }


def test_attention_importances_are_shares_per_input_column_with_row_standard_errors():
    frame = dated_frame()
    schema = infer_schema(frame, "y")
    preprocessor = Preprocessor.fit(frame, schema)
    model = model_for(preprocessor, tiny_config(), seed=1).eval()
    encoded = preprocessor.transform(frame)
    columns = input_columns(schema)
    result = attention_importances(model, encoded, columns)
    assert set(result) == {"rollout", "value_norm", "relevance"}
    for method, importance in result.items():
        assert list(importance.mean) == list(columns), method
        assert sum(importance.mean.values()) == pytest.approx(1.0), method
        assert all(se > 0 for se in importance.se.values()), method
    # the date's share is the sum of its tokens' per-example shares
    per_token = rollout_per_example(model, encoded)
    tokens = [*model.numerical_tokens, *model.categorical_tokens]
    when = [tokens.index(t) for t in columns["when"]]
    assert result["rollout"].mean["when"] == pytest.approx(per_token[:, when].sum(1).mean())
    n = len(frame)
    expected_se = per_token[:, when].sum(1).std(ddof=1) / np.sqrt(n)
    assert result["rollout"].se["when"] == pytest.approx(expected_se)


def test_the_per_example_rollout_averages_to_the_atlas_importance():
    frame = tiny_frame(rows=90)
    schema = infer_schema(frame, "y")
    preprocessor = Preprocessor.fit(frame, schema)
    model = model_for(preprocessor, tiny_config(), seed=2).eval()
    encoded = preprocessor.transform(frame)
    atlas = collect_attention(model, encoded)
    per_example = rollout_per_example(model, encoded, batch_size=7)
    assert per_example.shape == (90, 4)
    np.testing.assert_allclose(per_example.sum(1), 1.0, atol=1e-9)
    np.testing.assert_allclose(
        per_example.mean(0), list(atlas.importance().values()), rtol=1e-4, atol=1e-6
    )


def test_a_ranking_puts_the_largest_first_and_keeps_the_column_order_on_ties():
    importance = MethodImportance(mean={"a": 0.1, "b": 0.3, "c": 0.1, "d": 0.5}, se=None)
    assert importance.ranking() == ("d", "b", "a", "c")
    assert MethodImportance.from_dict(importance.to_dict()) == importance


def test_every_method_has_a_title_and_a_note_that_says_what_it_cannot_tell():
    assert METHODS == ("permutation", "rollout", "value_norm", "relevance")
    assert METHOD_TITLES["rollout"] == "Attention received, rolled out"
    assert "half each by construction" in METHOD_NOTES["rollout"]
    assert "over the shuffles only" in METHOD_NOTES["permutation"]
    assert all(METHOD_NOTES[m] and METHOD_TITLES[m] for m in METHODS)


# -- on a trained run --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checked():
    """A tiny run on a table whose target depends on x1 and color, explained and checked."""
    torch.manual_seed(0)
    run = train_run(
        tiny_frame(rows=600),
        "y",
        model_config=ModelConfig(d_token=8, d_model=8, num_layers=1, num_heads=2, dropout=0.0),
        train_config=TrainConfig(time_budget=None, max_epochs=12, threads=1),
    )
    explanation = explain(run)
    return run, run_checks(run, explanation, seed=0)


@pytest.mark.slow
def test_no_test_row_both_ranks_the_columns_and_scores_the_ranking(checked):
    run, explanation = checked
    ranked, curves = importance_rows(run, seed=0)
    assert set(ranked.index).isdisjoint(curves.index)
    assert set(ranked.index) | set(curves.index) == set(run.rows("test").index)
    assert explanation.importance.rows == len(ranked)
    assert explanation.faithfulness.rows == len(curves)
    assert explanation.permutation.rows == len(ranked)


@pytest.mark.slow
def test_checks_give_every_method_per_input_column_and_its_deletion_area(checked):
    _, explanation = checked
    importance, faithfulness = explanation.importance, explanation.faithfulness
    assert list(importance.methods) == list(METHODS)
    assert importance.streams == {"x1": "num", "x2": "num", "color": "cat", "size": "cat"}
    # the planted column first in permutation importance, with a standard error per column
    assert importance.methods["permutation"].ranking()[0] == "x1"
    assert set(importance.methods["permutation"].se) == {"x1", "x2", "color", "size"}
    assert set(faithfulness.methods) == set(METHODS)
    for method in METHODS:
        result = faithfulness.methods[method]
        assert result.order == importance.methods[method].ranking()
        assert result.low <= result.area <= result.high
        assert result.beats_random == (result.low > 0)
    assert faithfulness.methods["permutation"].beats_random


@pytest.mark.slow
def test_summary_csvs_and_cache_carry_the_importances(checked, tmp_path):
    run, explanation = checked
    written = write_exports(run, explanation, tmp_path)
    assert {p.name for p in written} >= {"summary.json", "importance.csv", "faithfulness.csv"}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["format_version"] == 3
    assert summary["race"] is None  # trained without a race
    assert set(summary["importance"]) == set(METHODS)
    for method, values in summary["importance"].items():
        assert set(values) == {"mean", "se"}, method
        assert set(values["mean"]) == {"x1", "x2", "color", "size"}
    assert set(summary["faithfulness"]) == {*METHODS, "random"}
    for method in METHODS:
        assert set(summary["faithfulness"][method]) == {"area", "low", "high", "beats_random"}
    assert set(summary["faithfulness"]["random"]) == {"low", "high"}
    assert summary["importance_rows"] == {
        "ranked_on": explanation.importance.rows,
        "curves_on": explanation.faithfulness.rows,
    }
    table = pd.read_csv(tmp_path / "importance.csv")
    assert list(table.columns) == ["method", "column", "stream", "mean", "se", "rank"]
    assert len(table) == 4 * 4
    first = table[(table["method"] == "permutation") & (table["rank"] == 1)]["column"]
    assert first.tolist() == ["x1"]
    checks = pd.read_csv(tmp_path / "faithfulness.csv")
    assert checks["method"].tolist() == [*METHODS, "random"]
    summary_again = analysis_summary(
        explanation.atlas,
        importance=explanation.importance,
        faithfulness=explanation.faithfulness,
    )
    assert summary_again["faithfulness"] == summary["faithfulness"]

    save_explanation(explanation, tmp_path / "run", "source")
    loaded, _ = load_explanation(tmp_path / "run", "source")
    assert loaded.importance == explanation.importance
    assert loaded.faithfulness == explanation.faithfulness
    assert isinstance(loaded.importance, ColumnImportances)
    assert isinstance(loaded.faithfulness, Faithfulness)


@pytest.mark.slow
def test_a_set_run_has_no_row_level_importances_and_says_why():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 3)
    frame = pd.DataFrame(
        {
            "g": groups,
            "x": rng.normal(size=len(groups)),
            "c": rng.choice(["a", "b"], len(groups)),
            "y": np.repeat(rng.choice(["yes", "no"], 40), 3),
        }
    )
    run = train_run(
        frame,
        "y",
        sets=SetOptions("g"),
        model_config=ModelConfig(d_token=8, d_model=8, num_layers=1, num_heads=2),
        train_config=TrainConfig(time_budget=None, max_epochs=1, threads=1, batch_size=8),
    )
    with pytest.raises(RunError, match="in a set run an example is a group of rows"):
        run_checks(run, None)
