"""Record attention weights through forward hooks on the attention blocks.

Two modes:

- ``"keep"``: every batch's weights ``(B, H, Tq, Tk)`` are kept (detached, on the CPU, float32)
  up to ``max_bytes``; past it the forward pass raises :class:`RecordingLimitError`.
- ``"stream"``: per cohort, float64 sums, sums of squares and row counts, so that mean and
  standard-deviation maps over a whole dataset take constant memory (values are centred on a
  fixed per-cell shift, the first batch's mean, so the variance suffers no cancellation).
  The same sums are kept of each row's head-averaged map ``(Tq, Tk)``, whose standard deviation
  over rows is not one of the heads' (heads co-vary across rows).
  Every row goes to the cohort ``"all"``, added as each block runs. With ``cohorts=True`` the
  batch is also held until :meth:`AttentionRecorder.commit` adds it to more cohorts, given as
  boolean row masks once they are known (a predicted class is known only after the forward
  pass).

Maps are keyed by ``(layer, map_id)``: ``layer`` is the index of a
:class:`~mrta.nn.layer.MultiResolutionTabularAttention` in ``module.modules()`` order and ``map_id``
one of :data:`~mrta.nn.layer.MAP_IDS`.

Example::

    with AttentionRecorder(model, mode="stream", cohorts=True) as rec:
        for x_num, x_cat in batches:
            logits = model(x_num, x_cat)
            rec.commit({"pred=1": logits.argmax(-1) == 1})
    mean, std = rec.mean(0, "cat_num"), rec.std(0, "cat_num")   # (H, Tq, Tk) each
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn

from mrta.errors import RecordingLimitError
from mrta.nn.attention import AttentionBlock
from mrta.nn.layer import MultiResolutionTabularAttention
from mrta.streams import MapKey

ALL = "all"  # the cohort every streamed row belongs to
DEFAULT_MAX_BYTES = 1 << 30  # keep-mode cap: 1 GiB of weights is far more than a screen shows


COMMIT_BLOCK_BYTES = 1 << 23  # per step of a commit: bounds temporaries; fewer, larger ops


@dataclass
class StreamStats:
    """Running float64 sums for one cohort of one map. Shape: ``(H, Tq, Tk)`` each, or
    ``(Tq, Tk)`` for the head-averaged map.

    ``total`` and ``total_sq`` sum ``w - shift`` and its square, where ``shift`` (a fixed value
    per cell near the typical weight, or 0) keeps the variance free of cancellation.
    """

    total: Tensor
    total_sq: Tensor
    count: int = 0
    shift: Tensor | float = 0.0

    def mean(self) -> Tensor:
        return self.shift + self.total / max(self.count, 1)

    def std(self) -> Tensor:
        """Population standard deviation per cell."""
        n = max(self.count, 1)
        return (self.total_sq / n - (self.total / n).square()).clamp_min(0).sqrt()


class AttentionRecorder:
    """Attach forward hooks to every attention block under ``module``.

    Args:
        module: a :class:`MultiResolutionTabularAttention` or any module containing some.
        mode: ``"keep"`` every batch, or ``"stream"`` running sums per cohort.
        max_bytes: keep-mode memory cap for the recorded weights.
        cohorts: stream mode: hold each batch until :meth:`commit` files it under cohorts
            besides ``"all"``. Without it, nothing is held and ``commit`` takes no cohorts.

    Use as a context manager, or call :meth:`attach` and :meth:`detach`.
    """

    def __init__(
        self,
        module: nn.Module,
        mode: Literal["keep", "stream"] = "keep",
        max_bytes: int = DEFAULT_MAX_BYTES,
        cohorts: bool = False,
    ) -> None:
        if mode not in ("keep", "stream"):
            raise ValueError(f"mode must be 'keep' or 'stream', got {mode!r}")
        if cohorts and mode != "stream":
            raise ValueError("cohorts=True needs mode='stream': keep mode keeps every row")
        self.module = module
        self.mode = mode
        self.max_bytes = max_bytes
        self.cohorts = cohorts
        self.layers: list[MultiResolutionTabularAttention] = [
            m for m in module.modules() if isinstance(m, MultiResolutionTabularAttention)
        ]
        if not self.layers:
            raise ValueError(
                f"module {type(module).__name__} contains no MultiResolutionTabularAttention layer"
            )
        names = {id(m): n for n, m in module.named_modules()}
        #: A display name per layer: its own ``name``, else its path in ``module``.
        self.layer_names = [
            m.name or names[id(m)] or f"layer{i}" for i, m in enumerate(self.layers)
        ]
        self.kept: dict[MapKey, list[Tensor]] = {}
        self.stats: dict[MapKey, dict[Hashable, StreamStats]] = {}
        #: Stream mode: per map and cohort, the sums of each row's head-averaged map ``(Tq, Tk)``.
        self.head_mean_stats: dict[MapKey, dict[Hashable, StreamStats]] = {}
        self._pending: dict[MapKey, Tensor] = {}
        self._shifts: dict[MapKey, Tensor] = {}  # per map: float64 (H*Tq*Tk,)
        self._head_mean_shifts: dict[MapKey, Tensor] = {}  # per map: float64 (Tq*Tk,)
        self._buffers: dict[MapKey, Tensor] = {}  # per map: the pending batch, (B, H, Tq, Tk)
        self._kept_bytes = 0
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._blocks: list[AttentionBlock] = []

    # -- attaching -------------------------------------------------------------------------
    def attach(self) -> AttentionRecorder:
        if self._handles:
            raise RuntimeError("this recorder is already attached")
        for index, layer in enumerate(self.layers):
            for map_id, block in layer.attention_blocks().items():
                hook = self._make_hook((index, map_id))
                self._handles.append(block.register_forward_hook(hook))
                block.record_weights += 1
                self._blocks.append(block)
        if self.cohorts:
            # A new forward pass files the previous batch under "all" if nobody committed it.
            self._handles.append(self.module.register_forward_pre_hook(lambda *_: self.commit()))
        return self

    def detach(self) -> None:
        """Remove every hook; a held batch is committed to ``"all"`` first."""
        self.commit()
        for handle in self._handles:
            handle.remove()
        for block in self._blocks:
            block.record_weights -= 1
        self._handles.clear()
        self._blocks.clear()

    def __enter__(self) -> AttentionRecorder:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def _make_hook(self, key: MapKey):
        def hook(block: AttentionBlock, args: tuple, output: tuple[Tensor, Tensor | None]) -> None:
            weights = output[1]
            assert weights is not None, "a recording block must return its attention weights"
            weights = weights.detach()
            if self.mode == "keep":
                self._keep(key, weights.to("cpu", torch.float32))  # (B, H, Tq, Tk)
            elif not self.cohorts:
                self._accumulate(key, weights.to("cpu", torch.float32), [ALL], None)
            else:
                # Copied into a buffer reused batch after batch: holding the block's own
                # buffer until the commit would make every forward pass allocate it anew.
                buffer = self._buffers.get(key)
                if buffer is None or buffer.shape != weights.shape:
                    buffer = self._buffers[key] = torch.empty(weights.shape, dtype=torch.float32)
                self._pending[key] = buffer.copy_(weights)

        return hook

    def _keep(self, key: MapKey, weights: Tensor) -> None:
        size = weights.numel() * weights.element_size()
        if self._kept_bytes + size > self.max_bytes:
            raise RecordingLimitError(
                f"keeping every batch's attention would exceed max_bytes={self.max_bytes:,}; "
                "record in mode='stream' to aggregate a whole dataset, or raise max_bytes"
            )
        self._kept_bytes += size
        self.kept.setdefault(key, []).append(weights)

    # -- streaming -------------------------------------------------------------------------
    def commit(self, cohorts: Mapping[Hashable, Tensor] | None = None) -> None:
        """File the held batch under ``"all"`` and each cohort whose row mask ``(B,)`` is given.

        Needs ``cohorts=True`` at construction to take cohorts; does nothing when no batch is
        held.
        """
        if cohorts and not self.cohorts:
            raise ValueError(
                "this recorder adds each batch to 'all' as it runs; create it with "
                "AttentionRecorder(..., mode='stream', cohorts=True) to commit cohorts"
            )
        if not self._pending:
            return
        batch = next(iter(self._pending.values())).shape[0]
        keys: list[Hashable] = [ALL]
        rows = [torch.ones(batch)]
        for cohort, mask in (cohorts or {}).items():
            mask = torch.as_tensor(mask, device="cpu")
            if mask.dtype != torch.bool or mask.shape != (batch,):
                raise ValueError(
                    f"cohort {cohort!r} must be a bool row mask of shape ({batch},), got "
                    f"{mask.dtype} of shape {tuple(mask.shape)}"
                )
            keys.append(cohort)
            rows.append(mask.to(torch.float32))
        membership = torch.stack(rows)  # (K, B)
        for key, weights in self._pending.items():
            self._accumulate(key, weights, keys, membership)
        self._pending.clear()

    def _accumulate(
        self, key: MapKey, weights: Tensor, keys: list[Hashable], membership: Tensor | None
    ) -> None:
        """Add one batch ``(B, H, Tq, Tk)`` and its head means ``(B, Tq, Tk)`` to the sums of each
        cohort; ``membership`` ``(K, B)`` marks its rows (``None``: every row, one cohort)."""
        _add_batch(self.stats.setdefault(key, {}), self._shifts, key, weights, keys, membership)
        _add_batch(
            self.head_mean_stats.setdefault(key, {}),
            self._head_mean_shifts,
            key,
            weights.mean(dim=1),
            keys,
            membership,
        )

    # -- combining -------------------------------------------------------------------------
    def all_reduce(
        self,
        cohorts: Sequence[Hashable],
        shapes: Mapping[MapKey, Sequence[int]] | None = None,
        group: Any = None,
    ) -> None:
        """Stream mode: add up the statistics of every process of a ``torch.distributed``
        group, each of which recorded other rows; afterwards each holds those of all the rows.

        Every process calls it with the same `cohorts` (those it may have streamed, in one
        order) and `shapes` (``(H, Tq, Tk)`` per map; default: the maps recorded here, which
        a process that recorded nothing must give). Per map, and again for its head mean, one
        float64 all-reduce (SUM) of each cohort's sum and sum of squares of the weights and its
        row count; each process then centres them on its own shift again. Cohorts not in
        `cohorts` are dropped.
        """
        if self.mode != "stream":
            raise ValueError("all_reduce needs mode='stream': keep mode holds no sums")
        self.commit()
        shapes = shapes if shapes is not None else {k: self._shape(k) for k in self.stats}
        for key in sorted(shapes):
            shape = tuple(shapes[key])
            self.stats[key] = _reduce(
                self.stats.get(key, {}), self._shifts, key, shape, cohorts, group
            )
            self.head_mean_stats[key] = _reduce(
                self.head_mean_stats.get(key, {}),
                self._head_mean_shifts,
                key,
                shape[1:],
                cohorts,
                group,
            )

    def _shape(self, key: MapKey) -> tuple[int, ...]:
        return tuple(next(iter(self.stats[key].values())).total.shape)

    # -- reading ---------------------------------------------------------------------------
    @property
    def keys(self) -> list[MapKey]:
        """The ``(layer, map_id)`` pairs recorded so far."""
        self.commit()
        return sorted(self.kept.keys() | self.stats.keys())

    def weights(self, layer: int, map_id: str) -> Tensor:
        """Keep mode: all kept batches of one map, concatenated. Shape: ``(N, H, Tq, Tk)``."""
        batches = self.kept.get((layer, map_id))
        if not batches:
            raise KeyError(f"no weights kept for layer {layer}, map {map_id!r}")
        return torch.cat(batches)

    def cohort_stats(
        self, layer: int, map_id: str, cohort: Hashable = ALL, head_mean: bool = False
    ) -> StreamStats:
        """Stream mode: the running sums of one cohort of one map, ``(H, Tq, Tk)``, or with
        ``head_mean`` those of its rows' head-averaged maps, ``(Tq, Tk)``."""
        self.commit()
        try:
            return (self.head_mean_stats if head_mean else self.stats)[(layer, map_id)][cohort]
        except KeyError:
            raise KeyError(
                f"nothing streamed for layer {layer}, map {map_id!r}, cohort {cohort!r}"
            ) from None

    def mean(self, layer: int, map_id: str, cohort: Hashable = ALL) -> Tensor:
        """Mean map over the rows seen. Shape: ``(H, Tq, Tk)``, float64."""
        if self.mode == "keep":
            return self.weights(layer, map_id).to(torch.float64).mean(dim=0)
        return self.cohort_stats(layer, map_id, cohort).mean()

    def std(self, layer: int, map_id: str, cohort: Hashable = ALL) -> Tensor:
        """Population standard deviation per cell. Shape: ``(H, Tq, Tk)``, float64."""
        if self.mode == "keep":
            return self.weights(layer, map_id).to(torch.float64).std(dim=0, correction=0)
        return self.cohort_stats(layer, map_id, cohort).std()

    def token_names(self, layer: int, map_id: str) -> tuple[list[str], list[str]] | None:
        """``(query names, key names)`` of a map, when the layer knows its token names."""
        names = self.layers[layer].token_names
        query_stream, key_stream = map_id.split("_")
        if query_stream in names and key_stream in names:
            return list(names[query_stream]), list(names[key_stream])
        return None


