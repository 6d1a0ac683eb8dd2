"""A verdict that can say no: is this model's attention worth reading at all?

A model whose predictions are no better than chance, or no better than a control model trained
on shuffled labels, has attention maps that show how it fits noise, not how the columns relate.
:func:`judge` compares the model on the test split with

- the **trivial baseline**: ROC AUC 0.5 (classification) or R² 0 (regression), what a constant
  prediction scores;
- the **control**: the same architecture, split and initial seed trained on labels permuted
  within the training split (its test predictions; ``None`` while it is pending or when none was
  trained).

Each comparison is a **paired bootstrap** of the test split (:func:`paired_bootstrap`): the same
resampled rows score both sides, and the model wins the comparison when the 5th percentile of
the differences (model minus other) is above zero. For classification the resampling is
stratified: each class is resampled within itself, with its own count, so every resample has
the test split's class counts (and ROC AUC is defined on every one).

Metrics: ROC AUC for classification (binary: the probability of class 1; several classes: the
one-vs-rest macro average over the classes present in the test split, as
:func:`mrta.training.evaluate.classification_metrics` reports it), R² for regression. The point
values use :func:`sklearn.metrics.roc_auc_score` and :func:`sklearn.metrics.r2_score`; the
resamples use an exact vectorised equivalent (ROC AUC from the sorted scores and each row's count
in the resample, ties counting one half, as scikit-learn counts them), because 2,000 calls of
scikit-learn's per-resample function take seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.metrics import r2_score, roc_auc_score

from mrta.task import Task

DEFAULT_RESAMPLES = 1000  # the number: the 5th percentile rests on 50 resamples
LOW_PERCENTILE = 5.0  # the model wins a comparison when this percentile of the differences > 0
CHUNK_CELLS = 1 << 20  # resampled cells held at once: 8 MB of float64 whatever the test split

#: The metric of each task, and what the trivial (constant) prediction scores on it.
TASK_METRIC = {Task.BINARY: "roc_auc", Task.MULTICLASS: "roc_auc", Task.REGRESSION: "r2"}
TRIVIAL = {"roc_auc": 0.5, "r2": 0.0}
METRIC_LABELS = {"roc_auc": "ROC AUC", "r2": "R²"}
NO_CONTROL = "no control model to compare with (control pending or not trained)"

#: ``fn(y, predictions)`` on resampled rows -> one number per resample.
#: Shape: y ``(R, N)``, predictions ``(R, N)`` or ``(R, N, C)`` -> ``(R,)``.
Statistic = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Verdict:
    """Whether the model's attention is worth reading, and why; ``summary.json``'s ``"verdict"``.

    Attributes:
        worth_reading: the model beats both the trivial baseline and the control. Without a
            control (pending, or not trained) this is ``False``: a model that fits shuffled
            labels as well as real ones cannot be told apart from it, so the verdict cannot be
            yes until the control is there.
        reasons: one plain sentence per comparison (passed or failed), then notes.
        metric: ``"roc_auc"`` or ``"r2"``.
        model, trivial, control: the metric on the whole test split (``control`` ``None``
            without control predictions).
        vs_trivial_low, vs_control_low: the 5th percentile of the bootstrap differences
            (model minus trivial, model minus control); ``None`` without a control.
    """

    worth_reading: bool
    reasons: tuple[str, ...]
    metric: str
    model: float
    trivial: float
    control: float | None
    vs_trivial_low: float
    vs_control_low: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, ``reasons`` as a list: ``summary.json``'s ``"verdict"``."""
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**data, "reasons": tuple(data["reasons"])})


# -- resampling ------------------------------------------------------------------------------
def resample_indices(
    n_rows: int, resamples: int = DEFAULT_RESAMPLES, seed: int = 0, strata: np.ndarray | None = None
) -> np.ndarray:
    """The rows of each bootstrap resample, drawn with replacement by a seeded numpy Generator.

    With ``strata`` (a label per row, e.g. the class), each stratum is resampled within itself
    with its own count, so every resample has the same count of each label as the data; a
    resample lists its rows stratum by stratum (in sorted label order). Resample ``r`` is the
    same whatever ``resamples`` is (the first 1,000 of 2,000 are the 1,000).

    Shape: strata ``(N,)`` -> ``(R, N)`` int64.
    """
    return np.concatenate(list(_index_chunks(n_rows, resamples, seed, strata, chunk=resamples)))


