"""Column importances by four methods, under canonical ids, each with what it can and cannot tell.

========================  ===================================================================
``permutation``           the test loss's increase when a column's rows are shuffled
                          (:mod:`mrta.analysis.permutation`): what the model needs; standard
                          error over the shuffles
``rollout``               attention received, rolled out (:mod:`mrta.analysis.rollout`): where
                          the attention weights point, composed over the layers with a fixed
                          half for each residual, so the two types of column get half each
``value_norm``            the norms of what attention moves (:mod:`mrta.analysis.value_norm`,
                          Kobayashi et al. 2020): weights times the transformed values
``relevance``             gradient-weighted attention relevance (:mod:`mrta.analysis.relevance`,
                          Chefer et al. 2021) for the predicted class
========================  ===================================================================

The three attention-based ones are shares per example (summing to 1), averaged over the rows,
with the standard error of that mean over the rows. A column's share is the sum of its tokens'
(a date column has several). None of them is faithful by definition: the deletion curves of
:mod:`mrta.analysis.deletion` measure how well each ranking predicts what removing columns does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from mrta.analysis.block_capture import capture_blocks
from mrta.analysis.inputs import Inputs, split_inputs
from mrta.analysis.relevance import relevance_importance
from mrta.analysis.rollout import rollout_importance
from mrta.analysis.value_norm import value_norm_importance
from mrta.data.schema import Role, TableSchema
from mrta.training.inference import batches, evaluating, model_device

#: The canonical method ids, in the order they are shown and exported.
METHODS: tuple[str, ...] = ("permutation", "rollout", "value_norm", "relevance")
#: How each method is titled wherever it is shown.
METHOD_TITLES: dict[str, str] = {
    "permutation": "Permutation importance (test loss increase)",
    "rollout": "Attention received, rolled out",
    "value_norm": "Value norm (Kobayashi et al. 2020)",
    "relevance": "Gradient-weighted relevance (Chefer et al. 2021)",
}
#: What each method measures and what it cannot tell, shown beside it.
METHOD_NOTES: dict[str, str] = {
    "permutation": (
        "How much the test loss rises when the column's values are shuffled across rows: "
        "what this model needs, not what the data holds (correlated columns share or hide "
        "it). Error bars: standard error over the shuffles only, not over rows or retraining."
    ),
    "rollout": (
        "Where the attention weights point, multiplied through the layers with each residual "
        "counted as half: the numerical and the categorical columns receive half each by "
        "construction, whatever the maps. It ignores what the attended values carry. Error "
        "bars: standard error of the mean over the rows."
    ),
    "value_norm": (
        "The norm of what each column's token contributes through attention (weights times "
        "the transformed values, and the residual), composed through the layers: it sees "
        "that a weight on a near-zero value moves nothing. Error bars: standard error of the "
        "mean over the rows."
    ),
    "relevance": (
        "Attention weighted by the gradient of the predicted class's score, composed with "
        "the co-attention rules of Chefer et al.: it counts attention that changes the "
        "prediction. Error bars: standard error of the mean over the rows."
    ),
}
#: Rows per batch when rolling out per-example maps.
ROLLOUT_BATCH = 256


@dataclass(frozen=True)
class MethodImportance:
    """One method's importance per input column: the mean, and its standard error (``None``
    where none is defined)."""

    mean: dict[str, float]
    se: dict[str, float] | None

    def ranking(self) -> tuple[str, ...]:
        """The columns, most important first (ties keep the columns' order)."""
        names = list(self.mean)
        return tuple(sorted(names, key=lambda name: (-self.mean[name], names.index(name))))

    def to_dict(self) -> dict[str, Any]:
        return {"mean": dict(self.mean), "se": None if self.se is None else dict(self.se)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MethodImportance:
        se = data["se"]
        return cls(mean=dict(data["mean"]), se=None if se is None else dict(se))


@dataclass(frozen=True)
class ColumnImportances:
    """Every method's importance per input column, on the same rows.

    ``rows``: the rows they were computed on (the first half of the test rows, see
    :func:`mrta.analysis.deletion.split_halves`); ``streams``: each column's stream,
    ``"num"`` or ``"cat"``.
    """

    rows: int
    methods: dict[str, MethodImportance]
    streams: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """``{method: {"mean": {column: float}, "se": {column: float} | None}}``, as in
        ``summary.json``."""
        return {method: self.methods[method].to_dict() for method in METHODS if method in self}

    def __contains__(self, method: object) -> bool:
        return method in self.methods

    def to_record(self) -> dict[str, Any]:
        """Everything, as plain JSON (:meth:`from_record` reads it back)."""
        return {"rows": self.rows, "methods": self.to_dict(), "streams": dict(self.streams)}

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> ColumnImportances:
        return cls(
            rows=int(data["rows"]),
            methods={m: MethodImportance.from_dict(v) for m, v in data["methods"].items()},
            streams=dict(data["streams"]),
        )


def input_columns(schema: TableSchema) -> dict[str, list[str]]:
    """Each input column (numerical, then categorical) with the tokens it feeds the model."""
    return {
        spec.name: list(spec.tokens)
        for role in (Role.NUMERICAL, Role.CATEGORICAL)
        for spec in schema.columns
        if spec.role is role
    }


def column_streams(schema: TableSchema) -> dict[str, str]:
    """Each input column's stream: ``"num"`` or ``"cat"``."""
    return {
        spec.name: "num" if spec.role is Role.NUMERICAL else "cat"
        for spec in schema.columns
        if spec.role in (Role.NUMERICAL, Role.CATEGORICAL)
    }


def rollout_per_example(
    model: nn.Module, data: Inputs, batch_size: int = ROLLOUT_BATCH
) -> np.ndarray:
    """Each example's rollout (:func:`mrta.analysis.rollout.rollout_importance` of its own
    maps, heads averaged).

    Shape: ``(N, T)`` float64, tokens ``[numerical..., categorical...]``, rows summing to 1.
    """
    numerical, indicators, categorical, _ = split_inputs(data)
    n_num, n_cat = len(model.numerical_tokens), len(model.categorical_tokens)
    device = model_device(model)
    parts = []
    with evaluating(model):
        for rows in batches(len(numerical), batch_size):
            inputs = (t[rows].to(device) for t in (numerical, indicators, categorical))
            with capture_blocks(model) as passes:
                model(*inputs)
            layers = [
                {map_id: p.weights.double().cpu().numpy() for map_id, p in layer.items()}
                for layer in passes
            ]  # per layer, map id -> (B, H, Tq, Tk)
            parts.append(rollout_importance(layers, n_num, n_cat))  # (B, T)
    return np.concatenate(parts) if parts else np.empty((0, n_num + n_cat))


def attention_importances(
    model: nn.Module, data: Inputs, columns: Mapping[str, Sequence[str]]
) -> dict[str, MethodImportance]:
    """``rollout``, ``value_norm`` and ``relevance`` per input column: each example's shares,
    summed over a column's tokens, averaged over the rows, with the standard error of that mean
    (``None`` for a single row).

    Args:
        columns: input column -> its tokens (:func:`input_columns`).
    """
    tokens = [*model.numerical_tokens, *model.categorical_tokens]
    position = {name: i for i, name in enumerate(tokens)}
    per_example = {
        "rollout": rollout_per_example(model, data),
        "value_norm": value_norm_importance(model, data),
        "relevance": relevance_importance(model, data),
    }
    result = {}
    for method, shares in per_example.items():  # (N, T)
        by_column = np.stack(
            [shares[:, [position[t] for t in names]].sum(axis=1) for names in columns.values()],
            axis=1,
        )  # (N, C)
        n = len(by_column)
        mean = by_column.mean(axis=0)
        se = by_column.std(axis=0, ddof=1) / math.sqrt(n) if n > 1 else None
        result[method] = MethodImportance(
            mean=dict(zip(columns, map(float, mean), strict=True)),
            se=None if se is None else dict(zip(columns, map(float, se), strict=True)),
        )
    return result
