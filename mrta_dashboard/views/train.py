"""Train page: settings in a form, training in the background with live progress, results."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import streamlit as st

from mrta.config import ModelConfig
from mrta.data.sets import targets_of_groups
from mrta.errors import RunError, counted
from mrta.pipelines.explain import RECORDING, explain
from mrta.pipelines.explore import explain_run
from mrta.pipelines.race import RACING
from mrta.pipelines.train_run import (
    BASELINES,
    PREPARING,
    default_train_config,
    threads_of,
    train_run,
)
from mrta.report import figures
from mrta.task import Task
from mrta.training.devices import available_devices
from mrta.training.loop import BATCH_SIZE, LARGE_TABLE_BATCH, LARGE_TABLE_ROWS
from mrta_dashboard import control, jobs, keys, session
from mrta_dashboard.parts import gates, race, seeds, verdict
from mrta_dashboard.text import md

HEADS, WIDTHS, BATCHES = [1, 2, 4, 8], [16, 32, 64, 128], [None, 16, 32, 64, 128, 256, 512]
PRESETS = {  # name -> (model, training) overrides of the library defaults
    "quick": ({}, {"time_budget": 30.0}),
    "thorough": ({"num_layers": 3}, {"time_budget": 180.0, "patience": 25}),
}


def page() -> None:
    st.header("Train")
    loaded, schema = session.table(), session.schema()
    problem = session.get(keys.DATA_PROBLEM)
    if schema is None and problem is not None and problem[0] == loaded.source_id:
        reason = problem[1].rstrip(".")
        st.error(f"Not ready to train: {md(reason)}. Change the choices on the Data page.")
        return
    if schema is None:
        st.info("Choose a target on the Data page first.")
        return
    sets = loaded.set_options()
    per = f" per group of **{md(sets.group_by)}** (one prediction per group)" if sets else ""
    st.caption(
        f"{md(loaded.name)}: predict **{md(schema.target)}** ({schema.task.value}){per} from "
        f"{counted(len(schema.numerical_columns), 'numerical column')} and "
        f"{counted(len(schema.categorical_columns), 'categorical column')}."
    )
    job = session.get(keys.TRAIN_JOB)
    if job is not None and job.running:
        if job.owner != loaded.source_id:
            st.info(
                f"This training began on another table ({md(job.title)}): its results will "
                "not be shown under this one. Cancel it to train on this table."
            )
        cancel = ("Cancel training", keys.TRAIN_CANCEL)
        stopping = "Stopping after this step; the best weights so far are kept."
        jobs.watch(keys.TRAIN_JOB, cancel, stopping, _curves)
        return
    session.adopt_finished_job()
    control.follow()  # a run adopted just now gets its control started
    _settings_form(loaded)
    if job is not None and job.error and job.owner == loaded.source_id:
        st.error(f"Training failed: {md(job.error)}. The settings are kept; adjust them and retry.")
    run = session.get(keys.RUN)
    if run is not None and session.of_table(run, loaded):
        _results(run)
    elif run is not None:
        st.info(
            f"The session's run ({session.run_name(run)}) was not trained on this table, so its "
            "results are not shown here. The Explore and Export pages still show it, on its "
            "own rows; train here to replace it with a run on this table."
        )


def _settings_form(loaded: session.LoadedTable) -> None:
    preset = st.radio("Preset", list(PRESETS), horizontal=True, key=keys.PRESET)
    model_over, train_over = PRESETS[preset]
    sets = loaded.set_options()
    m = ModelConfig(**model_over)
    t = dataclasses.replace(default_train_config(sets), **train_over)
    last = session.get(keys.LAST_SETTINGS)  # the last run's settings, of this preset and mode
    if last is not None and last[0] == (preset, sets is None):
        m, t = last[1], last[2]
    members = seeds.choice(session.get(keys.budget(preset), t.time_budget), sets is not None)
    racing = race.choice(members, sets is not None)
    with st.form(keys.TRAIN_FORM):
        c1, c2, c3, c4 = st.columns(4)
        layers = c1.number_input("Layers", 1, 8, m.num_layers, key=keys.layers(preset))
        heads = c2.selectbox("Heads", HEADS, index=HEADS.index(m.num_heads))
        d_model = c3.selectbox("d_model", WIDTHS, index=WIDTHS.index(m.d_model))
        dropout = c4.number_input("Dropout", 0.0, 0.9, m.dropout, step=0.05)
        c1, c2, c3, c4 = st.columns(4)
        budget = c1.number_input(
            "Time budget (s)", 5.0, 3600.0, t.time_budget, step=5.0, key=keys.budget(preset)
        )
        lr = c2.number_input("Learning rate", 1e-5, 1e-1, t.learning_rate, format="%.5f")
        batch = c3.selectbox(
            "Batch size (sets)" if sets is not None else "Batch size",
            BATCHES,
            index=BATCHES.index(t.batch_size),
            format_func=lambda size: "by the rows" if size is None else str(size),
            help="examples per training step: groups of rows in group mode, else rows. By the "
            f"rows: {BATCH_SIZE}, or {LARGE_TABLE_BATCH} from {LARGE_TABLE_ROWS:,} training rows "
            "(more steps in the budget), the learning rate scaled by the square root of the "
            f"batch over {BATCH_SIZE}",
        )
        seed = c4.number_input("Seed", 0, 2**31 - 1, t.seed)
        devices = available_devices()
        c1, c2 = st.columns(2)
        gate = c2.number_input("Column gate price", 0.0, 1.0, m.gate_penalty, 0.001, "%.3f",
                               help="rows only; 0: no gates, the safer choice for budgets "
                               "under 30 s (README: column gates)")  # fmt: skip
        device = c1.selectbox(
            "Device",
            devices,
            index=devices.index(t.device) if t.device in devices else 0,
            help="auto: CUDA, then MPS, then CPU",
        )
        submitted = st.form_submit_button("Train", type="primary")
    if not submitted:
        return
    try:
        model_config = ModelConfig(
            num_layers=int(layers), num_heads=heads, d_model=d_model, dropout=float(dropout),
            gate_penalty=float(gate),
        )  # fmt: skip
        train_config = dataclasses.replace(
            t,
            time_budget=float(budget),
            learning_rate=float(lr),
            batch_size=batch,
            seed=int(seed),
            device=device,
        )
    except ValueError as error:
        st.error(md(error))
        return
    racing = race.runs(racing, members, sets is not None, train_config)
    st.session_state[keys.LAST_SETTINGS] = ((preset, sets is None), model_config, train_config)
    control.stop()  # the control of the run this one replaces
    frame, target, task, roles = loaded.frame, loaded.target, loaded.task, dict(loaded.roles)
    sets = loaded.set_options()

    recorded = RECORDING[:2] if sets is None else RECORDING[:1]  # a set run: one pass
    training = (RACING,) if racing else seeds.training_phases(members, train_config)

    def work(job: jobs.Job):
        run = train_run(
            frame,
            target,
            model_config=model_config,
            train_config=train_config,
            task=None if task == "auto" else task,
            roles=roles,
            callback=job.on_progress,
            cancel=job.cancel,
            sets=sets,
            control=False,  # trained after, in the background: the first heatmap comes first
            phase=seeds.phases_of(job, members, train_config),
            seeds=members,
            race=racing,
        )
        unit = "rows" if sets is None else "sets"
        recording = job.recording(unit, phase=None if sets is None else recorded[0])
        with threads_of(run.training):
            if sets is not None:
                return run, explain_run(run, progress=recording)
            # the verdict is scored after, in the background: the first heatmap comes first
            return run, explain(run, progress=recording, verdict=False)

    st.session_state[keys.TRAIN_JOB] = jobs.start(
        f"{loaded.name} → {target}",
        work,
        owner=loaded.source_id,
        plan=(PREPARING, *training, BASELINES, *recorded),
    )
    st.rerun()


def _curves(job: jobs.Job) -> None:
    """The running job's loss curves: per step, and per epoch on the validation split too."""
    if job.steps:
        st.markdown("**Training loss per step** (the batch's loss)")
        steps = pd.DataFrame(job.steps, columns=["step", "training loss"]).set_index("step")
        st.line_chart(steps, height=220, x_label="optimiser step", y_label="loss")
    if job.epochs:
        st.markdown("**Loss per epoch**: training (mean of the epoch) and validation split")
        epochs = pd.DataFrame(job.epochs).set_index("epoch")
        epochs = epochs[["train_loss", "validation_loss"]].rename(
            columns={"train_loss": "training", "validation_loss": "validation"}
        )
        st.line_chart(epochs, height=220, x_label="epoch", y_label="loss")


