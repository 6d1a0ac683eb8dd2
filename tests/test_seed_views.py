"""Seed stability in the dashboard and the report: the Train page's stability choice (the seeds
passed, the total time said), the Explore page's member picker and *Stability across seeds*
(AppTest), the advice for a run of one model, the report's section and the figures."""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest
from test_dashboard import z_values
from test_train import QUICK, TINY_MODEL, tiny_frame

from mrta.analysis.stability import CellStability
from mrta.config import TrainConfig
from mrta.errors import RunError
from mrta.pipelines.archive import RunOnOtherRows, explore_on
from mrta.pipelines.explain import explain
from mrta.pipelines.stability import ONE_MODEL, seed_stability
from mrta.pipelines.train_run import BASELINES, PREPARING, train_run, training_phases
from mrta.report.run_report import report_html
from mrta.report.stability_figures import stability_heatmaps
from mrta.report.stability_report import SECTION
from mrta.training.parallel import in_processes
from mrta_dashboard import keys
from mrta_dashboard.parts import seeds, stability
from mrta_dashboard.text import md

APP = str(Path(__file__).resolve().parents[1] / "mrta_dashboard" / "app.py")
TIMEOUT = 120
TINY = replace(QUICK, max_epochs=3)


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    return at


def wait(job) -> None:
    deadline = time.monotonic() + TIMEOUT
    while job.running:
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.2)
    assert job.error is None, job.error


def explore(run) -> AppTest:
    """The app on the Explore page with `run` as the session's run."""
    at = new_app()
    at.session_state[keys.RUN] = run
    at.session_state[keys.EXPLANATION] = explain(run)
    at.switch_page("views/explore.py").run()
    assert not at.exception
    return at


def texts(at: AppTest) -> str:
    return " ".join(e.value for e in (*at.markdown, *at.caption, *at.info, *at.subheader))


def charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


@pytest.fixture(scope="module")
def members():
    return train_run(tiny_frame("binary"), "y", model_config=TINY_MODEL, train_config=TINY, seeds=2,
                     parallel=False)  # fmt: skip


@pytest.fixture(scope="module")
def one_model():
    return train_run(tiny_frame("binary"), "y", model_config=TINY_MODEL, train_config=TINY)


# -- the Train page -------------------------------------------------------------------------------
def test_the_train_page_states_the_total_time_of_its_seed_members():
    at = new_app()
    at.switch_page("views/train.py").run()
    assert "One model (stability off)" in texts(at)
    at.number_input(key=seeds.SEEDS).set_value(3).run()
    assert not at.exception
    said = texts(at)
    assert "3 × the time budget (3 × 30 s = 90 s;" in said, said
    assert "About 120 s (about 2 min) to 180 s (about 3 min) in all" in said, said
    assert "up to about 3 budgets where they trained at once" in said and "control model" in said


@pytest.mark.slow
def test_the_train_page_passes_its_seeds_and_names_each_members_training(monkeypatch):
    module = importlib.import_module("mrta.pipelines.train_run")
    real, asked = module.train_run, {}

    def quick(*args, train_config, **kwargs):
        asked.update(kwargs)
        return real(*args, train_config=replace(train_config, max_epochs=1), **kwargs)

    monkeypatch.setattr(module, "train_run", quick)
    at = new_app()
    at.switch_page("views/train.py").run()
    at.number_input(key=seeds.SEEDS).set_value(2).run()
    at.button[0].click().run()
    job = at.session_state[keys.TRAIN_JOB]
    members = training_phases(2, parallel=in_processes(2, TrainConfig()))
    assert job.plan[: 2 + len(members)] == (PREPARING, *members, BASELINES)
    wait(job)
    assert asked["seeds"] == 2
    named = [name for name, _ in job.phases][: 2 + len(members)]
    assert named == [PREPARING, *members, BASELINES]
    at.run()
    assert not at.exception
    assert at.session_state[keys.RUN].seeds == 2
    assert "the mean of 2 seed members" in texts(at)
    if keys.CONTROL_JOB in at.session_state:
        control = at.session_state[keys.CONTROL_JOB]
        control.cancel.set()
        control.thread.join(TIMEOUT)


# -- the Explore page -----------------------------------------------------------------------------
@pytest.mark.slow
def test_a_seeded_run_has_a_member_picker_and_its_stability_on_demand(members):
    at = explore(members)
    assert "This run holds 2 seed members" in texts(at)
    assert SECTION in [s.value for s in at.subheader]
    first = z_values(charts(at)[0]["data"][0])
    at.button(key=stability.BUTTON).click().run()
    wait(at.session_state[stability.STABILITY_JOB])
    at.run()
    assert not at.exception and not at.error
    agreement, per_map, heads = (frame_with(at, c) for c in ("Kendall's W", "cells", "member 1"))
    assert len(agreement) == 4 and {"Kendall's W", "chance (1/N)", "permutation p"} <= set(
        agreement.columns
    )
    assert np.allclose(agreement["chance (1/N)"], 0.5)
    assert len(per_map) == 4 and "unstable cells" in per_map.columns
    assert len(heads) == TINY_MODEL.num_heads and "member 1" in heads.columns
    said = texts(at)
    assert "members' permutation importances" in said and "Kendall's W" in said
    assert "not a raw sign flip" in said and "spread of N values only" in said
    assert "is head 0 of member 0" in said
    titles = [c["layout"]["title"]["text"] for c in charts(at)]
    assert any("mean of the members" in t for t in titles)
    assert any("SD across the members" in t for t in titles)
    mean = next(c for c in charts(at) if "mean of the members" in c["layout"]["title"]["text"])
    assert [t.get("name") for t in mean["data"]][1] == "unstable"

    at.selectbox(key=seeds.member_picker(members.uid)).set_value(1).run()
    wait(at.session_state[seeds.MEMBER_JOB])
    at.run()
    assert not at.exception
    assert "Attention of seed member 1" in texts(at)
    assert "The maps below are member 1's" in texts(at)
    other = z_values(charts(at)[0]["data"][0])
    assert other.shape == first.shape and not np.allclose(other, first)
    assert SECTION in [s.value for s in at.subheader]  # the stability stays, of every member

    at.switch_page("views/export.py").run()  # the report gets the stability computed here
    assert "With the stability across seeds computed on the Explore page." in texts(at)
    labels = [b.label for b in at.get("download_button")]
    assert any(label.startswith("Stability across seeds (.csv)") for label in labels)
    assert any("Summary (.json)" in label and "stability" in label for label in labels)
    _, files = at.session_state[keys.EXPORT_FILES]
    assert "stability" in json.loads(files["summary.json"])
    header = files["stability.csv"].decode().splitlines()[0].split(",")
    assert {"mean", "sd", "unstable", "member_0", "member_1"} <= set(header)


