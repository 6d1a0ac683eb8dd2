"""Recording a whole table's attention into an atlas, in one pass and constant memory.

:func:`collect_attention` runs a model once over a table, in eval mode without gradients, and
streams every attention map, and each row's head-averaged map, into running float64 sums per
cohort (constant memory, however many rows). The cohorts are all filled in that one pass: every
row, true class, predicted class, correct or wrong, each decile of each numerical column
(missing values a cohort of their own), each frequent level of each categorical column (the
rest pooled as "other"), and any custom row filters. With a :class:`Shard`, a worker of a
distributed run records its part of the rows and the sums are added over the workers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import Tensor, nn

from mrta.analysis.atlas import AttentionAtlas
from mrta.analysis.cohorts import (
    ALL_ROWS,
    CohortFamily,
    CohortKey,
    CohortSpec,
    class_families,
    cohort_keys,
    cohort_membership,
    frame_families,
)
from mrta.analysis.inputs import Inputs, model_task, split_inputs
from mrta.analysis.recorder import ALL, AttentionRecorder, StreamStats
from mrta.analysis.rollout import rollout_importance
from mrta.analysis.stats import normalized_entropy
from mrta.nn.layer import MultiResolutionTabularAttention
from mrta.streams import MapKey
from mrta.training.inference import evaluating, model_device

#: ``progress(done, total, message)``, called as work advances.
ProgressFn = Callable[[int, int, str], None]


DEFAULT_BATCH_SIZE = 512  # rows per forward pass: large enough for fast matmuls, small in memory


@dataclass(frozen=True)
class Shard:
    """One process's part of a collection spread over a ``torch.distributed`` group.

    The process records a contiguous block of the rows (:meth:`rows`: every row in exactly one
    block, block sizes differing by at most one), and the float64 sums of every process are
    then added up (all-reduce), so that each ends with the atlas of all the rows.
    """

    rank: int
    world_size: int
    group: Any = None  # the process group; None: the default one

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, {self.world_size}), got {self.rank}")

    def rows(self, n_rows: int) -> slice:
        """This process's block of `n_rows` rows (empty when there are fewer rows than
        processes)."""
        return slice(
            self.rank * n_rows // self.world_size, (self.rank + 1) * n_rows // self.world_size
        )


# -- collecting ------------------------------------------------------------------------------
def collect_attention(
    model: nn.Module,
    data: Inputs,
    frame: pd.DataFrame | None = None,
    cohorts: CohortSpec | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    targets: Tensor | np.ndarray | None = None,
    progress: ProgressFn | None = None,
    shard: Shard | None = None,
) -> AttentionAtlas:
    """Run ``model`` over ``data`` once and aggregate its attention per cohort.

    Args:
        model: see the module docstring for the interface; run in eval mode, restored after.
        data: an :class:`~mrta.data.preprocessing.EncodedTable` or ``(numerical, indicators,
            categorical)`` tensors.
        frame: the raw rows, aligned with ``data`` by position, with the cohort columns (see
            :func:`token_frame`); needed for decile and level cohorts.
        cohorts: which cohorts; ``None`` means classes only.
        targets: true classes ``(N,)``, overriding ``data.target``.
        progress: called after each batch with ``(rows done, rows, message)``.
        shard: record only this process's block of the rows and add up the sums of all the
            processes of its group (every one calls this with the same arguments); the atlas
            is the one of all the rows, on every process. Cohorts (deciles, ...) are made from
            all the rows, as without it.
    """
    numerical, indicators, categorical, target = split_inputs(data, targets)
    n_rows = len(numerical)
    if n_rows == 0:
        raise ValueError("no rows to collect attention from")
    if frame is not None and len(frame) != n_rows:
        raise ValueError(f"frame has {len(frame)} rows, the data {n_rows}")
    spec = cohorts or CohortSpec()
    from_frame = frame_families(spec, frame, n_rows)
    task, device = model_task(model), model_device(model)
    families: list[CohortFamily] | None = None
    stream = AttentionRecorder(model, mode="stream", cohorts=True)
    sums = sums_sq = counts = None
    block = slice(0, n_rows) if shard is None else shard.rows(n_rows)
    with evaluating(model):
        if shard is not None:
            # What every process must know before the sums are added up, even one without
            # rows: the cohorts, the maps' shapes and the width of the per-row features.
            with AttentionRecorder(model, mode="keep") as probe:
                logits = model(
                    numerical[:1].to(device), indicators[:1].to(device), categorical[:1].to(device)
                )
            families = class_families(spec, task, logits.shape[-1], target) + from_frame
            shapes = {key: tuple(probe.weights(*key).shape[1:]) for key in probe.keys}
            width = row_features(probe).shape[1]
        with stream:
            for start in range(block.start, block.stop, batch_size):
                rows = slice(start, min(start + batch_size, block.stop))
                with AttentionRecorder(model, mode="keep") as kept:
                    logits = model(
                        numerical[rows].to(device),
                        indicators[rows].to(device),
                        categorical[rows].to(device),
                    )
                logits = logits.detach().float().cpu()
                if families is None:
                    families = class_families(spec, task, logits.shape[-1], target)
                    families += from_frame
                membership = cohort_membership(families, rows, logits)  # (1 + K, B), row 0 = all
                stream.commit(
                    {
                        key: torch.from_numpy(member)
                        for key, member in zip(cohort_keys(families), membership[1:], strict=True)
                    }
                )
                features = row_features(kept)  # (B, D)
                weights = membership.astype(np.float64)
                if sums is None:
                    sums = np.zeros((len(weights), features.shape[1]))
                    sums_sq, counts = np.zeros_like(sums), np.zeros(len(weights), np.int64)
                sums += weights @ features
                sums_sq += weights @ features**2
                counts += membership.sum(axis=1)
                if progress is not None:
                    progress(
                        rows.stop - block.start, block.stop - block.start, "recording attention"
                    )
    if shard is not None:
        assert families is not None
        sums, sums_sq, counts = _all_reduce(
            shard, stream, families, shapes, width, sums, sums_sq, counts
        )
    assert families is not None and sums is not None and sums_sq is not None
    keys = [ALL_ROWS, *cohort_keys(families)]
    labels = ["all rows", *(label for family in families for label in family.labels)]
    return build_atlas(stream, keys, labels, counts, sums, sums_sq)


def _all_reduce(
    shard: Shard,
    stream: AttentionRecorder,
    families: Sequence[CohortFamily],
    shapes: Mapping[MapKey, tuple[int, ...]],
    width: int,
    sums: np.ndarray | None,
    sums_sq: np.ndarray | None,
    counts: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sums of every process of the shard's group: the recorder's maps, and the per-row
    features' sums, sums of squares and counts ``(1 + K, ...)`` (zeros where none)."""
    stream.all_reduce([ALL, *cohort_keys(families)], shapes, group=shard.group)
    n_cohorts = 1 + len(cohort_keys(families))
    packed = torch.zeros(n_cohorts, 2 * width + 1, dtype=torch.float64)
    if sums is not None:
        assert sums_sq is not None and counts is not None
        packed[:, :width] = torch.from_numpy(sums)
        packed[:, width:-1] = torch.from_numpy(sums_sq)
        packed[:, -1] = torch.from_numpy(counts.astype(np.float64))
    dist.all_reduce(packed, op=dist.ReduceOp.SUM, group=shard.group)
    packed_ = packed.numpy()
    return packed_[:, :width], packed_[:, width:-1], packed_[:, -1].round().astype(np.int64)


