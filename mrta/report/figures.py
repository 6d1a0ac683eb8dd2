"""Plotly figures of attention, importances and model quality.

The only package of the library that imports plotly is :mod:`mrta.report`. Every function is
pure: arrays and names in, a :class:`plotly.graph_objects.Figure` out, so the dashboard and the
command line draw the same pictures and tests can read them as JSON.

Conventions: heatmap rows are queries, columns keys; long names are shortened on the axes with
the full name on hover; every name is HTML-escaped (plotly renders a subset of HTML in labels).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mrta.analysis.difference import MapDifference

MAX_LABEL = 24  # characters of a name on an axis; the full name is on hover
TITLE_ROOM = 90  # pixels above the plot: the title and the line naming the rows it shows
MIN_PLOT = 160  # pixels: the least height of a plot area, whatever few names it has
ONE_MAP = 260  # pixels: the least height of a map shown alone


WEIGHT_SCALE = "Viridis"  # sequential, readable in grey and by colour-blind readers


DIFFERENCE_SCALE = "RdBu_r"  # diverging: red where the first cohort attends more


MUTED_COLOUR = "#d9d9d9"
#: Diverging around the uniform weight: ColorBrewer's red-blue, readable by colour-blind readers
#: (red: more than an even share, blue: less).
UNIFORM_SCALE = "RdBu_r"


def escape(text: str) -> str:
    """``text`` safe to show in a plotly label or an HTML page."""
    return html.escape(str(text), quote=False)


def shorten(name: str, max_chars: int = MAX_LABEL) -> str:
    """``name`` cut to ``max_chars`` characters with an ellipsis, then escaped."""
    name = str(name)
    return escape(name if len(name) <= max_chars else name[: max_chars - 1] + "…")


def title_of(title: str, rows: str = "") -> dict[str, Any]:
    """A figure's title, escaped, with `rows` (which rows it shows: a cohort, or both cohorts
    of a difference) on a second, smaller line, so a screenshot or an exported figure keeps its
    context."""
    text = escape(title)
    if rows:
        text += f"<br><span style='font-size:12px'>{escape(rows)}</span>"
    return {"text": text}


def label_room(names: Sequence[str], max_label: int) -> int:
    """Pixels that names shortened to `max_label` characters need below a plot, tilted at 45°."""
    longest = max((min(len(str(n)), max_label) for n in names), default=1)
    return 30 + round(7 * longest * 0.72)


def standalone_html(figure: go.Figure, name: str) -> str:
    """`figure` as a standalone HTML page titled `name` that opens offline (plotly.js inside)."""
    page = figure.to_html(full_html=True, include_plotlyjs=True, config={"displaylogo": False})
    return page.replace("</head>", f"<title>{escape(name)}</title></head>", 1)


def pairs(queries: Sequence[str], keys: Sequence[str], *extra: np.ndarray) -> np.ndarray:
    """Hover data per cell: escaped query and key names, then ``extra`` arrays.

    Shape: ``(Tq, Tk, 2 + len(extra))`` object.
    """
    q = np.array([escape(n) for n in queries], dtype=object)[:, None]
    k = np.array([escape(n) for n in keys], dtype=object)[None, :]
    layers = np.broadcast_arrays(q, k, *extra)
    return np.stack(layers, axis=-1).astype(object)


def _name_axes(
    fig: go.Figure, queries: Sequence[str], keys: Sequence[str], max_label: int, **where: int
) -> None:
    """Shortened names as tick labels (positions, so equal short names never merge)."""
    fig.update_xaxes(
        tickmode="array",
        tickvals=list(range(len(keys))),
        ticktext=[shorten(n, max_label) for n in keys],
        tickangle=-45,
        automargin=True,
        **where,
    )
    fig.update_yaxes(
        tickmode="array",
        tickvals=list(range(len(queries))),
        ticktext=[shorten(n, max_label) for n in queries],
        autorange="reversed",
        automargin=True,
        **where,
    )


def _weight_trace(
    weights: np.ndarray, queries: Sequence[str], keys: Sequence[str], name: str = ""
) -> go.Heatmap:
    return go.Heatmap(
        z=np.asarray(weights, dtype=np.float64),
        x=list(range(len(keys))),
        y=list(range(len(queries))),
        customdata=pairs(queries, keys),
        hovertemplate="query: %{customdata[0]}<br>key: %{customdata[1]}<br>"
        "weight: %{z:.4f}<extra>" + escape(name) + "</extra>",
        coloraxis="coloraxis",
        name=escape(name),
    )


def weight_axis(weights: np.ndarray, fit: bool, zmax: float | None = None) -> dict[str, Any]:
    """The shared colour axis: from 0 to the largest weight, or ``fit`` to the values' range
    (which shows the structure of near-uniform maps, at the price of exaggerating it)."""
    return {
        "colorscale": WEIGHT_SCALE,
        "cmin": float(weights.min()) if fit else 0.0,
        "cmax": float(weights.max()) if zmax is None else zmax,
        "colorbar": colour_bar("weight"),
    }


def colour_bar(title: str) -> dict[str, Any]:
    """A colour bar readable beside a small map: a titled, thin bar with a few short ticks."""
    return {
        "title": {"text": title, "side": "top"},
        "thickness": 14,
        "len": 0.9,
        "nticks": 6,
        "tickformat": ".3~g",
        "outlinewidth": 0,
    }


def centred_on_uniform(
    figure: go.Figure, weights: np.ndarray, uniform: float | None = None
) -> go.Figure:
    """Recolour `figure` (whose heatmaps share its ``coloraxis``) on :data:`UNIFORM_SCALE`,
    symmetric around the uniform weight: by default ``1/keys`` of `weights` (give it for a map
    that shows some of its keys). White is a query spreading evenly over the keys.

    The scale spans at least 0 to twice the uniform weight (further when a weight is further
    from uniform), so a near-uniform map stays pale instead of being stretched to full colour.

    Shape: weights ``(..., Tq, Tk)``, every value the figure shows.
    """
    weights = np.asarray(weights, dtype=np.float64)
    uniform = 1.0 / weights.shape[-1] if uniform is None else uniform
    spread = max(uniform, float(np.abs(weights - uniform).max()))
    figure.update_layout(
        coloraxis={
            "colorscale": UNIFORM_SCALE,
            "cmin": uniform - spread,
            "cmax": uniform + spread,
            "colorbar": colour_bar(f"weight<br>(white: 1/{round(1 / uniform)})"),
        }
    )
    return figure


def heatmap(
    weights: np.ndarray,
    queries: Sequence[str],
    keys: Sequence[str],
    *,
    title: str = "",
    rows: str = "",
    zmax: float | None = None,
    fit: bool = False,
    max_label: int = MAX_LABEL,
) -> go.Figure:
    """One attention map, queries down the rows and keys across the columns; `rows` names the
    rows it is of, under the title (:func:`title_of`).

    Shape: weights ``(Tq, Tk)``. The colour scale runs from 0 (or with ``fit``, the smallest
    weight) to ``zmax`` (default the largest).
    """
    weights = np.asarray(weights)
    check_shape(weights, queries, keys)
    fig = go.Figure(_weight_trace(weights, queries, keys))
    fig.update_layout(
        title=title_of(title, rows),
        coloraxis=weight_axis(weights, fit, zmax),
        xaxis_title="keys",
        yaxis_title="queries",
        height=TITLE_ROOM + max(ONE_MAP, 30 * len(queries)) + label_room(keys, max_label),
        margin={"t": TITLE_ROOM},
    )
    _name_axes(fig, queries, keys, max_label)
    return fig


def head_grid(
    weights: np.ndarray,
    queries: Sequence[str],
    keys: Sequence[str],
    *,
    title: str = "",
    rows: str = "",
    columns: int = 4,
    fit: bool = False,
    max_label: int = 16,
    clickable: bool = False,
) -> go.Figure:
    """Small multiples: one heatmap per head, all on one shared colour scale (from 0, or with
    ``fit`` from the smallest weight of any head, to the largest); `rows` as in :func:`heatmap`.

    With `clickable`, each head also gets a transparent point on each cell (after the heatmaps,
    in the order of the heads: see :func:`clicked_head`), because plotly reports no click on a
    heatmap when a selection is listened for; a point's hover shows its cell's query, key and
    weight.

    Shape: weights ``(H, Tq, Tk)``.
    """
    weights = np.asarray(weights)
    heads, tq, tk = weights.shape
    check_shape(weights[0], queries, keys)
    columns = min(columns, heads)
    grid_rows = math.ceil(heads / columns)
    plot = max(MIN_PLOT + 40, 24 * tq)
    gap = 50  # between rows of heads: their titles
    bottom = label_room(keys, max_label)
    fig = make_subplots(
        rows=grid_rows,
        cols=columns,
        subplot_titles=[f"head {h}" for h in range(heads)],
        horizontal_spacing=0.04,
        vertical_spacing=gap / (grid_rows * plot + (grid_rows - 1) * gap),
    )
    for h in range(heads):
        row, col = divmod(h, columns)
        fig.add_trace(_weight_trace(weights[h], queries, keys, f"head {h}"), row + 1, col + 1)
    if clickable:
        q, k = np.meshgrid(np.arange(tq), np.arange(tk), indexing="ij")
        for h in range(heads):
            row, col = divmod(h, columns)
            cells = pairs(queries, keys, weights[h].astype(np.float64)).reshape(tq * tk, 3)
            fig.add_trace(
                go.Scatter(
                    x=k.ravel(),
                    y=q.ravel(),
                    mode="markers",
                    marker={"size": 6, "opacity": 0},
                    customdata=cells,
                    hovertemplate="query: %{customdata[0]}<br>key: %{customdata[1]}<br>"
                    "weight: %{customdata[2]:.4f}<extra>head " + str(h) + "</extra>",
                    showlegend=False,
                    name=f"head {h}",
                ),
                row + 1,
                col + 1,
            )
    fig.update_layout(
        title=title_of(title, rows),
        coloraxis=weight_axis(weights, fit),
        height=TITLE_ROOM + grid_rows * plot + (grid_rows - 1) * gap + bottom,
        margin={"t": TITLE_ROOM},
        hoverdistance=-1 if clickable else 20,
    )
    _name_axes(fig, queries, keys, max_label)
    fig.update_yaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=True, title_text="queries", col=1)
    for h in range(heads):
        row, col = divmod(h, columns)
        lowest = h + columns >= heads  # no head below it in its column
        fig.update_xaxes(
            showticklabels=lowest, title_text="keys" if lowest else None, row=row + 1, col=col + 1
        )
    return fig


def clicked_head(curve_number: int, heads: int) -> int:
    """The head of the trace `curve_number` of a :func:`head_grid` of `heads` heads (its
    heatmaps come first, then with ``clickable`` the points over them, both in head order)."""
    return int(curve_number) % heads


def difference_heatmap(
    difference: MapDifference,
    queries: Sequence[str],
    keys: Sequence[str],
    *,
    title: str = "",
    rows: str = "",
    max_label: int = MAX_LABEL,
) -> go.Figure:
    """A difference of two cohorts' maps; cells within the noise are grey, as the figure's
    legend above the plot says. `rows` as in :func:`heatmap`: both cohorts.

    The colour scale is symmetric around 0; hovering any cell shows the difference and its
    standard error. Shape: ``difference``'s arrays ``(Tq, Tk)``.
    """
    diff, se, muted = difference.diff, difference.se, difference.muted
    check_shape(diff, queries, keys)
    hover = pairs(
        queries,
        keys,
        np.vectorize(lambda d: f"{d:+.4f}", otypes=[object])(diff),
        np.vectorize(lambda s: "∞" if math.isinf(s) else f"{s:.4f}", otypes=[object])(se),
    )
    template = (
        "query: %{customdata[0]}<br>key: %{customdata[1]}<br>"
        "difference: %{customdata[2]}<br>standard error: %{customdata[3]}"
    )
    axes = {"x": list(range(len(keys))), "y": list(range(len(queries))), "customdata": hover}
    limit = float(np.abs(diff[~muted]).max()) if (~muted).any() else 1.0
    fig = go.Figure(
        [
            go.Heatmap(
                z=np.where(muted, 0.0, np.nan),
                colorscale=[[0.0, MUTED_COLOUR], [1.0, MUTED_COLOUR]],
                showscale=False,
                hoverongaps=False,
                hovertemplate=template + "<br>(within noise)<extra></extra>",
                name="muted",
                **axes,
            ),
            go.Heatmap(
                z=np.where(muted, np.nan, diff),
                coloraxis="coloraxis",
                hoverongaps=False,
                hovertemplate=template + "<extra></extra>",
                name="difference",
                **axes,
            ),
        ]
    )
    fig.update_layout(
        title=title_of(title, rows),
        coloraxis={
            "colorscale": DIFFERENCE_SCALE,
            "cmin": -limit,
            "cmax": limit,
            "colorbar": colour_bar("difference<br>(A − B)"),
        },
        xaxis_title="keys",
        yaxis_title="queries",
        plot_bgcolor="white",
        height=TITLE_ROOM + max(ONE_MAP, 30 * len(queries)) + label_room(keys, max_label),
        margin={"t": TITLE_ROOM},
    )
    legend = (
        f"<span style='color:{MUTED_COLOUR}'>■</span> grey: no difference detected at a false "
        f"discovery rate of q = {difference.q:g}"
        if difference.tested
        else "not tested: every cell's difference is shown, none greyed"
    )
    legend_above(fig, legend)  # of the grey cells
    _name_axes(fig, queries, keys, max_label)
    return fig


def legend_above(figure: go.Figure, text: str) -> None:
    """A one-line legend (`text`, plotly's HTML) above the plot's top right corner: what the
    marks or the colours of a map mean."""
    paper_note(figure, text, top=True)


def paper_note(figure: go.Figure, text: str, *, top: bool, shift: int = 0) -> None:
    """A note (`text`, plotly's HTML, size 11) at a corner of the plot: above its top right
    corner (`top`), or from its bottom left corner, `shift` pixels up (negative: down)."""
    figure.add_annotation(
        text=text,
        xref="paper",
        yref="paper",
        x=1 if top else 0,
        y=1 if top else 0,
        yshift=shift,
        xanchor="right" if top else "left",
        yanchor="bottom",
        align="right" if top else "left",
        showarrow=False,
        font={"size": 11},
    )


def importance_bars(
    importance: Mapping[str, float],
    *,
    errors: Mapping[str, float] | None = None,
    title: str = "",
    max_label: int = MAX_LABEL,
) -> go.Figure:
    """Per-column importances as horizontal bars, the largest on top."""
    names = sorted(importance, key=lambda n: importance[n])
    values = [importance[n] for n in names]
    fig = go.Figure(
        go.Bar(
            x=values,
            y=list(range(len(names))),
            orientation="h",
            customdata=[escape(n) for n in names],
            hovertemplate="%{customdata}: %{x:.4g}<extra></extra>",
            error_x=None
            if errors is None
            else {"type": "data", "array": [errors.get(n, 0.0) for n in names]},
        )
    )
    fig.update_layout(title=escape(title), xaxis_title="importance", height=120 + 22 * len(names))
    fig.update_yaxes(
        tickmode="array",
        tickvals=list(range(len(names))),
        ticktext=[shorten(n, max_label) for n in names],
    )
    return fig


def agreement_scatter(
    rollout: Mapping[str, float],
    permutation: Mapping[str, float],
    *,
    spearman: float | None = None,
    title: str = "Rollout vs permutation importance",
) -> go.Figure:
    """One point per column: rollout importance against permutation importance."""
    names = [n for n in rollout if n in permutation]
    subtitle = "" if spearman is None else f" (Spearman ρ = {spearman:.2f})"
    fig = go.Figure(
        go.Scatter(
            x=[rollout[n] for n in names],
            y=[permutation[n] for n in names],
            mode="markers",
            customdata=[escape(n) for n in names],
            hovertemplate="%{customdata}<br>rollout: %{x:.4g}<br>permutation: %{y:.4g}"
            "<extra></extra>",
        )
    )
    fig.update_layout(
        title=escape(title + subtitle),
        xaxis_title="rollout importance",
        yaxis_title="loss increase when shuffled",
    )
    return fig


def divergence_bars(rows: Sequence[Mapping[str, Any]], *, title: str = "") -> go.Figure:
    """Per layer and map, divergence from the untrained model (rows of ``map_divergence``)."""
    labels = [escape(f"{row['layer_name']} · {row['map_id']}") for row in rows]
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=[row["divergence"] for row in rows],
            hovertemplate="%{x}<br>mean JS divergence: %{y:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        title=escape(title or "Divergence from the untrained model"),
        yaxis={"title": {"text": "mean JS divergence (bits)"}, "range": [0, 1]},
    )
    return fig


def confusion_figure(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> go.Figure:
    """Counts of true (rows) against predicted (columns) classes."""
    names = [shorten(str(label)) for label in labels]
    fig = go.Figure(
        go.Heatmap(
            z=np.asarray(matrix),
            x=names,
            y=names,
            colorscale="Blues",
            texttemplate="%{z}",
            hovertemplate="true: %{y}<br>predicted: %{x}<br>rows: %{z}<extra></extra>",
        )
    )
    fig.update_layout(
        title={"text": "Confusion matrix (test split)"},
        xaxis={"title": {"text": "predicted"}},
        yaxis={"title": {"text": "true"}, "autorange": "reversed"},
    )
    return fig


def roc_figure(y: np.ndarray, probabilities: np.ndarray, labels: Sequence[str]) -> go.Figure:
    """One-vs-rest ROC curve per class (binary: the positive class only).

    Shape: y ``(N,)`` class indices; probabilities ``(N, C)``.
    """
    from sklearn.metrics import roc_curve

    fig = go.Figure()
    classes = [1] if probabilities.shape[1] == 2 else range(probabilities.shape[1])
    for c in classes:
        if len(np.unique(y == c)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y == c, probabilities[:, c])
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", name=escape(str(labels[c]))))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot"}, name="chance"))
    fig.update_layout(
        title={"text": "ROC curve (test split)"},
        xaxis={"title": {"text": "false positive rate"}},
        yaxis={"title": {"text": "true positive rate"}},
    )
    return fig


def prediction_scatter(y: np.ndarray, predicted: np.ndarray, target: str) -> go.Figure:
    """Predicted against actual values, with the identity line. Shape: both ``(N,)``."""
    low, high = float(min(y.min(), predicted.min())), float(max(y.max(), predicted.max()))
    fig = go.Figure(
        [
            go.Scatter(x=y, y=predicted, mode="markers", marker={"opacity": 0.5}, name="rows"),
            go.Scatter(x=[low, high], y=[low, high], mode="lines", name="perfect"),
        ]
    )
    fig.update_layout(
        title={"text": f"Predicted vs actual {escape(target)} (test split)"},
        xaxis={"title": {"text": "actual"}},
        yaxis={"title": {"text": "predicted"}},
    )
    return fig


def training_curves(history: Sequence[Mapping[str, Any]]) -> go.Figure:
    """Training and validation loss per epoch (epoch 0: the untrained model)."""
    fig = go.Figure()
    for key, name in (("train_loss", "training loss"), ("validation_loss", "validation loss")):
        points = [(h["epoch"], h[key]) for h in history if h.get(key) is not None]
        if points:
            x, y = zip(*points, strict=True)
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=name))
    fig.update_layout(
        title={"text": "Loss per epoch"},
        xaxis={"title": {"text": "epoch"}},
        yaxis={"title": {"text": "loss"}},
    )
    return fig


def check_shape(weights: np.ndarray, queries: Sequence[str], keys: Sequence[str]) -> None:
    if weights.shape != (len(queries), len(keys)):
        raise ValueError(
            f"a map of shape {weights.shape} needs {weights.shape[0]} query and "
            f"{weights.shape[-1]} key names, got {len(queries)} and {len(keys)}"
        )
