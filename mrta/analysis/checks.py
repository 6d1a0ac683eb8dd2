"""What the model does when parts of it are removed, and checks that its attention means something.

Interventions, on a bounded, seeded sample of validation rows, each reported as the change in
loss and metric (changed minus baseline):

- :func:`ablate_heads` zeroes one head at a time (through ``block.head_mask``);
- :func:`permutation_importance` shuffles one input column at a time.

Sanity checks: :func:`rollout_agreement` (does the rollout rank the columns as the permutation
importance does?) and :func:`map_divergence` (did training move each map away from the
untrained model's?). Every result is a dataclass or dict of plain values that serialises to
JSON (see :func:`mrta.report.exports.json_ready`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import stats
from torch import Tensor, nn

from mrta.analysis.atlas import AttentionAtlas
from mrta.analysis.cohorts import ALL_ROWS, CohortKey
from mrta.analysis.collect import DEFAULT_BATCH_SIZE, ProgressFn
from mrta.analysis.inputs import Inputs, attention_layers, split_inputs
from mrta.analysis.stats import head_divergence
from mrta.training.inference import batches, evaluating, model_device
from mrta.training.losses import ScoreFn

#: ``fn(logits, targets)`` -> a number (a tensor of one element is fine), over all rows at once.
CHECK_ROWS = 2000  # rows of the sample: deltas of a few 0.001 are visible, runs stay short
DEFAULT_REPEATS = 3  # shuffles per column: enough for a spread, cheap enough for 30 columns


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


def _delta(changed: float | None, baseline: float | None) -> float | None:
    return None if changed is None or baseline is None else changed - baseline


# -- head ablation ---------------------------------------------------------------------------
@dataclass(frozen=True)
class HeadAblation:
    """Loss and metric with one head zeroed, and their change from the baseline."""

    layer: int
    map_id: str
    head: int
    loss: float
    metric: float | None
    loss_delta: float
    metric_delta: float | None


@dataclass(frozen=True)
class AblationResult:
    """:func:`ablate_heads`' baseline and one entry per head."""

    rows: int
    baseline_loss: float
    baseline_metric: float | None
    heads: tuple[HeadAblation, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AblationResult:
        """Inverse of :func:`mrta.report.exports.json_ready` on a result, for cached runs."""
        return cls(
            rows=data["rows"],
            baseline_loss=data["baseline_loss"],
            baseline_metric=data["baseline_metric"],
            heads=tuple(HeadAblation(**entry) for entry in data["heads"]),
        )

    def effect(self, layer: int, map_id: str, head: int) -> HeadAblation | None:
        """The entry of one head, ``None`` if it was not ablated."""
        for entry in self.heads:
            if (entry.layer, entry.map_id, entry.head) == (layer, map_id, head):
                return entry
        return None


def ablate_heads(
    model: nn.Module,
    data: Inputs,
    targets: Tensor | np.ndarray | None = None,
    *,
    loss_fn: ScoreFn,
    metric_fn: ScoreFn | None = None,
    max_rows: int = CHECK_ROWS,
    seed: int = 0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: ProgressFn | None = None,
) -> AblationResult:
    """Zero each head of each map of each layer in turn and measure loss and metric.

    The head's output is multiplied by 0 before the block's output projection (the projection's
    bias stays), combined with any ``head_mask`` already set, which is restored afterwards.
    """
    sample = bounded_sample(data, targets, max_rows, seed)
    base_loss, base_metric = score_sample(model, sample, loss_fn, metric_fn, batch_size)
    blocks = [
        (index, map_id, block)
        for index, layer in enumerate(attention_layers(model))
        for map_id, block in layer.attention_blocks().items()
    ]
    total = sum(block.num_heads for *_, block in blocks)
    entries = []
    for index, map_id, block in blocks:
        previous = block.head_mask
        for head in range(block.num_heads):
            mask = torch.ones(block.num_heads)
            mask[head] = 0.0
            block.head_mask = mask if previous is None else previous.cpu() * mask
            try:
                loss, metric = score_sample(model, sample, loss_fn, metric_fn, batch_size)
            finally:
                block.head_mask = previous
            entries.append(
                HeadAblation(
                    index, map_id, head, loss, metric, loss - base_loss, _delta(metric, base_metric)
                )
            )
            if progress is not None:
                progress(len(entries), total, f"ablating layer {index} {map_id} head {head}")
    return AblationResult(len(sample.targets), base_loss, base_metric, tuple(entries))


# -- permutation importance ------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnImportance:
    """How much shuffling one input column hurts: mean and std over the repeats."""

    column: str
    stream: str  # "num" or "cat"
    loss_increase: float
    loss_increase_std: float
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
        return cls(
            rows=data["rows"],
            repeats=data["repeats"],
            seed=data["seed"],
            baseline_loss=data["baseline_loss"],
            baseline_metric=data["baseline_metric"],
            columns=tuple(ColumnImportance(**column) for column in data["columns"]),
        )

    def loss_increases(self) -> dict[str, float]:
        """Mean loss increase per column."""
        return {c.column: c.loss_increase for c in self.columns}


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
    progress: ProgressFn | None = None,
) -> PermutationImportance:
    """Shuffle each input column's tokens across the sample's rows and measure the damage.

    A numerical column's value and missing-indicator move together; a categorical column's
    index moves. Column names are ``model.numerical_tokens`` and ``model.categorical_tokens``.
    """
    sample = bounded_sample(data, targets, max_rows, seed)
    base_loss, base_metric = score_sample(model, sample, loss_fn, metric_fn, batch_size)
    columns = [("num", j, name) for j, name in enumerate(model.numerical_tokens)]
    columns += [("cat", j, name) for j, name in enumerate(model.categorical_tokens)]
    rng = np.random.default_rng(seed)
    results = []
    for done, (stream, j, name) in enumerate(columns, start=1):
        losses, metrics = [], []
        for _ in range(repeats):
            order = torch.from_numpy(rng.permutation(len(sample.targets)))
            shuffled = _shuffle_column(sample, stream, j, order)
            loss, metric = score_sample(model, shuffled, loss_fn, metric_fn, batch_size)
            losses.append(loss - base_loss)
            metrics.append(_delta(metric, base_metric))
        results.append(
            ColumnImportance(
                column=name,
                stream=stream,
                loss_increase=float(np.mean(losses)),
                loss_increase_std=float(np.std(losses)),
                metric_delta=None if metrics[0] is None else float(np.mean(metrics)),
            )
        )
        if progress is not None:
            progress(done, len(columns), f"shuffling {name}")
    return PermutationImportance(
        len(sample.targets), repeats, seed, base_loss, base_metric, tuple(results)
    )


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