def _index_chunks(
    n_rows: int, resamples: int, seed: int, strata: np.ndarray | None, chunk: int
) -> Iterator[np.ndarray]:
    """:func:`resample_indices` in blocks of at most ``chunk`` resamples: ``(r, N)`` each."""
    _check_count(n_rows, "n_rows")
    _check_count(resamples, "resamples")
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if strata is None:
        groups = [np.arange(n_rows)]
    else:
        strata = np.asarray(strata)
        if strata.shape != (n_rows,):
            raise ValueError(f"strata must have shape ({n_rows},), got {strata.shape}")
        _, inverse = np.unique(strata, return_inverse=True)
        groups = [np.flatnonzero(inverse == label) for label in range(inverse.max() + 1)]
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, chunk):
        block = np.empty((min(chunk, resamples - start), n_rows), dtype=np.int64)
        for row in block:  # one resample after another: chunking does not change the draws
            at = 0
            for members in groups:
                row[at : at + len(members)] = members[rng.integers(0, len(members), len(members))]
                at += len(members)
        yield block


def _check_count(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


# -- metrics on resamples --------------------------------------------------------------------
def _auc_columns(y: np.ndarray, scores: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(positive, scores)`` pairs whose ROC AUCs are averaged: one for binary, one per class
    present in ``y`` for several classes."""
    if scores.ndim == 1:
        return [(y == 1, scores)]
    if scores.shape[1] == 2:
        return [(y == 1, scores[:, 1])]
    return [(y == c, scores[:, c]) for c in np.unique(y)]


class _ResampledAuc:
    """ROC AUC of fixed scores on resamples given as each row's count in them: with the rows
    sorted by score once, the AUC of a resample is
    ``sum over score values v of pos(v) * (neg(< v) + neg(v) / 2) / (pos * neg)``."""

    def __init__(self, y: np.ndarray, scores: np.ndarray) -> None:
        self.parts = []
        for positive, column in _auc_columns(y, scores):
            order = np.argsort(column, kind="stable")
            ordered = column[order]
            starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
            ties = None if len(starts) == len(ordered) else starts
            self.parts.append((order, positive[order].astype(np.float64)[:, None], ties))

    def __call__(self, counts: np.ndarray) -> np.ndarray:
        """Shape: counts ``(N, r)`` -> ``(r,)``."""
        aucs = []
        for order, positive, ties in self.parts:
            weights = counts[order]  # (N, r), rows in score order
            pos, neg = weights * positive, weights * (1.0 - positive)
            if ties is not None:  # one row per distinct score
                pos, neg = np.add.reduceat(pos, ties, axis=0), np.add.reduceat(neg, ties, axis=0)
            below = np.cumsum(neg, axis=0) - neg
            pairs = pos.sum(axis=0) * neg.sum(axis=0)
            wins = (pos * (below + 0.5 * neg)).sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                aucs.append(np.where(pairs > 0, wins / pairs, np.nan))
        return np.mean(aucs, axis=0)


def _counts(indices: np.ndarray, n_rows: int) -> np.ndarray:
    """How often each row occurs in each resample, rows first.

    Shape: ``(r, N)`` -> ``(N, r)`` float64.
    """
    r = len(indices)
    flat = (indices * r + np.arange(r)[:, None]).ravel()
    return np.bincount(flat, minlength=n_rows * r).reshape(n_rows, r).astype(np.float64)


def _r2(y: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """R² of each resample; NaN where the resampled target is constant (R² undefined).

    Shape: ``(r, N)`` both -> ``(r,)``.
    """
    residual = ((y - predicted) ** 2).sum(axis=1)
    total = ((y - y.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    constant = np.ptp(y, axis=1) == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(constant, np.nan, 1.0 - residual / np.where(constant, 1.0, total))


def _scorer(
    metric: str | Statistic, y: np.ndarray, predictions: np.ndarray | float
) -> Callable[[np.ndarray, np.ndarray | None], np.ndarray]:
    """``fn(indices, counts)`` -> the metric of ``predictions`` on each resample."""
    if not isinstance(predictions, np.ndarray):
        constant = float(predictions)
        return lambda indices, counts: np.full(len(indices), constant)
    if metric == "roc_auc":
        auc = _ResampledAuc(y, predictions)
        return lambda indices, counts: auc(counts)
    if metric == "r2":
        return lambda indices, counts: _r2(y[indices], predictions[indices])
    if callable(metric):
        return lambda indices, counts: np.asarray(metric(y[indices], predictions[indices]))
    raise ValueError(f"metric must be 'roc_auc', 'r2' or a function, got {metric!r}")


def bootstrap_metrics(
    y_true: np.ndarray,
    predictions: Sequence[np.ndarray | float],
    *,
    metric: str | Statistic,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    stratify: bool = False,
) -> np.ndarray:
    """The metric of each of ``predictions`` on the same bootstrap resamples of the rows.

    Args:
        y_true: the true targets (class indices for ``"roc_auc"``).
        predictions: per side, predictions for every row, or a number: a side that scores that
            number on every resample (the trivial baseline).
        metric: ``"roc_auc"`` (predictions: scores ``(N,)``, probabilities ``(N, 2)`` whose
            column 1 is used, or ``(N, C)``: one-vs-rest macro average over the classes in
            ``y_true``), ``"r2"``, or a :data:`Statistic`.
        resamples, seed: as :func:`resample_indices`.
        stratify: resample within each value of ``y_true`` (classification).

    Returns NaN where a resample leaves the metric undefined (R² of a constant target; ROC AUC
    of a resample with one class, which stratifying rules out).

    Shape: y_true ``(N,)``; each prediction ``(N, ...)`` -> ``(R, len(predictions))``.
    """
    y = np.asarray(y_true)
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(f"y_true must be a non-empty 1-D array, got shape {y.shape}")
    n = len(y)
    for side, values in enumerate(predictions):
        if isinstance(values, np.ndarray) and len(values) != n:
            raise ValueError(
                f"predictions[{side}] must have one entry per row of y_true ({n}), got "
                f"{len(values)}"
            )
    scorers = [_scorer(metric, y, values) for values in predictions]
    chunk = max(1, CHUNK_CELLS // n)
    blocks = []
    for indices in _index_chunks(n, resamples, seed, y if stratify else None, chunk):
        counts = _counts(indices, n) if metric == "roc_auc" else None
        blocks.append(np.stack([score(indices, counts) for score in scorers], axis=1))
    return np.concatenate(blocks).astype(np.float64)


def paired_bootstrap(
    y_true: np.ndarray,
    first: np.ndarray,
    second: np.ndarray | float,
    *,
    metric: str | Statistic,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    stratify: bool = False,
) -> np.ndarray:
    """``metric(first) - metric(second)`` on each bootstrap resample of the rows, both sides
    scored on the same resampled rows (:func:`resample_indices` with ``seed``).

    ``second`` may be a number (a side that scores it on every resample, like the trivial
    baseline). Arguments as :func:`bootstrap_metrics`; NaN where the metric is undefined.

    Shape: y_true ``(N,)``, first and second ``(N, ...)`` -> ``(R,)``.
    """
    scores = bootstrap_metrics(
        y_true, [first, second], metric=metric, resamples=resamples, seed=seed, stratify=stratify
    )
    return scores[:, 0] - scores[:, 1]


# -- the verdict -----------------------------------------------------------------------------
def point_metric(task: Task | str, y_true: np.ndarray, predictions: np.ndarray) -> float:
    """ROC AUC (classification) or R² (regression) of ``predictions`` on all rows, by
    scikit-learn, as :func:`mrta.training.evaluate.metrics` computes it.

    Shape: y_true ``(N,)``; predictions ``(N, C)`` probabilities (binary: ``(N, 2)`` or
    ``(N,)``, class 1's) or ``(N,)`` values.
    """
    task = _task(task)
    y = np.asarray(y_true)
    if task is Task.REGRESSION:
        return float(r2_score(y, predictions))
    return float(
        np.mean(
            [roc_auc_score(positive, scores) for positive, scores in _auc_columns(y, predictions)]
        )
    )


def judge(
    task: Task | str,
    y_true: np.ndarray,
    model_pred: np.ndarray,
    control_pred: np.ndarray | None = None,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> Verdict:
    """The :class:`Verdict` on a model's test-split predictions.

    "Worth reading" requires both: the 5th percentile of the paired bootstrap difference (model
    minus trivial baseline, and model minus control) above zero. Without ``control_pred`` (the
    control is pending, or was not trained) the verdict is no, with the reason
    :data:`NO_CONTROL`: a model is not shown to have learned anything until it beats one trained
    on shuffled labels. Resamples where the metric is undefined (R² of a resample whose target is
    constant; only possible with very few rows) are left out of both comparisons, and a note in
    ``reasons`` says how many.

    Args:
        task: the model's task.
        y_true: the test split's targets: class indices, or values in the target's units.
        model_pred: the model's predictions on the test split, as
            :func:`mrta.training.inference.to_predictions` returns them.
        control_pred: the control's, on the same rows in the same order, or ``None``.
        resamples: bootstrap resamples (stratified by class for classification).
        seed: seed of the resampling; the same seed gives the same verdict.

    Shape:
        - y_true: ``(N,)``
        - model_pred, control_pred: ``(N, C)`` class probabilities (binary: ``(N, 2)``, class
          1's column is used; ``(N,)`` is taken as class 1's probability), or ``(N,)`` values
          for regression.
    """
    task = _task(task)
    y = _targets(task, y_true)
    model_pred = _predictions(task, y, model_pred, "model_pred")
    if control_pred is not None:
        control_pred = _predictions(task, y, control_pred, "control_pred")
    metric = TASK_METRIC[task]
    trivial = TRIVIAL[metric]
    sides: list[np.ndarray | float] = [model_pred, trivial]
    if control_pred is not None:
        sides.append(control_pred)
    scores = bootstrap_metrics(
        y,
        sides,
        metric=metric,
        resamples=resamples,
        seed=seed,
        stratify=task.is_classification,
    )
    defined = np.isfinite(scores).all(axis=1)
    if not defined.any():
        raise ValueError(
            f"y_true has too few distinct rows ({len(y)}): {METRIC_LABELS[metric]} is undefined "
            "on every bootstrap resample"
        )
    scores = scores[defined]
    model = point_metric(task, y, model_pred)
    control = None if control_pred is None else point_metric(task, y, control_pred)
    vs_trivial = float(np.percentile(scores[:, 0] - scores[:, 1], LOW_PERCENTILE))
    vs_control = (
        None
        if control_pred is None
        else float(np.percentile(scores[:, 0] - scores[:, 2], LOW_PERCENTILE))
    )
    label = METRIC_LABELS[metric]
    reasons = [
        _comparison(label, model, "the trivial baseline", trivial, vs_trivial),
        NO_CONTROL
        if control is None or vs_control is None
        else _comparison(
            label, model, "the control trained on shuffled labels", control, vs_control
        ),
    ]
    left_out = int((~defined).sum())
    if left_out:
        reasons.append(
            f"{left_out} of {resamples} resamples had a constant target, where {label} is "
            "undefined; they were left out."
        )
    return Verdict(
        worth_reading=vs_trivial > 0 and vs_control is not None and vs_control > 0,
        reasons=tuple(reasons),
        metric=metric,
        model=model,
        trivial=trivial,
        control=control,
        vs_trivial_low=vs_trivial,
        vs_control_low=vs_control,
    )


def _comparison(label: str, model: float, other: str, value: float, low: float) -> str:
    if low > 0:
        return (
            f"{label} {model:.3f} beats {other} ({value:.3f}): the 5th percentile of the "
            f"bootstrap difference is {low:+.3f}, above zero."
        )
    return (
        f"{label} {model:.3f} does not beat {other} ({value:.3f}): the 5th percentile of the "
        f"bootstrap difference is {low:+.3f}, not above zero."
    )


def _task(task: Task | str) -> Task:
    try:
        return Task(task)
    except ValueError:
        choices = ", ".join(repr(t.value) for t in Task)
        raise ValueError(f"task must be one of {choices}, got {task!r}") from None


def _targets(task: Task, y_true: np.ndarray) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1 or len(y) < 2:
        raise ValueError(f"y_true must be a 1-D array of at least 2 rows, got shape {y.shape}")
    if task is Task.REGRESSION:
        y = y.astype(np.float64)
        if not np.isfinite(y).all():
            raise ValueError("y_true must be finite, got NaN or infinite values")
        if np.ptp(y) == 0:
            raise ValueError("y_true is constant: R² is undefined")
        return y
    if not (np.issubdtype(y.dtype, np.integer) or np.all(np.mod(y, 1) == 0)) or y.min() < 0:
        raise ValueError("y_true must hold class indices (integers from 0) for classification")
    y = y.astype(np.int64)
    if len(np.unique(y)) < 2:
        raise ValueError(f"y_true holds one class only ({y[0]}): ROC AUC needs two")
    return y


def _predictions(task: Task, y: np.ndarray, values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    n = len(y)
    if task is Task.REGRESSION:
        expected = f"({n},)"
        ok = values.shape == (n,)
    elif task is Task.BINARY:
        expected = f"({n}, 2) or ({n},)"
        ok = values.shape in ((n, 2), (n,))
    else:
        expected = f"({n}, C) with C > {y.max()}"
        ok = values.ndim == 2 and values.shape[0] == n and values.shape[1] > y.max()
    if not ok:
        raise ValueError(f"{name} must have shape {expected} for {task}, got {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} must be finite, got NaN or infinite values")
    return values
