"""No CSV the project writes carries a formula: the one writer, :func:`mrta.csvfile.write_csv`,
escapes text cells and headers and leaves numbers alone; predictions, set exports, the tidy map
CSV and the importance and faithfulness CSVs all go through it."""

import csv
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_sets import planted_table
from test_train import tiny_frame
from tiny_models import random_inputs, tiny_model

from mrta import cli
from mrta.analysis.cohorts import ALL_ROWS, CohortSpec
from mrta.analysis.collect import collect_attention
from mrta.analysis.deletion import Faithfulness, MethodFaithfulness, RandomBaseline
from mrta.analysis.importance import ColumnImportances, MethodImportance
from mrta.analysis.sets import ROLLOUT, SetExplanation, SetMaps
from mrta.config import ModelConfig, TrainConfig
from mrta.csvfile import FORMULA_STARTS, escape_cell, escape_frame, write_csv
from mrta.data.sets import SetOptions
from mrta.pipelines.explain_sets import explain_sets, set_maps
from mrta.pipelines.train_run import train_run
from mrta.report import exports
from mrta.report.exports import write_faithfulness_csv, write_importance_csv, write_tidy_csv
from mrta.report.set_exports import write_set_exports

#: What a spreadsheet runs as a formula at the start of a cell (OWASP), written out here again.
DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
NEGATIVE_NUMBER = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
HOSTILE = ('=HYPERLINK("x")', "+1", "@a")


def cells(source: str | Path) -> list[list[str]]:
    """The rows of a CSV file (or text) as a spreadsheet would split them, carriage returns in
    quoted cells kept."""
    if isinstance(source, Path):
        with source.open(encoding="utf-8", newline="") as handle:
            return list(csv.reader(handle))
    return list(csv.reader(io.StringIO(source, newline="")))


def formulas(source: str | Path) -> list[str]:
    """Every cell that a spreadsheet would run: one starting with a formula character that is
    not a negative number."""
    return [
        cell
        for row in cells(source)
        for cell in row
        if cell.startswith(DANGEROUS) and not NEGATIVE_NUMBER.fullmatch(cell)
    ]


# -- the writer ------------------------------------------------------------------------------
def test_the_escaping_rules_are_owasps_and_moved_without_breaking_old_imports():
    assert FORMULA_STARTS == DANGEROUS
    assert exports.escape_cell is escape_cell and exports.FORMULA_STARTS is FORMULA_STARTS
    for text in ("=1+1", "+1", "-x", "@a", "\tx", "\rx", "-1+2", "-", "-1-", "--1"):
        assert escape_cell(text) == f"'{text}"
        assert escape_cell(escape_cell(text)) == escape_cell(text)  # once is enough
    for text in ("-1", "-2.5", "-.5", "-1.", "-1e-07", "-3E+5", "plain", "a=b", "", "'=x"):
        assert escape_cell(text) == text


def test_numbers_booleans_and_missing_values_are_written_as_pandas_writes_them():
    frame = pd.DataFrame(
        {
            "float": [-1.5, np.nan, 1e-7, -0.0],
            "int": [-3, 0, 7, -12],
            "bool": [True, False, True, False],
            "nullable": pd.array([-1, None, 2, 3], dtype="Int64"),
            "category": pd.Categorical([-1.5, 2.0, None, -1.5]),
            "numbers in objects": pd.Series([-1, -2.5, None, np.nan], dtype=object),
            "when": pd.to_datetime(["2024-01-01", None, "2024-03-01", "2024-04-01"]),
        }
    )
    for options in ({}, {"float_format": "%.6g"}, {"index": False, "float_format": "%.3f"}):
        assert write_csv(frame, **options) == frame.to_csv(**options)
    assert formulas(write_csv(frame, index=False)) == []
    assert cells(write_csv(frame, index=False))[1][:2] == ["-1.5", "-3"]


def test_text_is_escaped_in_every_text_dtype_and_numbers_beside_it_are_not():
    frame = pd.DataFrame(
        {
            "object": ["=1+1", "ok", None, "-1"],
            "string": pd.array(["+1", None, "-x", "@a"], dtype="string"),
            "str": pd.Series(["\tt", "b", "c", "=d"], dtype="str"),
            "category": pd.Categorical(["@c", "d", None, "@c"]),
            "mixed": ["=m", -1.5, 3, None],
            "number": [-1.5, 2.0, np.nan, -4.0],
        }
    )
    before = frame.copy()
    rows = cells(write_csv(frame, index=False))
    assert rows[1:] == [
        ["'=1+1", "'+1", "'\tt", "'@c", "'=m", "-1.5"],
        ["ok", "", "b", "d", "-1.5", "2.0"],
        ["", "'-x", "c", "", "3", ""],
        ["-1", "'@a", "'=d", "'@c", "", "-4.0"],
    ]
    pd.testing.assert_frame_equal(frame, before)  # the caller's frame is left as it was
    assert escape_frame(frame)["category"].tolist()[0] == "'@c"


