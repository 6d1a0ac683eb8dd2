"""Figures of set resolution: one set's row × row map, summaries across sets, a set's rows."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from mrta.report import set_figures


def spec(fig) -> dict:
    return json.loads(fig.to_json())


def typed(z) -> np.ndarray:
    """A numeric array of a figure's JSON; plotly writes numpy arrays as typed base64."""
    if isinstance(z, dict):
        flat = np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"]))
        shape = z.get("shape")
        return flat if shape is None else flat.reshape([int(n) for n in str(shape).split(",")])
    return np.asarray(z, dtype=float)


def test_a_set_map_has_rows_on_both_axes_and_both_rows_values_on_hover():
    weights = np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1], [1 / 3, 1 / 3, 1 / 3]])
    labels = ["2024-01-01", "2024-02-01", "<b>x</b>"]
    hover = ["amount=1, kind=a", "amount=2, kind=b", "amount=3, kind=<i>c</i>"]
    fig = set_figures.set_heatmap(weights, labels, hover, title="Set P1: layer 0")
    data = spec(fig)
    (trace,) = data["data"]
    np.testing.assert_allclose(typed(trace["z"]), weights)
    assert trace["customdata"][0][1] == [
        "2024-01-01",
        "2024-02-01",
        "amount=1, kind=a",
        "amount=2, kind=b",
    ]
    assert trace["customdata"][2][2][0] == "&lt;b&gt;x&lt;/b&gt;"  # escaped: plotly renders HTML
    assert trace["customdata"][2][2][2] == "amount=3, kind=&lt;i&gt;c&lt;/i&gt;"
    assert "query row" in trace["hovertemplate"] and "key row" in trace["hovertemplate"]
    layout = data["layout"]
    assert layout["xaxis"]["ticktext"] == ["2024-01-01", "2024-02-01", "&lt;b&gt;x&lt;/b&gt;"]
    assert layout["yaxis"]["autorange"] == "reversed", "queries down, as every map"
    assert layout["coloraxis"]["cmin"] == 0 and layout["coloraxis"]["cmax"] == 0.8
    fitted = spec(set_figures.set_heatmap(weights, labels, hover, fit=True))["layout"]["coloraxis"]
    assert fitted["cmin"] == pytest.approx(0.1)


def test_a_large_set_map_labels_every_kth_row_and_keeps_all_cells():
    n = 130
    weights = np.full((n, n), 1 / n)
    labels = [f"row {i}" for i in range(n)]
    fig = set_figures.set_heatmap(weights, labels, labels, max_ticks=40)
    data = spec(fig)
    assert typed(data["data"][0]["z"]).shape == (n, n)
    ticks = data["layout"]["xaxis"]["tickvals"]
    assert ticks == list(range(0, n, 4)) and len(ticks) <= 40
    assert data["layout"]["height"] <= 900


def test_a_set_map_refuses_labels_or_hover_that_do_not_fit():
    with pytest.raises(ValueError, match="hover needs one line per row: 2, got 3"):
        set_figures.set_heatmap(np.eye(2), ["a", "b"], ["x", "y", "z"])
    with pytest.raises(ValueError, match="needs 3 query and 3 key names, got 1 and 1"):
        set_figures.set_heatmap(np.eye(3), ["a"], ["x"])


def test_summary_bars_run_from_an_even_share_to_the_means_with_clustered_errors():
    fig = set_figures.summary_bars(
        ["equity", "bond", "<cash>"],
        [1.4, 0.9, 0.7],
        [0.05, np.nan, 0.1],
        [100, 1, 40],
        column="asset_class",
        measure="rollout",
    )
    data = spec(fig)
    (bar,) = data["data"]
    assert bar["type"] == "bar"
    np.testing.assert_allclose(typed(bar["error_y"]["array"]), [0.05, 0, 0.1])
    assert data["layout"]["xaxis"]["ticktext"] == ["equity", "bond", "&lt;cash&gt;"]
    assert bar["customdata"][1] == ["bond", 1, "(no SE: rows of one set)", 0.9]
    assert bar["customdata"][0][2] == "± 0.050 (SE clustered by set)"
    assert bar["base"] == 1.0, "bars run from an even share to the mean"
    np.testing.assert_allclose(typed(bar["y"]), [0.4, -0.1, -0.3])
    assert [shape["y0"] for shape in data["layout"]["shapes"]] == [1.0], "the even share"
    assert data["layout"]["title"]["text"] == "rollout by asset_class"
    with pytest.raises(ValueError, match="one entry per group"):
        set_figures.summary_bars(["a"], [1.0, 2.0], [0.1], [3], column="c", measure="m")


def test_row_bars_put_the_first_row_on_top_with_its_values_on_hover():
    fig = set_figures.row_bars(
        [3.2, 1.5, 0.4], ["PF1 #2", "PF1 #0", "PF1 #1"], ["a=1", "a=2", "a=<3>"], measure="rollout"
    )
    data = spec(fig)
    (bar,) = data["data"]
    assert bar["orientation"] == "h"
    np.testing.assert_allclose(typed(bar["x"]), [2.2, 0.5, -0.6])  # from an even share
    assert bar["base"] == 1.0
    assert data["layout"]["yaxis"]["ticktext"] == ["PF1 #2", "PF1 #0", "PF1 #1"]
    assert data["layout"]["yaxis"]["autorange"] == "reversed"
    assert bar["customdata"][2] == ["PF1 #1<br>a=&lt;3&gt;", 0.4]
    assert [shape["x0"] for shape in data["layout"]["shapes"]] == [1.0]
    with pytest.raises(ValueError, match="one entry per row"):
        set_figures.row_bars([1.0], ["a", "b"], ["x"], measure="m")
