"""A transform of a skewed, positive regression target: the model learns ``log y`` (then
standardised, as every regression target is), and its predictions are brought back to the
target's units without the bias of exponentiating a mean of logs.

``exp(E[log y])`` is the geometric mean, below ``E[y]``; Duan's smearing estimate (Duan 1983,
"Smearing Estimate: A Nonparametric Retransformation Method", JASA 78:605-610) multiplies it by
the mean of the exponentiated residuals, ``mean(exp(log y_i - prediction_i))``, which needs no
assumption on their distribution. The residuals here are the validation rows', which took no
part in fitting the weights. Metrics are always computed on the target's own units.

    name, note = choose_transform(y_train, "auto")   # "log" for a positive, right-skewed y
    z = to_model_scale(y, name)                      # what the model learns (before scaling)
    y_hat = from_model_scale(z_hat, name, smearing_factor(z_validation - z_hat_validation))
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from mrta.errors import TableError

#: The choices: "none", "log", or "auto" (log where the training target is positive and
#: skewed, and its log less so).
TARGET_TRANSFORMS = ("none", "log", "auto")
#: How every note of :func:`choose_transform` begins.
TARGET_NOTE = "The target was "
#: The skewness above which "auto" takes the log (a long right tail: prices, incomes, counts).
AUTO_SKEW = 1.0


def choose_transform(y: np.ndarray, requested: str) -> tuple[str, str | None]:
    """The transform to apply (``"none"`` or ``"log"``) for the training targets `y` and what
    was asked, with a note saying why (``None`` for ``"none"`` as asked). Raises ``TableError``
    for ``"log"`` of a target that is not positive, ``ValueError`` for an unknown choice."""
    if requested not in TARGET_TRANSFORMS:
        raise ValueError(
            f"target_transform must be one of {list(TARGET_TRANSFORMS)}, got {requested!r}"
        )
    y = np.asarray(y, dtype=np.float64)
    y = y[np.isfinite(y)]
    if requested == "none" or y.size == 0:
        return "none", None
    positive = bool(np.all(y > 0))
    if requested == "log":
        if not positive:
            raise TableError(
                f"The target has {int(np.sum(y <= 0)):,} value(s) of 0 or less in the training "
                "rows, so it has no logarithm: train without --target-transform log (or with "
                "auto, which then leaves it as it is)."
            )
        return "log", "The target was log-transformed as asked (--target-transform log)."
    skew = float(stats.skew(y)) if y.size > 2 else 0.0
    if not positive:
        return "none", (
            f"The target was left as it is: it has values of 0 or less (its skewness is "
            f"{skew:.2f}), so no logarithm."
        )
    log_skew = float(stats.skew(np.log(y)))
    if skew > AUTO_SKEW and abs(log_skew) < abs(skew):
        return "log", (
            f"The target was log-transformed: on the training rows it is positive and skewed "
            f"(skewness {skew:.2f}; of its log, {log_skew:.2f})."
        )
    return "none", (
        f"The target was left as it is: its skewness on the training rows is {skew:.2f} "
        f"(of its log, {log_skew:.2f}), not a long right tail that a log would even out."
    )


def to_model_scale(y: np.ndarray, name: str) -> np.ndarray:
    """Targets in the scale the model learns (before standardising)."""
    return np.log(y) if name == "log" else y


def from_model_scale(values: np.ndarray, name: str, smearing: float = 1.0) -> np.ndarray:
    """Predictions back in the target's units: ``exp(values) * smearing`` for ``"log"``."""
    return np.exp(values) * smearing if name == "log" else values


def smearing_factor(residuals: np.ndarray) -> float:
    """Duan's smearing factor from residuals on the model's (log) scale: the mean of their
    exponentials (1 without residuals)."""
    residuals = np.asarray(residuals, dtype=np.float64)
    residuals = residuals[np.isfinite(residuals)]
    return float(np.mean(np.exp(residuals))) if residuals.size else 1.0
