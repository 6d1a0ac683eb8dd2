"""Running a model for its outputs: eval mode without gradients, in bounded batches.

:func:`evaluating` is the one place that puts a model in eval mode for a block and restores its
mode after it, whatever happens; training's validation, predictions and every analysis pass go
through it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from mrta.data.preprocessing import Examples, Preprocessor
from mrta.data.target_transform import smearing_factor
from mrta.task import Task

INFERENCE_BATCH = 4096  # rows per forward pass when predicting
#: Query-key pairs per attention map and head in one forward pass when predicting: 16 sets of
#: 1,000 rows at most (rows of up to 64 columns are not limited).
INFERENCE_PAIRS = 2**24


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """`model` in eval mode without gradients for the block; its mode is restored after it."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def batches(n: int, batch_size: int, start: int = 0) -> Iterator[slice]:
    """Consecutive slices of at most `batch_size` over ``range(start, n)``."""
    for first in range(start, n, batch_size):
        yield slice(first, min(first + batch_size, n))


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters are."""
    return next(model.parameters()).device


def predict_logits(
    model: nn.Module, examples: Examples, batch_size: int = INFERENCE_BATCH
) -> torch.Tensor:
    """The model's outputs for every example (row or set) of `examples`, in eval mode, on the
    model's device; a batch holds at most `batch_size` examples and at most
    :data:`INFERENCE_PAIRS` query-key pairs per attention map and head.

    Shape: ``(N, n_outputs)`` float32 on the CPU.
    """
    device = model_device(model)
    batch_size = batch_limit(batch_size, examples, INFERENCE_PAIRS)
    outputs = []
    with evaluating(model):
        for rows in batches(len(examples), batch_size):
            batch = examples.select(rows).to(device)
            outputs.append(model(*batch.model_inputs()).float().cpu())
    if not outputs:
        return torch.empty(0, getattr(model, "n_outputs", 1))
    return torch.cat(outputs)


def batch_limit(batch_size: int, examples: Examples, pairs: int) -> int:
    """`batch_size`, lowered so that a batch's attention maps hold at most `pairs` query-key
    pairs per head: what keeps sets of a thousand rows within memory."""
    return max(1, min(batch_size, pairs // max(examples.tokens_per_example, 1) ** 2))


def to_predictions(
    task: str,
    logits: torch.Tensor,
    target_mean: float | None = None,
    target_std: float | None = None,
) -> np.ndarray:
    """Class probabilities ``(N, C)`` (binary: ``C = 2``), or regression values ``(N,)`` in the
    target's units, from logits ``(N, n_outputs)``."""
    logits = logits.double()
    if task == Task.BINARY:
        positive = torch.sigmoid(logits[:, 0])
        return torch.stack([1.0 - positive, positive], dim=1).numpy()
    if task == Task.MULTICLASS:
        return torch.softmax(logits, dim=1).numpy()
    mean = 0.0 if target_mean is None else target_mean
    std = 1.0 if target_std is None else target_std
    return (logits[:, 0] * std + mean).numpy()


def predictions_in_units(preprocessor: Preprocessor, logits: torch.Tensor) -> np.ndarray:
    """:func:`to_predictions` on `preprocessor`'s target scale, regression values brought back
    to the target's units (after a log transform: exponentiated, times Duan's smearing factor)."""
    task = preprocessor.schema.task
    values = to_predictions(task.value, logits, preprocessor.target_mean, preprocessor.target_std)
    return preprocessor.predictions_in_units(values) if task == Task.REGRESSION else values


def fit_smearing(preprocessor: Preprocessor, model: nn.Module, validation: Examples) -> None:
    """After a log-transformed target's training: Duan's smearing factor from `model`'s
    residuals on the validation rows, on the log scale, kept in `preprocessor` (which brings
    every later prediction of the run back to the target's units with it)."""
    if preprocessor.target_transform != "log":
        return
    logged = to_predictions(
        preprocessor.schema.task.value,
        predict_logits(model, validation),
        preprocessor.target_mean,
        preprocessor.target_std,
    )
    preprocessor.target_smearing = smearing_factor(validation.target.numpy() - logged)
