"""Figures of set runs: one set's row x row heatmap, summaries of rows by what they hold, and a
set's rows ranked by a measure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from mrta.report.figures import MAX_LABEL, check_shape, escape, pairs, shorten, weight_axis

# -- set resolution: rows of one set, and rows across sets -------------------------------------
#: Tick labels on each axis of a row × row map at most; the rest are on hover.
MAX_ROW_TICKS = 40


#: What the rollout measure of a set run approximates (:mod:`mrta.analysis.sets` derives it),
#: for the caption of a figure that shows it.
ROLLOUT_NOTE = (
    "Rollout starts from the model's pooling: half of each stream's pooled features are means "
    "(every row an equal share), half are maxima (each row credited with the features it holds "
    "the maximum of, ties split). It still approximates: the head's LayerNorm and Linear layer "
    "weigh the pooled features unequally, and rollout counts each residual as a fixed half of "
    "the flow."
)


#: What the error bars of :func:`summary_bars` are, for its caption.
SE_NOTE = (
    "Error bars: standard errors clustered by set (CR1), since a set's rows are not "
    "independent (their shares sum to the set's size); none where the rows come from one set."
)


def set_heatmap(
    weights: np.ndarray,
    labels: Sequence[str],
    hover: Sequence[str],
    *,
    title: str = "",
    fit: bool = False,
    max_label: int = MAX_LABEL,
    max_ticks: int = MAX_ROW_TICKS,
) -> go.Figure:
    """One set's row × row map: its rows attending (queries, down) to its rows (keys, across).

    ``labels`` name the rows on the axes (every k-th where there are more than ``max_ticks``);
    ``hover`` holds each row's values as one line, shown with the weight of a cell for both
    of its rows. Shape: weights ``(n, n)``; labels and hover ``(n,)``.
    """
    weights = np.asarray(weights)
    check_shape(weights, labels, labels)
    if len(hover) != len(labels):
        raise ValueError(f"hover needs one line per row: {len(labels)}, got {len(hover)}")
    n = len(labels)
    lines = np.array([escape(h) for h in hover], dtype=object)
    trace = go.Heatmap(
        z=np.asarray(weights, dtype=np.float64),
        x=list(range(n)),
        y=list(range(n)),
        customdata=pairs(labels, labels, lines[:, None], lines[None, :]),
        hovertemplate="query row: %{customdata[0]}<br>%{customdata[2]}<br>"
        "key row: %{customdata[1]}<br>%{customdata[3]}<br>weight: %{z:.4f}<extra></extra>",
        coloraxis="coloraxis",
    )
    fig = go.Figure(trace)
    step = max(1, math.ceil(n / max(max_ticks, 1)))
    ticks = list(range(0, n, step))
    text = [shorten(labels[i], max_label) for i in ticks]
    fig.update_layout(
        title=escape(title),
        coloraxis=weight_axis(weights, fit),
        height=int(min(900, max(420, 160 + 14 * n))),
    )
    fig.update_xaxes(
        title={"text": "rows attended (keys)"},
        tickmode="array",
        tickvals=ticks,
        ticktext=text,
        tickangle=-45,
    )
    fig.update_yaxes(
        title={"text": "rows attending (queries)"},
        tickmode="array",
        tickvals=ticks,
        ticktext=text,
        autorange="reversed",
    )
    return fig


def summary_bars(
    groups: Sequence[str],
    means: Sequence[float],
    standard_errors: Sequence[float],
    rows: Sequence[int],
    *,
    column: str,
    measure: str,
    title: str = "",
    max_label: int = MAX_LABEL,
) -> go.Figure:
    """Mean attention measure of the rows by what they hold in one column (its levels or
    quantile bins, in the order given), with error bars of the standard errors clustered by
    set: each bar runs from 1, an even share, up or down to the mean (the rows of
    :meth:`mrta.analysis.sets.SetExplanation.summary`). A NaN standard error (the rows of one
    set) draws no error bar and says so on hover.

    Shape: all four ``(K,)``.
    """
    if not len(groups) == len(means) == len(standard_errors) == len(rows):
        raise ValueError(
            f"groups, means, standard_errors and rows need one entry per group, got "
            f"{len(groups)}, {len(means)}, {len(standard_errors)} and {len(rows)}"
        )
    ses = np.asarray(standard_errors, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    names = [escape(g) for g in groups]
    spreads = [
        f"± {se:.3f} (SE clustered by set)" if np.isfinite(se) else "(no SE: rows of one set)"
        for se in ses
    ]
    fig = go.Figure(
        go.Bar(  # from the even share up or down to the mean: above 1 draws more than even
            x=list(range(len(groups))),
            y=means - 1.0,
            base=1.0,
            error_y={"type": "data", "array": np.nan_to_num(ses, nan=0.0), "visible": True},
            customdata=[
                [name, int(count), spread, float(mean)]
                for name, count, spread, mean in zip(names, rows, spreads, means, strict=True)
            ],
            hovertemplate="%{customdata[0]}<br>mean: %{customdata[3]:.3f} "
            "%{customdata[2]}<br>rows: %{customdata[1]:,}<extra></extra>",
        )
    )
    fig.add_hline(y=1.0, line_dash="dot", line_color="grey", annotation_text="even share")
    fig.update_layout(
        title=escape(title or f"{measure} by {column}"),
        yaxis={"title": {"text": escape(measure)}},
    )
    fig.update_xaxes(
        title={"text": escape(column)},
        tickmode="array",
        tickvals=list(range(len(groups))),
        ticktext=[shorten(g, max_label) for g in groups],
    )
    return fig


def row_bars(
    values: Sequence[float],
    labels: Sequence[str],
    hover: Sequence[str],
    *,
    measure: str,
    title: str = "",
    max_label: int = MAX_LABEL,
) -> go.Figure:
    """Rows of one set by an attention measure, in the order given (the first on top), each
    with its values on hover; each bar runs from 1, an even share, to the row's value.
    Shape: all three ``(n,)``."""
    if not len(values) == len(labels) == len(hover):
        raise ValueError(
            f"values, labels and hover need one entry per row, got {len(values)}, "
            f"{len(labels)} and {len(hover)}"
        )
    values = np.asarray(values, dtype=np.float64)
    fig = go.Figure(
        go.Bar(  # from the even share to the row's value, as the summaries
            x=values - 1.0,
            base=1.0,
            y=list(range(len(values))),
            orientation="h",
            customdata=[
                [f"{escape(label)}<br>{escape(line)}", float(value)]
                for label, line, value in zip(labels, hover, values, strict=True)
            ],
            hovertemplate="%{customdata[0]}<br>"
            + escape(measure)
            + ": %{customdata[1]:.3f}<extra></extra>",
        )
    )
    fig.add_vline(x=1.0, line_dash="dot", line_color="grey")
    fig.update_layout(
        title=escape(title),
        xaxis={"title": {"text": escape(measure) + " (1: an even share)"}},
        height=140 + 22 * len(values),
    )
    fig.update_yaxes(
        tickmode="array",
        tickvals=list(range(len(values))),
        ticktext=[shorten(label, max_label) for label in labels],
        autorange="reversed",
    )
    return fig
