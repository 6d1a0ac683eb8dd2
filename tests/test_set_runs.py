"""Set resolution end to end: whole-group splits, training a set run, saving and loading it,
predicting one row per group, and the command line's --group-by."""

import sys

import numpy as np
import pandas as pd
import pytest
import torch
from test_sets import planted_table

from mrta import cli
from mrta.config import ModelConfig, TrainConfig
from mrta.data.schema import infer_schema
from mrta.data.sets import SET_BATCH_SIZE, SetOptions
from mrta.data.splits import SplitOptions, make_group_splits
from mrta.errors import TableError
from mrta.nn.set_model import SetAttentionModel
from mrta.pipelines.train_run import train_control, train_run
from mrta.runs.run import Run

TINY = ModelConfig(d_token=4, d_model=16, num_layers=1, num_heads=2, dropout=0.0)
QUICK = TrainConfig(time_budget=None, max_epochs=3, batch_size=32, threads=1)


def group_of(frame: pd.DataFrame, rows) -> set[str]:
    return set(frame["g"].to_numpy()[list(rows)])


def test_group_splits_keep_each_groups_rows_together_and_stratify():
    frame = planted_table(200, seed=3)
    schema = infer_schema(frame, "label", roles={"g": "ignored"})
    splits = make_group_splits(frame, schema, "g", SplitOptions(seed=1))
    parts = [group_of(frame, rows) for rows in (splits.train, splits.validation, splits.test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sum(map(len, parts)) == 200 and [len(p) for p in parts] == [140, 30, 30]
    every_row = sorted([*splits.train, *splits.validation, *splits.test])
    assert every_row == list(range(len(frame)))  # each group's rows, all of them
    by_group = frame.groupby("g")["label"].first()
    shares = [by_group[sorted(p)].mean() for p in parts]
    assert max(shares) - min(shares) < 0.05  # stratified by the group's class
    again = make_group_splits(frame, schema, "g", SplitOptions(seed=1))
    assert again == splits
    assert make_group_splits(frame, schema, "g", SplitOptions(seed=2)) != splits


def test_group_splits_refuse_too_few_groups_and_use_a_test_files_groups():
    frame = planted_table(8, seed=0)
    schema = infer_schema(frame, "label", roles={"g": "ignored"})
    with pytest.raises(TableError, match="Only 8 group"):
        make_group_splits(frame, schema, "g")
    frame = planted_table(40, seed=0)
    test = planted_table(5, seed=9)
    splits = make_group_splits(frame, schema, "g", test_frame=test)
    assert splits.separate_test_file and list(splits.test) == list(range(len(test)))
    assert len(group_of(frame, splits.train)) + len(group_of(frame, splits.validation)) == 40


@pytest.fixture(scope="module")
def set_run(tmp_path_factory):
    torch.manual_seed(0)
    frame = planted_table(120, seed=5)
    frame["day"] = np.arange(len(frame)) % 17
    run = train_run(
        frame,
        "label",
        model_config=TINY,
        train_config=QUICK,
        sets=SetOptions("g", order_by="day", max_set_size=8),
    )
    path = run.save(tmp_path_factory.mktemp("runs") / "set-run", include_data=True)
    return run, path, frame


@pytest.mark.slow
def test_a_set_run_is_scored_per_group_beside_the_aggregate_baseline(set_run):
    run, _, _ = set_run
    assert isinstance(run.model, SetAttentionModel)
    assert run.metrics["model"]["rows"] == run.metrics["hgb"]["rows"] == 18  # test groups
    assert run.metrics["hgb"]["input"] == "aggregates"
    assert "g" not in run.schema.numerical_tokens + run.schema.categorical_columns
    assert any("keeps a random 8" in note for note in run.splits.notes)


@pytest.mark.slow
def test_a_saved_set_run_loads_with_its_options_and_predicts_one_row_per_group(set_run):
    run, path, frame = set_run
    loaded = Run.load(path)
    assert loaded.sets == SetOptions("g", order_by="day", max_set_size=8)
    assert isinstance(loaded.model, SetAttentionModel)
    predictions = loaded.predict_frame(frame)
    assert list(predictions["g"]) == list(pd.unique(frame["g"]))
    assert list(predictions.columns) == ["g", "n_rows", "0", "1", "prediction"]
    sizes = frame.groupby("g", sort=False).size().clip(upper=8)
    assert predictions["n_rows"].tolist() == sizes.tolist()
    np.testing.assert_allclose(predictions[["0", "1"]].sum(axis=1), 1.0, rtol=1e-6)
    pd.testing.assert_frame_equal(predictions, run.predict_frame(frame))
    torch.manual_seed(123)  # the subsample of a large group is seeded, not drawn afresh
    pd.testing.assert_frame_equal(predictions, loaded.predict_frame(frame))
    one = loaded.predict_frame(frame[frame["g"] == "G0007"])
    pd.testing.assert_frame_equal(
        one.reset_index(drop=True), predictions.iloc[[7]].reset_index(drop=True)
    )
    assert loaded.untrained_model().to_dict() == run.model.to_dict()


@pytest.mark.slow
def test_a_set_run_gets_a_control_trained_on_permuted_group_labels(set_run, monkeypatch):
    run, _, _ = set_run
    pipeline = sys.modules["mrta.pipelines.train_run"]  # the module, not its function
    seen = []
    real = pipeline.fit

    def fit(model, train, *args, **kwargs):
        seen.append(train)
        return real(model, train, *args, **kwargs)

    monkeypatch.setattr(pipeline, "fit", fit)
    control = train_control(run)
    assert control.steps == run.training.steps and control.epochs == run.training.epochs
    true = run.examples("train")
    (shuffled,) = seen
    assert len(shuffled) == len(true) == len(set(true.keys))  # one label per group
    assert sorted(shuffled.target.tolist()) == sorted(true.target.tolist())
    assert not torch.equal(shuffled.target, true.target)
    assert control.metric == "roc_auc" and control.test_rows == run.metrics["model"]["rows"]


def test_a_set_run_refuses_a_target_that_varies_within_groups():
    frame = planted_table(30, seed=0)
    with pytest.raises(TableError, match=r"must be the same on every row of a group, but \d+ of"):
        train_run(frame, "kind", model_config=TINY, train_config=QUICK, sets=SetOptions("g"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"group_by": ""}, "group_by must name a column"),
        ({"group_by": "g", "order_by": "g"}, "order_by must differ"),
        ({"group_by": "g", "max_set_size": 0}, "max_set_size must be a positive integer"),
    ],
)
def test_set_options_refuse_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SetOptions(**kwargs)