def row_features(kept: AttentionRecorder) -> np.ndarray:
    """Per row: rollout importances, then every map's per-head normalized entropy.

    Shape: ``(B, T + Σ H)``, maps in :attr:`AttentionRecorder.keys` order.
    """
    layers: list[dict[str, np.ndarray]] = [{} for _ in kept.layers]
    entropies = []
    for layer, map_id in kept.keys:
        w = kept.weights(layer, map_id)  # (B, H, Tq, Tk)
        layers[layer][map_id] = w.numpy()
        entropies.append(normalized_entropy(w).mean(dim=-1).numpy())  # (B, H)
    n_num, n_cat = _token_counts(layers[0])
    return np.concatenate([rollout_importance(layers, n_num, n_cat), *entropies], axis=1)


def _token_counts(maps: Mapping[str, np.ndarray]) -> tuple[int, int]:
    """``(Tn, Tc)`` of one layer's maps ``(..., Tq, Tk)``; 0 for an absent stream."""
    n_num = n_cat = 0
    for map_id, w in maps.items():
        query, key = map_id.split("_")
        sizes = {query: w.shape[-2], key: w.shape[-1]}
        n_num, n_cat = sizes.get("num", n_num), sizes.get("cat", n_cat)
    return n_num, n_cat


def _layer_token_names(
    layer: MultiResolutionTabularAttention, sizes: tuple[int, int]
) -> dict[str, tuple[str, ...]]:
    names: dict[str, tuple[str, ...]] = {}
    for stream, size in zip(("num", "cat"), sizes, strict=True):
        given = tuple(layer.token_names.get(stream, ()))
        if given and len(given) != size:
            raise ValueError(
                f"layer token_names[{stream!r}] has {len(given)} names for {size} tokens"
            )
        names[stream] = given or tuple(f"{stream} {i + 1}" for i in range(size))
    return names


