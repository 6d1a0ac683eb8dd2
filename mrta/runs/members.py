"""The seed members of a run: models of one configuration, trained on one split from different
initial seeds (``mrta train --seeds N``).

Member 0 is the run's model (``weights.safetensors``, ``history.json``); ``members.json`` lists
every member's seed and own test metrics, and the training of members 1 on, whose weights are
``member-K.safetensors`` (:func:`mrta.runs.manifest.member_weights`). The run predicts with
their mean (:class:`mrta.nn.ensemble.SeedEnsemble`); its ``metrics.json`` scores that mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from mrta.training.loop import TrainResult

#: What an ensemble's metrics say of its predictions (``metrics["ensemble"]["prediction"]``).
ENSEMBLE_PREDICTION = (
    "the mean of the members' predictions: of their class probabilities for classification, of "
    "their predicted values (on the target's training scale) for regression"
)


@dataclass
class Member:
    """One seed member: its model, initial seed, own test metrics and training."""

    model: nn.Module
    init_seed: int
    metrics: dict[str, Any]
    training: TrainResult


def members_facts(members: Sequence[Member]) -> dict[str, Any]:
    """The contents of ``members.json``: every member's seed and metrics, and the training of
    members 1 on (member 0's is the run's ``history.json``)."""
    return {
        "members": [
            {
                "seed": member.init_seed,
                "metrics": member.metrics,
                **({"training": member.training.to_dict()} if k else {}),
            }
            for k, member in enumerate(members)
        ]
    }


def parse_members(facts: Mapping[str, Any], max_members: int) -> list[dict[str, Any]]:
    """The entries of ``members.json``, checked: between 2 and `max_members` of them, each
    with an integer seed and metrics, members 1 on with their training. Raises ``ValueError``
    (the run loader turns it into a ``RunError``)."""
    entries = facts["members"]
    if not isinstance(entries, list) or not 2 <= len(entries) <= max_members:
        raise ValueError(f"members.json must list 2 to {max_members} members")
    parsed = []
    for k, entry in enumerate(entries):
        seed = entry["seed"]
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"member {k} has no integer seed")
        parsed.append(
            {
                "seed": seed,
                "metrics": dict(entry["metrics"]),
                "training": TrainResult.from_dict(entry["training"]) if k else None,
            }
        )
    return parsed
