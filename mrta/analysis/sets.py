"""Attention in set resolution: which rows a set's prediction rests on.

In a set run the tokens are rows, so every attention map is a row × row map of one set, and
sets differ in size and in what their rows hold: maps cannot be averaged across sets cell by
cell as column maps are. Each set's maps are therefore reduced to measures per row
(:func:`row_measures`), and the dataset-level view aggregates rows by what they hold
(:class:`SetExplanation`):

- ``received``: the attention a row receives in one map, over the heads and the set's rows as
  queries, times the set's size, so that ``1`` is an even share (a row of a set of 40 that
  draws a tenth of the attention scores 4);
- ``rollout``: the row's share of the pooled representation by attention rollout, started
  from the readout of the model's mean and max pooling (below; its numerical and categorical
  tokens together), times the set's size, so again ``1`` is an even share.

The rollout's readout. The set model (:class:`~mrta.nn.set_model.SetAttentionModel`) pools
each of its ``k`` streams' last-layer outputs ``x_s`` (``n`` real rows × ``D_s`` features) by
mean and by max, and its head reads the ``2·Σ_s D_s`` pooled features ``[mean_num, max_num,
mean_cat, max_cat]``. Rollout needs the share of that representation each last-layer token carries:

- a mean feature is ``(1/n)·Σ_i x_s[i, d]``: every real row carries ``1/n`` of it;
- a max feature is ``x_s[i*, d]``, copied from the row ``i*`` that holds the maximum: that row
  carries all of it (``∂max/∂x_s[i, d]`` is 1 at ``i*`` and 0 elsewhere); rows tied at the
  maximum carry an equal part (the subgradient torch's ``amax`` backward uses too).

Counting every pooled feature as an equal share of the representation, stream ``s`` holds the
fraction ``w_s = D_s / Σ_t D_t`` of the features (``1/k``: every stream is ``d_model`` wide), half
of them means and half maxima, so token ``(s, i)`` starts with::

    r[s, i] = w_s · (½ · 1/n + ½ · m_s[i]),
    m_s[i] = (1/D_s) · Σ_d [x_s[i, d] = max_j x_s[j, d]] / #{j : x_s[j, d] = max_j x_s[j, d]}

``m_s`` (:func:`max_credit`) sums to 1 over the set's rows, so each stream's readout sums to
``w_s`` and ``r`` (:func:`pooled_readout`) to 1; padding rows get 0. The uniform mean that the
column rollout reads out (``1/(k·n)`` per token) is the case ``m_s[i] = 1/n``, where every row
holds the maximum of as many features. ``r`` is carried back through the layers by
:func:`~mrta.analysis.rollout.readout_importance`, as
:func:`~mrta.analysis.rollout.pooled_importance` carries the uniform one, so the shares of a
set's rows still sum to 1 (times the set's size: ``n``). The features count alike, rather
than by the head's weights or gradients, because rollout follows where attention copies from,
not what the learned projections do with it: it ignores the value projections and feed-forward
blocks too.

What this still approximates (:data:`mrta.report.set_figures.ROLLOUT_NOTE` says it in short):
the head's LayerNorm rescales the pooled features by statistics of each set and by its learned
gains, and its Linear layer weighs them unequally, so neither every feature nor the mean
against the max counts alike in the prediction; and rollout itself counts each residual as a
fixed half of a stage's flow, averages the heads, and takes the LayerNorms and feed-forward
blocks to move nothing between tokens.

Summaries over the rows of several sets (:meth:`SetExplanation.summary`) give standard errors
clustered by set (:func:`clustered_se`): a set's rows are not independent (their rollout shares
sum to the set's size, and they share the set's attention).

:class:`SetMaps` holds one set's full maps, with its rows' values, for a heatmap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from numpy.typing import ArrayLike

from mrta.analysis.labels import format_value
from mrta.analysis.rollout import readout_importance
from mrta.data.sets import SetBatch

#: The per-row measure summaries and rankings use by default.
ROLLOUT = "rollout"


#: Quantile bins of a numerical column in :meth:`SetExplanation.summary`.
BINS = 5


#: Levels of a categorical column shown in a summary; the rest are pooled.
TOP_LEVELS = 12


#: The column of a summary's standard error, clustered by set (:func:`clustered_se`).
SE_CLUSTERED = "se_clustered_by_set"


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
        quantile bin of a numerical one; with the rows and sets counted and the standard error
        of the mean clustered by set (:func:`clustered_se` over the rows of the level or bin;
        NaN where they all come from one set).

        Returns columns ``group`` (the level or bin), ``rows``, ``sets``, ``mean`` and
        :data:`SE_CLUSTERED`, in level order (bins ascending, levels by frequency).
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
        rows = pd.DataFrame(
            {
                "group": groups.to_numpy(),
                "set": self.rows[self.group_by].to_numpy(),
                "value": self.rows[measure].to_numpy(),
            }
        )
        parts = rows.groupby("group", sort=False)
        table = parts.agg(rows=("value", "size"), sets=("set", "nunique"), mean=("value", "mean"))
        table[SE_CLUSTERED] = pd.Series(
            {name: clustered_se(part["value"], part["set"]) for name, part in parts}
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


def max_credit(outputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each row's credit for one stream's max-pooled features (``m_s`` in the module
    docstring): the fraction of the ``D_s`` features of which the row holds its set's maximum, a
    maximum held by several rows split evenly between them; 0 in padding rows. Each set's
    credits sum to 1.

    Shape: outputs ``(B, S, D)``, mask ``(B, S)`` bool with a real row per set -> ``(B, S)``
    float32.
    """
    if outputs.dim() != 3 or mask.dtype != torch.bool or mask.shape != outputs.shape[:2]:
        raise ValueError(
            "outputs must be (sets, rows, features) and mask a bool (sets, rows), got "
            f"{tuple(outputs.shape)} and {mask.dtype} {tuple(mask.shape)}"
        )
    if not bool(mask.any(dim=1).all()):
        raise ValueError("mask needs a real row (True) in every set")
    real = mask.unsqueeze(-1)  # (B, S, 1)
    x = outputs.masked_fill(~real, float("-inf"))
    holds = ((x == x.amax(dim=1, keepdim=True)) & real).float()  # (B, S, D)
    return (holds / holds.sum(dim=1, keepdim=True)).mean(dim=-1)


