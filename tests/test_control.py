"""The control model (same configuration, split and initial weights, labels permuted within the
training and validation splits, exactly the model's steps), saved in the run, and the table
fingerprint that lets a run recognise the table it was trained on."""

import hashlib
import json
import shutil
import sys
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import r2_score, roc_auc_score
from test_train import tiny_frame

from mrta import cli
from mrta.config import ModelConfig, TrainConfig
from mrta.data.fingerprint import (
    METHOD,
    TableFingerprint,
    check_table,
    fingerprint,
    fingerprint_chunks,
)
from mrta.data.preprocessing import Preprocessor
from mrta.data.read import read_table
from mrta.data.schema import infer_schema
from mrta.errors import RunError
from mrta.pipelines.train_run import permute_labels, train_control, train_run
from mrta.runs.control import OLD_FORMAT, permutation_seed
from mrta.runs.manifest import (
    CONTROL_FILE,
    CONTROL_WEIGHTS,
    MANIFEST,
    ONE_MODEL_FORMAT_VERSION,
    TABLE_FILE,
)
from mrta.runs.run import Run

TINY = ModelConfig(d_token=8, d_model=8, num_layers=1, num_heads=2, dropout=0.1)
FEW = TrainConfig(time_budget=None, max_epochs=4, learning_rate=3e-3, threads=1)
FIXTURES = Path(__file__).parent / "fixtures"
pipeline = sys.modules["mrta.pipelines.train_run"]  # the module, not the function of that name


def spy_on_fit(monkeypatch) -> list[dict]:
    """Record what every training call of the pipelines is given: the targets, the initial
    weights and the `steps`."""
    calls = []
    real = pipeline.fit

    def fit(model, train, validation, config=None, **kwargs):
        calls.append(
            {
                "train": train,
                "validation": validation,
                "initial": {k: v.detach().clone() for k, v in model.state_dict().items()},
                "steps": kwargs.get("steps"),
                "config": config,
            }
        )
        return real(model, train, validation, config, **kwargs)

    monkeypatch.setattr(pipeline, "fit", fit)
    return calls


