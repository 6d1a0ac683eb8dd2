"""Work in a background thread (training, recording an opened run's attention), so that page
reruns never stop or restart it.

The thread only touches its :class:`Job` (plain Python state, appended under the GIL); a page
shows it with :func:`watch`, a fragment that reruns every half second while the job is alive.
"""

from __future__ import annotations

import atexit
import threading
import time
import traceback
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from mrta.errors import counted
from mrta.training.loop import Progress
from mrta_dashboard.text import md

#: Seconds between two looks at a running job.
POLL_SECONDS = 0.5
#: Seconds a running job is given to stop when the process exits.
EXIT_SECONDS = 10.0
_RUNNING: weakref.WeakSet[Job] = weakref.WeakSet()  # the jobs started in this process
_ONCE: set[str] = set()  # the names of the work :func:`once` started
_ONCE_LOCK = threading.Lock()


class Cancelled(Exception):
    """Raised by a cancellable progress callback once the job's cancel button was pressed."""


@dataclass(eq=False)  # one job is one job: compared and hashed by identity
class Job:
    """One background task with progress, a cancel signal, and its result or error."""

    title: str
    owner: str | None = None  # what its result belongs to (the Train page: the table's source id)
    plan: tuple[str, ...] = ()  # the phases it will go through, in order, as far as known
    cancel: threading.Event = field(default_factory=threading.Event)
    phase: str = "starting"  # the phase under way, named
    detail: str = ""  # how far into it, in words ("epoch 2, step 40"; "300 of 10,000 rows")
    fraction: float = 0.0  # of the phase under way
    phases: list[tuple[str, float]] = field(default_factory=list)  # (phase, began: s after start)
    steps: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)
    epochs: list[dict[str, Any]] = field(default_factory=list)  # per epoch: losses, metrics
    partial: Any = None  # a result it hands over before it ends (see mrta_dashboard.control)
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def phase_elapsed(self) -> float:
        """Seconds since the phase under way began."""
        begun = self.phases[-1][1] if self.phases else 0.0
        return self.elapsed - begun

    def begin(self, phase: str) -> None:
        """A new phase begins: its name is shown, its progress starts at zero."""
        self.phases.append((phase, time.monotonic() - self.started))
        self.phase, self.detail, self.fraction = phase, "", 0.0

    def seconds(self) -> dict[str, float]:
        """Seconds spent in each phase begun so far (the one under way: until now)."""
        if not self.phases:
            return {}
        ends = [begun for _, begun in self.phases[1:]] + [self.elapsed]
        return {name: end - begun for (name, begun), end in zip(self.phases, ends, strict=True)}

    def on_progress(self, progress: Progress) -> None:
        """The training callback: keeps what the curves and the progress bar need."""
        self.fraction = progress.fraction
        if progress.event == "step" and progress.train_loss is not None:
            self.steps.append((progress.step, progress.train_loss))
        elif progress.event == "epoch":
            self.epochs.append(
                {
                    "epoch": progress.epoch,
                    "train_loss": progress.train_loss,
                    "validation_loss": progress.validation_loss,
                    **{k: v for k, v in progress.validation.items() if isinstance(v, float)},
                }
            )
        self.detail = f"epoch {progress.epoch}, step {progress.step:,}"

    def recording(
        self, unit: str, *, cancellable: bool = False, phase: str | None = None
    ) -> Callable[[int, int, str], None]:
        """The analysis callback: the `unit` (plural: "rows", "sets") recorded so far. Each new
        message it is given begins a phase of that name (with `phase`, all of it is that one
        phase). A `cancellable` one raises :class:`Cancelled` once the cancel button was
        pressed: the job ends without a result."""

        def progress(done: int, total: int, message: str) -> None:
            if cancellable and self.cancel.is_set():
                raise Cancelled
            if (phase or message) != self.phase:
                self.begin(phase or message)
            self.fraction = done / max(total, 1)
            self.detail = f"{done:,} of {counted(total, unit.removesuffix('s'))}"

        return progress


