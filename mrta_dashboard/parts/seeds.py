"""Seed members (``train_run(..., seeds=N)``): the Train page's stability choice with the total
time it takes, and the Explore page's member picker, whose member's maps are recorded in the
background (:func:`background`, shared with :mod:`mrta_dashboard.parts.stability`) and kept for
the session, per run and member.

The background work never touches the models the pages show (the checks hook into those):
it works on :func:`detached` copies, as the control job does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import streamlit as st

from mrta.config import TrainConfig
from mrta.pipelines.explain import explain
from mrta.pipelines.train_run import threads_of
from mrta.pipelines.train_run import training_phases as phases_of_run
from mrta.report.run_report import MEASURE_LABELS
from mrta.runs.control import METRIC_OF_TASK
from mrta.runs.manifest import MAX_SEEDS
from mrta.training.parallel import in_processes
from mrta_dashboard import control, jobs, session
from mrta_dashboard.keys import KeyFamily
from mrta_dashboard.text import md

# -- the keys of this part (the session's and the widgets') ---------------------------------------
SEEDS = "t_seeds"  # Train page: how many seed members to train
member_picker = KeyFamily("x_member")  # (run uid): the member whose maps Explore shows
MEMBER_VIEWS = "x_member_views"  # {(run uid, member): that member's Explanation}
MEMBER_JOB = "x_member_job"  # the Job recording a member's attention
MEMBER_CANCEL, MEMBER_RETRY = "x_member_cancel", "x_member_retry"


# -- the Train page -------------------------------------------------------------------------------
def choice(budget: float, sets: bool) -> int:
    """The stability choice: how many seed members to train (1: one model, stability off), and
    under it the total time that takes at the time budget `budget` (seconds). A run on sets
    (`sets`) trains one model."""
    n = st.number_input(
        "Stability: seed members",
        1,
        MAX_SEEDS,
        1,
        key=SEEDS,
        disabled=sets,
        help="The same model trained from this many initial seeds on the same split, to see "
        "which of its maps and importances survive another seed (1: one model, off).",
    )
    if sets:
        st.caption("A run on sets trains one model: seed members are for runs on rows.")
        return 1
    st.caption(total_time(int(n), budget))
    return int(n)


def _seconds(seconds: float) -> str:
    return f"{seconds:g} s" + (f" (about {seconds / 60:.0f} min)" if seconds >= 120 else "")


def total_time(n: int, budget: float) -> str:
    """What training `n` seed members takes at a time budget of `budget` seconds, in words."""
    if n == 1:
        return (
            f"One model (stability off): training takes up to the time budget ({budget:g} s), "
            "then the control model about as long again, in the background."
        )
    return (
        f"{n} seed members: training takes {n} × the time budget ({n} × {budget:g} s = "
        f"{_seconds(n * budget)}; on a CPU of 2 cores or more the members train at once, a "
        f"process each, for all of it, else one after another), then the control model in the "
        "background, for as many steps as member 0 took: about one budget where the members "
        f"trained one after another, up to about {n} budgets where they trained at once (each "
        "member stepped on one core; the control alone steps at least as fast). About "
        f"{_seconds((n + 1) * budget)} to {_seconds(2 * n * budget)} in all, before recording. "
        "Predictions, metrics and the verdict are for the members' mean; Explore shows each "
        "member's maps and what survives another seed."
    )


def training_phases(n: int, config: TrainConfig) -> tuple[str, ...]:
    """The training phases of a run of `n` seed members of `config`, as :func:`train_run`
    names them (one, where they train at once)."""
    return phases_of_run(n, parallel=in_processes(n, config))


def phases_of(job: jobs.Job, n: int, config: TrainConfig) -> Callable[[str], None]:
    """`job`'s phase callback for :func:`train_run` of `n` seed members of `config`: the live
    loss curves start again with each member's training (one after another)."""
    members = set(training_phases(n, config)) if n > 1 else set()

    def begin(name: str) -> None:
        if name in members:
            job.steps.clear()
            job.epochs.clear()
        job.begin(name)

    return begin


def members_caption(run) -> None:
    """Under a seeded run's metrics: they are the members' mean's; each member's own."""
    if run.seeds < 2:
        return
    metric = METRIC_OF_TASK[run.schema.task.value]
    own = ", ".join(
        f"member {k} {m.metrics.get('model', {}).get(metric, float('nan')):.3f}"
        for k, m in enumerate(run.members)
    )
    st.caption(
        f"The attention model is the mean of {run.seeds} seed members (initial seeds "
        f"{', '.join(str(m.init_seed) for m in run.members)}); the verdict is for that mean. "
        f"Each member's own test {MEASURE_LABELS.get(metric, metric)}: {own}."
    )