def test_every_header_is_text_and_escaped():
    frame = pd.DataFrame([[1, 2, 3, 4, 5, 6, 7, 8]])
    frame.columns = ["=a", "+b", "-c", "@d", "\te", "ok", -1, 3]
    assert cells(write_csv(frame, index=False))[0] == [
        "'=a",
        "'+b",
        "'-c",
        "'@d",
        "'\te",
        "ok",
        "-1",
        "3",
    ]
    aliases = write_csv(frame.iloc[:, :2], index=False, header=["=x", "y"])
    assert cells(aliases)[0] == ["'=x", "y"]
    chosen = write_csv(frame, index=False, columns=["=a", "ok"])
    assert cells(chosen) == [["'=a", "ok"], ["1", "6"]]
    empty = write_csv(pd.DataFrame(columns=["layer", "@map"]), index=False)
    assert empty == "layer,'@map\n"


def test_index_labels_and_names_are_escaped_when_the_index_is_written():
    frame = pd.DataFrame({"v": [-1.5, 2.0]}, index=pd.Index(["=k", "ok"], name="@key"))
    assert cells(write_csv(frame)) == [["'@key", "v"], ["'=k", "-1.5"], ["ok", "2.0"]]
    assert cells(write_csv(frame, index_label="=label"))[0] == ["'=label", "v"]
    assert cells(write_csv(frame, index=False)) == [["v"], ["-1.5"], ["2.0"]]


def test_a_file_written_in_chunks_equals_one_written_at_once(tmp_path):
    frame = pd.DataFrame(
        {"label": ["=a", "b", "+c", "d", "@e"], "p": [-0.5, 0.25, np.nan, 1.0, -2.0]}
    )
    whole = write_csv(frame, index=False, float_format="%.6g")
    buffer = io.StringIO()
    for start in range(0, len(frame), 2):
        write_csv(
            frame.iloc[start : start + 2],
            buffer,
            index=False,
            header=start == 0,
            float_format="%.6g",
        )
    assert buffer.getvalue() == whole
    path = tmp_path / "chunks.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        write_csv(frame.iloc[:3], handle, index=False, float_format="%.6g")
    write_csv(frame.iloc[3:], path, mode="a", index=False, header=False, float_format="%.6g")
    assert path.read_text(encoding="utf-8") == whole
    assert write_csv(frame, tmp_path / "one.csv", index=False, float_format="%.6g") is None
    assert (tmp_path / "one.csv").read_text(encoding="utf-8") == whole
    assert formulas(whole) == []


def test_a_carriage_return_inside_text_is_quoted_so_no_line_starts_a_formula():
    frame = pd.DataFrame({"text": ["a\r=1+1", "\r@b", "plain"], "n": [-1, 2, 3]})
    assert "\na\r=1+1," in frame.to_csv(index=False)  # Python's csv module: unquoted
    text = write_csv(frame, index=False)
    assert '\n"a\r=1+1",-1\n' in text and '\n"\'\r@b",2\n' in text
    assert cells(text) == [["text", "n"], ["a\r=1+1", "-1"], ["'\r@b", "2"], ["plain", "3"]]
    plain = write_csv(frame.iloc[2:], index=False)
    assert plain == "text,n\nplain,3\n"  # without one, the file is written as before


def test_data_for_reading_back_is_written_exactly():
    frame = pd.DataFrame({"=a": ["=x", "-y"], "n": [-1.5, 2.0]})
    assert write_csv(frame, escape=False, index=False) == frame.to_csv(index=False)


