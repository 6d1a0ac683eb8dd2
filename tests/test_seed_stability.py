"""Seed stability of a run of seed members: the pipeline, summary.json's "stability" entry, the
tidy CSV and ``mrta explain``'s report of it."""

import json

import numpy as np
import pandas as pd
import pytest
from test_seed_members import train_two_members
from test_train import QUICK, TINY_MODEL, tiny_frame

from mrta.analysis.cohorts import ALL_ROWS
from mrta.analysis.importance import METHODS
from mrta.cli import main
from mrta.errors import RunError
from mrta.pipelines.explain import explain, run_checks
from mrta.pipelines.stability import ONE_MODEL, seed_stability
from mrta.pipelines.train_run import train_run
from mrta.report.exports import STABILITY_COLUMNS
from mrta.report.run_exports import write_exports

pytestmark = pytest.mark.slow  # every test here trains


@pytest.fixture(scope="module")
def members():
    return train_run(
        tiny_frame("binary"),
        "y",
        model_config=TINY_MODEL,
        train_config=QUICK,
        seeds=3,
        parallel=False,
    )


@pytest.fixture(scope="module")
def explained(members):
    return explain(members)


def test_every_map_and_every_importance_is_compared_across_the_members(members, explained):
    stability = seed_stability(members, explained)
    assert stability.members == 3 and stability.rows == explained.rows
    assert [(m.layer, m.map_id) for m in stability.maps] == list(explained.atlas.map_keys)
    heads = TINY_MODEL.num_heads
    for found in stability.maps:
        cells = found.cells
        assert cells.heads.shape == (3, heads)
        assert np.array_equal(cells.heads[0], np.arange(heads))
        for row in cells.heads:  # each member's heads matched one to one
            assert sorted(row) == list(range(heads))
        # member 0's head-mean map is the explanation's own
        own = explained.atlas.cohort_map(found.layer, found.map_id, ALL_ROWS, head="mean").mean
        np.testing.assert_allclose(cells.member_means[0], own, rtol=1e-6)
        np.testing.assert_allclose(cells.mean, cells.member_means.mean(axis=0), rtol=1e-6)
    assert set(stability.agreement) == set(METHODS)
    for concordance in stability.agreement.values():
        assert 0.0 <= concordance.w <= 1.0 and concordance.null == pytest.approx(1 / 3)
        assert 0.0 < concordance.p_value <= 1.0
    assert stability.importance_rows > 0 and stability.note is None


def test_member_0s_checked_importances_are_the_ones_computed_again(members):
    fresh = seed_stability(members, explain(members))
    checked = run_checks(members, explain(members))
    again = seed_stability(members, checked)
    for method in METHODS:
        assert again.agreement[method].w == pytest.approx(fresh.agreement[method].w)


def test_the_summary_entry_has_the_issues_shape(members, explained, tmp_path):
    explained.stability = seed_stability(members, explained)
    try:
        write_exports(members, explained, tmp_path)
    finally:
        explained.stability = None
    entry = json.loads((tmp_path / "summary.json").read_text())["stability"]
    assert entry["seeds"] == 3
    assert set(entry["importance_agreement"]) == set(METHODS)
    assert entry["importance_agreement_chance"] == pytest.approx(1 / 3)
    for found in entry["maps"]:
        assert set(found) == {"layer", "map_id", "mean_cell_sd", "unstable_cells"}
    matching = entry["head_matching"]
    assert {m["member"] for m in matching} == {1, 2}
    assert len(matching) == 2 * len(entry["maps"])
    tidy = pd.read_csv(tmp_path / "stability.csv")
    assert list(tidy.columns) == [*STABILITY_COLUMNS[:-1], "member_0", "member_1", "member_2"]
    np.testing.assert_allclose(
        tidy[["member_0", "member_1", "member_2"]].mean(axis=1), tidy["mean"], rtol=1e-4
    )
    cells = sum(
        len(q) * len(k)
        for q, k in (explained.atlas.names(*key) for key in explained.atlas.map_keys)
    )
    assert len(tidy) == cells


def test_a_run_of_one_model_has_no_stability():
    one = train_run(tiny_frame("binary"), "y", model_config=TINY_MODEL, train_config=QUICK)
    with pytest.raises(RunError, match="train it with --seeds N"):
        seed_stability(one, explain(one))
    assert "--seeds N" in ONE_MODEL


def test_without_the_runs_rows_the_maps_are_compared_and_the_note_says_why(members):
    frame = members.frame
    members.frame = None
    try:
        stability = seed_stability(members, explain(members, frame), frame)
    finally:
        members.frame = frame
    assert stability.agreement == {} and stability.importance_rows == 0
    assert stability.note.startswith("No importance agreement: the run holds no test rows")
    assert stability.maps


def test_mrta_explain_reports_the_stability_of_a_seeded_run(tmp_path, capsys):
    trained, data, run = train_two_members(tmp_path)
    assert trained == 0, capsys.readouterr().err
    out = tmp_path / "out"
    assert main(["explain", run, data, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Stability across 2 seed members" in printed
    assert "Kendall's W" in printed and "cells unstable" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stability"]["seeds"] == 2
    assert (out / "stability.csv").is_file()