def start(
    title: str, work: Callable[[Job], Any], *, owner: str | None = None, plan: tuple[str, ...] = ()
) -> Job:
    """Run ``work(job)`` in a daemon thread; its return value becomes ``job.result``. `owner`:
    what the result belongs to; `plan`: the phases the work will name with :meth:`Job.begin`."""
    job = Job(title, owner=owner, plan=plan)

    def target() -> None:
        try:
            job.result = work(job)
            job.phase = "cancelled" if job.cancel.is_set() else "done"
        except Cancelled:
            job.phase = "cancelled"
        except Exception as error:  # shown in the page, never raised into Streamlit
            job.error = f"{type(error).__name__}: {error}"
            job.phase = "failed"
            traceback.print_exc()
        finally:
            job.finished = time.monotonic()

    job.thread = threading.Thread(target=target, name=f"mrta-{title}", daemon=True)
    job.thread.start()
    _RUNNING.add(job)
    return job


def once(name: str, work: Callable[[], Any]) -> None:
    """Run ``work()`` in a daemon thread, once per process under `name` (e.g. imports that a
    first training would otherwise wait for); its errors are ignored, the work is only ahead."""
    with _ONCE_LOCK:
        if name in _ONCE:
            return
        _ONCE.add(name)

    def target() -> None:
        try:
            work()
        except Exception:  # the same work is done when it is needed, and fails there if it must
            traceback.print_exc()

    threading.Thread(target=target, name=f"mrta-{name}", daemon=True).start()


@atexit.register
def stop_all(seconds: float = EXIT_SECONDS) -> None:
    """Cancel the jobs still running and give them `seconds` to stop. At the process's exit: a
    thread killed inside torch aborts the process ("terminate called without an active
    exception"); after a test: no job outlives the session it belonged to."""
    jobs = [job for job in list(_RUNNING) if job.running]
    for job in jobs:
        job.cancel.set()
    deadline = time.monotonic() + seconds
    for job in jobs:
        job.thread.join(max(0.0, deadline - time.monotonic()))


@st.fragment(run_every=POLL_SECONDS)
def watch(
    state_key: str,
    cancel: tuple[str, str],
    stopping: str,
    more: Callable[[Job], None] | None = None,
    rerun_when: Callable[[], bool] | None = None,
) -> None:
    """The job held in ``st.session_state[state_key]``: its progress bar, a cancel button
    (`cancel`: its label and key; `stopping`: what a click does, in words) and `more` (e.g.
    live curves), redrawn every :data:`POLL_SECONDS` without rerunning the page. Once the job
    has ended, or `rerun_when` says so (e.g. it handed over part of its result), the whole page
    reruns to show its result or its error."""
    job = st.session_state[state_key]
    if not job.running or (rerun_when is not None and rerun_when()):
        st.rerun()
    st.markdown(f"**{md(job.title)}** · {job.elapsed:.0f} s in all")
    detail = f": {job.detail}" if job.detail else ""
    st.progress(min(job.fraction, 1.0), text=f"{job.phase}{detail} · {job.phase_elapsed:.0f} s")
    if steps := steps_line(job):
        st.caption(steps)
    label, key = cancel
    if st.button(label, key=key):
        job.cancel.set()
        st.toast(stopping)
    if more is not None:
        more(job)


def steps_line(job: Job) -> str:
    """The job's phases in one line: those done with their seconds, the one under way, those to
    come ("✓ training 30 s · ▶ fitting gradient boosting · recording the trained model")."""
    seconds = job.seconds()
    names: list[str] = []  # the plan, with the phases begun outside it where they were begun
    for name in seen(job):
        if name in job.plan:
            names += [p for p in job.plan[: job.plan.index(name)] if p not in names]
        if name not in names:
            names.append(name)
    names += [p for p in job.plan if p not in names]
    if len(names) < 2:
        return ""
    shown = []
    for name in names:
        if name == job.phase:
            shown.append(f"▶ **{name}**")
        elif name in seconds:
            shown.append(f"✓ {name} {seconds[name]:.0f} s")
        else:
            shown.append(name)
    return " · ".join(shown)


def seen(job: Job) -> list[str]:
    """The phases begun so far, each once, in order."""
    return list(dict.fromkeys(name for name, _ in job.phases))
