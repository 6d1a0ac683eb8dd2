"""Attention in set resolution: which rows a set's prediction rests on.

In a set run the tokens are rows, so every attention map is a row × row map of one set, and
sets differ in size and in what their rows hold: maps cannot be averaged across sets cell by
cell as column maps are. Each set's maps are therefore reduced to measures per row
(:func:`row_measures`), and the dataset-level view aggregates rows by what they hold
(:class:`SetExplanation`):

- ``received``: the attention a row receives in one map, over the heads and the set's rows as
  queries, times the set's size, so that ``1`` is an even share (a row of a set of 40 that
  draws a tenth of the attention scores 4);
- ``rollout``: the row's share of the pooled representation by attention rollout
  (:func:`~mrta.analysis.rollout.pooled_importance`; its numerical and categorical tokens
  together), times the set's size, so again ``1`` is an even share.

:class:`SetMaps` holds one set's full maps, with its rows' values, for a heatmap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mrta.analysis.labels import format_value
from mrta.analysis.rollout import pooled_importance
from mrta.data.sets import SetBatch

#: The per-row measure summaries and rankings use by default.
ROLLOUT = "rollout"


#: Quantile bins of a numerical column in :meth:`SetExplanation.summary`.
BINS = 5


#: Levels of a categorical column shown in a summary; the rest are pooled.
TOP_LEVELS = 12


def measure_name(layer: int, map_id: str) -> str:
    """The column of a map's received attention in :attr:`SetExplanation.rows`."""
    return f"layer {layer} {map_id}"


@dataclass(frozen=True, eq=False)
class SetExplanation:
    """Per-set and per-row attention measures of a set run over some sets.

    ``sets`` has one row per analysed set: the group key (column named by the group key),
    ``n_rows``, ``target`` and ``prediction`` (labels for classification), and ``correct``.
    ``rows`` has one row per analysed row: the group key, ``position`` (its place in the set,
    0-based, in ``order_by`` order), ``row`` (its position in the table explained), one
    ``received`` column per map (:func:`measure_name`) and ``rollout``. ``values`` holds the
    same rows' feature values (and the order-by column), index aligned with ``rows``.
    """

    group_by: str
    order_by: str | None
    map_keys: tuple[tuple[int, str], ...]
    sets: pd.DataFrame
    rows: pd.DataFrame
    values: pd.DataFrame
    sampled_from: int | None
    seconds: float

    @property
    def measures(self) -> list[str]:
        """The per-row measures: ``rollout`` first, then each map's received attention."""
        return [ROLLOUT, *(measure_name(layer, map_id) for layer, map_id in self.map_keys)]

    def summary(self, column: str, measure: str = ROLLOUT, bins: int = BINS) -> pd.DataFrame:
        """Mean `measure` of the rows by what they hold in `column`: each level of a
        categorical column (the most frequent :data:`TOP_LEVELS`, the rest pooled), or each
        quantile bin of a numerical one; with the rows counted and the standard error.

        Returns columns ``group`` (the level or bin), ``rows``, ``mean``, ``sem``, in level
        order (bins ascending, levels by frequency).
        """
        if column not in self.values.columns:
            raise KeyError(f"no column {column!r}; columns: {', '.join(self.values.columns)}")
        if measure not in self.measures:
            raise KeyError(f"no measure {measure!r}; measures: {', '.join(self.measures)}")
        raw = self.values[column]
        numbers = pd.to_numeric(raw, errors="coerce")
        if pd.api.types.is_numeric_dtype(raw) or numbers.notna().mean() > 0.95:
            groups = pd.qcut(numbers, bins, duplicates="drop").astype(object)
            groups = groups.map(lambda b: f"{b.left:.4g} to {b.right:.4g}", na_action="ignore")
            order = [
                f"{b.left:.4g} to {b.right:.4g}"
                for b in pd.qcut(numbers, bins, duplicates="drop").cat.categories
            ]
        else:
            labels = raw.map(format_value)
            order = labels.value_counts().index[:TOP_LEVELS].tolist()
            groups = labels.where(labels.isin(order), "(other levels)")
            if (~labels.isin(order)).any():
                order.append("(other levels)")
        groups = groups.fillna("(missing)")
        if groups.eq("(missing)").any():
            order.append("(missing)")
        values = self.rows[measure].to_numpy()
        table = (
            pd.DataFrame({"group": groups.to_numpy(), "value": values})
            .groupby("group", sort=False)["value"]
            .agg(rows="size", mean="mean", sem="sem")
        )
        return table.reindex(order).reset_index()

    def set_rows(self, key: str, measure: str = ROLLOUT) -> pd.DataFrame:
        """One set's rows, most attended first: position, measures and values."""
        rows = self.rows[self.rows[self.group_by] == key]
        if rows.empty:
            raise KeyError(f"no analysed set {key!r}")
        joined = rows.join(self.values.drop(columns=[self.group_by], errors="ignore"))
        return joined.sort_values(measure, ascending=False, kind="stable")


@dataclass(frozen=True, eq=False)
class SetMaps:
    """One set's row × row maps: ``maps[(layer, map_id)]`` is ``(H, n, n)``, rows in set order
    (queries down, keys across); ``values`` holds the rows' values, one per row."""

    key: str
    maps: dict[tuple[int, str], np.ndarray]
    values: pd.DataFrame
    order_by: str | None

    def labels(self, column: str | None = None) -> list[str]:
        """A label per row: its value in `column` (default: the order-by column), else its
        position, made unique with the position where values repeat."""
        column = column or self.order_by
        if column is None or column not in self.values.columns:
            return [f"row {i}" for i in range(len(self.values))]
        texts = [format_value(v) for v in self.values[column]]
        repeated = {t for t in texts if texts.count(t) > 1}
        return [f"{t} (#{i})" if t in repeated else t for i, t in enumerate(texts)]

    def hover(self) -> list[str]:
        """Each row's values as one line, for a heatmap's hover text."""
        return [
            ", ".join(f"{c}={format_value(v)}" for c, v in row.items())
            for _, row in self.values.iterrows()
        ]


def row_measures(
    part: SetBatch,
    weights: dict[tuple[int, str], torch.Tensor],
    map_keys: Sequence[tuple[int, str]],
    n_layers: int,
    out: np.ndarray,
    start: int,
) -> int:
    """Write each real row's rollout share and received attention per map, relative to an
    even share, into ``out[start:]`` (a row per real row, columns: rollout, then `map_keys`);
    returns the next free row. Shape: weights ``(B, H, S, S)`` each."""
    streams = {map_id.split("_")[0] for _, map_id in map_keys}
    for i, n in enumerate(part.set_sizes.tolist()):
        rows = slice(start, start + n)
        layers: list[dict[str, np.ndarray]] = [{} for _ in range(n_layers)]
        for column, (layer, map_id) in enumerate(map_keys, start=1):
            w = weights[(layer, map_id)][i, :, :n, :n]  # (H, n, n) float32: real rows only
            head_mean = w.mean(dim=0)  # (n, n)
            out[rows, column] = head_mean.mean(dim=0).numpy() * n
            layers[layer][map_id] = head_mean.numpy()
        n_num = n if "num" in streams else 0
        n_cat = n if "cat" in streams else 0
        share = pooled_importance(layers, n_num, n_cat)  # (n_num + n_cat,)
        out[rows, 0] = (share[:n_num] + share[n_num:] if n_num and n_cat else share) * n
        start += n
    return start
