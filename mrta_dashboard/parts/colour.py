"""The colour scale of the attention heatmaps. By default it is diverging around the uniform
weight ``1/keys``, what a query gives each key when it spreads evenly: a uniform map is all
white, however large its weights look on a 0-to-max scale. The 0-to-max scale and the scale
fitted to the values are one click away."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from mrta.report import figures

CENTRED, ZERO, FIT = "centred", "zero", "fit"
SCALES = {
    CENTRED: "around uniform (1/keys)",
    ZERO: "0 to the largest weight",
    FIT: "fitted to the values",
}


def choice(key: str) -> str:
    """The colour scale chosen (one of :data:`SCALES`), centred on uniform by default."""
    return st.radio(
        "Colour scale",
        list(SCALES),
        format_func=SCALES.__getitem__,
        horizontal=True,
        key=key,
        help="Around uniform: white is the weight of a query that spreads evenly over the keys "
        "(1/keys), red more, blue less. 0 to the largest: honest about how large the weights "
        "are. Fitted: from the smallest to the largest weight, to see the structure of a "
        "near-uniform map (it exaggerates it).",
    )


def uniform_weight(weights: np.ndarray) -> float:
    """``1/keys``: the weight of a query that attends evenly. Shape: ``(..., Tk)``."""
    return 1.0 / np.asarray(weights).shape[-1]


def centre(
    figure: go.Figure, weights: np.ndarray, scale: str, uniform: float | None = None
) -> go.Figure:
    """With the :data:`CENTRED` scale, `figure` recoloured around the uniform weight
    (:func:`mrta.report.figures.centred_on_uniform`); else as it is."""
    if scale != CENTRED:
        return figure
    return figures.centred_on_uniform(figure, weights, uniform)


def caption(weights: np.ndarray, scale: str, what: str = "keys") -> None:
    """What the colours mean, under the figure."""
    if scale != CENTRED:
        return
    uniform = uniform_weight(weights)
    count = round(1 / uniform)
    st.caption(
        f"White is the uniform weight 1/{count} = {uniform:.3f} (a query spreading evenly over "
        f"the {count} {what}); red cells draw more than that, blue less. The scale spans at "
        "least 0 to twice that weight, so a near-uniform map stays pale."
    )
