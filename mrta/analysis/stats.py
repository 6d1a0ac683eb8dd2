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
