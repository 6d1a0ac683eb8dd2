"""Figures of a map across a run's seed members (:mod:`mrta.analysis.stability`): the members'
mean map, centred on the uniform weight, with its unstable cells marked, and the spread of each
cell across the members."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from mrta.analysis.stability import DEFAULT_Q, CellStability
from mrta.report import figures
from mrta.report.figures import colour_bar, legend_above, pairs

#: The mark of an unstable cell, and its colour (legible on red, white and blue).
UNSTABLE_SYMBOL, UNSTABLE_COLOUR = "x-thin", "#111111"


def members_words(cells: CellStability) -> str:
    """``"3 seed members"``: how many members a map was compared across."""
    return f"{len(cells.heads)} seed members"


#: What each of :func:`stability_heatmaps`' figures shows, after the map's title.
MEAN_WORDS, SPREAD_WORDS = "mean of the members", "SD across the members"


def stability_heatmaps(
    cells: CellStability,
    names: tuple[Sequence[str], Sequence[str]],
    *,
    title: str = "",
    rows: str = "",
    q: float = DEFAULT_Q,
) -> tuple[go.Figure, go.Figure]:
    """A map across the members (`names`: its queries and keys), titled ``f"{title}:
    {MEAN_WORDS}"`` and ``f"{title}: {SPREAD_WORDS}"``:

    - the mean across members of their head-mean maps, on the scale centred on the uniform
      weight (:func:`mrta.report.figures.centred_on_uniform`), each unstable cell marked with a
      cross (a trace named ``"unstable"``; members significantly on both sides of the uniform
      weight at the false discovery rate `q`), counted in the legend above the plot; hovering a
      cell shows its mean and its standard deviation across members;
    - the standard deviation of each cell across the members, from 0 to the largest; hovering
      a cell shows it beside the cell's mean.

    Shape: ``cells.mean``, ``cells.sd``, ``cells.unstable``: ``(Tq, Tk)``.
    """
    queries, keys = names
    mean_weights, sd = (np.asarray(a, dtype=np.float64) for a in (cells.mean, cells.sd))
    mean = figures.heatmap(mean_weights, queries, keys, title=f"{title}: {MEAN_WORDS}", rows=rows)
    figures.centred_on_uniform(mean, mean_weights)
    trace = mean.data[0]
    trace.customdata = pairs(queries, keys, sd)
    trace.hovertemplate = (
        "query: %{customdata[0]}<br>key: %{customdata[1]}<br>mean weight: %{z:.4f}<br>"
        f"SD across {members_words(cells)}: " + "%{customdata[2]:.4f}<extra></extra>"
    )
    q_idx, k_idx = np.nonzero(cells.unstable)
    mean.add_trace(
        go.Scatter(
            x=k_idx.tolist(),
            y=q_idx.tolist(),
            mode="markers",
            marker={
                "symbol": UNSTABLE_SYMBOL,
                "size": 14,
                "line": {"width": 2.5, "color": UNSTABLE_COLOUR},
            },
            name="unstable",
            showlegend=False,
            customdata=pairs(queries, keys)[q_idx, k_idx].tolist() if len(q_idx) else [],
            hovertemplate="query: %{customdata[0]}<br>key: %{customdata[1]}<br>unstable: "
            "members significantly on both sides of the uniform weight<extra></extra>",
        )
    )
    unstable = int(cells.unstable.sum())
    legend_above(mean, f"× unstable: {unstable} of {cells.unstable.size} cells (q = {q:g})")
    spread = figures.heatmap(
        sd, queries, keys, title=f"{title}: {SPREAD_WORDS}", rows=rows, zmax=max(sd.max(), 1e-9)
    )
    spread.update_layout(coloraxis_colorbar=colour_bar(f"SD across<br>{members_words(cells)}"))
    trace = spread.data[0]
    trace.customdata = pairs(queries, keys, mean_weights)
    trace.hovertemplate = (
        "query: %{customdata[0]}<br>key: %{customdata[1]}<br>SD: %{z:.4f}<br>"
        "mean weight: %{customdata[2]:.4f}<extra></extra>"
    )
    return mean, spread
