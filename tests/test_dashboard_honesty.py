"""Honest attention in the dashboard (issue 15) through Streamlit's AppTest: the verdict first on
every Explore view and the Export page (a warning for a model of shuffled labels, worth reading
for a planted rule once its control landed), "control pending" while the control trains in the
background, every check beside its null, the map Explore opens on, chosen once per run, and the
colour scale centred on the uniform weight."""

from __future__ import annotations

import copy
import importlib
import threading
import time
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import plotly.graph_objects as go
import pytest
from test_dashboard import TIMEOUT, new_app, plotly_json
from test_honest_cli import planted
from test_train import QUICK, TINY_MODEL

from mrta.pipelines.explore import METHOD_NOTES, METHOD_TITLES, METHODS
from mrta.pipelines.train_run import CANCELLED
from mrta.runs.control import NOT_TRAINED
from mrta_dashboard import jobs, keys, session
from mrta_dashboard.parts import colour
from mrta_dashboard.parts.maps import AGGREGATIONS

TRAIN = replace(QUICK, max_epochs=8)
NOT_WORTH = "Not worth reading"
PENDING = "Verdict pending: the control model is still training"


def shuffled(frame, column: str = "y", seed: int = 1):
    frame = frame.copy()
    frame[column] = frame[column].to_numpy()[np.random.default_rng(seed).permutation(len(frame))]
    return frame


@pytest.fixture(scope="module")
def shuffled_run():
    """The planted table with its labels shuffled, trained with its control: verdict no."""
    from mrta.pipelines.explain import explain
    from mrta.pipelines.train_run import train_run

    frame = shuffled(planted(400))
    run = train_run(frame, "y", model_config=TINY_MODEL, train_config=TRAIN, control=True)
    return run, explain(run)


@pytest.fixture(scope="module")
def planted_run():
    """The planted table trained without its control (as the Train page trains it), its
    explanation, and the control trained after: worth reading once it is attached."""
    from mrta.pipelines.explain import explain
    from mrta.pipelines.train_run import train_control, train_run

    # linear tokens: this short training leaves the numerical → numerical map uniform, which
    # the labels are checked on (periodic tokens move it off uniform)
    model = replace(TINY_MODEL, numerical_embedding="linear")
    run = train_run(planted(600), "y", model_config=model, train_config=TRAIN)
    return run, explain(run), train_control(run)


def with_run(run, explanation):
    """A new session whose run is `run`, as if opened."""
    at = new_app()
    own_table(at, run)
    at.session_state[keys.RUN], at.session_state[keys.EXPLANATION] = run, explanation
    return at


def own_table(at, run) -> None:
    """The session's table is the run's own, as after training it there: the Train page shows
    a run's results only under the table it was trained on."""
    read = SimpleNamespace(frame=run.frame, notes=())
    loaded = session.LoadedTable("planted.csv", "test:planted", read, target=run.schema.target)
    at.session_state[keys.TABLE] = loaded
    at.session_state[keys.SCHEMA] = (loaded.source_id, run.schema)


def trained_here(planted_run, monkeypatch):
    """A new session whose training job just finished with the planted run: the control starts
    in the background, held back until the returned event is set."""
    run, explanation, control = planted_run
    run, explanation = copy.copy(run), copy.copy(explanation)  # this test's own
    release = threading.Event()

    def held_back(run, *, callback=None, cancel=None):
        while not release.wait(0.05):
            if cancel is not None and cancel.is_set():
                return None
        return control

    module = importlib.import_module("mrta.pipelines.train_run")
    monkeypatch.setattr(module, "train_control", held_back)
    return just_trained(run, explanation), release


def just_trained(run, explanation):
    """A new session whose training job just finished with `run`: it becomes the session's run
    and its control starts training in the background."""
    at = new_app()
    job = jobs.Job("table → target", owner="test:planted")
    job.result = (run, explanation)  # a finished training job, adopted on the next run
    at.session_state[keys.TRAIN_JOB] = job
    at.run()
    own_table(at, run)  # after the Data page, which opens on a sample table
    assert at.session_state[keys.RUN] is run and at.session_state[keys.CONTROL_JOB].running
    return at


def wait_for_control(at) -> None:
    deadline = time.monotonic() + TIMEOUT
    while keys.CONTROL_JOB in at.session_state and at.session_state[keys.CONTROL_JOB].running:
        assert time.monotonic() < deadline, "the control did not land"
        time.sleep(0.1)
    at.run()
    assert not at.exception


def banner(at) -> str:
    """The first warning or success of the page: the verdict."""
    boxes = [*at.warning, *at.success]
    assert boxes, "no verdict shown"
    return (at.warning[0] if at.warning else at.success[0]).value


def test_the_centred_scale_is_symmetric_around_one_over_the_keys():
    weights = np.array([[[0.7, 0.2, 0.1], [0.3, 0.3, 0.4]]])  # (heads, queries, keys)
    figure = go.Figure(go.Heatmap(z=weights[0], coloraxis="coloraxis"))
    axis = colour.centre(figure, weights, colour.CENTRED).layout.coloraxis
    assert (axis.cmin + axis.cmax) / 2 == pytest.approx(1 / 3)
    assert axis.cmax == pytest.approx(0.7) and axis.colorscale[0][1] == "rgb(5,48,97)"  # RdBu_r
    untouched = go.Figure(go.Heatmap(z=weights[0], coloraxis="coloraxis"))
    assert colour.centre(untouched, weights, colour.ZERO).layout.coloraxis.cmin is None


