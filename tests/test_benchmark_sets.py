"""benchmarks/sets.py at toy size, so that the set benchmark keeps running: one quality run, the
summary over seeds, the planted rule's ceiling, and the scale steps (one in a subprocess)."""

import json

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def bench():
    from benchmarks import sets

    return sets


@pytest.fixture(scope="module")
def table(bench):
    from mrta.data.read import read_table

    return read_table(bench.TABLE).frame


def test_the_rule_scores_as_sample_data_documents(bench, table):
    scores = bench.rule_scores(table)
    assert scores["groups"] == 1500
    assert round(scores["accuracy"], 3) == 0.849  # sample_data/README.md
    assert round(scores["expected_accuracy"], 3) == 0.859


@pytest.mark.slow
def test_a_quality_run_and_the_summary_over_seeds(bench, table):
    small = table[table[bench.GROUP].isin(table[bench.GROUP].unique()[:120])]
    threads = torch.get_num_threads()
    try:
        part = bench.quality(small, (0, 1), 1, (True,))
    finally:
        torch.set_num_threads(threads)
    runs = part["runs"]
    assert [r["seed"] for r in runs] == [0, 1] and len(part["runs"][0]["validation_curve"]) == 2
    for run in runs:
        assert run["epochs"] == 1 and sum(run["groups"].values()) == 120
        assert run["rule"]["groups"] == run["groups"]["test"]
        for name in ("model", "hgb", "trivial", "rule"):
            assert 0.0 <= run[name]["accuracy"] <= 1.0
    summary = part["summary"]["bind_rows=True"]
    for metric in bench.METRICS:
        adv = summary[metric]["advantage_over_hgb"]
        sign = 1 if bench.HIGHER_IS_BETTER[metric] else -1
        expected = np.mean([sign * (r["model"][metric] - r["hgb"][metric]) for r in runs])
        assert adv["mean"] == pytest.approx(expected)
        assert summary[metric]["model_beats_hgb"] == (expected > 0)
    assert "| accuracy |" in bench.quality_markdown(part)
    json.dumps(part, allow_nan=False)


def test_the_scale_table_has_fixed_set_sizes(bench):
    frame = bench.scale_table(7, 13)
    assert len(frame) == 91 and (frame.groupby(bench.GROUP).size() == 13).all()
    assert (frame.groupby(bench.GROUP)[bench.TARGET].nunique() == 1).all()
    assert frame.equals(bench.scale_table(7, 13))  # seeded


@pytest.mark.slow
def test_the_scale_steps_train_then_explain_the_same_sets(bench, tmp_path):
    threads = torch.get_num_threads()
    try:
        train = bench.child("train", 12, 4, tmp_path, threads=1)  # in this process
    finally:
        torch.set_num_threads(threads)
    assert train["sets"] == 4 and train["rows_per_set"] == 12 and train["steps"] >= 1
    assert train["peak_mb"] >= train["imports_peak_mb"]
    explained = bench.in_child("explain", 12, 4, tmp_path, threads=1)  # a fresh process
    assert explained["sets"] == 4 and explained["rows"] == 48
    part = {
        "imports": {"peak_mb": train["imports_peak_mb"]},
        "threads": 1,
        "sizes": [{"rows_per_set": 12, "sets": 4, "train": train, "explain": explained}],
    }
    assert "explain_sets" in bench.scale_markdown(part)