def _column_blocks(rows: int, cols: int) -> list[slice]:
    step = max(1, COMMIT_BLOCK_BYTES // (4 * rows))
    return [slice(s, min(s + step, cols)) for s in range(0, cols, step)]


def _add_batch(
    per_cohort: dict[Hashable, StreamStats],
    shifts: dict[MapKey, Tensor],
    key: MapKey,
    values: Tensor,
    keys: list[Hashable],
    membership: Tensor | None,
) -> None:
    """Add one batch of values ``(B, ...)`` to the sums of each cohort in ``per_cohort``,
    centred on ``shifts[key]`` (set from this batch's mean when absent)."""
    batch = values.shape[0]
    flat = values.reshape(batch, -1)  # (B, C)
    if key not in shifts:  # the first batch's mean: near every later value
        shifts[key] = flat.mean(dim=0, dtype=torch.float64)
    shift = shifts[key]
    sums = torch.empty(len(keys), flat.shape[1], dtype=torch.float64)  # (K, C)
    sums_sq = torch.empty_like(sums)
    # One batch's sums are float32 over values centred by the shift (a few hundred terms
    # of the size of the spread: no cancellation), added to float64 totals. Column blocks
    # bound the temporaries' size.
    for cols in _column_blocks(batch, flat.shape[1]):
        block = flat[:, cols] - shift[cols].float()  # (B, c)
        if membership is None:
            sums[0, cols] = block.sum(dim=0)
            sums_sq[0, cols] = block.square_().sum(dim=0)
        else:
            sums[:, cols] = membership @ block
            sums_sq[:, cols] = membership @ block.square_()
    sums = sums.view(len(keys), *values.shape[1:])  # (K, ...)
    sums_sq = sums_sq.view_as(sums)
    counts = [batch] if membership is None else membership.sum(dim=1).tolist()
    for i, cohort in enumerate(keys):
        if counts[i] == 0:
            continue
        stats = per_cohort.get(cohort)
        if stats is None:
            per_cohort[cohort] = StreamStats(
                sums[i].clone(), sums_sq[i].clone(), 0, shift.view_as(sums[i])
            )
            stats = per_cohort[cohort]
        elif stats.total.shape != sums[i].shape:
            raise ValueError(
                f"map {key} changed shape between batches: {tuple(stats.total.shape)} "
                f"then {tuple(sums[i].shape)}; stream batches with equal token counts"
            )
        else:
            stats.total += sums[i]
            stats.total_sq += sums_sq[i]
        stats.count += int(counts[i])


def _reduce(
    per_cohort: Mapping[Hashable, StreamStats],
    shifts: dict[MapKey, Tensor],
    key: MapKey,
    shape: tuple[int, ...],
    cohorts: Sequence[Hashable],
    group: Any,
) -> dict[Hashable, StreamStats]:
    """The statistics ``per_cohort`` of one map (values of ``shape``) summed over the processes
    of ``group`` (one float64 all-reduce), centred on ``shifts[key]`` again."""
    size = math.prod(shape)
    moments = torch.zeros(len(cohorts), 2 * size + 1, dtype=torch.float64)
    for i, cohort in enumerate(cohorts):
        stats = per_cohort.get(cohort)
        if stats is None:
            continue
        shift = torch.as_tensor(stats.shift, dtype=torch.float64).expand(shape)
        n = stats.count
        total = stats.total + n * shift  # the plain sums, without the shift
        moments[i, :size] = total.reshape(-1)
        moments[i, size:-1] = (
            stats.total_sq + 2 * shift * stats.total + n * shift.square()
        ).reshape(-1)
        moments[i, -1] = n
    dist.all_reduce(moments, op=dist.ReduceOp.SUM, group=group)
    shift = shifts.get(key)
    if shift is None:  # nothing recorded here: centre on the first cohort's mean
        counted = moments[moments[:, -1] > 0]
        shift = (
            counted[0, :size] / counted[0, -1]
            if len(counted)
            else torch.zeros(size, dtype=torch.float64)
        )
        shifts[key] = shift
    c = shift.view(shape)
    reduced: dict[Hashable, StreamStats] = {}
    for i, cohort in enumerate(cohorts):
        n = int(moments[i, -1])
        if n == 0:
            continue
        total = moments[i, :size].view(shape)
        total_sq = moments[i, size:-1].view(shape)
        reduced[cohort] = StreamStats(
            total - n * c, total_sq - 2 * c * total + n * c.square(), n, c
        )
    return reduced
