"""Figures of the column importances and of their faithfulness: every method's bars with error
bars side by side, the rollout per stream, and the deletion curves against random orders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mrta.analysis.deletion import Faithfulness
from mrta.analysis.importance import METHOD_TITLES, METHODS, ColumnImportances, MethodImportance
from mrta.errors import counted
from mrta.report.figures import (
    MAX_LABEL,
    MIN_PLOT,
    TITLE_ROOM,
    escape,
    paper_note,
    shorten,
    title_of,
)

#: What the rollout's figure says of its split between the streams.
ROLLOUT_SPLIT = (
    "the numerical and the categorical columns each receive half by construction, whatever the "
    "maps: compare a column with others of its own type"
)
STREAM_LABELS = {"num": "numerical columns", "cat": "categorical columns"}


def importance_bar(result: MethodImportance, order: Sequence[str], **style: Any) -> go.Bar:
    """One method's importance of each column of `order`, as horizontal bars (bottom to top)
    with ± one standard error where there is one; `style`: the bars' own settings."""
    return go.Bar(
        x=[result.mean[name] for name in order],
        y=list(range(len(order))),
        orientation="h",
        customdata=[escape(name) for name in order],
        error_x=None
        if result.se is None
        else {"type": "data", "array": [result.se[name] for name in order]},
        **style,
    )


def name_bars(figure: go.Figure, order: Sequence[str], max_label: int = MAX_LABEL) -> None:
    """Label the bars of the first panel with the columns of `order` (shortened; the others
    share its axis), the margin fitted to them."""
    figure.update_yaxes(
        tickmode="array",
        tickvals=list(range(len(order))),
        ticktext=[shorten(name, max_label) for name in order],
        row=1,
        col=1,
    )
    figure.update_yaxes(automargin=True)


def importance_panels(importances: ColumnImportances, *, max_label: int = MAX_LABEL) -> go.Figure:
    """One panel per method, the columns in one order (the permutation importance's, most
    important on top), each bar with its standard error."""
    methods = [m for m in METHODS if m in importances]
    order = importances.methods[methods[0]].ranking()[::-1]  # bottom to top
    fig = make_subplots(
        rows=1,
        cols=len(methods),
        shared_yaxes=True,
        subplot_titles=[escape(METHOD_TITLES[m]) for m in methods],
        horizontal_spacing=0.03,
    )
    for i, method in enumerate(methods, start=1):
        result = importances.methods[method]
        fig.add_trace(
            importance_bar(
                result,
                order,
                name=escape(METHOD_TITLES[method]),
                hovertemplate="%{customdata}: %{x:.4g} ± %{error_x.array:.2g}<extra></extra>",
                marker_color=[
                    "#4c78a8" if importances.streams.get(n) == "num" else "#f58518" for n in order
                ],
                showlegend=False,
            ),
            row=1,
            col=i,
        )
    name_bars(fig, order, max_label)
    fig.update_layout(
        title=title_of(
            "Column importance",
            f"on {counted(importances.rows, 'test row')} · blue: numerical, orange: "
            "categorical · bars: ± one standard error",
        ),
        height=TITLE_ROOM + max(MIN_PLOT, 24 * len(order)) + 50,
        margin={"t": TITLE_ROOM, "b": 50},
    )
    return fig


def rollout_by_stream(
    importance: Mapping[str, float],
    streams: Mapping[str, str],
    *,
    title: str = "Attention received, rolled out",
    rows: str = "",
    max_label: int = MAX_LABEL,
) -> go.Figure:
    """The rollout's shares in one panel per stream, with its fixed half-and-half split stated
    on the figure; `rows` names the rows it is averaged over, under the title. `streams`: each
    column's ``"num"`` or ``"cat"``. The plot keeps :data:`MIN_PLOT` pixels however few the
    columns."""
    present = [s for s in ("num", "cat") if any(streams.get(n) == s for n in importance)]
    totals = {s: sum(v for n, v in importance.items() if streams.get(n) == s) for s in present}
    fig = make_subplots(
        rows=1,
        cols=len(present),
        subplot_titles=[f"{STREAM_LABELS[s]}: {totals[s]:.2f} of the total" for s in present],
        horizontal_spacing=0.25,
    )
    tallest = 1
    for i, stream in enumerate(present, start=1):
        names = sorted((n for n in importance if streams.get(n) == stream), key=importance.get)
        tallest = max(tallest, len(names))
        fig.add_trace(
            go.Bar(
                x=[importance[n] for n in names],
                y=[shorten(n, max_label) for n in names],
                orientation="h",
                customdata=[escape(n) for n in names],
                hovertemplate="%{customdata}: %{x:.4g}<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=i,
        )
    note = "Shares sum to 1" + (f":<br>{escape(ROLLOUT_SPLIT)}" if len(present) == 2 else "")
    bottom = 90  # the axis and the note on the split under it
    fig.update_layout(
        title=title_of(title, rows),
        height=TITLE_ROOM + 20 + max(MIN_PLOT, 24 * tallest) + bottom,
        margin={"t": TITLE_ROOM + 20, "b": bottom},  # 20: the panels' own titles
    )
    fig.update_yaxes(automargin=True)
    paper_note(fig, note, top=False, shift=-bottom + 10)
    return fig


def deletion_curves(faithfulness: Faithfulness) -> go.Figure:
    """Test loss as columns are removed in each method's order, over the band of random orders
    (their 5th to 95th percentile) and their mean; the legend carries each area and interval."""
    n = faithfulness.columns
    x = [k / n for k in range(n + 1)] if n else [0.0]
    random = faithfulness.random
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[*x, *x[::-1]],
            y=[*random.band_high, *random.band_low[::-1]],
            fill="toself",
            fillcolor="rgba(128,128,128,0.25)",
            line={"width": 0},
            name=f"{len(random.orders)} random orders (5th–95th percentile)",
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(x=x, y=list(random.curve), name="random orders, mean", line={"dash": "dash"})
    )
    level = round(100 * faithfulness.level)
    for method, result in faithfulness.methods.items():
        mark = "beats random" if result.beats_random else "does not beat random"
        fig.add_trace(
            go.Scatter(
                x=x,
                y=list(result.curve),
                mode="lines+markers",
                name=escape(
                    f"{METHOD_TITLES.get(method, method)}: area {result.area:+.3g} "
                    f"[{result.low:+.3g}, {result.high:+.3g}] ({mark})"
                ),
            )
        )
    fig.update_layout(
        title=(
            f"Deletion curves on {counted(faithfulness.rows, 'other test row')} (area above "
            f"the random mean, {level} % bootstrap interval over rows)"
        ),
        xaxis_title="fraction of columns removed (replaced by their training mean or mode)",
        yaxis_title="test loss",
        legend={"orientation": "h", "y": -0.25},
        height=520,
    )
    return fig
