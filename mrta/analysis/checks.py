"""What the model does when parts of it are removed, and checks that its attention means something.

Interventions, on a bounded, seeded sample of validation rows, each reported as the change in
loss and metric (changed minus baseline):

- :func:`ablate_heads` removes one head at a time, :func:`ablate_maps` every head of one map at
  once (heads of a map are often redundant where the map is not); both either zero the heads'
  outputs (``method="zero"``, through ``block.head_mask``) or replace them by their mean over the
  sample's rows (``method="mean"``, through ``block.head_mask`` and ``block.head_offset``:
  the head then still adds its average, but nothing that depends on the row)
  (:mod:`mrta.analysis.permutation` shuffles one input column at a time).

Sanity checks: :func:`rollout_agreement` (does the rollout rank the columns as the permutation
importance does? with an exact or permutation p-value from
:mod:`mrta.analysis.rank_agreement`) and :func:`map_divergence` (did training move each map away
from the untrained model's?). Every result is a dataclass or dict of plain values that serialises to
JSON (see :func:`mrta.report.exports.json_ready`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mrta.analysis.atlas import AttentionAtlas
from mrta.analysis.cohorts import ALL_ROWS, CohortKey
from mrta.analysis.collect import DEFAULT_BATCH_SIZE, ProgressFn
from mrta.analysis.inputs import Inputs, attention_layers
from mrta.analysis.permutation import PermutationImportance
from mrta.analysis.rank_agreement import spearman_agreement
from mrta.analysis.scoring import CHECK_ROWS, Sample, bounded_sample, change, score_sample
from mrta.analysis.stats import head_divergence, map_label
from mrta.jsonable import from_json_ready
from mrta.nn.attention import AttentionBlock
from mrta.streams import MapKey
from mrta.training.losses import ScoreFn

#: How an ablation removes a head: zero its output, or replace it by its mean over the rows.
ABLATION_METHODS = ("zero", "mean")


# -- ablation --------------------------------------------------------------------------------
@dataclass(frozen=True)
class HeadAblation:
    """Loss and metric with one head removed, and their change from the baseline."""

    layer: int
    map_id: str
    head: int
    loss: float
    metric: float | None
    loss_delta: float
    metric_delta: float | None


@dataclass(frozen=True)
class AblationResult:
    """:func:`ablate_heads`' baseline and one entry per head; ``method`` is ``"zero"`` or
    ``"mean"`` (results cached before mean-ablation existed read as ``"zero"``)."""

    rows: int
    baseline_loss: float
    baseline_metric: float | None
    heads: tuple[HeadAblation, ...]
    method: str = "zero"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AblationResult:
        """Inverse of :func:`mrta.report.exports.json_ready` on a result, for cached runs."""
        return from_json_ready(cls, data, heads=HeadAblation)

    def effect(self, layer: int, map_id: str, head: int) -> HeadAblation | None:
        """The entry of one head, ``None`` if it was not ablated."""
        for entry in self.heads:
            if (entry.layer, entry.map_id, entry.head) == (layer, map_id, head):
                return entry
        return None


@dataclass(frozen=True)
class MapAblation:
    """Loss and metric with every head of one map removed, and their change from the baseline."""

    layer: int
    map_id: str
    loss: float
    metric: float | None
    loss_delta: float
    metric_delta: float | None


@dataclass(frozen=True)
class MapAblationResult:
    """:func:`ablate_maps`' baseline and one entry per layer and map; ``method`` as in
    :class:`AblationResult`."""

    rows: int
    baseline_loss: float
    baseline_metric: float | None
    maps: tuple[MapAblation, ...]
    method: str = "zero"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MapAblationResult:
        """Inverse of :func:`mrta.report.exports.json_ready` on a result, for cached runs."""
        return from_json_ready(cls, data, maps=MapAblation)

    def effect(self, layer: int, map_id: str) -> MapAblation | None:
        """The entry of one map, ``None`` if it was not ablated."""
        for entry in self.maps:
            if (entry.layer, entry.map_id) == (layer, map_id):
                return entry
        return None


def _blocks(model: nn.Module) -> list[tuple[int, str, AttentionBlock]]:
    return [
        (index, map_id, block)
        for index, layer in enumerate(attention_layers(model))
        for map_id, block in layer.attention_blocks().items()
    ]


def mean_head_outputs(
    model: nn.Module, sample: Sample, batch_size: int = DEFAULT_BATCH_SIZE
) -> dict[MapKey, Tensor]:
    """Every head's output (before the block's output projection, after any ``head_mask`` and
    ``head_offset`` already set) averaged over the sample's rows, per query token.

    Blocks that do not run on this model (the cross maps of a one-stream model) have no entry.

    Shape: ``{(layer, map_id): (H, Tq, head_dim)}`` float32, on the CPU.
    """
    sums: dict[MapKey, Tensor] = {}
    handles = []

    def hook(key: MapKey) -> Callable[[nn.Module, tuple[Tensor, ...]], None]:
        def record(_module: nn.Module, args: tuple[Tensor, ...]) -> None:
            total = args[0].detach().double().sum(dim=0).cpu()  # (Tq, d_model)
            sums[key] = total if key not in sums else sums[key] + total

        return record

    try:
        for index, map_id, block in _blocks(model):
            handle = block.out_proj.register_forward_pre_hook(hook((index, map_id)))
            handles.append(handle)
        score_sample(model, sample, lambda *_: torch.zeros(()), None, batch_size)
    finally:
        for handle in handles:
            handle.remove()
    means = {}
    blocks = {(index, map_id): block for index, map_id, block in _blocks(model)}
    for key, total in sums.items():
        block = blocks[key]
        tq = total.shape[0]
        mean = (total / len(sample.targets)).view(tq, block.num_heads, block.head_dim)
        means[key] = mean.transpose(0, 1).float().contiguous()
    return means


@contextmanager
def removed_heads(
    block: AttentionBlock, heads: list[int], mean: Tensor | None = None
) -> Iterator[None]:
    """Within the block, ``heads`` removed: zeroed, or with ``mean`` replaced by their mean
    output; combined with any ``head_mask``/``head_offset`` already set (the other heads keep
    theirs), which are restored on exit.

    Shape: mean ``(H, Tq, head_dim)`` (from :func:`mean_head_outputs`).
    """
    previous_mask, previous_offset = block.head_mask, block.head_offset
    mask = torch.ones(block.num_heads)
    mask[heads] = 0.0
    block.head_mask = mask if previous_mask is None else previous_mask.detach().cpu() * mask
    if mean is not None or previous_offset is not None:
        block.head_offset = _offset(block.num_heads, heads, previous_offset, mean)
    try:
        yield
    finally:
        block.head_mask, block.head_offset = previous_mask, previous_offset


def _offset(
    num_heads: int, heads: list[int], previous: Tensor | None, mean: Tensor | None
) -> Tensor:
    """``previous`` (zeros if ``None``) with ``heads`` set to their ``mean`` (0 if ``None``).

    Shape: previous broadcastable to ``(B, H, Tq, hd)``; mean ``(H, Tq, hd)`` -> at least
    ``(H, 1, 1)``, broadcastable to ``(B, H, Tq, hd)``.
    """
    if previous is None:
        base = torch.zeros(num_heads, 1, 1)
    else:
        base = previous.detach().cpu().float()
        base = base.reshape((1,) * max(0, 3 - base.dim()) + tuple(base.shape))
    shape = torch.broadcast_shapes(base.shape, (num_heads, 1, 1) if mean is None else mean.shape)
    offset = torch.broadcast_to(base, shape).clone()
    offset[..., heads, :, :] = 0.0 if mean is None else mean[heads]
    return offset


def _check_method(method: str) -> None:
    if method not in ABLATION_METHODS:
        raise ValueError(f"method must be one of {ABLATION_METHODS}, got {method!r}")


def ablate_heads(
    model: nn.Module,
    data: Inputs,
    targets: Tensor | np.ndarray | None = None,
    *,
    loss_fn: ScoreFn,
    metric_fn: ScoreFn | None = None,
    method: str = "zero",
    max_rows: int = CHECK_ROWS,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressFn | None = None,
) -> AblationResult:
    """Remove each head of each map of each layer in turn and measure loss and metric.

    ``method="zero"``: the head's output is multiplied by 0 before the block's output projection
    (the projection's bias stays). ``method="mean"``: the head's output is replaced by its mean
    over the sample's rows (per query token, measured on the unablated model first, see
    :func:`mean_head_outputs`). Either is combined with any ``head_mask``/``head_offset``
    already set, which are restored afterwards.
    """
    _check_method(method)
    sample = bounded_sample(data, targets, max_rows, seed)
    base_loss, base_metric = score_sample(model, sample, loss_fn, metric_fn, batch_size)
    means = mean_head_outputs(model, sample, batch_size) if method == "mean" else {}
    blocks = _blocks(model)
    total = sum(block.num_heads for *_, block in blocks)
    verb = "ablating" if method == "zero" else "mean-ablating"
    entries = []
    for index, map_id, block in blocks:
        for head in range(block.num_heads):
            with removed_heads(block, [head], means.get((index, map_id))):
                loss, metric = score_sample(model, sample, loss_fn, metric_fn, batch_size)
            entries.append(
                HeadAblation(
                    index, map_id, head, loss, metric, loss - base_loss, change(metric, base_metric)
                )
            )
            if progress is not None:
                progress(len(entries), total, f"{verb} layer {index} {map_id} head {head}")
    return AblationResult(len(sample.targets), base_loss, base_metric, tuple(entries), method)


def ablate_maps(
    model: nn.Module,
    data: Inputs,
    targets: Tensor | np.ndarray | None = None,
    *,
    loss_fn: ScoreFn,
    metric_fn: ScoreFn | None = None,
    method: str = "zero",
    max_rows: int = CHECK_ROWS,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressFn | None = None,
) -> MapAblationResult:
    """Remove every head of one map at once, for each layer and map in turn, and measure loss
    and metric; ``method`` and the rest as :func:`ablate_heads`.

    Zeroing a whole map leaves the block's output at its projection's bias, so the residual
    stream goes on without that map; mean-ablating it leaves the map's average contribution but
    nothing that depends on the row.
    """
    _check_method(method)
    sample = bounded_sample(data, targets, max_rows, seed)
    base_loss, base_metric = score_sample(model, sample, loss_fn, metric_fn, batch_size)
    means = mean_head_outputs(model, sample, batch_size) if method == "mean" else {}
    blocks = _blocks(model)
    verb = "zeroing" if method == "zero" else "mean-ablating"
    entries = []
    for index, map_id, block in blocks:
        with removed_heads(block, list(range(block.num_heads)), means.get((index, map_id))):
            loss, metric = score_sample(model, sample, loss_fn, metric_fn, batch_size)
        entries.append(
            MapAblation(index, map_id, loss, metric, loss - base_loss, change(metric, base_metric))
        )
        if progress is not None:
            progress(len(entries), len(blocks), f"{verb} layer {index} {map_id}")
    return MapAblationResult(len(sample.targets), base_loss, base_metric, tuple(entries), method)


# -- sanity checks ---------------------------------------------------------------------------
def rollout_agreement(
    rollout: Mapping[str, float], permutation: Mapping[str, float]
) -> dict[str, object]:
    """Spearman rank correlation of two per-column importances, on the columns both have.

    Returns ``{"spearman": rho, "p_value": p, "p_value_method": m, "columns": n}``: ``p`` is
    two-sided, the probability under random orders of the columns of a ``|rho|`` at least as
    large (:func:`mrta.analysis.rank_agreement.spearman_agreement`); ``m`` is ``"exact"``
    (every order enumerated, up to 9 columns) or ``"permutation"`` (seeded random orders).
    ``rho``, ``p`` and ``m`` are ``None`` with fewer than 3 columns or when either side is
    constant (no ranking to compare).
    """
    names = [name for name in rollout if name in permutation]
    a = np.array([rollout[name] for name in names], dtype=np.float64)
    b = np.array([permutation[name] for name in names], dtype=np.float64)
    if len(names) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return {"spearman": None, "p_value": None, "p_value_method": None, "columns": len(names)}
    result = spearman_agreement(a, b)
    return {
        "spearman": result.spearman,
        "p_value": result.p_value,
        "p_value_method": result.method,
        "columns": len(names),
    }


#: A map counts as learned where its divergence from the untrained model is more than this many
#: times the control's (the same architecture trained on shuffled labels).
LEARNED_FACTOR = 2.0


def map_divergence(
    atlas: AttentionAtlas,
    reference: AttentionAtlas,
    cohort: CohortKey = ALL_ROWS,
    control: AttentionAtlas | None = None,
) -> list[dict[str, object]]:
    """Per layer and map, how far the mean maps moved from ``reference`` (the untrained model),
    beside how far the control's moved (its null: training on shuffled labels moves maps too).

    ``divergence`` is the mean over heads of :func:`mrta.analysis.stats.head_divergence` (JS,
    base 2, in ``[0, 1]``), ``max_head_divergence`` the largest head's; ``control_divergence``
    the same for the control's all-rows maps (``None`` without a control); ``learned`` whether
    ``divergence`` exceeds :data:`LEARNED_FACTOR` times ``control_divergence`` (``None`` without
    a control; never for a map that is uniform or trivial by construction, which shows nothing
    however far it moved); ``label`` is ``"uniform"``, ``"trivial by construction"`` or ``None``
    (:func:`~mrta.analysis.stats.map_label` of the trained map).
    """
    i, j = atlas.index(cohort), reference.index(cohort)
    rows: list[dict[str, object]] = []
    for layer, map_id in atlas.map_keys:
        untrained = reference.means[(layer, map_id)][j]
        per_head = head_divergence(atlas.means[(layer, map_id)][i], untrained)
        control_divergence = None
        if control is not None:
            control_map = control.means[(layer, map_id)][control.index(ALL_ROWS)]
            control_divergence = float(head_divergence(control_map, untrained).mean())
        divergence = float(per_head.mean())
        label = map_label(atlas.means[(layer, map_id)][i])
        rows.append(
            {
                "layer": layer,
                "layer_name": atlas.layer_names[layer],
                "map_id": map_id,
                "divergence": divergence,
                "max_head_divergence": float(per_head.max()),
                "control_divergence": control_divergence,
                "learned": None
                if control_divergence is None
                else label is None and divergence > LEARNED_FACTOR * control_divergence,
                "label": label,
            }
        )
    return rows


def most_learned_map(divergence: Sequence[Mapping[str, Any]]) -> tuple[int, str] | None:
    """The map a reader should see first: the one whose divergence from the untrained model most
    exceeds its control's, or, without a control, the one that moved most; never a map that is
    uniform or trivial by construction while another is not. ``None`` for no maps.

    Shape: entries of :func:`map_divergence` -> ``(layer, map_id)``.
    """
    if not divergence:
        return None

    def excess(entry: Mapping[str, Any]) -> tuple[bool, float]:
        control = entry.get("control_divergence")
        moved = float(entry["divergence"]) - (0.0 if control is None else float(control))
        return entry.get("label") is None, moved

    best = max(divergence, key=excess)
    return int(best["layer"]), str(best["map_id"])


def sanity_checks(
    atlas: AttentionAtlas,
    permutation: PermutationImportance | None = None,
    reference: AttentionAtlas | None = None,
    cohort: CohortKey = ALL_ROWS,
) -> dict[str, object]:
    """Both checks under clear keys, ``None`` where their input is missing.

    ``rollout_vs_permutation``: :func:`rollout_agreement` of ``atlas.importance`` with the
    permutation loss increases; ``rollout_vs_permutation_by_stream``: the same within the
    numerical and within the categorical columns (the rollout splits its importance half and
    half between the streams by construction, so the within-stream agreement is the one that
    measures the maps); ``map_divergence``: :func:`map_divergence` from ``reference``.
    """
    agreement = by_stream = None
    if permutation is not None:
        rollout, increases = atlas.importance(cohort), permutation.loss_increases()
        agreement = rollout_agreement(rollout, increases)
        by_stream = {
            stream: rollout_agreement({n: rollout[n] for n in names if n in rollout}, increases)
            for stream, names in atlas.token_names[0].items()
        }
    return {
        "rollout_vs_permutation": agreement,
        "rollout_vs_permutation_by_stream": by_stream,
        "map_divergence": None if reference is None else map_divergence(atlas, reference, cohort),
    }
