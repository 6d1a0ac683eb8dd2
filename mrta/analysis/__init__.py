"""Reading attention: the recorder (forward hooks), atlases of cohorts, per-head statistics,
column importances (permutation, rollout, value norm, relevance) with their deletion curves,
interventions and checks. Takes models and tensors, never runs."""

from mrta.analysis.atlas import AttentionAtlas
from mrta.analysis.cohorts import ALL_ROWS, CohortSpec
from mrta.analysis.collect import collect_attention
from mrta.analysis.explanation import Explanation
from mrta.analysis.recorder import AttentionRecorder

__all__ = [
    "ALL_ROWS",
    "AttentionAtlas",
    "AttentionRecorder",
    "CohortSpec",
    "Explanation",
    "collect_attention",
]