# -- sanity checks ---------------------------------------------------------------------------
def rollout_agreement(
    rollout: Mapping[str, float], permutation: Mapping[str, float]
) -> dict[str, object]:
    """Spearman rank correlation of two per-column importances, on the columns both have.

    Returns ``{"spearman": rho, "p_value": p, "columns": n}``; ``rho`` and ``p`` are ``None``
    with fewer than 3 columns or when either side is constant (no ranking to compare).
    """
    names = [name for name in rollout if name in permutation]
    a = np.array([rollout[name] for name in names], dtype=np.float64)
    b = np.array([permutation[name] for name in names], dtype=np.float64)
    if len(names) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return {"spearman": None, "p_value": None, "columns": len(names)}
    result = stats.spearmanr(a, b)
    return {
        "spearman": float(result.statistic),
        "p_value": float(result.pvalue),
        "columns": len(names),
    }


def map_divergence(
    atlas: AttentionAtlas, reference: AttentionAtlas, cohort: CohortKey = ALL_ROWS
) -> list[dict[str, object]]:
    """Per layer and map, how far the mean maps moved from ``reference`` (the untrained model).

    ``divergence`` is the mean over heads of :func:`mrta.analysis.heads.head_divergence` (JS, base 2, in
    ``[0, 1]``), ``max_head_divergence`` the largest head's.
    """
    i, j = atlas.index(cohort), reference.index(cohort)
    rows: list[dict[str, object]] = []
    for layer, map_id in atlas.map_keys:
        per_head = head_divergence(
            atlas.means[(layer, map_id)][i], reference.means[(layer, map_id)][j]
        )
        rows.append(
            {
                "layer": layer,
                "layer_name": atlas.layer_names[layer],
                "map_id": map_id,
                "divergence": float(per_head.mean()),
                "max_head_divergence": float(per_head.max()),
            }
        )
    return rows


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
