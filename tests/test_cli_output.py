"""What the command line prints and writes for a person: `mrta train`'s column usage before
training, `mrta predict --keep` and the precision of its probabilities."""

import contextlib
import io
import re

import pandas as pd
import pytest
from test_cli import TINY_ARGS
from test_train import tiny_frame

from mrta import cli
from mrta.cli.columns import column_usage, renamed_columns
from mrta.data.schema import infer_schema


def run_cli(*argv: str) -> tuple[int, str, str]:
    """``mrta ARGV`` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return code, out.getvalue(), err.getvalue()


def table_with_an_id_and_a_repeated_name(rows: int = 120) -> str:
    frame = tiny_frame("multiclass", rows=rows)
    frame.insert(0, "customer_id", [f"c{i:04d}" for i in range(rows)])
    frame["batch"] = "b1"  # constant: ignored
    return frame.to_csv(index=False).replace("x2,", "x1,", 1)  # a second column named x1


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_output")
    (folder / "data.csv").write_text(table_with_an_id_and_a_repeated_name())
    done = run_cli(
        "train", str(folder / "data.csv"), "--target", "y", "--out", str(folder / "run"),
        "--no-control", *TINY_ARGS,
    )  # fmt: skip
    return folder, done


def test_renamed_columns_are_the_names_reading_gives():
    names = ["Unnamed: 0", "x", "x (2)", "y (2)", "Unnamed: 9"]
    assert renamed_columns(names) == {
        "Unnamed: 0": "renamed: its header cell is empty",
        "x (2)": "renamed: the header names 'x' more than once",
    }  # 'y (2)' has no 'y' before it and 'Unnamed: 9' is not the tenth column: their own names


def test_column_usage_gives_every_role_and_reason_with_the_target_last():
    frame = pd.read_csv(io.StringIO(table_with_an_id_and_a_repeated_name()))
    frame.columns = ["customer_id", "x1", "x1 (2)", "color", "size", "y", "batch"]
    text = column_usage(infer_schema(frame, "y"))
    lines = text.splitlines()
    assert lines[0] == "How the columns are used, target 'y', multiclass classification:"
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert re.search(r"customer_id\s+ignored\s+an identifier", rows["customer_id"])
    assert re.search(r"batch\s+ignored\s+constant", rows["batch"])
    assert "numerical" in rows["x1"] and "renamed: the header names 'x1'" in lines[3]
    assert lines[-2].split()[:2] == ["y", "target"]
    assert lines[-1].startswith("The model reads 4 columns: 2 numerical, 2 categorical; 2 ignored")


@pytest.mark.slow
def test_train_prints_how_each_column_is_used_before_training(trained):
    _, (code, _, err) = trained
    assert code == 0, err
    usage = err.index("How the columns are used")
    assert err.index("Note: Duplicate column names were made unique") < usage
    assert usage < err.index("epoch 1"), "printed before the first progress line"
    assert "customer_id  ignored      an identifier" in err
    assert "renamed: the header names 'x1' more than once" in err


@pytest.mark.slow
def test_predict_keeps_identifiers_in_memory_and_streamed(trained):
    folder, _ = trained
    data = pd.read_csv(folder / "data.csv")
    for extra in ((), ("--chunk-rows", "50")):
        out = folder / f"predictions{len(extra)}.csv"
        code, _, err = run_cli(
            "predict", str(folder / "run"), str(folder / "data.csv"), "--out", str(out),
            "--keep", "customer_id", "--keep", "size", "--keep", "customer_id", *extra,
        )  # fmt: skip
        assert code == 0, err
        written = pd.read_csv(out)
        assert list(written.columns) == ["customer_id", "size", "high", "low", "mid", "prediction"]
        assert written["customer_id"].tolist() == data["customer_id"].tolist()
        assert written["size"].tolist() == data["size"].tolist()
    first, streamed = (folder / f"predictions{n}.csv" for n in (0, 2))
    assert first.read_text() == streamed.read_text(), "the same file, read whole or streamed"


@pytest.mark.slow
def test_probabilities_are_written_to_six_significant_digits(trained):
    folder, _ = trained
    out = folder / "plain.csv"
    code, _, err = run_cli(
        "predict", str(folder / "run"), str(folder / "data.csv"), "--out", str(out)
    )
    assert code == 0, err
    text = pd.read_csv(out, dtype=str)
    assert list(text.columns) == ["high", "low", "mid", "prediction"]
    cells = [cell for label in ("high", "low", "mid") for cell in text[label]]
    digits = [len(re.sub(r"e.*$|\.", "", cell).lstrip("0")) for cell in cells]
    assert max(digits) <= 6 and max(digits) >= 5, "rounded, not truncated to nothing"
    sums = text[["high", "low", "mid"]].astype(float).sum(axis=1)
    assert ((sums - 1).abs() < 1e-5).all()


@pytest.mark.slow
def test_a_missing_or_clashing_keep_column_is_refused_with_the_columns_there_are(trained):
    folder, _ = trained
    for extra in ((), ("--chunk-rows", "50")):
        code, _, err = run_cli(
            "predict", str(folder / "run"), str(folder / "data.csv"), "--out",
            str(folder / "no.csv"), "--keep", "customer", *extra,
        )  # fmt: skip
        assert code == 1
        message = err.strip().splitlines()[-1]
        assert message.startswith("mrta: error: --keep:") and "no column 'customer'" in message
        assert "'customer_id', 'x1', 'x1 (2)', 'color', 'size', 'y', 'batch'" in message
    clash = pd.read_csv(folder / "data.csv").assign(high="a class's name")
    clash.to_csv(folder / "clash.csv", index=False)
    code, _, err = run_cli(
        "predict", str(folder / "run"), str(folder / "clash.csv"), "--out", str(folder / "no.csv"),
        "--keep", "y", "--keep", "high",
    )  # fmt: skip
    assert code == 1 and "the column 'high' has the name of a column the predictions write" in err
    assert not (folder / "no.csv").exists()