def build_atlas(
    stream: AttentionRecorder,
    keys: Sequence[CohortKey],
    labels: Sequence[str],
    counts: np.ndarray,
    sums: np.ndarray,
    sums_sq: np.ndarray,
) -> AttentionAtlas:
    present = [i for i in range(len(keys)) if counts[i] > 0]
    recorder_keys = [ALL if i == 0 else keys[i] for i in present]
    means, stds, head_mean_stds, entropy = {}, {}, {}, {}
    row_stats = [
        StreamStats(torch.from_numpy(sums[i]), torch.from_numpy(sums_sq[i]), int(counts[i]))
        for i in present
    ]
    row_mean = torch.stack([s.mean() for s in row_stats]).numpy().astype(np.float32)
    row_std = torch.stack([s.std() for s in row_stats]).numpy().astype(np.float32)
    shapes: list[dict[str, np.ndarray]] = [{} for _ in stream.layers]
    for layer, map_id in stream.keys:
        per_cohort = [stream.cohort_stats(layer, map_id, key) for key in recorder_keys]
        means[(layer, map_id)] = torch.stack([s.mean() for s in per_cohort]).float().numpy()
        stds[(layer, map_id)] = torch.stack([s.std() for s in per_cohort]).float().numpy()
        head_means = [
            stream.cohort_stats(layer, map_id, key, head_mean=True) for key in recorder_keys
        ]
        head_mean_stds[(layer, map_id)] = torch.stack([s.std() for s in head_means]).float().numpy()
        shapes[layer][map_id] = means[(layer, map_id)]
    token_names = tuple(
        _layer_token_names(layer, _token_counts(maps))
        for layer, maps in zip(stream.layers, shapes, strict=True)
    )
    n_tokens = offset = sum(_token_counts(shapes[0]))
    for key in stream.keys:
        heads = means[key].shape[1]
        entropy[key] = row_mean[:, offset : offset + heads]
        offset += heads
    return AttentionAtlas(
        layer_names=tuple(stream.layer_names),
        token_names=token_names,
        cohorts=tuple(keys[i] for i in present),
        cohort_labels=tuple(labels[i] for i in present),
        counts=counts[present].astype(np.int64),
        means=means,
        stds=stds,
        head_mean_stds=head_mean_stds,
        entropy=entropy,
        rollout_mean=row_mean[:, :n_tokens],
        rollout_std=row_std[:, :n_tokens],
    )
