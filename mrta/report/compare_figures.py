"""Figures of two runs compared: a shared map of both side by side on one colour scale, their
difference with the cells within the noise greyed, and the column importances side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mrta.analysis.comparison import MapComparison
from mrta.analysis.importance import METHOD_TITLES, METHODS, ColumnImportances
from mrta.errors import counted
from mrta.report import figures
from mrta.report.figures import MAX_LABEL, MIN_PLOT, TITLE_ROOM, escape, title_of
from mrta.report.importance_figures import importance_bar, name_bars
from mrta.streams import MAP_LABELS

#: The bars of each run in the importances' figure.
RUN_COLOURS = ("#4c78a8", "#f58518")


def map_title(compared: MapComparison) -> str:
    """``"Layer 0, numerical → categorical"``: a shared map's name."""
    return f"Layer {compared.layer}, {MAP_LABELS[compared.map_id]}"


def maps_side_by_side(
    compared: MapComparison, names: Sequence[str], *, rows: str = "", fit: bool = False
) -> go.Figure:
    """Both runs' head-mean maps of one shared map, side by side on one colour scale: centred on
    the uniform weight when no key was left out (both rows then spread over the same keys),
    else from 0 (or with `fit` from the smallest weight) to the largest, since the rows no
    longer sum to 1. `names`: the two runs' names; `rows`: the rows they are means of.

    Shape: the maps ``(Tq, Tk)``.
    """
    shared = compared.shared
    both = np.stack([compared.mean_a, compared.mean_b])
    title = f"{map_title(compared)}: both runs, mean of heads"
    figure = figures.head_grid(
        both, shared.queries, shared.keys, title=title, rows=rows, columns=2, fit=fit
    )
    for i, name in enumerate(names):  # the panels and their hovers name the runs, not heads
        figure.layout.annotations[i].text = escape(name)
        trace = figure.data[i]
        trace.name = escape(name)
        trace.hovertemplate = trace.hovertemplate.replace(f"head {i}", escape(name))
    if shared.complete and not fit:
        figures.centred_on_uniform(figure, both)
    return figure


def difference_map(compared: MapComparison, names: Sequence[str], *, rows: str = "") -> go.Figure:
    """The difference of the two runs' head-mean maps (the first minus the second), the cells
    where no difference was detected greyed (:func:`mrta.report.figures.difference_heatmap`).

    Shape: the maps ``(Tq, Tk)``.
    """
    shared = compared.shared
    title = f"{map_title(compared)}: {names[0]} − {names[1]}, mean of heads"
    return figures.difference_heatmap(
        compared.difference, shared.queries, shared.keys, title=title, rows=rows
    )


def rho_text(agreement: Mapping[str, Any] | None) -> str:
    """``"Spearman ρ = 0.80 (exact p = 0.33, 4 columns)"``, or why there is none."""
    if agreement is None or agreement.get("spearman") is None:
        columns = 0 if agreement is None else agreement.get("columns", 0)
        return f"no Spearman ρ ({counted(columns, 'common column')}, or a constant side)"
    return (
        f"Spearman ρ = {agreement['spearman']:.2f} ({agreement['p_value_method']} p = "
        f"{agreement['p_value']:.2g}, {counted(agreement['columns'], 'column')})"
    )


def importances_side_by_side(
    a: ColumnImportances,
    b: ColumnImportances,
    names: Sequence[str],
    rank_correlation: Mapping[str, Mapping[str, Any]],
    *,
    max_label: int = MAX_LABEL,
) -> go.Figure:
    """One panel per method both runs have: each common column's importance in both runs, side
    by side with its standard error, the columns in the first run's permutation order (most
    important on top), the rank correlation in the panel's title."""
    methods = [m for m in METHODS if m in a and m in b]
    order = [c for c in a.methods[methods[0]].ranking() if c in b.methods[methods[0]].mean][::-1]
    fig = make_subplots(
        rows=1,
        cols=len(methods),
        shared_yaxes=True,
        subplot_titles=[
            f"{escape(METHOD_TITLES[m])}<br>{escape(rho_text(rank_correlation.get(m)))}"
            for m in methods
        ],
        horizontal_spacing=0.03,
    )
    for i, method in enumerate(methods, start=1):
        for run, name, colour in zip((a, b), names, RUN_COLOURS, strict=True):
            result = run.methods[method]
            fig.add_trace(
                importance_bar(
                    result,
                    order,
                    name=escape(name),
                    legendgroup=escape(name),
                    showlegend=i == 1,
                    marker_color=colour,
                    hovertemplate="%{customdata}: %{x:.4g}<extra>" + escape(name) + "</extra>",
                ),
                row=1,
                col=i,
            )
    fig.update_layout(
        title=title_of(
            "Column importance of both runs",
            f"on the same {counted(a.rows, 'row')} · the columns both read · bars: ± one "
            "standard error",
        ),
        barmode="group",
        height=TITLE_ROOM + max(MIN_PLOT, 40 * len(order)) + 90,
        margin={"t": TITLE_ROOM + 30, "b": 50},
        legend={"orientation": "h", "y": -0.15, "x": 0},
    )
    name_bars(fig, order, max_label)
    return fig