def _results(run) -> None:
    training = run.training
    st.subheader("Results on the test split")
    st.caption(f"The run {session.run_name(run)}.")
    verdict.banner(run, session.get(keys.EXPLANATION))
    st.caption(
        f"{counted(training.steps, 'step')}, {counted(training.epochs, 'epoch')} in "
        f"{training.elapsed:.1f} s on "
        f"{training.device}; stopped: {training.message}"
    )
    if not control.pending(run):
        st.caption(run.control_status())
    task = run.schema.task.value
    shown = (
        ["roc_auc", "accuracy", "log_loss"] if task != Task.REGRESSION else ["r2", "rmse", "mae"]
    )
    names = {"model": "attention model", "hgb": "gradient boosting", "trivial": "trivial"}
    if run.sets is not None:
        names["hgb"] = "gradient boosting on per-group aggregates"
        st.caption(
            f"One prediction per group of **{md(run.sets.group_by)}**: the test split holds "
            f"{counted(run.metrics['model'].get('rows', 0), 'group')}. Gradient boosting sees each "
            "group as one row of aggregates (its size, each number's mean, min, max and "
            "spread, each category's shares)."
        )
        for note in run.splits.notes:
            st.caption(md(note))
    table = pd.DataFrame({names[k]: {m: run.metrics[k].get(m) for m in shown} for k in names}).T
    st.dataframe(table.style.format(precision=4, na_rep="—"))
    seeds.members_caption(run)
    race.summary(run)
    gates.caption(run)
    verdict.baselines(run)
    left, right = st.columns(2)
    left.plotly_chart(figures.training_curves(run.history), key=keys.TRAIN_CURVES)
    try:
        test = _test_values(run)
    except RunError as error:  # an opened run without the rows it was tested on
        right.info(md(error))
        return
    if task != Task.REGRESSION:
        matrix = run.metrics["model"]["confusion_matrix"]
        right.plotly_chart(
            figures.confusion_figure(matrix["matrix"], matrix["labels"]), key=keys.TRAIN_CONFUSION
        )
    if test is None:
        (right if task == Task.REGRESSION else st).caption(LATER[task == Task.REGRESSION])
        return
    values, y = test
    if task == Task.REGRESSION:
        right.plotly_chart(
            figures.prediction_scatter(y, values, run.schema.target), key=keys.TRAIN_PREDICTED
        )
        return
    st.plotly_chart(figures.roc_figure(y, values, run.class_labels), key=keys.TRAIN_ROC)