@pytest.mark.slow
def test_a_model_of_shuffled_labels_is_flagged_on_every_explore_view_and_the_export(
    shuffled_run,
):
    run, explanation = shuffled_run
    assert not explanation.worth_reading and run.control is not None
    at = with_run(run, explanation)
    at.switch_page("views/explore.py").run()
    for layer, map_id in [*explanation.atlas.map_keys, (0, "rollout")]:
        at.selectbox(key=keys.LAYER).set_value(layer).run()
        for view in [map_id]:
            at.selectbox(key=keys.MAP).set_value(view).run()
            for rows in AGGREGATIONS:
                at.selectbox(key=keys.ROWS).set_value(rows).run()
                assert not at.exception, (layer, view, rows)
                assert NOT_WORTH in banner(at), (layer, view, rows)
                assert "beat the control trained on shuffled labels" in banner(at)
    at.switch_page("views/export.py").run()
    assert not at.exception and NOT_WORTH in banner(at)
    at.switch_page("views/train.py").run()
    assert NOT_WORTH in banner(at)
    info = " ".join(box.value for box in at.info)
    assert "gradient boosting" in info and "not with gradient boosting" in info


@pytest.mark.slow
def test_a_set_run_of_shuffled_labels_gets_its_control_and_is_flagged_on_explore_and_export():
    from test_sets import planted_table

    from mrta.config import ModelConfig, TrainConfig
    from mrta.data.sets import SetOptions
    from mrta.pipelines.explore import explain_run
    from mrta.pipelines.train_run import train_run

    frame = planted_table(120, seed=5)
    labels = frame.groupby("g", sort=False)["label"].first()
    moved = dict(
        zip(labels.index, np.random.default_rng(1).permutation(labels.to_numpy()), strict=True)
    )
    frame["label"] = frame["g"].map(moved)
    run = train_run(  # as the Train page trains it: the control comes after, in the background
        frame,
        "label",
        model_config=ModelConfig(d_token=4, d_model=16, num_layers=1, num_heads=2),
        train_config=TrainConfig(time_budget=None, max_epochs=2, threads=1),
        sets=SetOptions("g"),
    )
    at = just_trained(run, explain_run(run))
    at.switch_page("views/explore.py").run()
    assert PENDING in banner(at)
    wait_for_control(at)
    assert run.control is not None and run.control.steps == run.training.steps
    for page in ("views/explore.py", "views/export.py"):
        at.switch_page(page).run()
        assert not at.exception
        assert NOT_WORTH in banner(at), page
        assert "beat the control trained on shuffled labels" in banner(at), page
    assert (run.uid, True) in at.session_state[keys.VERDICTS], "scored again with the control"


@pytest.mark.slow
def test_control_pending_until_it_lands_then_the_planted_rule_is_worth_reading(
    planted_run, monkeypatch
):
    at, release = trained_here(planted_run, monkeypatch)
    run = at.session_state[keys.RUN]
    for page in ("views/explore.py", "views/export.py", "views/train.py"):
        at.switch_page(page).run()
        assert not at.exception
        assert PENDING in banner(at), page
        assert any("training the control model" in bar.proto.text for bar in at.get("progress"))
    assert any("Control model: pending" in c.value for c in at.sidebar.caption)
    at.switch_page("views/explore.py").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Control vs untrained"] == "pending"
    assert any("This map: **control pending**" in m.value for m in at.markdown)
    release.set()
    wait_for_control(at)
    assert run.control is planted_run[2]
    explanation = at.session_state[keys.EXPLANATION]
    assert explanation.control is not None and explanation.verdict.control is not None
    assert explanation.worth_reading
    for page in ("views/explore.py", "views/export.py", "views/train.py"):
        at.switch_page(page).run()
        assert not at.exception and not at.warning, page
        assert at.success[0].value.startswith("**Worth reading"), page
    at.switch_page("views/explore.py").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Control vs untrained"].endswith(" bits")
    rule = "A map counts as learned where its divergence from the untrained model is more than 2"
    assert any(rule in c.value for c in at.caption)


@pytest.mark.slow
def test_the_first_map_is_the_most_learned_and_stays_when_the_control_lands(
    planted_run, monkeypatch
):
    at, release = trained_here(planted_run, monkeypatch)
    first = at.session_state[keys.EXPLANATION].first_map()
    at.switch_page("views/explore.py").run()
    shown = lambda: (at.selectbox(key=keys.LAYER).value, at.selectbox(key=keys.MAP).value)  # noqa: E731
    assert shown() == first
    release.set()
    wait_for_control(at)
    assert shown() == first
    # Whatever the control says now, the page does not jump: make another map the most learned.
    explanation = at.session_state[keys.EXPLANATION]
    for entry in explanation.divergence:
        entry["control_divergence"] = 1.0 if (entry["layer"], entry["map_id"]) == first else 0.0
    assert explanation.first_map() != first
    at.run()
    assert shown() == first
    assert at.session_state[keys.FIRST_MAP][1] == first


