"""Training in a background thread, so that page reruns never stop or restart it.

The thread only touches this object (plain Python state, appended under the GIL); the Train
page polls it from a fragment that reruns every half second while the job is alive.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mrta.training.loop import Progress


@dataclass
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

    def on_analysis(self, done: int, total: int, message: str) -> None:
        """The analysis callback: rows recorded so far."""
        self.fraction = done / max(total, 1)
        self.phase = f"{message}: {done:,} of {total:,} rows"


def start(title: str, work: Callable[[Job], Any]) -> Job:
    """Run ``work(job)`` in a daemon thread; its return value becomes ``job.result``."""
    job = Job(title)

    def target() -> None:
        try:
            job.result = work(job)
            job.phase = "cancelled" if job.cancel.is_set() else "done"
        except Exception as error:  # shown in the page, never raised into Streamlit
            job.error = f"{type(error).__name__}: {error}"
            job.phase = "failed"
            traceback.print_exc()
        finally:
            job.finished = time.monotonic()

    job.thread = threading.Thread(target=target, name=f"mrta-{title}", daemon=True)
    job.thread.start()
    return job