@pytest.mark.slow
def test_the_command_line_trains_a_set_run_and_predicts_per_group(tmp_path, capsys):
    data = tmp_path / "sets.csv"
    planted_table(60, seed=2).to_csv(data, index=False)
    out, predictions = tmp_path / "run", tmp_path / "predictions.csv"
    code = cli.main(
        [
            "train", str(data), "--target", "label", "--out", str(out), "--group-by", "g",
            "--max-set-size", "6", "--epochs", "2", "--time-budget", "0", "--d-model", "16",
            "--layers", "1", "--threads", "1",
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Metrics on the test split (9 groups)" in captured.out
    assert "gradient boosting on aggregates" in captured.out
    assert "keeps a random 6 of them" in captured.err
    assert Run.load(out).train_config.batch_size == SET_BATCH_SIZE  # sets a step, not rows
    assert cli.main(["predict", str(out), str(data), "--out", str(predictions)]) == 0
    assert "one per group" in capsys.readouterr().err
    written = pd.read_csv(predictions)
    assert len(written) == 60 and written.columns[0] == "g"


def test_set_flags_without_a_group_key_are_refused(tmp_path, capsys):
    data = tmp_path / "sets.csv"
    planted_table(20, seed=2).to_csv(data, index=False)
    args = ["train", str(data), "--target", "label", "--out", str(tmp_path / "r")]
    assert cli.main([*args, "--order-by", "amount"]) == 1
    assert "--order-by applies to sets: give --group-by COL" in capsys.readouterr().err


@pytest.mark.slow
def test_the_command_line_explains_a_set_run(set_run, tmp_path, capsys):
    _, path, frame = set_run
    data, out = tmp_path / "sets.csv", tmp_path / "exports"
    frame.to_csv(data, index=False)
    args = ["explain", str(path), str(data), "--out", str(out), "--set", "G0002"]
    assert cli.main([*args, "--max-sets", "50"]) == 0
    assert "Recorded 50 sets (a seeded sample of 120)" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [
        "rows.csv",
        "set_maps.csv",
        "set_maps.npz",
        "sets.csv",
        "summary.csv",
    ]
    assert len(pd.read_csv(out / "sets.csv")) == 50
    assert cli.main([*args, "--report"]) == 1
    assert "--report applies to runs of one row per example" in capsys.readouterr().err