@pytest.fixture(scope="module")
def traced():
    """A binary run with its control, and what the model's and the control's training saw."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        calls = spy_on_fit(monkeypatch)
        frame = tiny_frame("binary")
        before = frame.copy()
        run = train_run(frame, "y", model_config=TINY, train_config=FEW, control=True)
    return run, calls, before


@pytest.mark.slow
def test_the_control_trains_on_the_training_labels_permuted_and_the_test_split_untouched(traced):
    run, calls, before = traced
    assert [call["steps"] for call in calls] == [None, run.training.steps]
    model_call, control_call = calls
    for split in ("train", "validation"):
        true, shuffled = (call[split] for call in (model_call, control_call))
        assert torch.equal(true.target, run.examples(split).target)
        assert Counter(shuffled.target.tolist()) == Counter(true.target.tolist())  # same labels
        assert not torch.equal(shuffled.target, true.target)  # in another order
        for inputs, same in zip(shuffled.model_inputs(), true.model_inputs(), strict=True):
            assert torch.equal(inputs, same)  # only the labels moved
    # the permutations are those of the recorded seed, one generator for both splits
    rng = np.random.default_rng(run.control.permutation_seed)
    for split in ("train", "validation"):
        order = rng.permutation(len(model_call[split]))
        assert torch.equal(control_call[split].target, model_call[split].target[order])
    assert run.control.permutation_seed == permutation_seed(FEW.seed)
    # nothing of the test split went into training; the control is scored on its true labels
    test = run.rows("test")
    trained_on = set(run.rows("train").index) | set(run.rows("validation").index)
    assert not set(test.index) & trained_on
    pd.testing.assert_frame_equal(run.frame, before)
    y = (test["y"] == "yes").to_numpy()
    assert run.control.test_rows == len(test)
    probabilities = run.control.test_predictions[:, 1]
    assert run.control.metric == "roc_auc"
    assert run.control.value == pytest.approx(roc_auc_score(y, probabilities))


@pytest.mark.slow
def test_the_control_takes_the_models_steps_from_its_initial_weights(traced):
    run, calls, _ = traced
    control = run.control
    assert control.steps == run.training.steps and control.epochs == run.training.epochs
    assert control.training.stop_reason == "steps" and control.training.best_epoch == control.epochs
    assert control.training.schedule_fraction == run.training.schedule_fraction == 1.0
    model_call, control_call = calls
    for name, value in model_call["initial"].items():
        assert torch.equal(value, control_call["initial"][name]), name
    assert control_call["config"] == run.train_config
    trained = run.model.state_dict()
    assert any(not torch.equal(v, trained[k]) for k, v in control.model.state_dict().items())
    assert "control" in run.control_status().lower() and f"{control.steps} steps" in (
        run.control_status()
    )


@pytest.mark.slow
def test_the_control_matches_the_steps_of_a_model_cut_short():
    event = threading.Event()
    run = train_run(
        tiny_frame("regression"),
        "y",
        model_config=TINY,
        train_config=FEW,
        callback=lambda p: p.step == 6 and event.set(),
        cancel=event,
    )
    assert run.training.steps == 6 and run.control is None  # 4 steps an epoch: one and a half
    control = train_control(run)
    assert (control.steps, control.epochs, control.metric) == (6, 2, "r2")
    # cut short at 6 of 4 epochs' 16 steps: the control's learning rate goes as far, no further
    assert run.training.schedule_fraction == control.training.schedule_fraction == 6 / 16
    run.control = control
    targets, predictions, control_predictions = run.split_predictions("test")
    assert control.value == pytest.approx(r2_score(targets, control_predictions))
    np.testing.assert_allclose(control_predictions, control.test_predictions)
    assert predictions.shape == targets.shape


@pytest.mark.slow
def test_a_cancelled_control_is_none_and_a_run_without_rows_is_refused(traced, tmp_path):
    run, _, _ = traced
    cancelled = threading.Event()
    cancelled.set()
    assert train_control(run, cancel=cancelled) is None
    without_rows = Run.load(run.save(tmp_path / "run"))
    with pytest.raises(RunError, match="no data rows"):
        train_control(without_rows)


def test_labels_are_permuted_within_each_part_only():
    train, validation = (
        Preprocessor.fit(part, infer_schema(part, "y")).transform(part)
        for part in (tiny_frame("multiclass", rows=60), tiny_frame("multiclass", rows=20, seed=1))
    )
    shuffled = permute_labels((train, validation), seed=7)
    for before, after in zip((train, validation), shuffled, strict=True):
        assert sorted(after.target.tolist()) == sorted(before.target.tolist())
        assert len(after) == len(before)
    assert torch.equal(permute_labels((train, validation), 7)[0].target, shuffled[0].target)


# -- saved in the run ----------------------------------------------------------------------------
@pytest.mark.slow
def test_a_saved_control_loads_with_its_weights_facts_and_checksums(traced, tmp_path):
    run, _, _ = traced
    path = run.save(tmp_path / "run")
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["format_version"] == ONE_MODEL_FORMAT_VERSION == 2
    for name in (CONTROL_WEIGHTS, CONTROL_FILE, TABLE_FILE):
        digest = hashlib.sha256((path / name).read_bytes()).hexdigest()
        assert manifest["files"][name] == digest, name
    facts = json.loads((path / CONTROL_FILE).read_text())
    assert facts["trained"] is True and facts["steps"] == run.training.steps
    assert facts["permutation_seed"] == run.control.permutation_seed
    assert {"epochs", "metric", "value", "seconds", "labels"} <= set(facts)
    loaded = Run.load(path)
    control = loaded.control
    assert (control.steps, control.epochs, control.value) == (
        run.control.steps,
        run.control.epochs,
        run.control.value,
    )
    assert control.test_predictions is None and not control.model.training
    for name, value in run.control.model.state_dict().items():
        assert torch.equal(value, control.model.state_dict()[name]), name
    assert loaded.table == run.table and loaded.table.rows == len(run.frame)


@pytest.mark.slow
def test_a_changed_byte_of_the_control_weights_is_refused(traced, tmp_path):
    run, _, _ = traced
    path = run.save(tmp_path / "run")
    data = bytearray((path / CONTROL_WEIGHTS).read_bytes())
    data[len(data) // 2] ^= 0x01
    (path / CONTROL_WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(RunError, match=r"file control\.safetensors .* does not match its checksum"):
        Run.load(path)


@pytest.mark.slow
def test_a_run_without_a_control_says_so_and_resaving_drops_old_control_files(traced, tmp_path):
    run, _, _ = traced
    path = run.save(tmp_path / "run")
    control = run.control
    try:
        run.control = None
        run.save(path, overwrite=True)
    finally:
        run.control = control
    assert not (path / CONTROL_WEIGHTS).exists()
    loaded = Run.load(path)
    assert loaded.control is None and "No control model" in loaded.no_control
    assert loaded.control_status() == loaded.no_control
    assert json.loads((path / CONTROL_FILE).read_text())["trained"] is False


@pytest.mark.slow
def test_a_format_2_run_must_list_its_control_file(traced, tmp_path):
    run, _, _ = traced
    path = run.save(tmp_path / "run")
    manifest = json.loads((path / MANIFEST).read_text())
    del manifest["files"][CONTROL_FILE]
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(RunError, match=r"does not list control\.json"):
        Run.load(path)


@pytest.mark.parametrize("name", ["run_v1_row", "run_v1_set"])
def test_a_format_1_run_loads_without_a_control_and_is_checked_by_rows_and_columns(name, tmp_path):
    run = Run.load(FIXTURES / name)
    assert run.control is None and run.no_control == OLD_FORMAT
    assert "format 1" in run.control_status() and run.table is None
    check = run.check_table(run.frame)
    assert check.matches and check.checked == ("row count", "column names")
    assert "run format 1" in check.notes[0] and "not by its row count or content" in check.notes[0]
    last = max(*run.splits.train, *run.splits.validation, *run.splits.test)
    short = run.check_table(run.frame.iloc[:last])
    assert not short.matches and f"needs at least {last + 1}" in short.differences[0]
    renamed = run.check_table(run.frame.rename(columns={run.schema.target: "other"}))
    assert not renamed.matches and "lacks the column" in " ".join(renamed.differences)
    # saved again by this version, it is format 2, still without a control
    copy = Run.load(run.save(tmp_path / name, include_data=True))
    assert copy.control is None and copy.no_control == OLD_FORMAT


# -- the table's fingerprint ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "table.csv"
    frame = tiny_frame("multiclass", rows=80)
    frame["when"] = pd.date_range("2024-01-01", periods=80, freq="D").astype(str)
    frame.to_csv(path, index=False)
    return path


def test_the_same_table_read_again_has_the_same_fingerprint(table_file, tmp_path):
    first, again = (fingerprint(read_table(table_file).frame) for _ in range(2))
    assert first == again and first.method == METHOD and len(first.sha256) == 64
    assert first.rows == 80 and first.columns[-1] == "when"
    frame = read_table(table_file).frame
    assert check_table(frame, first).matches
    # the same values in another file layout: semicolons, gzipped, Parquet
    frame.to_csv(tmp_path / "semi.csv.gz", sep=";", index=False)
    frame.to_parquet(tmp_path / "table.parquet", index=False)
    for other in ("semi.csv.gz", "table.parquet"):
        assert fingerprint(read_table(tmp_path / other).frame).sha256 == first.sha256, other
    # chunked as a streamed table is, and with integers read as floats
    chunks = [frame.iloc[i : i + 7] for i in range(0, 80, 7)]
    assert fingerprint_chunks(frame.columns, chunks) == first
    assert check_table(fingerprint_chunks(frame.columns, chunks[:-1]), first).differences == (
        "It has 77 rows, and the table the run was trained on had 80.",
        "Its content differs too (its SHA-256 is not the run's table's).",
    )
    assert TableFingerprint.from_dict(json.loads(json.dumps(first.to_dict()))) == first


def test_a_changed_cell_a_dropped_row_and_a_renamed_column_are_found(table_file):
    frame = read_table(table_file).frame
    expected = fingerprint(frame)
    changed = frame.copy()
    changed.loc[17, "color"] = "purple"
    check = check_table(changed, expected)
    assert not check.matches and check.checked == ("row count", "column names", "content")
    assert check.differences == ("The values differ in the column(s) 'color'.",)
    dropped = check_table(frame.drop(index=5).reset_index(drop=True), expected)
    assert not dropped.matches and "It has 79 rows" in dropped.differences[0]
    renamed = check_table(frame.rename(columns={"x2": "x3"}), expected)
    assert not renamed.matches and "lacks the column(s) 'x2'" in renamed.differences[0]
    assert "'x3'" in renamed.differences[1]
    assert renamed.differences[2] == "It seems to hold renamed columns: 'x2' as 'x3'."
    assert "does not match" in renamed.summary()
    number = frame.copy()
    number.loc[3, "x1"] = number.loc[3, "x1"] + 1e-9
    assert check_table(number, expected).differences == (
        "The values differ in the column(s) 'x1'.",
    )


@pytest.mark.slow
def test_a_run_stores_the_fingerprint_of_its_table_and_checks_tables_against_it(traced):
    run, _, before = traced
    assert run.table == fingerprint(before) and run.test_table is None
    assert run.check_table(before).matches
    shuffled = before.sample(frac=1.0, random_state=0).reset_index(drop=True)
    assert not run.check_table(shuffled).matches
    with pytest.raises(ValueError, match="no test file"):
        run.check_table(before, test_file=True)


@pytest.mark.slow
def test_a_separate_test_file_has_its_own_fingerprint():
    frame, test = tiny_frame("binary", rows=120), tiny_frame("binary", rows=40, seed=4)
    config = TrainConfig(time_budget=None, max_epochs=1, threads=1)
    run = train_run(frame, "y", model_config=TINY, train_config=config, test_frame=test)
    assert run.table == fingerprint(frame) and run.test_table == fingerprint(test)
    assert run.check_table(test, test_file=True).matches
    assert not run.check_table(frame, test_file=True).matches


# -- the command line ----------------------------------------------------------------------------
TINY_ARGS = ["--time-budget", "0", "--epochs", "2", "--layers", "1", "--d-model", "8",
             "--num-heads", "2", "--threads", "1"]  # fmt: skip


@pytest.mark.slow
def test_mrta_train_trains_a_control_by_default_and_reports_it_apart(tmp_path, capsys):
    tiny_frame("binary", rows=120).to_csv(tmp_path / "data.csv", index=False)
    argv = ["train", str(tmp_path / "data.csv"), "--target", "y", "--out", str(tmp_path / "run")]
    assert cli.main([*argv, *TINY_ARGS]) == 0
    out, err = capsys.readouterr()
    run = Run.load(tmp_path / "run")
    assert run.control is not None and run.control.steps == run.training.steps
    assert "Control model (labels shuffled within the training split" in out
    control_row = next(line for line in out.splitlines() if line.startswith("control "))
    assert control_row.split()[1:3] == [str(run.control.steps), str(run.control.epochs)]
    assert "the time budget bounds the model only" in out
    assert "Verdict: " in out
    assert "Control model: the same model on labels shuffled" in err  # its own progress bar
    assert "Model: Stopped after the maximum of 2 epochs." in err


@pytest.mark.slow
def test_mrta_train_no_control_skips_it_and_says_so(tmp_path, capsys):
    tiny_frame("binary", rows=120).to_csv(tmp_path / "data.csv", index=False)
    argv = ["train", str(tmp_path / "data.csv"), "--target", "y", "--out", str(tmp_path / "run")]
    assert cli.main([*argv, *TINY_ARGS, "--no-control"]) == 0
    out, err = capsys.readouterr()
    assert "No control model was trained (mrta train --no-control)" in out
    assert "Control model:" not in err
    assert not (tmp_path / "run" / CONTROL_WEIGHTS).exists()
    run = Run.load(tmp_path / "run")
    assert run.control is None and "--no-control" in run.no_control
    shutil.rmtree(tmp_path / "run")
