"""The progress bar that ``mrta train`` and ``mrta explain`` draw on stderr."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from mrta.training.loop import Progress

BAR_WIDTH = 30
COUNT_EVERY_S = 5.0  # seconds between the lines of a count that is not drawn in place


class ProgressBar:
    """A plain-text progress bar on a stream: redrawn in place on a terminal, else one line
    per tenth of the way; with a `title`, the title on a line of its own before the first draw
    (after ending the line of a bar drawn in place before it)."""

    def __init__(self, stream: TextIO, title: str | None = None) -> None:
        self.stream = stream
        self.title = title
        self.interactive = stream.isatty()
        self.last_draw = 0.0
        self.last_tenth = -1
        self.validation = ""

    def __call__(self, progress: Progress) -> None:
        """The training callback."""
        if progress.event == "epoch" and progress.validation_loss is not None:
            self.validation = f"  val loss {progress.validation_loss:.4f}"
        self.draw(
            progress.fraction,
            f"epoch {progress.epoch}  step {progress.step}  {progress.elapsed:5.1f}s"
            f"{self.validation}",
            progress.event == "step",
        )

    def phase(self, done: int, total: int, message: str, unit: str = "rows") -> None:
        """The analysis callback: ``(rows done, rows, what is being done)``."""
        self.draw(done / max(total, 1), f"{message}  {done:,}/{total:,} {unit}", True)

    def phase_of(self, unit: str) -> Callable[[int, int, str], None]:
        """:meth:`phase` counting `unit` (e.g. ``"sets"``) instead of rows."""
        return lambda done, total, message: self.phase(done, total, message, unit)

    def begin(self, phase: str) -> None:
        """A phase begins (``train_run``'s `phase` callback): its name on a line of its own,
        after the line of a bar drawn in place before it."""
        if self.interactive and self.last_draw:
            self.stream.write("\n")
        self.stream.write(f"{phase[:1].upper()}{phase[1:]}…\n")
        self.stream.flush()
        self.last_draw, self.last_tenth = 0.0, -1

    def count(self, done: int, message: str, unit: str = "rows") -> None:
        """A phase of unknown length (a streamed file's first pass): the count so far, redrawn
        in place on a terminal, else a line every few seconds."""
        now = time.monotonic()
        if now - self.last_draw < (0.1 if self.interactive else COUNT_EVERY_S):
            return
        self.last_draw = now
        line = f"{message}  {done:,} {unit}"
        self.stream.write("\r" + line.ljust(100) if self.interactive else line + "\n")
        self.stream.flush()

    def draw(self, fraction: float, text: str, throttle: bool) -> None:
        now = time.monotonic()
        tenth = int(fraction * 10)
        if self.interactive and throttle and now - self.last_draw < 0.1:
            return
        if not self.interactive and tenth == self.last_tenth:
            return
        self.last_draw, self.last_tenth = now, tenth
        if self.title is not None:
            self.stream.write(("\n" if self.interactive else "") + self.title + "\n")
            self.title = None
        filled = round(fraction * BAR_WIDTH)
        line = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {fraction:4.0%}  {text}"
        if self.interactive:
            self.stream.write("\r" + line.ljust(100))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self, message: str) -> None:
        if self.interactive:
            self.stream.write("\n")
        self.stream.write(message + "\n")
        self.stream.flush()
