"""A run's race of two settings (:mod:`mrta.training.race`): when a run may race
(:func:`race_refusal`), and the race itself (:func:`race`), which :func:`train_run` calls with
``race=True``."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mrta.analysis.verdict import paired_bootstrap
from mrta.config import ModelConfig, TrainConfig, default_threads
from mrta.data.preprocessing import Examples, Preprocessor
from mrta.nn.model import TabularAttentionModel
from mrta.runs.control import METRIC_OF_TASK
from mrta.task import Task
from mrta.training.evaluate import metrics
from mrta.training.inference import fit_smearing, predict_logits, predictions_in_units
from mrta.training.loop import Cancel, Progress, TrainResult
from mrta.training.parallel import fit_in_processes, on_cpu
from mrta.training.race import (
    AS_ASKED,
    CHALLENGER,
    EVIDENCE_QUANTILE,
    RESAMPLES,
    Race,
    Racer,
    challenger,
    choose,
)

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
    them) in the target's units, and the challenger's lead bootstrapped over those rows
    (:func:`challenger_lead_low`). Returns the kept model
    (:func:`~mrta.training.race.choose`: the challenger only where its lead is beyond the
    resampling noise), its training and the race's record (the kept racer's settings are the
    run's). The progress of the settings asked for goes to
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
    racers, predictions = [], []
    for name, (model_settings, train_settings), (model, training) in zip(
        names, settings, trained, strict=True
    ):
        predicted = validation_predictions(preprocessor, model, validation)
        predictions.append(predicted)
        racers.append(
            Racer(
                name=name,
                model_config=model_settings,
                train_config=train_settings,
                validation=_score(preprocessor, validation_targets, predicted, metric),
                validation_loss=training.best_validation_loss,
                steps=training.steps,
                epochs=training.epochs,
                seconds=training.elapsed,
                stop_reason=training.stop_reason,
            )
        )
    lead_low = None
    if all(racer.validation is not None for racer in racers):
        task = preprocessor.schema.task
        lead_low = challenger_lead_low(task, validation_targets, predictions, train_config.seed)
    record = Race(metric, tuple(racers), kept=choose(racers, lead_low), lead_low=lead_low)
    model, training = trained[record.kept]
    fit_smearing(preprocessor, model, validation)
    return model, training, record


def challenger_lead_low(
    task: Task, targets: np.ndarray, predictions: list[np.ndarray], seed: int
) -> float | None:
    """The :data:`~mrta.training.race.EVIDENCE_QUANTILE` quantile of the challenger's lead
    (``predictions[1]``'s validation metric minus ``predictions[0]``'s, ROC AUC or R² as `task`
    has it) over :data:`~mrta.training.race.RESAMPLES` paired bootstrap resamples of the
    validation rows (stratified by class for a classifier); ``None`` where every resample leaves
    it undefined.

    Shape: targets ``(N,)``; each prediction ``(N, C)`` probabilities or ``(N,)`` values."""
    lead = paired_bootstrap(
        targets,
        predictions[1],
        predictions[0],
        metric=METRIC_OF_TASK[task.value],
        resamples=RESAMPLES,
        seed=seed,
        stratify=task.is_classification,
    )
    lead = lead[np.isfinite(lead)]
    return float(np.quantile(lead, EVIDENCE_QUANTILE)) if len(lead) else None


def validation_predictions(
    preprocessor: Preprocessor, model: TabularAttentionModel, validation: Examples
) -> np.ndarray:
    """`model`'s predictions of the validation rows in the target's units (a log target's
    smearing factor fitted for `model` first, as the run would): probabilities ``(N, C)`` or
    values ``(N,)``."""
    fit_smearing(preprocessor, model, validation)
    return predictions_in_units(preprocessor, predict_logits(model, validation))


def _score(
    preprocessor: Preprocessor, targets: np.ndarray, predicted: np.ndarray, metric: str
) -> float | None:
    task = preprocessor.schema.task
    value = metrics(task, targets, predicted, preprocessor.schema.class_labels)[metric]
    return None if value is None else float(value)
