"""The control model of a run trained in this page: the same model trained on shuffled labels,
in the background after the model, so that it never delays the first heatmap.

The Train page trains the model alone (``control=False``) and records its explanation without
the verdict; once that run is the session's, :func:`follow` starts a second job, which first
scores the verdict against chance (handed over at once: :func:`_verdict_so_far`), then trains
the control model (:func:`mrta.pipelines.train_run.train_control`) and records its maps
(:func:`mrta.pipelines.explain.attach_control`) on copies, never on what the pages are showing.
When it lands, the run gets its control and the session's explanation its control maps, map
divergences and verdict; until then :func:`pending` is true and the views say "control pending".
"""

from __future__ import annotations

import copy
import importlib

import streamlit as st

from mrta.errors import RunError
from mrta.pipelines.explain import RECORDING, VERDICT_LATER, attach_control, run_verdict
from mrta.pipelines.explore import Explanation
from mrta.pipelines.train_run import CONTROL, threads_of, with_control
from mrta_dashboard import jobs, keys, session

TITLE = "training the control model"
SCORING = "scoring the verdict against chance"  # the first phase, where the verdict waits
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
    """On every page: take the verdict scored so far; adopt a control that landed; stop one
    whose run was replaced; start the control of a run just trained here (once per run)."""
    _verdict_so_far()
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
    # an explanation made without its verdict (the first heatmap did not wait for it)
    later = isinstance(explanation, Explanation) and explanation.verdict_note == VERDICT_LATER

    def work(job: jobs.Job):
        if later:  # first the verdict against chance, handed over at once
            job.begin(SCORING)
            scored = copy.copy(run)
            scored.model = model
            with training.threads_of(run.training):
                try:  # one pass over the test split: the verdict's and the Train page's
                    predictions = scored.split_predictions("test")
                except (RunError, ValueError):  # the verdict says why
                    predictions = None
                job.partial = (run_verdict(scored, predictions=predictions), predictions)
        job.begin(CONTROL)
        control = training.train_control(run, callback=job.on_progress, cancel=job.cancel)
        if control is None or not isinstance(explanation, Explanation):
            return None if control is None else (control, None)
        # The pages keep using the run and its explanation meanwhile: the control is recorded
        # on copies of them.
        shadow = copy.copy(run)
        shadow.model, shadow.control = model, control
        recording = job.recording(unit, cancellable=True, phase=RECORDING[2])
        with training.threads_of(run.training):
            return control, attach_control(shadow, copy.copy(explanation), progress=recording)

    plan = ((SCORING,) if later else ()) + (CONTROL, RECORDING[2])
    st.session_state[keys.CONTROL_JOB] = jobs.start(TITLE, work, plan=plan)


def scoring(run) -> bool:
    """Whether the control job of `run` is still scoring its verdict, and with it the model's
    predictions on the test split (which :func:`test_predictions` then holds)."""
    job = session.get(keys.CONTROL_JOB)
    return pending(run) and job.plan[:1] == (SCORING,) and job.partial is None


def test_predictions(run):
    """The model's predictions on the test split and the true targets, as
    ``run.split_predictions`` gives them, where the control job scored them; else ``None``."""
    return session.run_cached(keys.TRAIN_TEST, run, "split")


def _verdict_so_far() -> None:
    """The verdict the control job scored first (against chance; see :func:`_start`) into the
    session's explanation, and the test predictions it was scored on, once, while the control
    trains."""
    job, run = session.get(keys.CONTROL_JOB), session.get(keys.RUN)
    if job is None or job.partial is None or run is None:
        return
    if run.uid == session.get(keys.CONTROL_FOR):
        judged, predictions = job.partial
        _set_verdict(*judged)
        if predictions is not None:
            session.run_cache(keys.TRAIN_TEST, run, "split", lambda: predictions)


def _handed_over() -> bool:
    """Whether the control job has handed over a verdict the session has not taken yet."""
    job, explanation = session.get(keys.CONTROL_JOB), session.get(keys.EXPLANATION)
    return (
        job is not None
        and job.partial is not None
        and isinstance(explanation, Explanation)
        and explanation.verdict_note == VERDICT_LATER
    )


def _set_verdict(verdict, note) -> None:
    """The session's explanation with this verdict, where it still waits for one."""
    explanation = session.get(keys.EXPLANATION)
    if isinstance(explanation, Explanation) and explanation.verdict_note == VERDICT_LATER:
        merged = copy.copy(explanation)  # a new object: the exports made before are redone
        merged.verdict, merged.verdict_note = verdict, note
        st.session_state[keys.EXPLANATION] = merged


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
    else:
        control, landed = job.result or (None, None)
        with_control(run, control)  # None: the run says its control was cancelled
        explanation = session.get(keys.EXPLANATION)
        if landed is not None and isinstance(explanation, Explanation):
            merged = copy.copy(explanation)  # a new object: the exports made before are redone
            for name in LANDED:
                setattr(merged, name, getattr(landed, name))
            st.session_state[keys.EXPLANATION] = merged
    explanation = session.get(keys.EXPLANATION)
    if isinstance(explanation, Explanation) and explanation.verdict_note == VERDICT_LATER:
        with threads_of(run.training):  # the job ended before it scored it
            _set_verdict(*run_verdict(run))


def watch() -> None:
    """The control job's progress bar and its stop button (call only while it is pending)."""
    jobs.watch(
        keys.CONTROL_JOB,
        ("Stop the control model", keys.CONTROL_CANCEL),
        "Stopping the control model: the run will have none.",
        rerun_when=_handed_over,  # the page shows the verdict so far at once
    )
