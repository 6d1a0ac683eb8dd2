"""Statistics of attention maps that need nothing but arrays: entropy and divergence.

Each row of a map (one query) is a distribution over the keys; these functions measure rows and
pairs of rows, and know nothing of models, cohorts or atlases.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import special


def normalized_entropy(weights: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """``H(row) / log(n_keys)`` of each row of attention weights: 1 = uniform, 0 = one key.

    NaN where there is a single key (a head that cannot choose is neither focused nor spread).
    Takes and returns numpy arrays or torch tensors (these use every CPU thread).

    Shape: ``(..., Tk)`` -> ``(...)``.
    """
    n_keys = weights.shape[-1]
    if isinstance(weights, torch.Tensor):
        if n_keys < 2:
            return torch.full(weights.shape[:-1], torch.nan)
        return torch.special.entr(weights).sum(dim=-1) / math.log(n_keys)
    if n_keys < 2:
        return np.full(weights.shape[:-1], np.nan)
    return special.entr(weights).sum(axis=-1) / math.log(n_keys)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen–Shannon divergence of each pair of rows, with log base 2: in ``[0, 1]``.

    Shape: ``(..., Tk)`` both -> ``(...)``.
    """
    m = 0.5 * (p + q)
    nats = 0.5 * (special.rel_entr(p, m).sum(axis=-1) + special.rel_entr(q, m).sum(axis=-1))
    return np.clip(nats / math.log(2), 0.0, 1.0)


def head_divergence(mean: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Mean over query rows of the JS divergence between two maps, per head.

    Shape: ``(H, Tq, Tk)`` both -> ``(H,)``.
    """
    if mean.shape != reference.shape:
        raise ValueError(
            f"maps of shapes {mean.shape} and {reference.shape} cannot be compared: the "
            "reference must come from the same architecture on the same columns"
        )
    return js_divergence(mean, reference).mean(axis=-1)


UNIFORM_TOLERANCE = 0.01  # the rule: every row within 0.01 of the uniform entropy
TRIVIAL_MAP = "trivial by construction"
UNIFORM_MAP = "uniform"


def map_label(mean: np.ndarray, tolerance: float = UNIFORM_TOLERANCE) -> str | None:
    """What a mean map is by construction or by measurement, for a label beside it.

    ``"trivial by construction"`` when it has a single key (every weight is 1 whatever the
    model learned); ``"uniform"`` when every query row's :func:`normalized_entropy` is within
    ``tolerance`` of 1 (the map spreads each query evenly: it shows no preference, however its
    colour scale makes it look); else ``None``. A map of several heads is uniform only when
    every head's every row is.

    Shape: ``(..., Tq, Tk)``, e.g. one head's ``(Tq, Tk)`` or all heads' ``(H, Tq, Tk)``.
    """
    weights = np.asarray(mean, dtype=np.float64)
    if weights.ndim < 2 or 0 in weights.shape:
        raise ValueError(
            f"mean must be a map of shape (..., queries, keys) with at least one query and one "
            f"key, got shape {weights.shape}"
        )
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("mean must hold finite, non-negative attention weights")
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance!r}")
    if weights.shape[-1] == 1:
        return TRIVIAL_MAP
    if bool((1.0 - normalized_entropy(weights) <= tolerance).all()):
        return UNIFORM_MAP
    return None
