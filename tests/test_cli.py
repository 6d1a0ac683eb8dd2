"""The command line: train and predict through a subprocess, errors without tracebacks."""

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_train import tiny_frame

from mrta import cli
from mrta.errors import TableError

ROOT = Path(__file__).resolve().parents[1]

TINY_ARGS = ["--time-budget", "0", "--epochs", "4", "--layers", "1", "--d-model", "16",
             "--num-heads", "2", "--threads", "1"]  # fmt: skip


def mrta(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mrta", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A table, a run trained on it by `mrta train`, and the finished process."""
    folder = tmp_path_factory.mktemp("cli")
    tiny_frame("multiclass").to_csv(folder / "data.csv", index=False)
    done = mrta("train", "data.csv", "--target", "y", "--out", "run", *TINY_ARGS, cwd=folder)
    return folder, done


@pytest.mark.slow
def test_train_prints_progress_and_a_metrics_table_and_saves_the_run(trained):
    folder, done = trained
    assert done.returncode == 0, done.stderr
    assert "[" in done.stderr and "epoch" in done.stderr  # the progress bar
    assert "Stopped after the maximum of 4 epochs." in done.stderr
    for word in ("accuracy", "roc_auc", "log_loss", "model", "gradient boosting", "trivial"):
        assert word in done.stdout
    assert (folder / "run" / "manifest.json").is_file()
    # the control model, on by default, is reported apart from the model
    assert "Control model (labels shuffled within the training split" in done.stdout
    assert "Control model: the same model on labels shuffled" in done.stderr
    assert (folder / "run" / "control.safetensors").is_file()


@pytest.mark.slow
def test_predict_writes_one_row_per_input_row_in_order(trained):
    folder, _ = trained
    new = tiny_frame("multiclass", rows=30, seed=3).drop(columns=["y"])
    new["extra"] = 1
    new.to_csv(folder / "new.csv", index=False)
    done = mrta("predict", "run", "new.csv", "--out", "predictions.csv", cwd=folder)
    assert done.returncode == 0, done.stderr
    predictions = pd.read_csv(folder / "predictions.csv")
    assert len(predictions) == 30
    assert list(predictions.columns) == ["high", "low", "mid", "prediction"]
    assert set(predictions["prediction"]) <= {"high", "low", "mid"}
    # prediction needs a single row (training needs many)
    new.head(1).to_csv(folder / "one.csv", index=False)
    done = mrta("predict", "run", "one.csv", "--out", "one_prediction.csv", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert len(pd.read_csv(folder / "one_prediction.csv")) == 1
    new.head(0).to_csv(folder / "none.csv", index=False)
    done = mrta("predict", "run", "none.csv", "--out", "no_prediction.csv", cwd=folder)
    assert done.returncode == 1 and "at least one row of data" in done.stderr


@pytest.mark.slow
def test_train_prints_what_reading_and_the_schema_changed(tmp_path, capsys):
    frame = tiny_frame("multiclass", rows=120)
    frame.loc[:4, "y"] = None
    text = frame.to_csv(index=False).replace("x2,", "x1,", 1)  # a second column named x1
    (tmp_path / "table.csv").write_text(text)
    argv = ["train", str(tmp_path / "table.csv"), "--target", "y", "--out", str(tmp_path / "r")]
    assert cli.main([*argv, *TINY_ARGS]) == 0
    err = capsys.readouterr().err
    assert "Note: Duplicate column names were made unique: 'x1' -> 'x1 (2)'." in err
    assert "Note: 5 row(s) have no value in the target 'y' and are left out." in err


@pytest.mark.slow
def test_a_missing_column_is_one_clear_message(trained, capsys):
    folder, _ = trained
    tiny_frame("multiclass", rows=10).drop(columns=["x1"]).to_csv(folder / "short.csv", index=False)
    argv = ["predict", str(folder / "run"), str(folder / "short.csv"), "--out", "p.csv"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrta: error: ") and "'x1'" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_errors_exit_non_zero_without_a_traceback(trained, tmp_path, capsys):
    folder, _ = trained
    cases = [
        (["predict", str(tmp_path), str(folder / "data.csv"), "--out", "p.csv"], "manifest"),
        (["train", str(folder / "data.csv"), "--target", "nope", "--out", str(tmp_path / "r")],
         "no column named 'nope'"),
        (["train", str(tmp_path / "none.csv"), "--target", "y", "--out", str(tmp_path / "r")],
         "There is no file"),
        (["train", str(folder / "data.csv"), "--target", "y", "--out", str(tmp_path / "r"),
          "--ignore", "x1", "--numerical", "x1"], "two roles"),
    ]  # fmt: skip
    for argv, message in cases:
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("mrta: error: ") and message in err, err
        assert "Traceback" not in err
    with pytest.raises(TableError, match="No column is left"):
        cli.main(["--debug", "train", str(folder / "data.csv"), "--target", "y", "--out",
                  str(tmp_path / "r"), "--time-budget", "0", "--epochs", "1",
                  "--ignore", "x1", "x2", "color", "size"])  # fmt: skip


@pytest.mark.slow
def test_an_unavailable_device_fails_clearly(trained, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    folder, _ = trained
    argv = ["train", str(folder / "data.csv"), "--target", "y", "--out", str(folder / "gpu"),
            "--device", "cuda"]  # fmt: skip
    assert cli.main(argv) == 1
    assert "device 'cuda' is not available" in capsys.readouterr().err


def dashboard_command(monkeypatch, *args: str) -> list[str]:
    """The command `mrta dashboard ARGS` runs (nothing is started)."""
    calls = []

    class Done:
        returncode = 0

    monkeypatch.setattr(
        cli.dashboard.subprocess, "run", lambda command, check: calls.append(command) or Done
    )
    assert cli.main(["dashboard", *args]) == 0
    return calls[0]


def test_dashboard_runs_streamlit_on_the_app_with_its_settings_from_any_folder(
    monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)  # no .streamlit/config.toml here
    command = dashboard_command(monkeypatch, "--server.port", "8502")
    assert command[1:4] == ["-m", "streamlit", "run"]
    app = Path(importlib.util.find_spec("mrta_dashboard").origin).parent / "app.py"
    assert Path(command[4]) == app.resolve() == ROOT / "mrta_dashboard" / "app.py"
    options = command[5:-2]
    assert dict(zip(options[::2], options[1::2], strict=True)) == {
        "--server.enableXsrfProtection": "true",
        "--server.enableCORS": "true",
        "--server.maxUploadSize": "200",
        "--browser.gatherUsageStats": "false",
        "--server.headless": "true",
        "--client.toolbarMode": "minimal",
        "--client.showErrorDetails": "none",
    }
    assert command[-2:] == ["--server.port", "8502"]


def test_dashboard_settings_given_by_the_user_replace_ours(monkeypatch):
    command = dashboard_command(
        monkeypatch, "--server.headless=false", "--server.maxUploadSize", "50", "--", "--x"
    )
    assert "--server.headless" not in command and command.count("--server.maxUploadSize") == 1
    assert command[-5:] == ["--server.headless=false", "--server.maxUploadSize", "50", "--", "--x"]
    assert "--server.enableCORS" in command


def test_the_streamlit_config_file_holds_the_dashboard_commands_settings():
    """`streamlit run` by hand in the repository reads the file; `mrta dashboard` passes the
    same settings as options, so the two cannot drift apart."""
    with open(ROOT / ".streamlit" / "config.toml", "rb") as handle:
        config = tomllib.load(handle)
    settings = {
        f"{section}.{name}": value
        for section, table in config.items()
        for name, value in table.items()
    }
    assert settings == cli.dashboard.STREAMLIT_SETTINGS


def test_dashboard_without_its_app_is_one_clear_message(monkeypatch, capsys):
    monkeypatch.setattr(cli.dashboard, "DASHBOARD_PACKAGE", "no_such_dashboard")
    assert cli.main(["dashboard"]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("mrta: error: the dashboard app is not at ") and "no_such_dashboard" in err
    )


@pytest.mark.slow
def test_explain_writes_every_export_and_the_report(trained):
    folder, _ = trained
    done = mrta(
        "explain", "run", "data.csv", "--out", "explained", "--report",
        "--cohort", "all rows", "--cohort", "wrong predictions, test rows", cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "recording the trained model" in done.stderr
    out = folder / "explained"
    for name in ("maps.npz", "maps.json", "maps.csv", "summary.json", "report.html"):
        assert (out / name).is_file(), name
    tidy = pd.read_csv(out / "maps.csv")
    assert list(tidy.columns) == ["layer", "map", "head", "cohort", "query", "key", "weight"]
    assert set(tidy["cohort"]) <= {"all rows", "wrong predictions, test rows"}
    sums = tidy[tidy.cohort == "all rows"].groupby(["layer", "map", "head", "query"]).weight.sum()
    assert ((sums - 1).abs() < 1e-4).all(), "each query row of a mean map sums to 1"
    assert "<script" in (out / "report.html").read_text()


@pytest.mark.slow
def test_explain_caches_its_analysis_in_the_run(trained):
    folder, _ = trained
    first = mrta("explain", "run", "data.csv", "--out", "first", cwd=folder)
    assert first.returncode == 0, first.stderr
    assert (folder / "run" / "analysis" / "explanation.json").is_file()
    again = mrta("explain", "run", "data.csv", "--out", "again", cwd=folder)
    assert again.returncode == 0, again.stderr
    assert "Read from the run" in again.stderr and "recording the trained model" not in again.stderr
    a, b = (np.load(folder / d / "maps.npz", allow_pickle=False) for d in ("first", "again"))
    assert sorted(a.files) == sorted(b.files)
    for name in a.files:
        np.testing.assert_array_equal(a[name], b[name])
    other = tiny_frame("multiclass", rows=40, seed=9)
    other.to_csv(folder / "other.csv", index=False)
    fresh = mrta("explain", "run", "other.csv", "--out", "other", cwd=folder)
    assert "Recorded 40 rows" in fresh.stderr, "other rows are not served from the cache"


@pytest.mark.slow
def test_explain_refuses_an_unknown_cohort_with_the_known_ones(trained):
    folder, _ = trained
    done = mrta("explain", "run", "data.csv", "--out", "x", "--cohort", "nope", cwd=folder)
    assert done.returncode == 1
    assert "no cohort labelled 'nope'; cohorts include 'all rows'" in done.stderr
    assert "Traceback" not in done.stderr
    # a label without its rows is offered with them
    argv = ["explain", "run", "data.csv", "--out", "x", "--cohort", "wrong predictions"]
    done = mrta(*argv, cwd=folder)
    assert done.returncode == 1
    assert (
        "did you mean 'wrong predictions, whole table', 'wrong predictions, training rows', "
        "'wrong predictions, test rows'?"
    ) in done.stderr
