"""Fitting a model: the training loop, inference in batches, the task losses, held-out metrics and
baselines, the devices, models trained at once in processes, the race of two settings, and a
worker's place in a distributed run."""

from mrta.training.evaluate import compare_with_baselines, metrics
from mrta.training.inference import evaluating, predict_logits
from mrta.training.loop import Progress, TrainResult, fit
from mrta.training.race import Race, Racer
from mrta.training.world import World

__all__ = [
    "Progress",
    "Race",
    "Racer",
    "TrainResult",
    "World",
    "compare_with_baselines",
    "evaluating",
    "fit",
    "metrics",
    "predict_logits",
]
