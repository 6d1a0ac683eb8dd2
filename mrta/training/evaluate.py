"""Held-out metrics of the model, and the baselines it is judged against.

Classification: accuracy, ROC AUC (one-vs-rest macro average for multiclass), log loss and a
confusion matrix labelled with the classes. Regression: RMSE, MAE and R², in the target's own
units. The baselines see the same split as the model: scikit-learn's HistGradientBoosting
(native categorical support, early stopping on the validation split, never the test split) and
the trivial prediction (the training split's class frequencies, or its mean).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from threadpoolctl import threadpool_limits
from torch import nn

from mrta.config import default_threads
from mrta.data.preprocessing import Preprocessor
from mrta.data.sets import SetOptions, group_targets, set_baseline_features
from mrta.task import Task
from mrta.training.inference import predict_logits, predictions_in_units

#: Metrics reported per task, in display order.
CLASSIFICATION_METRICS = ("accuracy", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
#: HistGradientBoosting's native categorical support takes category codes below its 255 bins.
HGB_MAX_CATEGORIES = 255
HGB_MAX_ITER = 1000  # early stopping on the validation split decides the real number


def metrics(
    task: str, y: np.ndarray, predictions: np.ndarray, class_labels: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Classification metrics from class indices and probabilities, or regression metrics."""
    if task == Task.REGRESSION:
        return regression_metrics(y, predictions)
    return classification_metrics(y, predictions, class_labels)


def classification_metrics(
    y: np.ndarray, probabilities: np.ndarray, class_labels: tuple[str, ...]
) -> dict[str, Any]:
    """Accuracy, ROC AUC, log loss and the confusion matrix (rows: true class, columns:
    predicted class, both in `class_labels` order).

    ROC AUC is the one-vs-rest macro average over the classes that occur in `y` with other
    classes beside them; ``None`` when `y` holds one class only.

    Shape: y ``(N,)`` class indices; probabilities ``(N, C)``.
    """
    n_classes = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    present = np.unique(y)
    if len(present) < 2:
        auc = None
    elif n_classes == 2:
        auc = float(roc_auc_score(y, probabilities[:, 1]))
    else:
        auc = float(np.mean([roc_auc_score(y == c, probabilities[:, c]) for c in present]))
    return {
        "accuracy": float(accuracy_score(y, predicted)),
        "roc_auc": auc,
        "log_loss": float(log_loss(y, np.clip(probabilities, 1e-15, 1.0), labels=range(n_classes))),
        "confusion_matrix": {
            "labels": list(class_labels) or [str(c) for c in range(n_classes)],
            "matrix": confusion_matrix(y, predicted, labels=range(n_classes)).tolist(),
        },
        "rows": len(y),
    }