# -- what the project writes ---------------------------------------------------------------
def test_the_tidy_importance_and_faithfulness_csvs_carry_no_formula(tmp_path):
    num, cat = ("=cmd", "+plus", "plain"), ("-minus", "@at")
    model = tiny_model(num, cat, [4, 4], task="binary")
    inputs = random_inputs(30, 3, 2)
    frame = pd.DataFrame({"-minus": inputs[2][:, 0].numpy()})
    spec = CohortSpec(class_labels=("=no", "@yes"), levels=("-minus",), top_levels=2)
    y = torch.randint(0, 2, (30,), generator=torch.Generator().manual_seed(1))
    atlas = collect_attention(model, inputs, frame, spec, targets=y)
    write_tidy_csv(atlas, tmp_path / "maps.csv", cohorts=[ALL_ROWS, *atlas.cohorts[1:3]])
    assert formulas(tmp_path / "maps.csv") == []
    tidy = cells(tmp_path / "maps.csv")
    assert {row[4] for row in tidy[1:]} == {"'=cmd", "'+plus", "plain", "'-minus", "'@at"}

    columns = [*num, *cat]
    mean = dict(zip(columns, [0.5, -0.25, 0.1, -1e-5, 0.0], strict=True))
    importance = ColumnImportances(
        rows=10,
        methods={
            "permutation": MethodImportance(mean, dict.fromkeys(columns, 0.01)),
            "rollout": MethodImportance(mean, None),
        },
        streams={name: "num" if name in num else "cat" for name in columns},
    )
    write_importance_csv(importance, tmp_path / "importance.csv")
    assert formulas(tmp_path / "importance.csv") == []
    table = cells(tmp_path / "importance.csv")
    assert table[0] == ["method", "column", "stream", "mean", "se", "rank"]
    assert table[2] == ["permutation", "'+plus", "num", "-0.25", "0.01", "5"]
    assert table[4] == ["permutation", "'-minus", "cat", "-1e-05", "0.01", "4"]
    assert table[-1][-2:] == ["", "3"]  # no standard error for rollout: an empty cell

    def method(area: float) -> MethodFaithfulness:
        return MethodFaithfulness(tuple(columns), (0.0,) * 6, area, area - 0.5, area + 0.5)

    faithfulness = Faithfulness(
        methods={"permutation": method(-1.25), "rollout": method(0.75)},
        random=RandomBaseline((tuple(columns),), (0.0,) * 6, (0.0,) * 6, (0.0,) * 6, (0.1,), -1, 1),
        rows=10,
        columns=5,
        resamples=100,
        level=0.9,
        seed=0,
    )
    write_faithfulness_csv(faithfulness, tmp_path / "faithfulness.csv")
    assert cells(tmp_path / "faithfulness.csv") == [
        ["method", "area", "low", "high", "beats_random"],
        ["permutation", "-1.25", "-1.75", "-0.75", "False"],
        ["rollout", "0.75", "0.25", "1.25", "True"],
        ["random", "", "-1", "1", ""],
    ]


def hostile_set_explanation(rng: np.random.Generator) -> tuple[SetExplanation, SetMaps]:
    """Four sets whose keys, text values and labels a spreadsheet would run, beside negative
    numbers; and the first set's maps, labelled by a hostile order-by column."""
    keys = np.array(['=HYPERLINK("x")', "+1", "@a", "-g"], dtype=object)
    sizes = np.array([3, 4, 2, 5])
    rows_keys = np.repeat(keys, sizes)
    shares = np.concatenate([rng.dirichlet(np.ones(n)) * n for n in sizes])
    values = pd.DataFrame(
        {
            "=g": rows_keys,
            "-kind": rng.choice(np.array(["=w", "+x", "@y", "plain"], dtype=object), len(shares)),
            "amount": rng.normal(size=len(shares)) - 2,
            "@day": [f"-d{i}" for i in range(len(shares))],
        }
    )
    explanation = SetExplanation(
        group_by="=g",
        order_by="@day",
        map_keys=(),
        sets=pd.DataFrame(
            {
                "=g": keys,
                "n_rows": sizes,
                "target": ["=no", "@yes", "=no", "@yes"],
                "prediction": ["@yes", "@yes", "=no", "=no"],
                "correct": [False, True, True, False],
            }
        ),
        rows=pd.DataFrame(
            {
                "=g": rows_keys,
                "position": np.concatenate([np.arange(n) for n in sizes]),
                "row": np.arange(len(shares)),
                ROLLOUT: shares,
            }
        ),
        values=values,
        sampled_from=None,
        seconds=0.0,
    )
    first = values[values["=g"] == keys[0]].drop(columns=["=g"]).reset_index(drop=True)
    maps = SetMaps(
        key=keys[0],
        maps={(0, "num_num"): rng.dirichlet(np.ones(3), size=(2, 3))},
        values=first,
        order_by="@day",
    )
    return explanation, maps


