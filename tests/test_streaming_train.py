"""Training, predicting and explaining from a file read in chunks (mrta.pipelines.streamed): the
streamed run is the whole-table run where nothing is sampled, and the CLI streams big tables."""

import gzip
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from test_train import QUICK, TINY_MODEL, tiny_frame

from mrta import cli
from mrta.analysis.cohorts import split_of
from mrta.data.fingerprint import fingerprint
from mrta.data.read import ReadingOptions, read_table
from mrta.data.stream import read_rows, scan_table
from mrta.errors import RunError, TableError
from mrta.pipelines.explain import analysed_rows
from mrta.pipelines.streamed import (
    explained_rows,
    predict_file,
    read_or_stream,
    train_run_from_file,
)
from mrta.pipelines.train_run import train_run
from mrta.report.exports import load_atlas
from mrta.runs.run import Run

ROWS = 300
TINY_ARGS = ["--time-budget", "0", "--epochs", "3", "--layers", "1", "--d-model", "16",
             "--num-heads", "2", "--threads", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The same small multiclass table as CSV and as Parquet."""
    folder = tmp_path_factory.mktemp("streamed")
    frame = tiny_frame("multiclass", rows=ROWS)
    frame.to_csv(folder / "data.csv", index=False)
    frame.to_parquet(folder / "data.parquet", index=False)
    return {"csv": folder / "data.csv", "parquet": folder / "data.parquet"}


@pytest.fixture(scope="module")
def sampled(files):
    """A streamed run whose schema, preprocessor, baselines and test scores all see samples."""
    return train_run_from_file(
        files["csv"],
        "y",
        model_config=TINY_MODEL,
        train_config=QUICK,
        chunk_rows=37,
        sample_rows=120,
        baseline_rows=100,
        test_rows=30,
        stopping_rows=25,
    )


def without_seconds(metrics: dict) -> dict:
    return {name: {k: v for k, v in part.items() if k != "seconds"} if isinstance(part, dict)
            else part for name, part in metrics.items()}  # fmt: skip


@pytest.mark.slow
def test_a_streamed_run_trains_saves_loads_and_predicts(sampled, files, tmp_path):
    run = sampled
    assert run.frame is None and run.test_frame is None
    assert run.schema.notes[0] == (
        f"Column types were inferred on a seeded sample of 120 of the {ROWS} rows (seed 0)."
    )
    assert run.preprocessor.notes[0].startswith(
        "Numerical quantiles and category vocabularies were fitted on a seeded sample of "
    )
    n_train, n_validation, n_test = (len(s) for s in (run.splits.train, run.splits.validation,
                                                      run.splits.test))  # fmt: skip
    assert n_train + n_validation + n_test == ROWS  # every row has a target
    assert run.splits.notes == (
        "After every epoch the model was scored (for early stopping and its best weights) on a "
        f"seeded sample of 25 of the {n_validation} validation rows (seed 0).",
        f"The baselines learnt from a seeded sample of 100 of the {n_train} training rows and "
        f"stopped early on {n_validation} of the {n_validation} validation rows (seed 0); the "
        "model trained on all the training rows.",
        f"The model and the baselines were scored on a seeded sample of 30 of the {n_test} test "
        "rows (seed 0).",
    )
    assert run.metrics["model"]["rows"] == run.metrics["hgb"]["rows"] == 30
    assert run.metrics["model"]["accuracy"] > run.metrics["trivial"]["accuracy"]
    assert len(run.history) > 1 and run.training.steps > 0
    with pytest.raises(RunError, match="holds no data rows"):
        run.rows("test")
    with pytest.raises(RunError, match="no data rows to save"):
        run.save(tmp_path / "with", include_data=True)
    loaded = Run.load(run.save(tmp_path / "run"))
    assert loaded.splits == run.splits and loaded.schema == run.schema
    assert loaded.preprocessor.to_dict() == run.preprocessor.to_dict()
    frame = read_table(files["csv"]).frame
    pd.testing.assert_frame_equal(loaded.predict_frame(frame), run.predict_frame(frame))


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.slow
def test_with_a_sample_as_large_as_the_table_it_is_the_whole_table_run(files, kind):
    streamed = train_run_from_file(
        files[kind], "y", model_config=TINY_MODEL, train_config=QUICK, chunk_rows=29
    )
    whole = train_run(read_table(files[kind]).frame, "y", model_config=TINY_MODEL,
                      train_config=QUICK)  # fmt: skip
    assert streamed.schema == whole.schema
    assert streamed.splits == whole.splits  # no notes: nothing was sampled
    assert streamed.preprocessor.to_dict() == whole.preprocessor.to_dict()
    assert without_seconds(streamed.metrics) == without_seconds(whole.metrics)
    for (name, a), b in zip(
        streamed.model.state_dict().items(), whole.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name


@pytest.mark.slow
def test_a_streamed_control_and_fingerprint_are_the_whole_table_runs(files):
    streamed = train_run_from_file(
        files["csv"], "y", model_config=TINY_MODEL, train_config=QUICK, chunk_rows=29,
        control=True,
    )  # fmt: skip
    frame = read_table(files["csv"]).frame
    whole = train_run(frame, "y", model_config=TINY_MODEL, train_config=QUICK, control=True)
    assert streamed.table == whole.table == fingerprint(frame)
    assert streamed.table.rows == ROWS
    assert streamed.control.steps == streamed.training.steps == whole.control.steps
    assert streamed.control.value == whole.control.value
    for (name, a), b in zip(
        streamed.control.model.state_dict().items(),
        whole.control.model.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b), name


def test_a_target_label_the_sample_lacks_is_refused_by_name(tmp_path):
    frame = tiny_frame("multiclass", rows=ROWS)
    frame.to_csv(tmp_path / "data.csv", index=False)
    sample = set(scan_table(tmp_path / "data.csv", sample_rows=60, seed=QUICK.seed).sample.index)
    frame.loc[min(set(range(ROWS)) - sample), "y"] = "rare"  # the sample keeps its rows
    frame.to_csv(tmp_path / "data.csv", index=False)
    with pytest.raises(TableError) as error:
        train_run_from_file(tmp_path / "data.csv", "y", train_config=QUICK, sample_rows=60)
    message = str(error.value)
    assert message.startswith(
        f"The target 'y' holds label(s) that the seeded sample of 60 of the {ROWS} rows lacks "
        "('rare')"
    )
    assert "--sample-rows" in message and "\n" not in message


def test_read_rows_gives_the_whole_frames_rows_in_the_order_asked(files):
    for path in files.values():
        frame = read_table(path).frame
        rows = [299, 3, 3, 150, 0, 77]
        picked = read_rows(path, rows, chunk_rows=16)
        assert picked.index.tolist() == rows
        pd.testing.assert_frame_equal(picked, frame.iloc[rows], check_index_type=False)
        some = read_rows(path, [5, 6, 40], columns=["y", "x1"], chunk_rows=16)
        assert list(some.columns) == ["x1", "y"]  # file order
        pd.testing.assert_frame_equal(some, frame.iloc[[5, 6, 40]][["x1", "y"]],
                                      check_index_type=False)  # fmt: skip
        none = read_rows(path, [])
        assert list(none.columns) == list(frame.columns) and len(none) == 0
    with pytest.raises(TableError, match=f"Row position {ROWS} is outside the file"):
        read_rows(files["csv"], [0, ROWS])


def test_a_table_over_the_reading_limits_is_streamed(files, tmp_path):
    assert len(read_or_stream(files["csv"]).frame) == ROWS
    assert read_or_stream(files["csv"], ReadingOptions(max_rows=ROWS - 1)) is None
    assert read_or_stream(files["parquet"], ReadingOptions(max_rows=ROWS - 1)) is None
    size = files["csv"].stat().st_size
    assert read_or_stream(files["csv"], ReadingOptions(max_bytes=size - 1)) is None
    zipped = tmp_path / "data.csv.gz"
    zipped.write_bytes(gzip.compress(files["csv"].read_bytes()))
    assert zipped.stat().st_size < size  # over the limit once decompressed only
    assert read_or_stream(zipped, ReadingOptions(max_bytes=size - 1)) is None
    with pytest.raises(TableError, match="There is no file"):
        read_or_stream(tmp_path / "none.csv")


@pytest.mark.slow
def test_predictions_written_chunk_by_chunk_are_the_whole_tables(sampled, files, tmp_path):
    expected = sampled.predict_frame(read_table(files["csv"]).frame)
    for kind, path in files.items():
        out = tmp_path / f"{kind}.csv"
        assert predict_file(sampled, path, out, chunk_rows=41) == ROWS
        written = pd.read_csv(out)
        assert list(written.columns) == list(expected.columns)
        assert written["prediction"].tolist() == expected["prediction"].tolist()
        labels = list(sampled.class_labels)
        np.testing.assert_allclose(
            written[labels].to_numpy(), expected[labels].to_numpy(), rtol=5e-6, atol=1e-9
        )  # probabilities are written to 6 significant digits


@pytest.mark.slow
def test_explained_rows_are_the_whole_tables_sample(sampled, files):
    frame = read_table(files["csv"]).frame
    for max_rows in (50, ROWS):
        rows, total = explained_rows(sampled, files["parquet"], max_rows, seed=3, chunk_rows=23)
        expected = analysed_rows(sampled, frame, max_rows, 3)
        assert total == ROWS and rows.index.tolist() == expected.index.tolist()
        pd.testing.assert_frame_equal(rows, expected, check_index_type=False)


# --- the command line ---------------------------------------------------------------------------


@pytest.mark.slow
def test_mrta_train_streams_with_chunk_rows_end_to_end(files, tmp_path):
    shutil.copy(files["csv"], tmp_path / "data.csv")
    done = subprocess.run(
        [sys.executable, "-m", "mrta", "train", "data.csv", "--target", "y", "--out", "run",
         "--chunk-rows", "50", "--sample-rows", "100", *TINY_ARGS],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Note: streaming data.csv in chunks of 50 rows (--chunk-rows was given)." in done.stderr
    assert "Note: Column types were inferred on a seeded sample of 100 of the 300" in done.stderr
    assert "Stopped after the maximum of 3 epochs." in done.stderr
    for word in ("accuracy", "model", "gradient boosting", "trivial"):
        assert word in done.stdout
    run = Run.load(tmp_path / "run")
    assert run.frame is None and len(run.schema.notes) and run.train_config.max_epochs == 3


@pytest.mark.slow
def test_mrta_predict_and_explain_stream_a_table_over_the_limits(
    sampled, files, tmp_path, monkeypatch, capsys
):
    run, data = str(tmp_path / "run"), str(files["csv"])
    sampled.save(run)
    # explain reads only the rows it analyses: the same seeded sample as from the whole table
    shutil.copytree(run, tmp_path / "copy")
    for run_dir, extra in ((run, []), (str(tmp_path / "copy"), ["--chunk-rows", "40"])):
        out = str(tmp_path / f"x{len(extra)}")
        argv = ["explain", run_dir, data, "--out", out, "--max-rows", "120", *extra]
        assert cli.main(argv) == 0
        err = capsys.readouterr().err
        assert "Recorded 120 rows" in err and ("streaming" in err) == bool(extra)
    # the same maps for every cohort both have; the table read whole is known to be the run's
    # own, so it also has the split cohorts, which the streamed sample lacks (its rows carry no
    # split, and its views say so)
    whole, streamed = (load_atlas(tmp_path / f"x{n}" / "maps") for n in (0, 2))
    assert set(streamed.cohorts) < set(whole.cohorts)
    assert {key[0] for key in set(whole.cohorts) - set(streamed.cohorts)} <= {
        "split",
        "true",
        "pred",
        "correct",
        "target",
        "prediction",
        "residual",
    }
    assert all(split_of(key) is None for key in streamed.cohorts), "no cohort of a split's rows"
    for key in streamed.cohorts:
        i, j = whole.index(key), streamed.index(key)
        assert whole.counts[i] == streamed.counts[j]
        for map_key in whole.means:
            np.testing.assert_array_equal(whole.means[map_key][i], streamed.means[map_key][j])
    # predict writes chunk by chunk a table over the limits
    assert cli.main(["predict", run, data, "--out", str(tmp_path / "a.csv")]) == 0
    assert "streaming" not in capsys.readouterr().err
    monkeypatch.setenv("MRTA_MAX_TABLE_ROWS", str(ROWS - 1))  # the limits of every whole read
    assert cli.main(["predict", run, data, "--out", str(tmp_path / "b.csv")]) == 0
    err = capsys.readouterr().err
    assert "in chunks of 100,000 rows (it is over the reading limits of" in err
    assert f"Wrote {ROWS:,} predictions (one per row)" in err
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    pd.testing.assert_frame_equal(a, b, rtol=1e-6)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--save-data"], "--save-data needs the table in memory, but "),
        (["--group-by", "color"], "--group-by needs the table in memory, but "),
        (["--test", "DATA"], "--test needs the table in memory, but "),
        (["--nproc", "2"], "--nproc needs the table in memory, but "),
    ],
)
def test_what_a_streamed_run_cannot_do_is_one_line_error(files, tmp_path, capsys, extra, message):
    extra = [str(files["csv"]) if arg == "DATA" else arg for arg in extra]
    argv = ["train", str(files["csv"]), "--target", "y", "--out", str(tmp_path / "run"),
            "--chunk-rows", "50", *extra]  # fmt: skip
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"mrta: error: {message}") and "is streamed" in err[-1]
    assert not (tmp_path / "run").exists()


def test_sample_rows_without_streaming_is_refused(files, tmp_path, capsys):
    argv = ["train", str(files["csv"]), "--target", "y", "--out", str(tmp_path / "run"),
            "--sample-rows", "100"]  # fmt: skip
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrta: error: --sample-rows applies to a streamed table")