# -- the Explore page: the member picker ----------------------------------------------------------
def picker(run) -> int:
    """The member whose maps the page shows (0 for a run of one model), picked beside a line
    saying that the verdict stays the members' mean's; member 0 while the control is pending."""
    if run.seeds < 2:
        return 0
    pending = control.pending(run)
    left, right = st.columns([1, 3])
    k = left.selectbox(
        "Seed member",
        range(run.seeds),
        format_func=lambda k: f"member {k} (seed {run.members[k].init_seed})",
        key=member_picker(run.uid),
        disabled=pending,
        help="Whose maps the page shows. Stability across seeds (below) compares them all.",
    )
    k = 0 if pending else int(k)
    metric = METRIC_OF_TASK[run.schema.task.value]
    value = run.members[k].metrics.get("model", {}).get(metric)
    own = (
        f" (its own test {MEASURE_LABELS.get(metric, metric)}: {value:.3f})"
        if isinstance(value, float)
        else ""
    )
    wait = " The other members can be picked once the control model has landed." if pending else ""
    right.caption(
        f"This run holds {run.seeds} seed members: the same model trained from {run.seeds} "
        f"initial seeds on one split. The maps below are member {k}'s{own}; the verdict above "
        f"and the run's metrics are for the members' mean, not for member {k} alone. "
        f"*Stability across seeds*, below, says what survives another seed.{wait}"
    )
    return k


def member_view(run, explanation, k: int):
    """``(run, explanation)`` of member `k`: the member as a run of its own (the run itself for a
    run of one model) and its maps over the same rows: the session's own explanation for member
    0, else recorded in the background (``None`` meanwhile, its progress shown, or when it
    failed, which is said)."""
    if k == 0:  # as a run of its own, so that a row's outcome is member 0's, not the mean's
        return run.member(0), explanation
    member = run.member(k)  # the same object while the run's rows and control stay

    def prepare() -> Callable[[jobs.Job], Any]:
        shadow = detached(member)

        def work(job: jobs.Job):
            with threads_of(member.training):
                progress = job.recording("rows", cancellable=True)
                return explain(shadow, progress=progress, verdict=False)

        return work

    found = background(
        MEMBER_JOB,
        MEMBER_VIEWS,
        run,
        k,
        title=f"recording member {k}'s attention",
        prepare=prepare,
        buttons=(MEMBER_CANCEL, MEMBER_RETRY),
    )
    return None if found is None else (member, found)


# -- work in the background -----------------------------------------------------------------------
def detached(run):
    """A copy of `run` whose models (its members', its control's) are copies: what a background
    job records, so that it never hooks into a model the page is checking. The table, the
    preprocessor and the split are shared, not copied."""
    shared = (run.frame, run.test_frame, run.preprocessor, run.splits, run.schema)
    return copy.deepcopy(run, memo={id(part): part for part in shared if part is not None})


def owner(run, name: Any) -> str:
    """What a job of :func:`background` for `run` and `name` belongs to."""
    return f"{run.uid}:{name!r}"


def background(
    job_key: str,
    cache_key: str,
    run,
    name: Any,
    *,
    title: str,
    prepare: Callable[[], Callable[[jobs.Job], Any]] | None,
    buttons: tuple[str, str],
) -> Any | None:
    """What ``work(job)`` gives for `run` and `name`, ``work = prepare()`` (called in the page,
    when the job starts): kept in ``st.session_state[cache_key]`` (:func:`session.run_cache`),
    else computed by a job in ``st.session_state[job_key]``, started here (without `prepare`:
    not asked for yet) with its progress and a stop button
    (`buttons`: the keys of the stop button and of the retry button). ``None`` until it is in;
    a job that failed or was stopped says so, with a button to try again. A job of another run
    or name is stopped."""
    cache = st.session_state.get(cache_key, {})
    for stale in [key for key in cache if key[0] != run.uid]:  # another run's: of no use now
        del cache[stale]
    cached = session.run_cached(cache_key, run, name)
    if cached is not None:
        return cached
    owner_of = owner(run, name)
    job = session.get(job_key)
    if job is not None and job.owner != owner_of:
        job.cancel.set()  # for another run, member or request: of no use now
        st.session_state.pop(job_key)
        job = None
    if job is None:
        if prepare is None:
            return None
        job = st.session_state[job_key] = jobs.start(title, prepare(), owner=owner_of)
    stop, retry = buttons
    if job.running:
        jobs.watch(job_key, (f"Stop {title}", stop), f"Stopping {title}.")
        return None
    if job.result is not None:
        st.session_state.pop(job_key)
        return session.run_cache(cache_key, run, name, lambda: job.result)
    if job.error is not None:
        st.error(f"{title.capitalize()} failed: {md(job.error)}.")
    else:
        st.info(f"{title.capitalize()} was stopped.")
    if st.button("Try again", key=retry):
        st.session_state.pop(job_key)
        st.rerun()
    return None
