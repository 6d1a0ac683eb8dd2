"""Figures of the HTML report that the dashboard's map views do not draw: the model's confusion
matrix and each map's divergence from the untrained model beside the control's.

Labels are shown whole (wrapped, not cut) and HTML-escaped; every axis makes room for its
labels (``automargin``), so nothing is clipped at the figure's edge.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from mrta.report.figures import escape
from mrta.streams import MAP_LABELS

#: Characters per line of a wrapped label or title.
LABEL_WIDTH = 18
TITLE_WIDTH = 90
TRAINED_COLOUR = "#1f77b4"
CONTROL_COLOUR = "#b0b0b0"
#: Values spanning more than this ratio are drawn on a log scale.
LOG_SPAN = 100.0


def wrap(text: str, width: int) -> str:
    """`text` escaped and broken into lines of at most `width` characters (plotly's ``<br>``);
    a single word longer than that stays whole."""
    lines = textwrap.wrap(str(text), width, break_long_words=False, break_on_hyphens=False)
    return "<br>".join(escape(line) for line in lines) or escape(text)


def title_lines(title: str, width: int = TITLE_WIDTH) -> dict[str, Any]:
    """A plotly title wrapped to `width` characters, with the top margin its lines need."""
    text = wrap(title, width)
    return {"title": {"text": text}, "margin": {"t": 40 + 22 * text.count("<br>")}}


def confusion_matrix_figure(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], *, title: str
) -> go.Figure:
    """Counts of true (rows) against predicted (columns) classes, each cell with its count and
    its share of the true class's rows (the diagonal: each class's recall).

    Shape: matrix ``(C, C)``; labels ``(C,)`` in the matrix's order.
    """
    counts = np.asarray(matrix, dtype=np.int64)
    if counts.shape != (len(labels), len(labels)):
        raise ValueError(
            f"a confusion matrix of shape {counts.shape} needs {counts.shape[0]} class labels, "
            f"got {len(labels)}"
        )
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    names = [wrap(label, LABEL_WIDTH) for label in labels]
    text = [
        [f"{counts[i, j]:,}<br>({share[i, j]:.0%})" for j in range(len(labels))]
        for i in range(len(labels))
    ]
    positions = list(range(len(labels)))
    fig = go.Figure(
        go.Heatmap(
            z=share,
            x=positions,
            y=positions,
            zmin=0.0,
            zmax=1.0,
            colorscale="Blues",
            text=text,
            texttemplate="%{text}",
            customdata=[[(names[i], names[j]) for j in positions] for i in positions],
            hovertemplate="true: %{customdata[0]}<br>predicted: %{customdata[1]}<br>"
            "%{text}<extra></extra>",
            colorbar={
                "title": {"text": "share of the true class", "side": "right"},
                "tickformat": ".0%",
            },
        )
    )
    axis = {"tickmode": "array", "tickvals": positions, "ticktext": names, "automargin": True}
    fig.update_layout(
        **title_lines(title),
        xaxis={**axis, "title": {"text": "predicted class"}, "side": "bottom"},
        yaxis={**axis, "title": {"text": "true class"}, "autorange": "reversed"},
        height=max(360, 160 + 60 * len(labels)),
    )
    return fig


def divergence_chart(rows: Sequence[Mapping[str, Any]], *, title: str) -> go.Figure:
    """Per layer and map, the trained model's divergence from the untrained model, beside the
    control's where there is one (rows of :func:`mrta.analysis.checks.map_divergence`).

    The value axis is fitted to the values, not to the divergence's bound of 1 (they are often
    thousandths): from 0 to a little over the largest, or on a log scale where they span more
    than :data:`LOG_SPAN` times; every bar carries its value.
    """
    labels = [
        wrap(f"layer {row['layer']}, {MAP_LABELS.get(row['map_id'], row['map_id'])}", LABEL_WIDTH)
        for row in rows
    ]
    positions = list(range(len(rows)))
    series = [("trained model", "divergence", TRAINED_COLOUR)]
    if any(row.get("control_divergence") is not None for row in rows):
        series.append(("control (shuffled labels)", "control_divergence", CONTROL_COLOUR))
    fig = go.Figure()
    measured = [float(row[key]) for _, key, _ in series for row in rows if row.get(key) is not None]
    for name, key, colour in series:
        values = [row.get(key) for row in rows]
        shown = [np.nan if v is None else float(v) for v in values]
        fig.add_trace(
            go.Bar(
                x=positions,
                y=shown,
                name=name,
                marker_color=colour,
                text=["not measured" if v is None else f"{v:.3g}" for v in values],
                textposition="outside",
                textangle=-90 if len(rows) > 4 else 0,
                cliponaxis=False,
                customdata=labels,
                hovertemplate="%{customdata}<br>" + escape(name) + ": %{y:.4g}<extra></extra>",
            )
        )
    fig.update_layout(
        **title_lines(title),
        barmode="group",
        xaxis={"tickmode": "array", "tickvals": positions, "ticktext": labels, "automargin": True},
        yaxis=_value_axis(measured),
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
        height=440,
    )
    return fig


def _value_axis(values: Sequence[float]) -> dict[str, Any]:
    """A value axis that shows every one of `values` (non-negative), with room above the
    tallest bar for its label: linear from 0, or logarithmic where the positive values span
    more than :data:`LOG_SPAN` times."""
    title = "mean JS divergence (bits, 0 to 1)"
    positive = [v for v in values if v > 0]
    if not positive:
        return {"title": {"text": title}, "range": [0, 1], "automargin": True}
    low, high = min(positive), max(positive)
    if high / low <= LOG_SPAN:
        return {"title": {"text": title}, "range": [0, 1.3 * high], "automargin": True}
    # log axes take their range in powers of ten: half a decade below, one above for the labels
    return {
        "title": {"text": f"{title}, log scale"},
        "type": "log",
        "range": [np.log10(low) - 0.5, np.log10(high) + 1.0],
        "automargin": True,
        "exponentformat": "power",
    }
