"""The control model of a run trained in this page: the same model trained on shuffled labels,
in the background after the model, so that it never delays the first heatmap.

The Train page trains the model alone (``control=False``) and records its explanation; once
that run is the session's, :func:`follow` starts a second job, "training the control model"
(:func:`mrta.pipelines.train_run.train_control`), which then records the control's maps
(:func:`mrta.pipelines.explain.attach_control`) on copies, never on what the pages are showing.
When it lands, the run gets its control and the session's explanation its control maps, map
divergences and verdict; until then :func:`pending` is true and the views say "control pending".
"""

from __future__ import annotations

import copy
import importlib

import streamlit as st

from mrta.pipelines.explain import attach_control
from mrta.pipelines.explore import Explanation
from mrta.pipelines.train_run import with_control
from mrta_dashboard import jobs, keys, session

TITLE = "training the control model"
FAILED = (
    "The control model failed to train ({error}), so this run's attention cannot be compared "
    "with a model trained on shuffled labels."
)
#: What the control brings up to date in an explanation when it lands.
LANDED = ("control", "divergence", "verdict", "verdict_note")


def pending(run) -> bool:
    """Whether the control of `run` is still training (or has not been adopted yet)."""
    return (
        run is not None
        and session.get(keys.CONTROL_JOB) is not None
        and session.get(keys.CONTROL_FOR) == run.uid
    )


def follow() -> None:
    """On every page: adopt a control that landed; stop one whose run was replaced; start the
    control of a run just trained here (once per run)."""
    _adopt()
    run, job = session.get(keys.RUN), session.get(keys.CONTROL_JOB)
    if job is not None and (run is None or session.get(keys.CONTROL_FOR) != run.uid):
        job.cancel.set()  # another run replaced it: its control is of no use
        st.session_state.pop(keys.CONTROL_JOB)
    if run is None or run.control is not None or session.get(keys.CONTROL_FOR) == run.uid:
        return
    training = session.get(keys.TRAIN_JOB)
    if training is None or training.result is None or training.result[0] is not run:
        return  # an opened run: it has the control it was saved with, or says why not
    _start(run, session.get(keys.EXPLANATION))


def stop() -> None:
    """Stop the control being trained (a new model is about to train)."""
    job = session.get(keys.CONTROL_JOB)
    if job is not None:
        job.cancel.set()


def _start(run, explanation) -> None:
    st.session_state[keys.CONTROL_FOR] = run.uid
    # looked up when the job runs, so that tests can replace it
    training = importlib.import_module("mrta.pipelines.train_run")
    unit = "rows" if run.sets is None else "sets"
    # The verdict is scored with a copy of the model, made here: the checks hook into the model.
    model = copy.deepcopy(run.model)

    def work(job: jobs.Job):
        control = training.train_control(run, callback=job.on_progress, cancel=job.cancel)
        if control is None or not isinstance(explanation, Explanation):
            return None if control is None else (control, None)
        # The pages keep using the run and its explanation meanwhile: the control is recorded
        # on copies of them.
        shadow = copy.copy(run)
        shadow.model, shadow.control = model, control
        recording = job.recording(unit, cancellable=True)
        return control, attach_control(shadow, copy.copy(explanation), progress=recording)

    st.session_state[keys.CONTROL_JOB] = jobs.start(TITLE, work)


def _adopt() -> None:
    """A finished control job: the run gets its control (or says why it has none), and the
    session's explanation the control's maps, divergences and verdict."""
    job = session.get(keys.CONTROL_JOB)
    if job is None or job.running:
        return
    st.session_state.pop(keys.CONTROL_JOB)
    run = session.get(keys.RUN)
    if run is None or run.uid != session.get(keys.CONTROL_FOR):
        return
    if job.error is not None:
        run.no_control = FAILED.format(error=job.error)
        return
    control, landed = job.result or (None, None)
    with_control(run, control)  # None: the run says its control was cancelled
    explanation = session.get(keys.EXPLANATION)
    if landed is not None and isinstance(explanation, Explanation):
        merged = copy.copy(explanation)  # a new object: the exports made before are redone
        for name in LANDED:
            setattr(merged, name, getattr(landed, name))
        st.session_state[keys.EXPLANATION] = merged


def watch() -> None:
    """The control job's progress bar and its stop button (call only while it is pending)."""
    jobs.watch(
        keys.CONTROL_JOB,
        ("Stop the control model", keys.CONTROL_CANCEL),
        "Stopping the control model: the run will have none.",
    )
