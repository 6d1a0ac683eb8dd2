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

from mrta.training.loop import Progress

#: Seconds between two looks at a running job.
POLL_SECONDS = 0.5
#: Seconds a running job is given to stop when the process exits.
EXIT_SECONDS = 10.0
_RUNNING: weakref.WeakSet[Job] = weakref.WeakSet()  # the jobs started in this process


class Cancelled(Exception):
    """Raised by a cancellable progress callback once the job's cancel button was pressed."""


@dataclass(eq=False)  # one job is one job: compared and hashed by identity
class Job:
    """One background task with progress, a cancel signal, and its result or error."""

    title: str
    cancel: threading.Event = field(default_factory=threading.Event)
    phase: str = "starting"  # what it is doing now, in words
    fraction: float = 0.0
    steps: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)
    epochs: list[dict[str, Any]] = field(default_factory=list)  # per epoch: losses, metrics
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
        self.phase = f"training: epoch {progress.epoch}, step {progress.step}"

    def recording(self, unit: str, *, cancellable: bool = False) -> Callable[[int, int, str], None]:
        """The analysis callback: `unit` (rows or sets) recorded so far. A `cancellable` one
        raises :class:`Cancelled` once the cancel button was pressed: the job ends without a
        result."""

        def progress(done: int, total: int, message: str) -> None:
            if cancellable and self.cancel.is_set():
                raise Cancelled
            self.fraction = done / max(total, 1)
            self.phase = f"{message}: {done:,} of {total:,} {unit}"

        return progress


def start(title: str, work: Callable[[Job], Any]) -> Job:
    """Run ``work(job)`` in a daemon thread; its return value becomes ``job.result``."""
    job = Job(title)

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


@atexit.register
def _stop_all() -> None:
    """Cancel the jobs still running when the process exits and give them a moment to stop:
    a thread killed inside torch at exit aborts the process ("terminate called without an
    active exception")."""
    jobs = [job for job in list(_RUNNING) if job.running]
    for job in jobs:
        job.cancel.set()
    deadline = time.monotonic() + EXIT_SECONDS
    for job in jobs:
        job.thread.join(max(0.0, deadline - time.monotonic()))


@st.fragment(run_every=POLL_SECONDS)
def watch(
    state_key: str,
    cancel: tuple[str, str],
    stopping: str,
    more: Callable[[Job], None] | None = None,
) -> None:
    """The job held in ``st.session_state[state_key]``: its progress bar, a cancel button
    (`cancel`: its label and key; `stopping`: what a click does, in words) and `more` (e.g.
    live curves), redrawn every :data:`POLL_SECONDS` without rerunning the page. Once the job
    has ended, the whole page reruns to show its result or its error."""
    job = st.session_state[state_key]
    if not job.running:
        st.rerun()
    st.progress(min(job.fraction, 1.0), text=f"{job.title}: {job.phase} · {job.elapsed:.0f} s")
    label, key = cancel
    if st.button(label, key=key):
        job.cancel.set()
        st.toast(stopping)
    if more is not None:
        more(job)
