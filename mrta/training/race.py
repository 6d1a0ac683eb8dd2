"""A race of two settings within one time budget: the settings asked for and a challenger train
at once, and the challenger is kept only where it scores higher on the validation rows beyond
their noise.

No one setting reached gradient boosting on every table of the quality benchmark
(``benchmarks/quality.py``): ``diamonds`` (37,758 training rows) wanted the periodic embeddings'
σ = 1, twice the learning rate and no dropout, which scored lower on validation on the seven
other tables. So a run may race the two (:func:`mrta.pipelines.race.race`): each in a process of
its own on one core, for the same time budget, so that the race takes the wall time of one run
on 2 cores; validation rows choose (:func:`choose`), test rows never do. The settings asked for
are kept unless the challenger scores higher on the validation rows beyond their resampling
noise (the 5 % quantile of its paired bootstrap lead above 0): the higher score alone chose the
challenger on ``wage`` (seed 3 of ``benchmarks/results/higher_score_rule/race_seeds_3-5.json``)
on a validation lead of 0.006 of R², and it scored 0.256 on test, where the kept models of seeds
0 to 5 otherwise scored 0.313 to 0.333. The price of the race: each racer steps on one core,
where one run alone may use two.

The challenger has one attention layer: on ``diamonds``, where it is kept, its score followed
the steps one core gives it in the budget, and with one layer it took 1,596 steps in 30 s
against 832 with two and scored higher on validation on every seed (R² 0.9823 against 0.9814
over seeds 0–5, ``benchmarks/results/challenger_layers.json``). It trains without column gates
(:mod:`mrta.nn.gates`, on for the defaults): with ``gate_penalty`` 0.003 on both racers,
``diamonds``, where every column carries the target, fell short of gradient boosting beyond the
interval (``benchmarks/results/higher_score_rule/race_gates_0.003.json``).

:class:`Race` is what a run records of it (``config.json``'s ``race``): both racers' settings,
validation scores, steps and time, and which one was kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mrta.config import ModelConfig, TrainConfig

#: The racers' names, in the order they race: the settings asked for, then :func:`challenger`.
AS_ASKED = "the settings asked for"
CHALLENGER = "one layer, σ = 1, no dropout or gates, twice the rate"
#: What the challenger changes in the model settings asked for.
CHALLENGER_MODEL = {"plr_sigma": 1.0, "dropout": 0.0, "gate_penalty": 0.0, "num_layers": 1}
#: The challenger's learning rate over the one asked for (the batch by the rows scales both).
CHALLENGER_RATE = 2.0
#: The challenger is kept only where this quantile of its lead over the settings asked for, over
#: :data:`RESAMPLES` paired bootstrap resamples of the validation rows, is above 0: a one-sided
#: 95 % bound, so that a lead the validation rows' noise could give does not choose.
EVIDENCE_QUANTILE = 0.05
#: The bootstrap resamples of the validation rows behind the choice.
RESAMPLES = 1000
#: The ``mrta train`` flags of :data:`CHALLENGER_MODEL`'s settings, in its order: a user who
#: sets one of them has chosen it, so the race is not run unless asked for (``--race``).
RACED_FLAGS = ("--plr-sigma", "--dropout", "--gate-penalty", "--layers")


def challenger(model: ModelConfig, train: TrainConfig) -> tuple[ModelConfig, TrainConfig]:
    """The challenger of the settings `model` and `train`: one attention layer, the periodic
    embeddings' frequencies at σ = 1, no dropout, no column gates, twice the learning rate;
    everything else as asked (with linear tokens, σ is unused)."""
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


def choose(racers: Sequence[Racer], lead_low: float | None) -> int:
    """The index of the racer kept. The settings asked for (``racers[0]``) are kept unless the
    challenger (``racers[1]``) scores higher on the validation rows beyond resampling noise:
    `lead_low`, the :data:`EVIDENCE_QUANTILE` quantile of its paired bootstrap lead, above 0.
    Where a validation score is undefined (one class in the validation rows), the lower
    validation loss is kept; on a tie, the settings asked for."""
    assert len(racers) == 2, "a race has the settings asked for and one challenger"
    if any(racer.validation is None for racer in racers):
        return int(racers[1].validation_loss < racers[0].validation_loss)
    return int(lead_low is not None and lead_low > 0)


@dataclass(frozen=True)
class Race:
    """What a run records of its race: the racers, the metric that chose and the one kept."""

    metric: str  # r2 or roc_auc, on the validation rows
    racers: tuple[Racer, ...]
    kept: int  # index into racers
    #: The :data:`EVIDENCE_QUANTILE` quantile of the challenger's validation score minus the
    #: settings asked for's, over paired bootstrap resamples of the validation rows; None where
    #: a score is undefined, and for runs saved before the choice needed it (the higher score
    #: was kept then).
    lead_low: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.kept < len(self.racers):
            raise ValueError(f"kept must index one of {len(self.racers)} racers, got {self.kept}")

    @property
    def winner(self) -> Racer:
        """The racer the run kept."""
        return self.racers[self.kept]

    def rule(self) -> str:
        """The rule that chose, as it applied to this race."""
        if any(racer.validation is None for racer in self.racers):
            return f"validation {self.metric} undefined, the lower validation loss was kept"
        if self.lead_low is None:
            return f"the higher validation {self.metric} was kept"
        return (
            f"the challenger is kept only where its validation {self.metric} lead is above 0 "
            f"at the {EVIDENCE_QUANTILE:.0%} quantile of {RESAMPLES:,} paired bootstrap "
            f"resamples of the validation rows (here {self.lead_low:+.4f})"
        )

    def sentence(self) -> str:
        """What was raced and kept, and by what rule, in one sentence."""
        others = "; ".join(_result(racer) for k, racer in enumerate(self.racers) if k != self.kept)
        return (
            f"Two settings raced for the time budget, a core each, and {self.rule()}: "
            f"{_result(self.winner)}, against {others}."
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "metric": self.metric,
            "kept": self.kept,
            "racers": [racer.to_dict() for racer in self.racers],
            "lead_low": self.lead_low,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Race:
        """Inverse of `to_dict` (runs saved before ``lead_low``: None)."""
        racers = tuple(Racer.from_dict(racer) for racer in data["racers"])
        lead_low = data.get("lead_low")
        return cls(
            metric=str(data["metric"]),
            racers=racers,
            kept=int(data["kept"]),
            lead_low=None if lead_low is None else float(lead_low),
        )


def _result(racer: Racer) -> str:
    score = "undefined" if racer.validation is None else f"{racer.validation:.4f}"
    return f"{racer.name} ({score} in {racer.steps:,} steps)"
