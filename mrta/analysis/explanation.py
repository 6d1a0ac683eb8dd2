"""An explanation: what was recorded and derived for one run's model on one table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mrta.analysis.atlas import AttentionAtlas
from mrta.analysis.checks import (
    AblationResult,
    PermutationImportance,
    sanity_checks,
)
from mrta.analysis.heads import HeadStats


@dataclass
class Explanation:
    """What was recorded and derived for one run on one table."""

    atlas: AttentionAtlas  # the trained model, every cohort
    untrained: AttentionAtlas  # the untrained model, all rows: the sanity baseline
    rows: int  # rows recorded
    sampled_from: int | None  # the table's rows with a target, when a sample was taken
    heads: list[HeadStats]
    divergence: list[dict[str, Any]]  # per map: how far from the untrained model
    ablation: AblationResult | None = None
    permutation: PermutationImportance | None = None

    @property
    def sanity(self) -> dict[str, Any]:
        """The sanity checks; the map divergences are the ones computed once in `explain`."""
        return {**sanity_checks(self.atlas, self.permutation), "map_divergence": self.divergence}