def frame_with(at: AppTest, column: str):
    """The one table shown that has `column`."""
    (found,) = [d.value for d in at.dataframe if column in d.value.columns]
    return found


@pytest.mark.slow
def test_a_member_is_explored_on_the_rows_its_run_is_explored_on(members):
    assert members.member(1) is members.member(1)
    other = explore_on(members, tiny_frame("binary", rows=60, seed=5))  # not its table
    member = other.member(1)
    assert isinstance(member, RunOnOtherRows) and member.frame is other.frame
    assert member.model is members.members[1].model and member.uid != other.uid
    assert member is other.member(1) and members.member(1).frame is members.frame
    with pytest.raises(RunError):
        member.rows("test")  # the split's indices do not point into these rows
    assert explore_on(members, members.frame).member(1).frame is members.frame


@pytest.mark.slow
def test_a_run_of_one_model_says_how_to_see_what_survives_another_seed(one_model):
    at = explore(one_model)
    assert SECTION in [s.value for s in at.subheader]
    assert any(m.value == md(ONE_MODEL) for m in at.markdown)
    assert not any(s.key == stability.BUTTON for s in at.button)
    assert all(box.label != "Seed member" for box in at.selectbox)


# -- the report and the figures -------------------------------------------------------------------
@pytest.mark.slow
def test_the_report_has_a_stability_section_before_the_checks(members):
    explanation = explain(members)
    page = report_html(members, explanation, "tiny.csv")
    assert SECTION not in page
    explanation.stability = seed_stability(members, explanation)
    page = report_html(members, explanation, "tiny.csv")
    assert page.index(f"<h2>{SECTION}</h2>") < page.index("<h2>Checks</h2>")
    section = page[page.index(f"<h2>{SECTION}</h2>") : page.index("<h2>Checks</h2>")]
    assert "Kendall&#x27;s W" in section and "chance (1/N)" in section
    assert "unstable cells" in section and "mean SD of a cell" in section
    assert "is head 0 of member 0" in section
    assert section.count("<figure>") == 2 * len(explanation.stability.maps)
    assert "2 seed members" in page and page.count("plotly.js v") == 1


def cells(unstable: np.ndarray) -> CellStability:
    rng = np.random.default_rng(0)
    mean = rng.dirichlet(np.ones(3), size=2)  # (2 queries, 3 keys)
    return CellStability(
        mean=mean,
        sd=np.full((2, 3), 0.05),
        unstable=unstable,
        matched_mean=np.stack([mean, mean]),
        matched_sd=np.zeros((2, 2, 3)),
        heads=np.array([[0, 1], [1, 0], [0, 1]]),
        member_means=np.stack([mean] * 3),
    )


def test_the_mean_map_marks_its_unstable_cells_on_a_scale_centred_on_uniform():
    unstable = np.array([[False, True, False], [True, False, False]])
    figure, _ = stability_heatmaps(cells(unstable), (["a", "b"], ["x", "y", "z"]), title="t")
    heat, marks = figure.data
    assert np.asarray(heat.z).shape == (2, 3)
    assert marks.name == "unstable"
    assert sorted(zip(marks.y, marks.x, strict=True)) == [(0, 1), (1, 0)]  # (query, key)
    axis = figure.layout.coloraxis
    assert axis.cmin + axis.cmax == pytest.approx(2 / 3)  # centred on the uniform 1/3
    assert "2 of 6 cells" in figure.layout.annotations[0].text
    none, _ = stability_heatmaps(cells(np.zeros((2, 3), bool)), (["a", "b"], ["x", "y", "z"]))
    assert len(none.data[1].x) == 0 and "0 of 6 cells" in none.layout.annotations[0].text


def test_the_spread_map_runs_from_zero_and_names_its_members():
    _, figure = stability_heatmaps(cells(np.zeros((2, 3), bool)), (["a", "b"], ["x", "y", "z"]))
    (heat,) = figure.data
    assert np.asarray(heat.z).shape == (2, 3)
    axis = figure.layout.coloraxis
    assert axis.cmin == 0 and axis.cmax == pytest.approx(0.05)
    assert "3 seed members" in axis.colorbar.title.text
    assert "SD: %{z" in heat.hovertemplate
