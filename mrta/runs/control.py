"""The control model of a run: the same model trained on shuffled labels, the null its attention
is compared with.

The control has the run's model configuration, split and initial weights (the same init seed),
and is trained with the run's training config on labels permuted within the training split
(and, for the per-epoch history, within the validation split), by a generator seeded with the
recorded ``permutation_seed``, for exactly as many optimisation steps as the run's model took
(:func:`mrta.training.loop.fit` with ``steps``: no early stopping, no time budget, the final
weights). The test split is never touched: the control is scored on its true labels.
:func:`mrta.pipelines.train_run.train_control` trains one.

A run saves it as ``control.safetensors`` (the weights) and ``control.json``
(:meth:`Control.to_dict`: the permutation seed, steps, epochs, the test metric, seconds, and the
training history), both listed in the manifest with their checksums. A run without a control
writes ``control.json`` as ``{"trained": false, "reason": ...}``; a run saved before controls
existed (run format 1) has no ``control.json`` at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mrta.nn.model import TabularAttentionModel
from mrta.nn.set_model import SetAttentionModel
from mrta.runs.manifest import CONTROL_FILE, CONTROL_WEIGHTS
from mrta.training.loop import TrainResult

__all__ = ["CONTROL_FILE", "CONTROL_WEIGHTS", "Control", "permutation_seed"]

#: Why a run has no control, in the words shown wherever that matters.
NOT_TRAINED = (
    "No control model was trained for this run, so its attention cannot be compared with a "
    "model trained on shuffled labels."
)
OLD_FORMAT = (
    "This run was saved before control models existed (run format 1), so it has no control "
    "to compare its attention with: train it again to get one."
)
#: How the control's labels were made, as ``control.json`` says it.
LABELS = (
    "permuted within the training split and within the validation split; the test split is "
    "untouched"
)
#: The metric of each task: what the verdict compares (``mrta.analysis.verdict``).
METRIC_OF_TASK = {"binary": "roc_auc", "multiclass": "roc_auc", "regression": "r2"}


@dataclass(eq=False)
class Control:
    """A control model and how it was made.

    Attributes:
        model: the control, with the run's architecture; in eval mode.
        permutation_seed: seeds the permutations of the training and validation labels.
        training: its :class:`~mrta.training.loop.TrainResult` (``steps``, ``epochs``; the
            history's validation scores are against the permuted validation labels).
        metric: ``"roc_auc"`` (classification) or ``"r2"`` (regression).
        value: that metric on the test split's true labels; ``None`` where it is undefined
            (a test split of one class).
        seconds: wall-clock time of the whole control step (encoding, training, scoring).
        test_rows: the examples (rows, or groups for a set run) it was scored on.
        test_predictions: its predictions on the test split, in the split's order (as
            :func:`mrta.training.inference.to_predictions` gives them), kept in memory right
            after training for the verdict; not saved (``None`` after loading).
    """

    model: TabularAttentionModel | SetAttentionModel
    permutation_seed: int
    training: TrainResult
    metric: str
    value: float | None
    seconds: float
    test_rows: int
    test_predictions: np.ndarray | None = field(default=None, repr=False)

    @property
    def steps(self) -> int:
        """Optimisation steps taken: the run's model's steps."""
        return self.training.steps

    @property
    def epochs(self) -> int:
        """Epochs begun (the last may be partial)."""
        return self.training.epochs

    def describe(self) -> str:
        """One sentence: how the control was trained and what it scored."""
        score = "undefined" if self.value is None else f"{self.value:.4f}"
        return (
            f"Control (labels shuffled within the training split): {self.steps:,} steps, "
            f"{self.epochs:,} epochs, test {self.metric} {score}, {self.seconds:.1f} s."
        )

    def to_dict(self) -> dict[str, Any]:
        """``control.json``: everything but the weights and the predictions."""
        return {
            "trained": True,
            "labels": LABELS,
            "permutation_seed": self.permutation_seed,
            "steps": self.steps,
            "epochs": self.epochs,
            "metric": self.metric,
            "value": self.value,
            "split": "test",
            "test_rows": self.test_rows,
            "seconds": self.seconds,
            "training": self.training.to_dict(),
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], model: TabularAttentionModel | SetAttentionModel
    ) -> Control:
        """Inverse of :meth:`to_dict`, with the control's `model` (its weights loaded)."""
        training = TrainResult.from_dict(data["training"])
        if int(data["steps"]) != training.steps or int(data["epochs"]) != training.epochs:
            raise ValueError("the control's steps or epochs disagree with its training history")
        value = data["value"]
        return cls(
            model=model,
            permutation_seed=int(data["permutation_seed"]),
            training=training,
            metric=str(data["metric"]),
            value=None if value is None else float(value),
            seconds=float(data["seconds"]),
            test_rows=int(data["test_rows"]),
        )


def permutation_seed(seed: int) -> int:
    """The permutation seed of a run trained with `seed`: derived from it, so that reruns shuffle
    the same way, and kept apart from the seeds of the split and the weights (which `seed` and
    small integers near it may be)."""
    return int(np.random.SeedSequence([abs(int(seed)), 0xC0DE, int(seed < 0)]).generate_state(1)[0])
