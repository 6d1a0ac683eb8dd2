"""The Compare page through Streamlit's AppTest: what it says without a second run, two runs side
by side (maps on one colour scale, the tested difference, divergences, importances, metrics), a
refusal as a message, and the runs a session trains remembered for it."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_train import QUICK, TINY_MODEL, tiny_frame

from mrta.pipelines.explain import explain
from mrta.pipelines.train_run import train_run
from mrta_dashboard import keys
from mrta_dashboard.text import md

APP = str(Path(__file__).resolve().parents[1] / "mrta_dashboard" / "app.py")
TIMEOUT = 120
PAGE = "views/compare.py"


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    return at


def with_runs(current, *others) -> AppTest:
    """The app on the Compare page, `current` the session's run and every run remembered."""
    at = new_app()
    at.session_state[keys.RUN] = current
    at.session_state[keys.EXPLANATION] = explain(current)
    seen = [(run, name) for run, name in others] + [(current, "run 9: the current one")]
    at.session_state[keys.SEEN_RUNS] = seen
    at.switch_page(PAGE).run()
    assert not at.exception
    return at


@pytest.fixture(scope="module")
def runs():
    frame = tiny_frame("binary", rows=240)
    config = replace(QUICK, max_epochs=3)
    first = train_run(frame, "y", model_config=TINY_MODEL, train_config=config)
    second = train_run(frame, "y", model_config=TINY_MODEL, train_config=replace(config, seed=1))
    other = frame.rename(columns={"x1": "u1", "x2": "u2", "color": "hue", "size": "fit"})
    apart = train_run(other, "y", model_config=TINY_MODEL, train_config=config)
    return first, second, apart


def test_without_a_run_the_page_says_what_to_do():
    at = new_app()
    at.switch_page(PAGE).run()
    assert not at.exception
    assert "Train a model" in at.info[0].value


@pytest.mark.slow
def test_with_one_run_the_page_says_how_to_get_a_second(runs):
    at = with_runs(runs[0])
    text = " ".join(i.value for i in at.info)
    assert "needs a second run" in text and "another seed" in text and "Open run" in text
    assert not at.get("plotly_chart")


@pytest.mark.slow
def test_two_seeds_side_by_side_with_their_difference_divergence_and_importances(runs):
    first, second, _ = runs
    name = "run 1: [seed 0](http://x) *a*"
    at = with_runs(second, (first, name))
    at.button(key=keys.COMPARE_BUTTON).click().run()
    assert not at.exception and not at.error
    shown = " ".join(m.value for m in at.markdown)
    assert f"**B**: {md(name)}" in shown, "a run's name is shown literally"
    assert [s.value for s in at.subheader] == [
        "Metrics side by side",
        "How far apart each map is",
        "One map of both runs",
        "Column importances side by side",
    ]
    divergences = at.dataframe[1].value
    assert len(divergences) == 4 and (divergences["divergence"] > 0).all()
    metrics = at.dataframe[0].value
    assert "run 9: the current one: model" in metrics.columns
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    both, difference, importances = charts
    heatmaps = [t for t in both["data"] if t["type"] == "heatmap"]
    assert len(heatmaps) == 2 and {t["coloraxis"] for t in heatmaps} == {"coloraxis"}
    assert [a["text"] for a in both["layout"]["annotations"]][:2] == [
        "run 9: the current one",
        "run 1: [seed 0](http://x) *a*",
    ]
    assert [t["name"] for t in difference["data"]] == ["muted", "difference"]
    assert "Spearman" in " ".join(a["text"] for a in importances["layout"]["annotations"])
    captions = " ".join(c.value for c in at.caption)
    assert "paired t" in captions and "Jensen–Shannon" in captions
    assert "not whether either ranking is right" in captions

    at.selectbox(key=keys.COMPARE_MAP).set_value(2).run()  # another map, the same comparison
    assert not at.exception
    title = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["title"]["text"]
    assert "categorical → numerical" in title


@pytest.mark.slow
def test_runs_that_share_no_map_are_refused_with_a_message(runs):
    first, _, apart = runs
    at = with_runs(first, (apart, "run 1: other columns"))
    at.button(key=keys.COMPARE_BUTTON).click().run()
    assert not at.exception
    assert "cannot be compared" in at.error[0].value and "share no map" in at.error[0].value
    assert not at.get("plotly_chart")


@pytest.mark.slow
def test_runs_trained_in_the_session_are_remembered_for_the_page():
    at = new_app()
    for seed in (0, 1):
        at.switch_page("views/train.py").run()
        at.number_input(key="budget:quick").set_value(5.0)
        next(n for n in at.number_input if n.label == "Seed").set_value(seed)
        next(b for b in at.button if b.label == "Train").click().run()
        deadline = time.monotonic() + TIMEOUT
        while at.session_state[keys.TRAIN_JOB].running:
            assert time.monotonic() < deadline, "training did not finish"
            time.sleep(0.5)
        at.run()
        assert at.session_state[keys.TRAIN_JOB].error is None
    names = [name for _, name in at.session_state[keys.SEEN_RUNS]]
    assert names == [
        "run 1: trained here on penguins.csv → species, seed 0",
        "run 2: trained here on penguins.csv → species, seed 1",
    ]
    at.switch_page(PAGE).run()
    assert at.selectbox(key=keys.COMPARE_WITH).options == [names[0]]
    at.button(key=keys.COMPARE_BUTTON).click().run()
    assert not at.exception and not at.error
    assert (at.dataframe[1].value["divergence"] > 0).all()
