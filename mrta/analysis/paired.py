"""Two models recorded on the same rows in one pass, so that each row gives one difference per
cell (see :mod:`mrta.analysis.comparison` for the test on those differences).

Each batch of rows runs through both models, each under a keep-mode
:class:`~mrta.analysis.recorder.AttentionRecorder` (its own encoding of the same rows: the two
runs' preprocessors may differ); the shared maps are cut to the common tokens, and float64 sums
of each model's head-mean map, of their per-row difference and, where the heads line up, of each
head's difference are kept about a per-cell shift (the first batch's mean), as the recorder's
stream mode keeps its moments, so that the variance suffers no cancellation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mrta.analysis.collect import DEFAULT_BATCH_SIZE, ProgressFn
from mrta.analysis.comparison import SIDES, SharedMap
from mrta.analysis.inputs import Inputs, split_inputs
from mrta.analysis.recorder import AttentionRecorder, StreamStats
from mrta.streams import MapKey
from mrta.training.inference import batches, evaluating, model_device


@dataclass
class PairedSums:
    """The moments of one shared map over the rows: each model's head-mean map (``a``, ``b``),
    the per-row difference of the head means (``difference``) and, where the heads line up, of
    each head (``heads``, else ``None``).

    Shape: ``(Tq, Tk)`` each, ``(H, Tq, Tk)`` for ``heads``, on the common tokens.
    """

    a: StreamStats | None = None
    b: StreamStats | None = None
    difference: StreamStats | None = None
    heads: StreamStats | None = None


def accumulate(stats: StreamStats | None, values: Tensor) -> StreamStats:
    """`stats` (new ones, centred on this batch's mean, when ``None``) with a batch of values
    added, in float64.

    Shape: values ``(B, ...)``; the moments ``(...)``.
    """
    values = values.double()
    if stats is None:
        shift = values.mean(dim=0)
        stats = StreamStats(torch.zeros_like(shift), torch.zeros_like(shift), 0, shift)
    centred = values - stats.shift
    stats.total += centred.sum(dim=0)
    stats.total_sq += centred.square().sum(dim=0)
    stats.count += len(values)
    return stats


def _cut(kept: AttentionRecorder, shared: SharedMap, side: str) -> Tensor:
    """A model's weights of `shared` in this batch on the common tokens. Shape:
    ``(B, H, Tq, Tk)``."""
    queries, keys = (torch.from_numpy(p) for p in shared.positions[side])
    weights = kept.weights(shared.layer, shared.map_id)
    return weights.index_select(2, queries).index_select(3, keys)


def record_paired(
    model_a: nn.Module,
    model_b: nn.Module,
    data_a: Inputs,
    data_b: Inputs,
    maps: Sequence[SharedMap],
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressFn | None = None,
) -> dict[MapKey, PairedSums]:
    """Run both models over the same rows once (each on its own encoding of them, in eval mode
    without gradients) and keep the moments of every shared map (:class:`PairedSums`).

    Raises ``ValueError`` when the two encodings do not have the same number of rows.
    """
    inputs = {"a": split_inputs(data_a)[:3], "b": split_inputs(data_b)[:3]}
    models = {"a": model_a, "b": model_b}
    n_rows = len(inputs["a"][0])
    if len(inputs["b"][0]) != n_rows:
        raise ValueError(
            f"data_b has {len(inputs['b'][0])} rows and data_a {n_rows}: a paired pass needs "
            "the same rows"
        )
    sums = {(m.layer, m.map_id): PairedSums() for m in maps}
    with evaluating(model_a), evaluating(model_b):
        for rows in batches(n_rows, batch_size):
            weights = {}
            for side in SIDES:
                device = model_device(models[side])
                with AttentionRecorder(models[side], mode="keep") as kept:
                    models[side](*(t[rows].to(device) for t in inputs[side]))
                weights[side] = {(m.layer, m.map_id): _cut(kept, m, side) for m in maps}
            for shared in maps:
                key = (shared.layer, shared.map_id)
                a, b = weights["a"][key], weights["b"][key]
                mean_a, mean_b = a.mean(dim=1), b.mean(dim=1)
                moments = sums[key]
                moments.a = accumulate(moments.a, mean_a)
                moments.b = accumulate(moments.b, mean_b)
                moments.difference = accumulate(
                    moments.difference, mean_a.double() - mean_b.double()
                )
                if shared.heads is not None:
                    moments.heads = accumulate(moments.heads, a.double() - b.double())
            if progress is not None:
                progress(rows.stop, n_rows, "recording both models")
    return sums