def pooled_readout(outputs: Sequence[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """The set rollout's starting vector ``r`` for the model's mean and max pooling (module
    docstring): per stream ``s`` and row, ``w_s · (½ · 1/n + ½ · m_s)``, with ``w_s`` the
    stream's share of the pooled features and ``m_s`` its :func:`max_credit`; 0 in padding
    rows. Each set's readout sums to 1.

    Args:
        outputs: the last layer's outputs of each of the model's streams, numerical first.
        mask: ``True`` for real rows, at least one per set.

    Shape: outputs ``(B, S, D_s)`` each, mask ``(B, S)`` -> ``(B, k, S)`` float32 for ``k``
    streams.
    """
    if not outputs:
        raise ValueError("outputs must hold the last layer's outputs of at least one stream")
    real = mask.float()  # (B, S)
    even = real / real.sum(dim=1, keepdim=True)  # the mean's 1/n per real row
    width = sum(x.shape[-1] for x in outputs)
    return torch.stack(
        [x.shape[-1] / width * (0.5 * even + 0.5 * max_credit(x, mask)) for x in outputs], dim=1
    )


def clustered_se(values: ArrayLike, clusters: ArrayLike) -> float:
    """The standard error of the mean of `values`, clustered by `clusters` (CR1)::

        SE² = G/(G−1) · Σ_g (Σ_{i∈g} (y_i − ȳ))² / n²

    for ``n`` values in ``G`` clusters: the cluster-robust sandwich variance of the intercept
    of ``y`` on a constant, with the small-sample factor ``G/(G−1) · (n−1)/(n−k)`` at ``k = 1``
    (Stata's ``vce(cluster)``). One value per cluster gives the ordinary ``s/√n``. NaN with
    fewer than 2 clusters: the spread between clusters cannot be estimated.

    Shape: values, clusters ``(n,)`` -> a float.
    """
    y = np.asarray(values, dtype=np.float64)
    if y.ndim != 1 or np.shape(clusters) != y.shape:
        raise ValueError(
            "values and clusters must be 1-D and of the same length, got shapes "
            f"{y.shape} and {np.shape(clusters)}"
        )
    index, labels = pd.factorize(np.asarray(clusters), use_na_sentinel=False)
    g = len(labels)
    if g < 2:
        return float("nan")
    sums = np.bincount(index, weights=y - y.mean(), minlength=g)  # (G,)
    return float(np.sqrt(g / (g - 1) * np.sum(sums**2)) / len(y))


def row_measures(
    part: SetBatch,
    weights: dict[tuple[int, str], torch.Tensor],
    outputs: tuple[torch.Tensor | None, torch.Tensor | None],
    map_keys: Sequence[tuple[int, str]],
    n_layers: int,
    out: np.ndarray,
    start: int,
) -> int:
    """Write each real row's rollout share and received attention per map, relative to an
    even share, into ``out[start:]`` (a row per real row, columns: rollout, then `map_keys`);
    returns the next free row.

    Args:
        outputs: the last layer's numerical and categorical outputs (``None`` for a stream the
            model lacks), which the rollout's readout (:func:`pooled_readout`) is taken from.

    Shape: weights ``(B, H, S, S)`` each; outputs ``(B, S, D)``.
    """
    readout = pooled_readout([x for x in outputs if x is not None], part.mask).numpy()
    n_streams = readout.shape[1]
    for i, n in enumerate(part.set_sizes.tolist()):
        rows = slice(start, start + n)
        layers: list[dict[str, np.ndarray]] = [{} for _ in range(n_layers)]
        for column, (layer, map_id) in enumerate(map_keys, start=1):
            w = weights[(layer, map_id)][i, :, :n, :n]  # (H, n, n) float32: real rows only
            head_mean = w.mean(dim=0)  # (n, n)
            out[rows, column] = head_mean.mean(dim=0).numpy() * n
            layers[layer][map_id] = head_mean.numpy()
        n_num = n if outputs[0] is not None else 0
        n_cat = n if outputs[1] is not None else 0
        tokens = readout[i, :, :n].reshape(-1)  # (k·n,): [numerical..., categorical...]
        share = readout_importance(layers, tokens, n_num, n_cat)  # (n_num + n_cat,)
        out[rows, 0] = share.reshape(n_streams, n).sum(axis=0) * n
        start += n
    return start
