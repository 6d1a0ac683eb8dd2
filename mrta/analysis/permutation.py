"""Permutation importance: how much shuffling one input column across the rows hurts the model.

Breiman's permutation importance (Random Forests, 2001), on rows the model did not train on:
a column's rows are shuffled (every token of the column with the same order: a numerical value
with its missing-indicator, each token of a date), the loss is measured again, and the increase
is averaged over ``repeats`` shuffles. Its standard error (sample standard deviation over the
repeats, divided by ``sqrt(repeats)``) covers the shuffles' randomness only: not which rows were
drawn, nor a retrained model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mrta.analysis.collect import DEFAULT_BATCH_SIZE, ProgressFn
from mrta.analysis.inputs import Inputs
from mrta.analysis.scoring import CHECK_ROWS, Sample, bounded_sample, change, score_sample
from mrta.jsonable import from_json_ready
from mrta.training.losses import ScoreFn

DEFAULT_REPEATS = 5  # shuffles per column: a standard error, cheap enough for 30 columns


@dataclass(frozen=True)
class ColumnImportance:
    """How much shuffling one input column hurts: over the repeats, the mean loss increase, its
    sample standard deviation and standard error (``None`` with a single repeat)."""

    column: str
    stream: str  # "num" or "cat"
    loss_increase: float
    loss_increase_std: float | None
    loss_increase_se: float | None
    metric_delta: float | None


@dataclass(frozen=True)
class PermutationImportance:
    """:func:`permutation_importance`'s baseline and one entry per column."""

    rows: int
    repeats: int
    seed: int
    baseline_loss: float
    baseline_metric: float | None
    columns: tuple[ColumnImportance, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PermutationImportance:
        """Inverse of :func:`mrta.report.exports.json_ready` on a result, for cached runs."""
        return from_json_ready(cls, data, columns=ColumnImportance)

    def loss_increases(self) -> dict[str, float]:
        """Mean loss increase per column."""
        return {c.column: c.loss_increase for c in self.columns}

    def standard_errors(self) -> dict[str, float] | None:
        """The standard error of each mean over the shuffles; ``None`` with a single repeat."""
        if self.repeats < 2:
            return None
        return {c.column: c.loss_increase_se for c in self.columns}


def permutation_importance(
    model: nn.Module,
    data: Inputs,
    targets: Tensor | np.ndarray | None = None,
    *,
    loss_fn: ScoreFn,
    metric_fn: ScoreFn | None = None,
    repeats: int = DEFAULT_REPEATS,
    max_rows: int = CHECK_ROWS,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    columns: Mapping[str, Sequence[str]] | None = None,
    progress: ProgressFn | None = None,
) -> PermutationImportance:
    """Shuffle each input column's tokens across the sample's rows and measure the damage.

    A numerical token's value and missing-indicator move together; a categorical token's index
    moves. `columns` maps each input column to its tokens (``model.numerical_tokens`` and
    ``model.categorical_tokens``; a date column has several), which are shuffled with one order;
    by default every token is a column of its own. Raises ``ValueError`` for fewer than 1
    repeat or a token the model does not have.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a whole number of at least 1, got {repeats!r}")
    slots = _token_slots(model)
    if columns is None:
        columns = {name: [name] for name in slots}
    unknown = [t for tokens in columns.values() for t in tokens if t not in slots]
    if unknown:
        raise ValueError(f"columns name tokens the model does not have: {unknown}")
    sample = bounded_sample(data, targets, max_rows, seed)
    base_loss, base_metric = score_sample(model, sample, loss_fn, metric_fn, batch_size)
    rng = np.random.default_rng(seed)
    results = []
    for done, (name, tokens) in enumerate(columns.items(), start=1):
        losses, metrics = [], []
        for _ in range(repeats):
            order = torch.from_numpy(rng.permutation(len(sample.targets)))
            shuffled = sample
            for token in tokens:
                shuffled = _shuffle_column(shuffled, *slots[token], order)
            loss, metric = score_sample(model, shuffled, loss_fn, metric_fn, batch_size)
            losses.append(loss - base_loss)
            metrics.append(change(metric, base_metric))
        std = float(np.std(losses, ddof=1)) if repeats > 1 else None
        results.append(
            ColumnImportance(
                column=name,
                stream=slots[tokens[0]][0],
                loss_increase=float(np.mean(losses)),
                loss_increase_std=std,
                loss_increase_se=None if std is None else std / math.sqrt(repeats),
                metric_delta=None if metrics[0] is None else float(np.mean(metrics)),
            )
        )
        if progress is not None:
            progress(done, len(columns), f"shuffling {name}")
    return PermutationImportance(
        len(sample.targets), repeats, seed, base_loss, base_metric, tuple(results)
    )


def _token_slots(model: nn.Module) -> dict[str, tuple[str, int]]:
    """Each token's stream and position: ``{"age": ("num", 0), ...}``."""
    slots = {name: ("num", j) for j, name in enumerate(model.numerical_tokens)}
    slots.update({name: ("cat", j) for j, name in enumerate(model.categorical_tokens)})
    return slots


def _shuffle_column(sample: Sample, stream: str, j: int, order: Tensor) -> Sample:
    numerical, indicators, categorical = (
        sample.numerical.clone(),
        sample.indicators.clone(),
        sample.categorical.clone(),
    )
    if stream == "num":
        numerical[:, j] = sample.numerical[order, j]
        indicators[:, j] = sample.indicators[order, j]
    else:
        categorical[:, j] = sample.categorical[order, j]
    return Sample(numerical, indicators, categorical, sample.targets)
