"""What a model predicts: the :class:`Task` enum that every level of the project shares."""

from __future__ import annotations

from enum import StrEnum


class Task(StrEnum):
    """What the model predicts. A ``StrEnum``: it is its own value in JSON and messages."""

    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"

    @property
    def is_classification(self) -> bool:
        return self is not Task.REGRESSION
