"""Exploring a run beyond its explanation (mrta.pipelines.explore): a filter's cohort, one row's
maps, the explanation of either kind of run; and what the dashboard asks of mrta.data.sets and
mrta.training.devices (a grouping's targets in a prediction's order, the devices offered)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from test_train import QUICK, TINY_MODEL, tiny_frame

from mrta.analysis.explanation import Explanation
from mrta.analysis.sets import SetExplanation
from mrta.data.schema import infer_schema
from mrta.data.sets import targets_of_groups
from mrta.errors import MrtaError, RunError, TableError
from mrta.pipelines.explore import (
    RowFilter,
    explain_run,
    explorable_rows,
    filter_cohort,
    one_row_attention,
    row_map,
)
from mrta.pipelines.train_run import train_run
from mrta.training.devices import DEVICES, available_devices


@pytest.fixture(scope="module")
def run():
    frame = tiny_frame("multiclass", rows=120)
    config = replace(QUICK, max_epochs=1)
    return train_run(frame, "y", model_config=TINY_MODEL, train_config=config)


def test_a_filter_reads_its_value_as_the_column_holds_it():
    frame = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0], "c": ["a", "b", "a", None]})
    np.testing.assert_array_equal(
        RowFilter("x", ">", "1.5").mask(frame), [False, True, False, True]
    )
    np.testing.assert_array_equal(RowFilter("x", "!=", "1").mask(frame), [False, True, False, True])
    np.testing.assert_array_equal(RowFilter("c", "==", "a").mask(frame), [True, False, True, False])
    assert RowFilter("x", "<=", "2").name == "x <= 2"
    assert RowFilter("x", "<=", "2").cohort == ("filter", "x <= 2")


@pytest.mark.parametrize(
    "row_filter, message",
    [
        (RowFilter("x", ">", "many"), "x holds numbers: write a number, not 'many'."),
        (RowFilter("nowhere", "==", "a"), "There is no column named 'nowhere'"),
    ],
)
def test_a_filter_that_cannot_be_read_is_refused_with_its_reason(row_filter, message):
    with pytest.raises(TableError, match=message):
        row_filter.mask(pd.DataFrame({"x": [1.0, 2.0]}))


def test_an_unknown_comparison_is_refused():
    with pytest.raises(ValueError, match="op must be one of"):
        RowFilter("x", "=~", "1")


@pytest.mark.slow
def test_a_filter_cohort_is_recorded_over_the_rows_that_meet_it(run):
    atlas, cohort = filter_cohort(run, RowFilter("x1", ">", "0"))
    assert cohort == ("filter", "x1 > 0")
    chosen = atlas.cohort_map(0, "num_num", cohort)
    assert chosen.count == int((run.frame["x1"] > 0).sum())
    np.testing.assert_allclose(chosen.mean.sum(axis=-1), 1.0, atol=1e-5)
    with pytest.raises(TableError, match="No row has x1 > 100"):
        filter_cohort(run, RowFilter("x1", ">", "100"))


@pytest.mark.slow
def test_one_rows_maps_are_labelled_with_its_values(run):
    rows = explorable_rows(run)
    assert len(rows) == len(run.frame)  # every row of the tiny table has a target
    maps, queries, keys = row_map(one_row_attention(run, rows, 3), 0, "cat_num")
    assert maps.shape == (TINY_MODEL.num_heads, 2, 2)  # (heads, categorical, numerical)
    np.testing.assert_allclose(maps.sum(axis=-1), 1.0, atol=1e-5)
    row = rows.iloc[3]
    assert row["color"] in queries[0] and row["size"] in queries[1]
    assert len(keys) == 2 and all("x" in key for key in keys)


@pytest.mark.slow
def test_a_run_without_rows_says_so(run):
    empty = replace_frame(run, None)
    with pytest.raises(RunError, match="holds no rows"):
        explorable_rows(empty)
    with pytest.raises(MrtaError):
        filter_cohort(empty, RowFilter("x1", ">", "0"))


def replace_frame(run, frame):
    import copy

    other = copy.copy(run)
    other.frame = frame
    return other


@pytest.mark.slow
def test_explain_run_gives_the_explanation_of_the_runs_kind(run):
    from test_sets import planted_table

    from mrta.config import ModelConfig, TrainConfig
    from mrta.data.sets import SetOptions

    assert isinstance(explain_run(run), Explanation)
    sets = train_run(
        planted_table(30, seed=5),
        "label",
        model_config=ModelConfig(d_token=4, d_model=8, num_layers=1, num_heads=2),
        train_config=TrainConfig(time_budget=None, max_epochs=1, threads=1),
        sets=SetOptions("g"),
    )
    counted = []
    explanation = explain_run(sets, progress=lambda done, total, message: counted.append(total))
    assert isinstance(explanation, SetExplanation)
    assert counted and counted[-1] == len(explanation.sets)


def test_the_targets_of_groups_follow_the_order_asked_for():
    frame = pd.DataFrame(
        {"g": ["a", "a", "b", "c", "c"], "x": [1.0, 2, 3, 4, 5], "y": ["p", "p", "q", None, None]}
    )
    schema = infer_schema(frame, "y", roles={"g": "ignored"})
    kept, y = targets_of_groups(frame, schema, "g", ["c", "b", "a", "d"])
    np.testing.assert_array_equal(kept, [False, True, True, False])  # c: no target; d: unknown
    assert y.dtype == np.int64
    labels = list(schema.class_labels)
    assert [labels[i] for i in y] == ["q", "p"]


def test_the_devices_offered_are_those_this_machine_has():
    devices = available_devices()
    assert devices[:2] == ["auto", "cpu"]
    assert ("cuda" in devices) == torch.cuda.is_available()
    assert ("mps" in devices) == torch.backends.mps.is_available()
    assert [d for d in DEVICES if d in devices] == devices
