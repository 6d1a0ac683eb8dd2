"""The Train page and the Data page's roles through Streamlit's AppTest: phases named while a
job runs, results shown only under the table they were trained on, a role edit shown at once."""

from __future__ import annotations

import importlib
import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from mrta.config import ModelConfig, TrainConfig
from mrta.pipelines.explain import RECORDING, VERDICT_LATER
from mrta.pipelines.race import RACING, race_refusal
from mrta.pipelines.train_run import BASELINES, CONTROL, PREPARING, TRAINING
from mrta.training.race import AS_ASKED, CHALLENGER, Race, Racer, challenger
from mrta_dashboard import jobs, keys
from mrta_dashboard.control import SCORING
from mrta_dashboard.parts import race as race_part
from mrta_dashboard.parts.race import RACE
from mrta_dashboard.text import md
from mrta_dashboard.views.train import LATER

APP = str(Path(__file__).resolve().parents[1] / "mrta_dashboard" / "app.py")
TIMEOUT = 120
#: The Train page races by default where the machine can (a CPU of 2 cores or more).
RACES = race_refusal(1, False, TrainConfig()) is None
TRAIN_PHASES = [PREPARING, RACING if RACES else TRAINING, BASELINES, *RECORDING[:2]]


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    return at


def other_table(rows: int = 80) -> bytes:
    """Table B: another binary table, seeded, with columns penguins does not have."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=rows).round(3),
            "x2": rng.normal(size=rows).round(3),
            "shade": rng.choice(["light", "dark"], rows),
        }
    )
    frame["label"] = np.where(frame["x1"] + 0.3 * rng.normal(size=rows) > 0, "up", "down")
    return frame.to_csv(index=False).encode()


def upload_other(at: AppTest) -> AppTest:
    at.switch_page("views/data.py").run()
    at.radio(key=keys.SOURCE).set_value("Upload a CSV").run()
    at.file_uploader(key=keys.UPLOAD).set_value(("other.csv", other_table(), "text/csv")).run()
    loaded = at.session_state[keys.TABLE]
    assert loaded.name == "other.csv"
    at.selectbox(key=keys.target(loaded.source_id)).set_value("label").run()
    assert not at.exception
    return at


def results_shown(at: AppTest) -> bool:
    return any(s.value == "Results on the test split" for s in at.subheader)


def infos(at: AppTest) -> list[str]:
    return [i.value for i in at.info]


class Gate:
    """`train_run` with two epochs at most, held before it returns until released: a job that
    is still running, deterministically."""

    def __init__(self, monkeypatch, held: bool) -> None:
        module = importlib.import_module("mrta.pipelines.train_run")
        real = module.train_run
        self.open = threading.Event()
        if not held:
            self.open.set()

        def quick(*args, train_config, **kwargs):
            run = real(*args, train_config=replace(train_config, max_epochs=2), **kwargs)
            assert self.open.wait(TIMEOUT), "the test never released the gate"
            return run

        monkeypatch.setattr(module, "train_run", quick)


def press_train(at: AppTest) -> jobs.Job:
    at.switch_page("views/train.py").run()
    at.button[0].click().run()
    job = at.session_state[keys.TRAIN_JOB]
    assert isinstance(job, jobs.Job)
    return job


def wait(job: jobs.Job) -> None:
    deadline = time.monotonic() + TIMEOUT
    while job.running:
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.2)
    assert job.error is None, job.error


def stop_control(at: AppTest) -> None:
    if keys.CONTROL_JOB in at.session_state:
        job = at.session_state[keys.CONTROL_JOB]
        job.cancel.set()
        job.thread.join(TIMEOUT)


# -- phases ---------------------------------------------------------------------------------------
def test_a_running_job_names_its_phase_with_its_own_progress_and_every_step():
    """A job held in its third phase: the bar names that phase and counts its own progress, the
    line below lists the phases done (with seconds), the one under way and those to come."""
    release = threading.Event()
    job = jobs.start("penguins.csv → species", lambda job: release.wait(TIMEOUT), plan=TRAIN_PHASES)
    try:
        job.begin(PREPARING)
        job.begin(TRAINING)
        job.detail, job.fraction = "epoch 3, step 120", 1.0
        job.begin(BASELINES)
        at = new_app()
        at.session_state[keys.TRAIN_JOB] = job
        at.switch_page("views/train.py").run()
        assert not at.exception
        (bar,) = at.get("progress")
        assert bar.text.startswith(BASELINES) and bar.value == 0  # its own progress, from zero
        steps = next(c.value for c in at.caption if "▶" in c.value)
        assert steps.index(PREPARING) < steps.index(TRAINING) < steps.index(BASELINES)
        assert f"✓ {TRAINING} " in steps and f"▶ **{BASELINES}**" in steps
        for later in RECORDING[:2]:
            assert later in steps and f"✓ {later}" not in steps
        job.recording("rows")(2_500, 10_000, RECORDING[0])  # the recording names its phase
        at.run()
        (bar,) = at.get("progress")
        assert bar.text.startswith(f"{RECORDING[0]}: 2,500 of 10,000 rows") and bar.value == 25
        assert any(f"✓ {BASELINES} " in c.value for c in at.caption)
    finally:
        release.set()
        job.thread.join(TIMEOUT)


def test_the_live_loss_charts_have_titles_and_axis_labels():
    release = threading.Event()
    job = jobs.start("t → y", lambda job: release.wait(TIMEOUT), plan=TRAIN_PHASES)
    try:
        job.begin(TRAINING)
        job.steps.extend([(1, 0.9), (2, 0.8)])
        job.epochs.append({"epoch": 1, "train_loss": 0.85, "validation_loss": 0.8})
        at = new_app()
        at.session_state[keys.TRAIN_JOB] = job
        at.switch_page("views/train.py").run()
        titles = [m.value for m in at.markdown]
        assert any("Training loss per step" in t for t in titles)
        assert any("Loss per epoch" in t for t in titles)
        specs = [json.loads(c.proto.spec) for c in at.get("vega_lite_chart")]
        assert len(specs) == 2
        axes = [
            (layer["encoding"]["x"]["title"], layer["encoding"]["y"]["title"])
            for spec in specs
            for layer in spec["layer"][:1]
        ]
        assert axes == [("optimiser step", "loss"), ("epoch", "loss")]
    finally:
        release.set()
        job.thread.join(TIMEOUT)


@pytest.mark.slow
def test_training_and_its_control_go_through_every_named_phase_in_order(monkeypatch):
    Gate(monkeypatch, held=False)
    at = new_app()
    job = press_train(at)
    wait(job)
    assert [name for name, _ in job.phases] == TRAIN_PHASES
    assert all(seconds >= 0 for seconds in job.seconds().values())
    at.run()
    # the first heatmap did not wait for the verdict: the control job scores it first
    assert at.session_state[keys.EXPLANATION].verdict_note == VERDICT_LATER
    control = at.session_state[keys.CONTROL_JOB]
    assert control.plan == (SCORING, CONTROL, RECORDING[2])
    deadline = time.monotonic() + TIMEOUT
    while control.partial is None:
        assert time.monotonic() < deadline and control.error is None, "no verdict was scored"
        time.sleep(0.2)
    at.run()  # handed over while the control trains, with the test predictions it was scored on
    explanation = at.session_state[keys.EXPLANATION]
    assert explanation.verdict_note != VERDICT_LATER
    assert explanation.verdict is not None or explanation.verdict_note
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert "ROC curve (test split)" in titles
    assert not any(c.value == LATER[0] for c in at.caption)
    stop_control(at)


@pytest.mark.slow
@pytest.mark.skipif(not RACES, reason="a race needs a CPU of 2 cores or more")
def test_the_race_is_on_by_default_says_what_it_kept_and_can_be_turned_off(monkeypatch):
    Gate(monkeypatch, held=False)
    at = new_app()
    wait(press_train(at))
    at.run()
    stop_control(at)
    run = at.session_state[keys.RUN]
    assert run.race is not None and run.train_config == run.race.winner.train_config
    assert any(c.value.startswith("Two settings raced") for c in at.caption)
    at.checkbox(key=RACE).uncheck().run()
    job = press_train(at)
    wait(job)
    assert [name for name, _ in job.phases][:2] == [PREPARING, TRAINING]
    at.run()
    stop_control(at)
    assert at.session_state[keys.RUN].race is None
    assert not any(c.value.startswith("Two settings raced") for c in at.caption)


@pytest.mark.parametrize("kept", [0, 1])
def test_the_race_caption_names_the_kept_settings_layers_included(monkeypatch, kept):
    model, train = ModelConfig(), TrainConfig()
    racers = tuple(
        Racer(name, m, t, score, 0.3, 100, 2, 29.5, "time_budget")
        for name, (m, t), score in zip(
            (AS_ASKED, CHALLENGER),
            [(model, train), challenger(model, train)],
            (0.97, 0.98),
            strict=True,
        )
    )
    race = Race("r2", racers, kept=kept, lead_low=0.004 if kept else -0.002)
    captions: list[str] = []
    monkeypatch.setattr(race_part.st, "caption", captions.append)
    race_part.summary(SimpleNamespace(race=race))
    (caption,) = captions
    assert caption.startswith(race.sentence())
    if kept:
        assert "the challenger's: 1 attention layer, plr σ 1, dropout 0, gate penalty 0" in caption
        assert f"learning rate {2 * train.learning_rate:g}" in caption
    else:
        assert caption.endswith("its settings are the ones asked for.")


@pytest.mark.slow
def test_a_gate_price_trains_column_gates_and_the_results_say_which_closed(monkeypatch):
    Gate(monkeypatch, held=False)
    at = new_app()
    at.switch_page("views/train.py").run()
    if RACES:  # the challenger trains without gates: keep the settings asked for
        at.checkbox(key=RACE).uncheck().run()
    price = next(n for n in at.number_input if n.label == "Column gate price")
    assert price.value == ModelConfig().gate_penalty == 0.003  # on by default
    price.set_value(0.05)
    at.button[0].click().run()  # the form's submit, on this page: the price goes with it
    wait(at.session_state[keys.TRAIN_JOB])
    at.run()
    stop_control(at)
    run = at.session_state[keys.RUN]
    assert run.model_config.gate_penalty == 0.05 and run.race is None
    assert set(run.model.column_gates()) == {
        *run.model.numerical_tokens,
        *run.model.categorical_tokens,
    }
    expected = md("Column gates (a price of 0.05 per open column")
    assert any(c.value.startswith(expected) for c in at.caption)
    at.switch_page("views/explore.py").run()  # above the maps too
    assert not at.exception and any(c.value.startswith(expected) for c in at.caption)


# -- results belong to their table ----------------------------------------------------------------
@pytest.mark.slow
def test_results_of_table_a_are_not_shown_under_table_b(monkeypatch):
    Gate(monkeypatch, held=False)
    at = new_app()
    wait(press_train(at))
    at.run()
    stop_control(at)
    assert results_shown(at)
    upload_other(at)
    at.switch_page("views/train.py").run()
    assert not at.exception
    assert not results_shown(at)
    assert any("was not trained on this table" in i for i in infos(at))
    at.switch_page("views/data.py").run()  # back to penguins: the same table, its results again
    at.radio(key=keys.SOURCE).set_value("A sample table").run()
    at.switch_page("views/train.py").run()
    assert at.session_state[keys.TABLE].name == "penguins.csv"
    assert results_shown(at)


@pytest.mark.slow
def test_a_job_that_finishes_after_another_table_was_loaded_is_not_shown_under_it(monkeypatch):
    gate = Gate(monkeypatch, held=True)
    at = new_app()
    job = press_train(at)
    upload_other(at)  # while penguins trains
    at.switch_page("views/train.py").run()
    assert job.running
    assert any("began on another table" in i for i in infos(at))
    gate.open.set()
    wait(job)
    at.run()
    stop_control(at)
    assert not at.exception
    assert not results_shown(at)
    assert any("was not trained on this table" in i for i in infos(at))
    assert at.session_state[keys.TABLE].name == "other.csv"
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert "penguins.csv" in sidebar  # the run names the table it was trained on


# -- the Data page's roles -------------------------------------------------------------------------
def roles_key(at: AppTest) -> str:
    loaded = at.session_state[keys.TABLE]
    return keys.roles(loaded.source_id, loaded.target, loaded.task, loaded.group_by)


def banners(at: AppTest) -> list[str]:
    return [b.value for kind in (at.info, at.warning, at.error, at.success) for b in kind]


def test_a_role_edit_updates_its_why_and_the_warnings_in_the_same_run():
    at = new_app()
    editor = at.dataframe[1].value
    island = list(editor["column"]).index("island")
    assert not any("Not used by the model" in b for b in banners(at))
    at.session_state[roles_key(at)] = {
        "edited_rows": {island: {"role": "ignored"}},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    assert not at.exception
    editor = at.dataframe[1].value
    why = dict(zip(editor["column"], editor["why"], strict=True))
    role = dict(zip(editor["column"], editor["role"], strict=True))
    assert role["island"] == "ignored" and why["island"].startswith("ignored, as you chose")
    assert why["sex"] == "text with 2 distinct values: categories"  # the others as inferred
    assert any("Not used by the model: island" in b for b in banners(at))
    assert "island" not in at.session_state[keys.SCHEMA][1].categorical_columns
    assert "4 numerical tokens and 2 categorical tokens" in at.success[0].value
    # and back: the why and the warning follow
    at.session_state[roles_key(at)] = {
        "edited_rows": {island: {"role": "categorical"}},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    editor = at.dataframe[1].value
    why = dict(zip(editor["column"], editor["why"], strict=True))
    assert why["island"] == "text with 3 distinct values: categories"
    assert not any("Not used by the model" in b for b in banners(at))


def test_each_message_is_one_banner_and_counts_read_right():
    rows = 40
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "id": [f"row {k}" for k in range(rows)],  # unique text: ignored
            "when": pd.date_range("2024-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
            "x": rng.normal(size=rows).round(3),
            "c": rng.choice(["a", "b"], rows),
            "y": rng.choice(["p", "q"], rows),
        }
    )
    frame.loc[3, "x"] = np.nan  # one feature column with a missing value
    at = new_app()
    at.radio(key=keys.SOURCE).set_value("Upload a CSV").run()
    at.file_uploader(key=keys.UPLOAD).set_value(
        ("dated.csv", frame.to_csv(index=False).encode(), "text/csv")
    ).run()
    loaded = at.session_state[keys.TABLE]
    at.selectbox(key=keys.target(loaded.source_id)).set_value("y").run()
    assert not at.exception
    shown = banners(at)
    assert len(shown) == len(set(shown)), shown
    assert sum("Not used by the model" in b or "Ignored column" in b for b in shown) == 1
    assert sum("when" in b and "date" in b for b in shown) == 1
    assert any(b.startswith("1 feature column has missing values") for b in shown), shown
    assert not any("1 rows" in c.value or "1 columns" in c.value for c in at.caption)
