"""The task losses, defined once for training and for the analysis that scores a model.

The model learns classes from logits and a regression target standardised by the training
split's mean and standard deviation (:func:`model_target`); every loss here is on that scale.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from mrta.task import Task

#: ``score(logits (B, n_outputs), targets (B,) as encoded by the schema) -> float``.
ScoreFn = Callable[[Tensor, Tensor], float]


def model_target(
    task: Task, y: Tensor, target_mean: float | None = None, target_std: float | None = None
) -> Tensor:
    """What the model is trained to output for targets `y` (class codes, or values in the
    target's units): float for binary and regression (standardised), class codes otherwise.

    Shape: ``(B,)`` -> ``(B,)``.
    """
    if task == Task.REGRESSION:
        return (y.float() - (target_mean or 0.0)) / (target_std or 1.0)
    return y.float() if task == Task.BINARY else y.long()


def task_loss(task: Task, logits: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """The task's loss of `logits` against :func:`model_target` values: binary cross-entropy,
    cross-entropy or mean squared error; `reduction` as torch's (``"none"``: per example).

    Shape: ``(B, n_outputs)`` and ``(B,)`` -> a scalar, or ``(B,)`` with ``reduction="none"``.
    """
    logits = logits.float()
    if task == Task.BINARY:
        return F.binary_cross_entropy_with_logits(logits[:, 0], target, reduction=reduction)
    if task == Task.MULTICLASS:
        return F.cross_entropy(logits, target, reduction=reduction)
    return F.mse_loss(logits[:, 0], target, reduction=reduction)


def task_scores(
    task: Task, target_mean: float | None = None, target_std: float | None = None
) -> tuple[ScoreFn, ScoreFn, str]:
    """``(loss, metric, metric name)`` of the task on the model's scale, from encoded targets:
    the loss of :func:`task_loss`, and accuracy (classification) or R² (regression)."""

    def loss(logits: Tensor, y: Tensor) -> float:
        return float(task_loss(task, logits, model_target(task, y, target_mean, target_std)))

    if task == Task.REGRESSION:

        def r2(logits: Tensor, y: Tensor) -> float:
            z = model_target(task, y, target_mean, target_std)
            return float(1 - (logits[:, 0] - z).square().sum() / (z - z.mean()).square().sum())

        return loss, r2, "R²"

    def accuracy(logits: Tensor, y: Tensor) -> float:
        if task == Task.BINARY:
            return float(((logits[:, 0] > 0).long() == y).float().mean())
        return float((logits.argmax(-1) == y).float().mean())

    return loss, accuracy, "accuracy"