@pytest.mark.slow
def test_stopping_the_control_says_so_in_the_verdict(planted_run, monkeypatch):
    at, _ = trained_here(planted_run, monkeypatch)
    at.switch_page("views/explore.py").run()
    at.button(key=keys.CONTROL_CANCEL).click().run()
    wait_for_control(at)
    assert at.session_state[keys.RUN].no_control == CANCELLED
    assert NOT_WORTH in banner(at) and CANCELLED in banner(at)


@pytest.mark.slow
def test_the_default_colour_scale_is_centred_on_the_uniform_weight(planted_run):
    run, explanation, control = planted_run
    run = copy.copy(run)
    run.control = control
    at = with_run(run, explanation)
    at.switch_page("views/explore.py").run()
    assert at.radio(key=keys.FIT).value == colour.CENTRED
    for head in ("all heads", 1):
        at.selectbox(key=keys.HEAD).set_value(head).run()
        figure = plotly_json(at)
        heatmaps = [t for t in figure["data"] if t["type"] == "heatmap"]
        axis = figure["layout"]["coloraxis"]
        assert (axis["cmin"] + axis["cmax"]) / 2 == pytest.approx(1 / len(heatmaps[0]["x"]))
        assert axis["colorscale"][5][1] == "rgb(247,247,247)", "white at the centre"
    at.radio(key=keys.FIT).set_value(colour.ZERO).run()
    assert plotly_json(at)["layout"]["coloraxis"]["cmin"] == 0


@pytest.mark.slow
def test_every_check_is_shown_beside_its_null(planted_run):
    from mrta.pipelines.explain import attach_control

    run, explanation, control = planted_run
    run, explanation = copy.copy(run), copy.copy(explanation)
    run.control = control
    explanation = attach_control(run, explanation)
    at = with_run(run, explanation)
    at.switch_page("views/explore.py").run()
    maps = at.dataframe[0].value
    assert list(maps.columns) == [
        "layer",
        "map",
        "trained vs untrained (bits)",
        "control vs untrained (bits)",
        "learned",
        "label",
    ]
    assert set(maps["learned"]) <= {"learned", "not learned"}
    labels = dict(zip(maps["map"], maps["label"], strict=True))
    assert labels["numerical → numerical"] == "uniform"
    assert "numerical → numerical (uniform)" in at.selectbox(key=keys.MAP).options
    at.switch_page("views/export.py").run()  # exports written before the checks ran
    assert not any("Importances" in b.label for b in at.get("download_button"))
    at.switch_page("views/explore.py").run()
    at.button(key=keys.CHECKS).click().run()
    assert not at.exception and not at.error
    tables = [frame.value for frame in at.dataframe]
    agreement = next(t for t in tables if "p method" in t.columns)
    assert list(agreement["model"]) == [
        "trained model",
        "untrained model",
        "control (shuffled labels)",
    ]
    assert set(agreement["p method"]) <= {"exact", "permutation", None}
    assert "exact" in set(agreement["p method"])  # 5 columns: every order enumerated
    ablations = [t for t in tables if "loss_delta" in t.columns and "entropy" not in t.columns]
    assert [len(t) for t in ablations] == [8, 8, 4], "heads zeroed, heads at their mean, maps"
    assert [tab.label for tab in at.tabs] == [
        "Single heads zeroed",
        "Single heads replaced by their mean",
        "Whole maps zeroed",
    ]
    # every importance beside the others, each with what it cannot tell, then their deletion
    # check against random orders
    faithfulness = next(t for t in tables if "beats random" in t.columns)
    assert list(faithfulness["method"])[:4] == [METHOD_TITLES[m] for m in METHODS]
    assert faithfulness["method"].iloc[-1].startswith("20 random orders")
    assert set(faithfulness["beats random"].iloc[:4]) <= {"yes", "no"}
    captions = " ".join(c.value for c in at.caption)
    assert all(METHOD_NOTES[m] in captions for m in METHODS)
    assert "Faithfulness." in " ".join(m.value for m in at.markdown)
    at.switch_page("views/export.py").run()  # and written again once they did
    labels = [b.label for b in at.get("download_button")]
    assert "Importances (.csv)" in labels and "Faithfulness (.csv)" in labels


@pytest.mark.slow
def test_a_run_opened_without_a_control_says_why(planted_run):
    from test_dashboard import open_page, upload_zip

    from mrta.pipelines.archive import zip_run

    run, explanation, _ = planted_run
    at = upload_zip(open_page(new_app()), zip_run(run, include_data=True), "planted.zip")
    assert any(NOT_TRAINED in box.value for box in at.info)
    at.session_state[keys.RUN], at.session_state[keys.EXPLANATION] = run, explanation
    at.switch_page("views/explore.py").run()
    assert NOT_WORTH in banner(at) and NOT_TRAINED in banner(at)
