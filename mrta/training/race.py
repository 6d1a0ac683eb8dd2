"""A race of two settings within one time budget: the settings asked for and a challenger train
at once, and the one that scores higher on the validation rows is kept.

No one setting reached gradient boosting on every table of the quality benchmark
(``benchmarks/quality.py``): ``diamonds`` (37,758 training rows) wanted the periodic
embeddings' σ = 1, twice the learning rate and no dropout, which scored lower on validation on
the seven other tables. So a run may race the two (:func:`mrta.pipelines.race.race`): each in a
process of its own on one core, for the same time budget, so that the race takes the wall time
of one run on 2 cores; validation rows choose (:func:`choose`), test rows never do. Measured in
``benchmarks/race.py``: validation chose the settings asked for (the defaults) on every seed of
seven tables and the challenger on every seed of ``diamonds``. The price: each racer steps on
one core, where one run alone may use two.

The challenger trains without column gates (:mod:`mrta.nn.gates`, off by default): with
``gate_penalty`` 0.003 on both racers, ``diamonds``, where every column carries the target,
fell short of gradient boosting beyond the interval; with the challenger ungated it did not
(``benchmarks/results/race_gates_0.003.json`` and ``race_gates_0.003_defaults_only.json``).

:class:`Race` is what a run records of it (``config.json``'s ``race``): both racers' settings,
validation scores, steps and time, and which one was kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mrta.config import ModelConfig, TrainConfig

#: The racers' names, in the order they race: the settings asked for, then :func:`challenger`.
AS_ASKED, CHALLENGER = "the settings asked for", "σ = 1, no dropout, twice the rate"
#: What the challenger changes in the model settings asked for.
CHALLENGER_MODEL = {"plr_sigma": 1.0, "dropout": 0.0, "gate_penalty": 0.0}
#: The challenger's learning rate over the one asked for (the batch by the rows scales both).
CHALLENGER_RATE = 2.0
#: The ``mrta train`` flags of :data:`CHALLENGER_MODEL`'s settings, in its order: a user who
#: sets one of them has chosen it, so the race is not run unless asked for (``--race``).
RACED_FLAGS = ("--plr-sigma", "--dropout", "--gate-penalty")


def challenger(model: ModelConfig, train: TrainConfig) -> tuple[ModelConfig, TrainConfig]:
    """The challenger of the settings `model` and `train`: the periodic embeddings'
    frequencies at σ = 1, no dropout, no column gates, twice the learning rate; everything else
    as asked (with linear tokens, σ is unused)."""
    rate = train.learning_rate * CHALLENGER_RATE
    return replace(model, **CHALLENGER_MODEL), replace(train, learning_rate=rate)


@dataclass(frozen=True)
class Racer:
    """One setting of a race and how it did."""

    name: str  # AS_ASKED or CHALLENGER
    model_config: ModelConfig
    train_config: TrainConfig
    #: The race's metric on the validation rows, in the target's units, with the weights kept
    #: (the best epoch's); None where it is undefined (one class in the validation rows).
    validation: float | None
    validation_loss: float  # the best epoch's validation loss (the racers share its scale)
    steps: int
    epochs: int
    seconds: float  # training time
    stop_reason: str

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "name": self.name,
            "model_config": self.model_config.to_dict(),
            "train_config": self.train_config.to_dict(),
            "validation": self.validation,
            "validation_loss": self.validation_loss,
            "steps": self.steps,
            "epochs": self.epochs,
            "seconds": self.seconds,
            "stop_reason": self.stop_reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Racer:
        """Inverse of `to_dict`."""
        validation = data["validation"]
        return cls(
            name=str(data["name"]),
            model_config=ModelConfig.from_dict(data["model_config"]),
            train_config=TrainConfig.from_dict(data["train_config"]),
            validation=None if validation is None else float(validation),
            validation_loss=float(data["validation_loss"]),
            steps=int(data["steps"]),
            epochs=int(data["epochs"]),
            seconds=float(data["seconds"]),
            stop_reason=str(data["stop_reason"]),
        )


def choose(racers: Sequence[Racer]) -> int:
    """The index of the racer kept: the higher validation score; between equal scores, or
    where a score is undefined, the lower validation loss; on a tie in both, the first (the
    settings asked for)."""

    def merit(racer: Racer) -> tuple[float, float]:
        undefined = any(r.validation is None for r in racers)
        score = -math.inf if undefined or racer.validation is None else racer.validation
        return score, -racer.validation_loss

    best = max(merit(racer) for racer in racers)
    return next(k for k, racer in enumerate(racers) if merit(racer) == best)


@dataclass(frozen=True)
class Race:
    """What a run records of its race: the racers, the metric that chose and the one kept."""

    metric: str  # r2 or roc_auc, on the validation rows
    racers: tuple[Racer, ...]
    kept: int  # index into racers

    def __post_init__(self) -> None:
        if not 0 <= self.kept < len(self.racers):
            raise ValueError(f"kept must index one of {len(self.racers)} racers, got {self.kept}")

    @property
    def winner(self) -> Racer:
        """The racer the run kept."""
        return self.racers[self.kept]

    def sentence(self) -> str:
        """What was raced and kept, in one sentence."""
        others = "; ".join(_result(racer) for k, racer in enumerate(self.racers) if k != self.kept)
        scores = [racer.validation for racer in self.racers]
        by_loss = None in scores or len(set(scores)) < len(scores)
        rule = (
            f"validation {self.metric} undefined or equal, the lower validation loss was kept"
            if by_loss
            else f"the higher validation {self.metric} was kept"
        )
        return (
            f"Two settings raced for the time budget, a core each, and {rule}: "
            f"{_result(self.winner)}, against {others}."
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "metric": self.metric,
            "kept": self.kept,
            "racers": [racer.to_dict() for racer in self.racers],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Race:
        """Inverse of `to_dict`."""
        racers = tuple(Racer.from_dict(racer) for racer in data["racers"])
        return cls(metric=str(data["metric"]), racers=racers, kept=int(data["kept"]))


def _result(racer: Racer) -> str:
    score = "undefined" if racer.validation is None else f"{racer.validation:.4f}"
    return f"{racer.name} ({score} in {racer.steps:,} steps)"