def regression_metrics(y: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """RMSE, MAE and R² in the target's units; R² is ``None`` for fewer than two rows.

    Shape: y, predicted ``(N,)``.
    """
    return {
        "rmse": float(np.sqrt(mean_squared_error(y, predicted))),
        "mae": float(mean_absolute_error(y, predicted)),
        "r2": float(r2_score(y, predicted)) if len(y) >= 2 else None,
        "rows": len(y),
    }


def trivial_predictions(task: str, y_train: np.ndarray, rows: int, n_classes: int) -> np.ndarray:
    """The training split's class frequencies for every row (majority class), or its mean."""
    if task == Task.REGRESSION:
        return np.full(rows, float(np.mean(y_train)))
    frequencies = np.bincount(y_train, minlength=n_classes) / len(y_train)
    return np.tile(frequencies, (rows, 1))


def hgb_predictions(
    preprocessor: Preprocessor,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    evaluation: pd.DataFrame,
    *,
    seed: int = 0,
    threads: int | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit HistGradientBoosting on `train`, stopping early on `validation`; predict `evaluation`.

    Numbers go in as they are (missing values natively); each categorical column as the
    preprocessor's codes, the levels past the 254 most frequent joining the reserved code 0.
    Runs inside ``threadpool_limits`` sized to the physical cores.

    Returns the predictions (as :func:`to_predictions`) and facts about the fit
    (iterations, seconds).
    """
    schema = preprocessor.schema
    n_num = len(schema.numerical_tokens)
    categorical = np.arange(n_num + len(schema.categorical_tokens)) >= n_num
    x_train, x_validation, x_evaluation = (
        _hgb_features(preprocessor, frame) for frame in (train, validation, evaluation)
    )
    y_train, y_validation = (schema.encode_target(frame) for frame in (train, validation))
    return fit_hgb(
        schema.task.value,
        (x_train, y_train),
        (x_validation, y_validation),
        x_evaluation,
        n_classes=len(schema.class_labels),
        categorical=categorical,
        seed=seed,
        threads=threads,
    )


def fit_hgb(
    task: str,
    train: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray],
    evaluation: np.ndarray,
    *,
    n_classes: int,
    categorical: np.ndarray | None = None,
    seed: int = 0,
    threads: int | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """HistGradientBoosting on features ``(x, y)`` of `train`, stopped early on `validation`;
    the predictions for `evaluation` (as :func:`to_predictions`) and facts about the fit.

    Shape: x ``(N, F)`` float64 (NaN = missing), y ``(N,)``; `categorical` ``(F,)`` bool.
    """
    regression = task == Task.REGRESSION
    model = (HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier)(
        max_iter=HGB_MAX_ITER,
        early_stopping=True,
        categorical_features=categorical if categorical is not None and categorical.any() else None,
        random_state=seed,
    )
    start = time.perf_counter()
    with threadpool_limits(limits=threads or default_threads()):
        model.fit(*train, X_val=validation[0], y_val=validation[1])
        if regression:
            predictions = model.predict(evaluation)
        else:
            predictions = np.zeros((len(evaluation), n_classes))
            predictions[:, model.classes_] = model.predict_proba(evaluation)
    info = {"iterations": int(model.n_iter_), "seconds": round(time.perf_counter() - start, 3)}
    return predictions, info


def _hgb_features(preprocessor: Preprocessor, frame: pd.DataFrame) -> np.ndarray:
    """Raw numbers (infinities as missing) beside capped category codes. Shape: ``(N, Tn + Tc)``."""
    numbers = preprocessor.schema.features(frame).numerical
    numbers = np.where(np.isfinite(numbers), numbers, np.nan)
    codes = preprocessor.transform(frame, with_target=False).categorical.numpy()
    codes = np.where(codes < HGB_MAX_CATEGORIES, codes, 0)
    return np.column_stack([numbers, codes.astype(np.float64)])


def compare_with_baselines(
    model: nn.Module,
    preprocessor: Preprocessor,
    train: pd.DataFrame,
    validation: pd.DataFrame,
    evaluation: pd.DataFrame,
    *,
    sets: SetOptions | None = None,
    seed: int = 0,
    threads: int | None = None,
) -> dict[str, Any]:
    """The model's, HistGradientBoosting's and the trivial baseline's metrics on `evaluation`:
    per row, or per group with `sets` (set resolution).

    The baselines learn from `train` (HistGradientBoosting stops early on `validation`). For
    sets, HistGradientBoosting learns from per-group aggregates
    (:func:`~mrta.data.sets.set_baseline_features`, over all of a group's rows, levels from the
    preprocessor).
    """
    schema = preprocessor.schema
    task = schema.task
    if sets is None:
        examples = preprocessor.transform(evaluation, with_target=False)
        y = y_hgb = schema.encode_target(evaluation)
        y_train = schema.encode_target(train)
        hgb, hgb_info = hgb_predictions(
            preprocessor, train, validation, evaluation, seed=seed, threads=threads
        )
    else:
        examples = sets.make(evaluation, preprocessor, seed=seed)
        y = examples.target.numpy()
        (y_train, y_hgb), hgb, hgb_info = _aggregate_baseline(
            preprocessor, sets, (train, validation, evaluation), seed=seed, threads=threads
        )
    logits = predict_logits(model, examples)
    predicted = predictions_in_units(preprocessor, logits)
    labels = schema.class_labels
    trivial = trivial_predictions(task, y_train, len(y), len(labels))
    return {
        "model": metrics(task, y, predicted, labels),
        "hgb": {**metrics(task, y_hgb, hgb, labels), **hgb_info},
        "trivial": metrics(task, y, trivial, labels),
    }


def _aggregate_baseline(
    preprocessor: Preprocessor,
    sets: SetOptions,
    frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
    *,
    seed: int,
    threads: int | None,
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray, dict[str, Any]]:
    """HistGradientBoosting on per-group aggregates of the training, validation and evaluation
    rows: ``((training targets, evaluation targets), predictions, facts about the fit)``."""
    schema = preprocessor.schema
    features = []
    for frame in frames:
        targets = group_targets(frame, schema, sets.group_by).dropna()
        table = set_baseline_features(
            frame, schema, sets.group_by, levels=preprocessor.vocabularies
        ).loc[targets.index]
        features.append((table.to_numpy(np.float64), targets.to_numpy()))
    if schema.task.is_classification:
        features = [(x, y.astype(np.int64)) for x, y in features]
    hgb, info = fit_hgb(
        schema.task,
        features[0],
        features[1],
        features[2][0],
        n_classes=len(schema.class_labels),
        seed=seed,
        threads=threads,
    )
    return (features[0][1], features[2][1]), hgb, {**info, "input": "aggregates"}
