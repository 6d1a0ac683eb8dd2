"""Scoring a model on a bounded, seeded sample of rows: what every intervention (ablations,
permutation importance) compares with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from mrta.analysis.collect import DEFAULT_BATCH_SIZE
from mrta.analysis.inputs import Inputs, split_inputs
from mrta.training.inference import batches, evaluating, model_device
from mrta.training.losses import ScoreFn

#: ``fn(logits, targets)`` -> a number (a tensor of one element is fine), over all rows at once.
CHECK_ROWS = 2000  # rows of the sample: deltas of a few 0.001 are visible, runs stay short


@dataclass(frozen=True)
class Sample:
    """A bounded, seeded sample of rows. Shape: ``(n, n_num)``, ``(n, n_num)``, ``(n, n_cat)``,
    ``(n,)``."""

    numerical: Tensor
    indicators: Tensor
    categorical: Tensor
    targets: Tensor


def bounded_sample(
    data: Inputs,
    targets: Tensor | np.ndarray | None = None,
    max_rows: int = CHECK_ROWS,
    seed: int = 0,
) -> Sample:
    """At most ``max_rows`` rows of ``data``, drawn without replacement with ``seed``, in order."""
    numerical, indicators, categorical, target = split_inputs(data, targets)
    if target is None:
        raise ValueError("measuring a loss needs targets: pass targets or an encoded target")
    n = len(numerical)
    rows = torch.arange(n)
    if n > max_rows:
        rows = torch.from_numpy(np.sort(np.random.default_rng(seed).choice(n, max_rows, False)))
    return Sample(numerical[rows], indicators[rows], categorical[rows], target[rows])


def score_sample(
    model: nn.Module,
    sample: Sample,
    loss_fn: ScoreFn,
    metric_fn: ScoreFn | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> tuple[float, float | None]:
    """``(loss, metric)`` of ``model`` on ``sample``, in eval mode without gradients."""
    device = model_device(model)
    with evaluating(model):
        logits = torch.cat(
            [
                model(
                    sample.numerical[rows].to(device),
                    sample.indicators[rows].to(device),
                    sample.categorical[rows].to(device),
                )
                .float()
                .cpu()
                for rows in batches(len(sample.targets), batch_size)
            ]
        )
    loss = float(loss_fn(logits, sample.targets))
    metric = None if metric_fn is None else float(metric_fn(logits, sample.targets))
    return loss, metric


def change(changed: float | None, baseline: float | None) -> float | None:
    return None if changed is None or baseline is None else changed - baseline