#: What the page says while the control job scores the test predictions (classification,
#: regression), shown once they are in.
LATER = tuple(
    f"The {figure} is drawn once the model's predictions on the test split are in: they are "
    "scored in the background with the verdict (a few seconds)."
    for figure in ("ROC curve", "scatter of predicted against true values")
)


def _test_values(run) -> tuple[np.ndarray, np.ndarray] | None:
    """The model's predictions on the test split (probabilities ``(N, C)``, or values
    ``(N,)``) and the true targets, one per row or, for a set run, per group with a target;
    ``None`` while the control job scores them (the page reruns when they are in). Raises
    ``RunError`` when the run holds no rows."""
    handed = control.test_predictions(run)
    if handed is not None:
        targets, predictions, _ = handed
        return predictions, targets
    if control.scoring(run):
        return None
    test = run.rows("test")
    return session.run_cache(keys.TRAIN_TEST, run, "test", lambda: _test_predictions(run, test))


def _test_predictions(run, test: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The model's predictions on the test rows (as :func:`_test_values`) and the true values
    (class indices or numbers): one per row, or for a set run one per group with a target."""
    with threads_of(run.training):
        predicted = run.predict_frame(test)
    columns = "prediction" if run.schema.task == Task.REGRESSION else list(run.class_labels)
    if run.sets is None:
        return predicted[columns].to_numpy(), run.schema.encode_target(test)
    group_by = run.sets.group_by
    kept, y = targets_of_groups(test, run.schema, group_by, predicted[group_by].tolist())
    return predicted[kept][columns].to_numpy(), y


if __name__ == "__main__":
    page()
