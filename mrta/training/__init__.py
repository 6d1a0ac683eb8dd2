"""Fitting a model: the training loop, inference in batches, the task losses, held-out metrics and
baselines, the devices, and a worker's place in a distributed run."""

from mrta.training.evaluate import compare_with_baselines, metrics
from mrta.training.inference import evaluating, predict_logits
from mrta.training.loop import Progress, TrainResult, fit
from mrta.training.world import World

__all__ = [
    "Progress",
    "TrainResult",
    "World",
    "compare_with_baselines",
    "evaluating",
    "fit",
    "metrics",
    "predict_logits",
]
