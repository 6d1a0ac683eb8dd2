"""The project's exceptions: one base, :class:`MrtaError`, for every failure a user can cause.

Each message is one sentence that says what is wrong and what to do; the command line and the
dashboard show it as it is. Classes that callers already catch as ``ValueError`` (a bad table, a
bad run) also derive from it.
"""

from __future__ import annotations


class MrtaError(Exception):
    """The base of every error this project raises on purpose."""


class TableError(MrtaError, ValueError):
    """A table (or a choice about it) cannot be used."""


class RunError(MrtaError, ValueError):
    """A run cannot be saved, loaded or used as asked."""


class ArchiveError(RunError):
    """A zip that is not a safe, readable zipped run."""


class RecordingLimitError(MrtaError, RuntimeError):
    """Keep-mode recording would exceed its memory cap."""


class WorkerError(MrtaError, RuntimeError):
    """A worker of a distributed run failed; the message names the worker and the cause."""


def one_line(error: BaseException) -> str:
    """The error's message on one line: its first line, the file and reason of an ``OSError``,
    or the type's name when it has no message."""
    message = str(error).strip()
    if isinstance(error, OSError) and error.filename and error.strerror:
        message = f"{error.strerror}: {error.filename}"
    return message.splitlines()[0] if message else type(error).__name__


def positive_int(value: object, name: str) -> int:
    """`value` as an int of at least 1; ``ValueError`` naming `name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def counted(count: int, noun: str) -> str:
    """``"1 row"``, ``"2,000 rows"``: a count and its noun, singular or plural as it says (for
    messages and captions)."""
    return f"{count:,} {noun}" + ("" if count == 1 else "s")
