"""A run's race of two settings (:mod:`mrta.training.race`): when a run may race
(:func:`race_refusal`), and the race itself (:func:`race`), which :func:`train_run` calls with
``race=True``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mrta.config import ModelConfig, TrainConfig, default_threads
from mrta.data.preprocessing import Examples, Preprocessor
from mrta.nn.model import TabularAttentionModel
from mrta.runs.control import METRIC_OF_TASK
from mrta.training.evaluate import metrics
from mrta.training.inference import fit_smearing, predict_logits, predictions_in_units
from mrta.training.loop import Cancel, Progress, TrainResult
from mrta.training.parallel import fit_in_processes, on_cpu
from mrta.training.race import AS_ASKED, CHALLENGER, Race, Racer, challenger, choose

#: The phase :func:`train_run` names while a race trains.
RACING = "racing two settings at once, a process each (the progress of the settings asked for)"


def race_refusal(seeds: int, sets: bool, train_config: TrainConfig) -> str | None:
    """Why a run of `seeds` members (on sets, with `train_config`) cannot race; ``None`` where
    it can: one model of one prediction per row, on a CPU of 2 cores or more."""
    if sets:
        return "a run on sets trains one setting (the race was measured on runs of rows)"
    if seeds > 1:
        return "seed members already train at once, a core each"
    if not on_cpu(train_config):
        return "a race trains its two settings on a CPU, a core each, and this run trains on a GPU"
    if default_threads() < 2:
        return "a race trains its two settings at once, a core each, and this CPU has one core"
    return None


def race(
    preprocessor: Preprocessor,
    model_config: ModelConfig,
    train_config: TrainConfig,
    train: Examples,
    validation: Examples,
    validation_targets: np.ndarray,
    *,
    callback: Callable[[Progress], None] | None = None,
    cancel: Cancel = None,
) -> tuple[TabularAttentionModel, TrainResult, Race]:
    """The settings asked for (`model_config`, `train_config`) and their
    :func:`~mrta.training.race.challenger` trained at once, a process and core each
    (:func:`~mrta.training.parallel.fit_in_processes`), each within the time budget; each
    scored on the validation rows (`validation_targets`: their targets as the metrics take
    them) in the target's units. Returns the kept model, its training and the race's record
    (the kept racer's settings are the run's). The progress of the settings asked for goes to
    `callback`; `cancel` stops both. A log target's smearing factor is left fitted for the
    kept model."""
    settings = [(model_config, train_config), challenger(model_config, train_config)]
    names = (AS_ASKED, CHALLENGER)
    models = [(preprocessor.model_spec(model), training) for model, training in settings]
    labels = [f"the racer {name!r}" for name in names]
    scale = {"target_mean": preprocessor.target_mean, "target_std": preprocessor.target_std}
    trained = fit_in_processes(
        models, TabularAttentionModel, train, validation, callback=callback, cancel=cancel,
        names=labels, **scale,
    )  # fmt: skip
    metric = METRIC_OF_TASK[preprocessor.schema.task.value]
    racers = []
    for name, (model_settings, train_settings), (model, training) in zip(
        names, settings, trained, strict=True
    ):
        score = validation_score(preprocessor, model, validation, validation_targets, metric)
        racers.append(
            Racer(
                name=name,
                model_config=model_settings,
                train_config=train_settings,
                validation=score,
                validation_loss=training.best_validation_loss,
                steps=training.steps,
                epochs=training.epochs,
                seconds=training.elapsed,
                stop_reason=training.stop_reason,
            )
        )
    record = Race(metric=metric, racers=tuple(racers), kept=choose(racers))
    model, training = trained[record.kept]
    fit_smearing(preprocessor, model, validation)
    return model, training, record


def validation_score(
    preprocessor: Preprocessor,
    model: TabularAttentionModel,
    validation: Examples,
    targets: np.ndarray,
    metric: str,
) -> float | None:
    """`model`'s `metric` on the validation rows, in the target's units (a log target's
    smearing factor fitted for `model` first, as the run would): ``None`` where undefined."""
    fit_smearing(preprocessor, model, validation)
    predicted = predictions_in_units(preprocessor, predict_logits(model, validation))
    task = preprocessor.schema.task
    value = metrics(task, targets, predicted, preprocessor.schema.class_labels)[metric]
    return None if value is None else float(value)