def test_set_exports_carry_no_formula_in_headers_or_cells(tmp_path):
    explanation, maps = hostile_set_explanation(np.random.default_rng(0))
    written = write_set_exports(explanation, tmp_path, maps)
    for path in written:
        if path.suffix == ".csv":
            assert formulas(path) == [], path.name
    sets = cells(tmp_path / "sets.csv")
    assert sets[0] == ["'=g", "n_rows", "target", "prediction", "correct"]
    assert [row[0] for row in sets[1:]] == ['\'=HYPERLINK("x")', "'+1", "'@a", "'-g"]
    assert sets[1][2:] == ["'=no", "'@yes", "False"]
    rows = cells(tmp_path / "rows.csv")
    assert rows[0] == ["'=g", "position", "row", "rollout", "'-kind", "amount", "'@day"]
    assert all(float(row[5]) < 0 for row in rows[1:] if row[5].startswith("-"))
    assert any(row[5].startswith("-") for row in rows[1:])  # negative amounts stay numbers
    summary = cells(tmp_path / "summary.csv")
    assert {row[0] for row in summary[1:]} == {"'-kind", "amount"}  # not the order-by
    assert {"'=w", "'+x", "'@y"} <= {row[1] for row in summary[1:]}
    tidy = cells(tmp_path / "set_maps.csv")
    assert {row[3] for row in tidy[1:]} == {"'-d0", "'-d1", "'-d2"}


# -- end to end: trained runs --------------------------------------------------------------
TINY = ModelConfig(d_token=8, d_model=8, num_layers=1, num_heads=2)
ONE_EPOCH = TrainConfig(time_budget=None, max_epochs=1, threads=1)


@pytest.mark.slow
def test_predictions_of_hostile_class_labels_carry_no_formula(tmp_path):
    frame = tiny_frame("multiclass")
    frame["y"] = frame["y"].map(dict(zip(("low", "mid", "high"), HOSTILE, strict=True)))
    run = train_run(frame, "y", model_config=TINY, train_config=ONE_EPOCH)
    path = run.save(tmp_path / "run")
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    whole, streamed = tmp_path / "whole.csv", tmp_path / "streamed.csv"
    assert cli.main(["predict", str(path), str(data), "--out", str(whole)]) == 0
    args = ["predict", str(path), str(data), "--out", str(streamed), "--chunk-rows", "50"]
    assert cli.main(args) == 0
    assert streamed.read_bytes() == whole.read_bytes()  # the header once, chunk after chunk
    assert formulas(whole) == []
    table = cells(whole)
    escaped = [f"'{label}" for label in run.class_labels]
    assert sorted(run.class_labels) == sorted(HOSTILE)
    assert table[0] == [*escaped, "prediction"]
    assert len(table) == len(frame) + 1
    assert {row[-1] for row in table[1:]} <= set(escaped)
    for row in table[1:]:
        assert sum(float(p) for p in row[:-1]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_a_set_runs_predictions_and_exports_carry_no_formula(tmp_path):
    frame = planted_table(40, seed=3).rename(columns={"g": "=g", "kind": "-kind"})
    frame["=g"] = ["@" + key if i % 2 else f'=HYPERLINK("{key}")' for i, key in
                   enumerate(frame["=g"])]  # fmt: skip
    frame["-kind"] = "+" + frame["-kind"]
    frame["label"] = frame["label"].map({0: "=no", 1: "@yes"})
    frame["day"] = np.arange(len(frame)) % 7 - 3  # negative numbers
    run = train_run(
        frame, "label", model_config=TINY, train_config=ONE_EPOCH, sets=SetOptions("=g", "day")
    )
    path = run.save(tmp_path / "run")
    data, predictions = tmp_path / "data.csv", tmp_path / "predictions.csv"
    frame.to_csv(data, index=False)
    assert cli.main(["predict", str(path), str(data), "--out", str(predictions)]) == 0
    assert formulas(predictions) == []
    table = cells(predictions)
    assert table[0][:2] == ["'=g", "n_rows"] and table[0][-1] == "prediction"
    assert {row[0][:2] for row in table[1:]} == {"'=", "'@"}
    assert {row[-1] for row in table[1:]} <= {"'=no", "'@yes"}
    explanation = explain_sets(run, frame)
    key = explanation.sets["=g"].iloc[0]
    out = tmp_path / "exports"
    written = write_set_exports(explanation, out, set_maps(run, frame, key))
    csvs = [p for p in written if p.suffix == ".csv"]
    assert [p.name for p in csvs] == ["sets.csv", "rows.csv", "summary.csv", "set_maps.csv"]
    for csv_path in csvs:
        assert formulas(csv_path) == [], csv_path.name
    rows = cells(out / "rows.csv")
    assert "'-kind" in rows[0] and "day" in rows[0]
    day = rows[0].index("day")
    assert {row[day] for row in rows[1:]} >= {"-3", "-1"}  # numbers, not escaped text
