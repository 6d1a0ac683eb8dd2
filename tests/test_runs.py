"""Saved runs: round trips to the same numbers, untrained weights from the seed, refusals."""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch
from test_train import QUICK, TINY_MODEL, tiny_frame

from mrta.errors import RunError, TableError
from mrta.nn.model import TabularAttentionModel
from mrta.pipelines.train_run import train_run
from mrta.runs.manifest import FORMAT_VERSION, MANIFEST
from mrta.runs.run import Run

# Every test here uses a run trained for it.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run() -> Run:
    return train_run(tiny_frame("multiclass"), "y", model_config=TINY_MODEL, train_config=QUICK)


@pytest.fixture
def saved(run, tmp_path):
    return run.save(tmp_path / "run")


def test_loading_and_predicting_gives_the_same_numbers(run, saved, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load must not be used")

    monkeypatch.setattr(torch, "load", refuse)
    loaded = Run.load(saved)
    frame = tiny_frame("multiclass", rows=50, seed=1)
    pd.testing.assert_frame_equal(loaded.predict_frame(frame), run.predict_frame(frame))
    for (name, a), b in zip(
        run.model.state_dict().items(), loaded.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert loaded.metrics == json.loads(json.dumps(run.metrics))
    assert loaded.splits == run.splits and loaded.schema == run.schema
    assert loaded.history == json.loads(json.dumps(run.history))
    assert loaded.train_config == run.train_config and loaded.init_seed == run.init_seed
    assert loaded.frame is None


def test_predictions_name_probability_columns_by_class(run):
    frame = tiny_frame("multiclass", rows=20, seed=2)
    frame["extra"] = "ignored"
    predictions = run.predict_frame(frame.drop(columns=["y"]))
    assert list(predictions.columns) == [*run.class_labels, "prediction"]
    assert len(predictions) == 20 and list(predictions.index) == list(frame.index)
    probabilities = predictions[list(run.class_labels)].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    best = np.asarray(run.class_labels)[probabilities.argmax(axis=1)]
    assert predictions["prediction"].tolist() == best.tolist()
    with pytest.raises(TableError, match="'x1'"):
        run.predict_frame(frame.drop(columns=["x1"]))


def test_the_untrained_model_is_rebuilt_from_the_init_seed(run, saved):
    loaded = Run.load(saved)
    torch.manual_seed(loaded.init_seed)
    by_hand = TabularAttentionModel.from_dict(loaded.model.to_dict())
    untrained = loaded.untrained_model()
    for (name, a), b in zip(
        by_hand.state_dict().items(), untrained.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    trained = loaded.model.state_dict()["head.4.weight"]
    assert not torch.equal(untrained.state_dict()["head.4.weight"], trained)


def test_data_rows_travel_only_when_asked(run, tmp_path):
    without = run.save(tmp_path / "without")
    assert not (without / "data.csv").exists()
    with pytest.raises(RunError, match="no data rows"):
        Run.load(without).rows("test")
    with_data = Run.load(run.save(tmp_path / "with", include_data=True))
    assert (tmp_path / "with" / "data.csv").is_file()
    pd.testing.assert_frame_equal(
        with_data.rows("test").reset_index(drop=True),
        run.rows("test").reset_index(drop=True),
        check_dtype=False,
    )


def test_a_regression_run_predicts_in_target_units(tmp_path):
    frame = tiny_frame("regression")
    frame["y"] = frame["y"] * 1000 + 5000
    regression = train_run(frame, "y", model_config=TINY_MODEL, train_config=QUICK)
    predictions = Run.load(regression.save(tmp_path / "r")).predict_frame(frame)
    assert list(predictions.columns) == ["prediction"]
    assert abs(predictions["prediction"].mean() - frame["y"].mean()) < 1000
    assert regression.metrics["model"]["r2"] > 0.5


def _rewrite(path, name, edit):
    """Change a file of a saved run; returns its new bytes."""
    data = edit((path / name).read_bytes())
    (path / name).write_bytes(data)
    return data


def _rehash(path, name, data):
    """Make the manifest's checksum of `name` match `data`."""
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["files"][name] = hashlib.sha256(data).hexdigest()
    (path / MANIFEST).write_text(json.dumps(manifest))


def test_tampered_weights_are_refused(saved):
    _rewrite(saved, "weights.safetensors", lambda b: b[:-4] + bytes(4))
    with pytest.raises(RunError, match=r"weights\.safetensors .*checksum"):
        Run.load(saved)


def test_corrupt_json_is_refused(saved):
    data = _rewrite(saved, "config.json", lambda b: b[:-10])
    with pytest.raises(RunError, match="checksum"):
        Run.load(saved)
    _rehash(saved, "config.json", data)
    with pytest.raises(RunError, match="not valid JSON"):
        Run.load(saved)
    (saved / MANIFEST).write_text("{not json")
    with pytest.raises(RunError, match=r"manifest\.json .*not valid JSON"):
        Run.load(saved)


def test_weights_that_do_not_fit_the_model_are_refused(saved):
    config = json.loads((saved / "config.json").read_text())
    config["model"]["config"]["d_model"] = 32
    data = json.dumps(config).encode()
    (saved / "config.json").write_bytes(data)
    _rehash(saved, "config.json", data)
    with pytest.raises(RunError, match="do not fit"):
        Run.load(saved)


def test_a_newer_format_is_refused(saved):
    manifest = json.loads((saved / MANIFEST).read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (saved / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(RunError, match="newer"):
        Run.load(saved)


def test_missing_files_and_paths_are_refused(saved, tmp_path):
    (saved / "metrics.json").unlink()
    with pytest.raises(RunError, match=r"lacks its file metrics\.json"):
        Run.load(saved)
    (saved / MANIFEST).unlink()
    with pytest.raises(RunError, match=r"not a saved run \(it has no manifest\.json\)"):
        Run.load(saved)
    with pytest.raises(RunError, match="no run directory"):
        Run.load(tmp_path / "nowhere")


def test_saving_refuses_to_overwrite_what_is_not_a_run(run, saved, tmp_path):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RunError, match="not a saved run"):
        run.save(other)
    assert (other / "notes.txt").read_text() == "mine"
    with pytest.raises(RunError, match=r"already holds a saved run: .*--overwrite"):
        run.save(saved)
    assert run.save(saved, overwrite=True) == saved  # a run is replaced only when asked
    Run.load(saved)
