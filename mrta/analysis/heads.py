"""Per-head statistics: how focused each head is, where it looks most, how far it moved in
training, and what removing it costs.

Entropy and divergence are measured per query row of a map (each row is a distribution over the
keys) and then averaged over the query rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrta.analysis.atlas import AttentionAtlas
from mrta.analysis.checks import AblationResult
from mrta.analysis.cohorts import CohortKey
from mrta.analysis.stats import head_divergence, map_label, normalized_entropy


@dataclass(frozen=True)
class HeadStats:
    """One head of one map of one layer.

    ``entropy`` averages the normalized entropy of every row's own map (how focused the head
    is on a given row); ``mean_map_entropy`` is that of the cohort's mean map, which is higher
    when the head looks at different keys for different rows. ``max_weight`` is the largest
    cell of the mean map. ``divergence`` is :func:`head_divergence` from the same head in a
    reference atlas (the untrained model's), ``loss_delta``/``metric_delta`` the change when the
    head is zeroed (ablated minus baseline); ``None`` when not measured.
    """

    layer: int
    layer_name: str
    map_id: str
    head: int
    entropy: float
    mean_map_entropy: float
    max_weight: float
    max_query: str
    max_key: str
    divergence: float | None = None
    loss_delta: float | None = None
    metric_delta: float | None = None


def head_table(
    atlas: AttentionAtlas,
    cohort: CohortKey = ("all",),
    reference: AttentionAtlas | None = None,
    ablation: AblationResult | None = None,
) -> list[HeadStats]:
    """Every layer × map × head of ``atlas``, measured on ``cohort``'s maps.

    Args:
        reference: an atlas of the same model before training, for the divergence.
        ablation: :func:`mrta.analysis.checks.ablate_heads` results, for the loss and metric deltas.
    """
    index = atlas.index(cohort)
    rows: list[HeadStats] = []
    for layer, map_id in atlas.map_keys:
        mean = atlas.means[(layer, map_id)][index]  # (H, Tq, Tk)
        queries, keys = atlas.names(layer, map_id)
        divergence = None
        if reference is not None:
            ref = reference.means[(layer, map_id)][reference.index(cohort)]
            divergence = head_divergence(mean, ref)
        mean_map_entropy = normalized_entropy(mean).mean(axis=-1)  # (H,)
        for head in range(mean.shape[0]):
            q, k = np.unravel_index(int(np.argmax(mean[head])), mean[head].shape)
            effect = None if ablation is None else ablation.effect(layer, map_id, head)
            rows.append(
                HeadStats(
                    layer=layer,
                    layer_name=atlas.layer_names[layer],
                    map_id=map_id,
                    head=head,
                    entropy=float(atlas.entropy[(layer, map_id)][index, head]),
                    mean_map_entropy=float(mean_map_entropy[head]),
                    max_weight=float(mean[head, q, k]),
                    max_query=queries[q],
                    max_key=keys[k],
                    divergence=None if divergence is None else float(divergence[head]),
                    loss_delta=None if effect is None else effect.loss_delta,
                    metric_delta=None if effect is None else effect.metric_delta,
                )
            )
    return rows


def map_labels(
    atlas: AttentionAtlas, cohort: CohortKey = ("all",)
) -> dict[tuple[int, str], str | None]:
    """:func:`mrta.analysis.stats.map_label` of every layer and map's mean map on ``cohort``
    (all heads together): ``"trivial by construction"``, ``"uniform"`` or ``None``."""
    index = atlas.index(cohort)
    return {key: map_label(atlas.means[key][index]) for key in atlas.map_keys}
