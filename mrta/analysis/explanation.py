"""An explanation: what was recorded and derived for one run's model on one table, each beside
its null (the untrained model, the control trained on shuffled labels, chance)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mrta.analysis.atlas import AttentionAtlas
from mrta.analysis.checks import AblationResult, MapAblationResult, most_learned_map, sanity_checks
from mrta.analysis.deletion import Faithfulness
from mrta.analysis.heads import HeadStats
from mrta.analysis.importance import ColumnImportances
from mrta.analysis.permutation import PermutationImportance
from mrta.analysis.stability import SeedStability
from mrta.analysis.verdict import Verdict


@dataclass
class Explanation:
    """What was recorded and derived for one run on one table."""

    atlas: AttentionAtlas  # the trained model, every cohort
    untrained: AttentionAtlas  # the untrained model, all rows: the architecture's null
    rows: int  # rows recorded
    sampled_from: int | None  # the table's rows with a target, when a sample was taken
    heads: list[HeadStats]
    divergence: list[dict[str, Any]]  # per map: from the untrained model, beside the control's
    control: AttentionAtlas | None = None  # the control model, all rows; None: none (yet)
    verdict: Verdict | None = None  # None: the test rows were not at hand
    verdict_note: str | None = None  # why there is no verdict
    ablation: AblationResult | None = None  # single heads zeroed
    mean_ablation: AblationResult | None = None  # single heads replaced by their mean output
    map_ablation: MapAblationResult | None = None  # whole maps zeroed
    permutation: PermutationImportance | None = None  # on the ranking half of the test rows
    #: every method's column importance on the ranking half of the test rows
    importance: ColumnImportances | None = None
    #: every method's deletion curve on the other half, against random orders
    faithfulness: Faithfulness | None = None
    #: rollout-vs-permutation agreement of the nulls: "untrained" and "control", when checked
    null_agreement: dict[str, Any] = field(default_factory=dict)
    #: what survives another seed, for a run of several seed members (member 0 is `atlas`)
    stability: SeedStability | None = None

    @property
    def sanity(self) -> dict[str, Any]:
        """The sanity checks; the map divergences are the ones computed once in `explain`."""
        checks = sanity_checks(self.atlas, self.permutation)
        return {**checks, "null_agreement": self.null_agreement, "map_divergence": self.divergence}

    @property
    def worth_reading(self) -> bool:
        """Whether the verdict says the model is worth reading (no verdict: no)."""
        return self.verdict is not None and self.verdict.worth_reading

    def first_map(self) -> tuple[int, str]:
        """The map to show first: the most learned one (see
        :func:`~mrta.analysis.checks.most_learned_map`), else the first map."""
        return most_learned_map(self.divergence) or self.atlas.map_keys[0]
