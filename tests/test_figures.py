"""Figures read through their JSON: names on the axes, escaping, shared colour scales, muting;
and the self-contained report."""

import base64
import re

import numpy as np
import pytest
import torch
from tiny_models import random_inputs, tiny_config, tiny_model

from mrta.analysis.checks import map_divergence
from mrta.analysis.collect import collect_attention
from mrta.analysis.difference import MapDifference
from mrta.analysis.heads import head_table
from mrta.report.figures import (
    agreement_scatter,
    difference_heatmap,
    divergence_bars,
    head_grid,
    heatmap,
    importance_bars,
    shorten,
)
from mrta.report.html import run_report

LONG = "a column name far too long for any axis label"
NUM = ("<b>bold</b>", LONG, "age")
CAT = ("region", "x&y")


def array(value):
    """A figure's array, decoded from plotly's typed-array JSON form where needed."""
    if isinstance(value, dict):
        data = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        return data.reshape([int(n) for n in str(value["shape"]).split(",")])
    return np.asarray(value)


@pytest.fixture(scope="module")
def atlas():
    model = tiny_model(NUM, CAT, [4, 4], config=tiny_config(num_heads=4))
    num, ind, cat = random_inputs(30, 3, 2)
    targets = torch.randint(0, 3, (30,), generator=torch.Generator().manual_seed(0))
    return collect_attention(model, (num, ind, cat), targets=targets)


def test_heatmap_has_names_on_axes_rows_as_queries_and_rows_summing_to_one(atlas):
    queries, keys = atlas.names(0, "cat_num")
    weights = atlas.cohort_map(0, "cat_num", head="mean").mean
    fig = heatmap(weights, queries, keys, title="<i>map</i>").to_plotly_json()
    layout, (trace,) = fig["layout"], fig["data"]
    assert layout["yaxis"]["ticktext"] == ["region", "x&amp;y"]
    assert layout["xaxis"]["ticktext"] == ["&lt;b&gt;bold&lt;/b&gt;", shorten(LONG), "age"]
    assert (
        layout["xaxis"]["title"]["text"] == "keys" and layout["yaxis"]["title"]["text"] == "queries"
    )
    assert layout["yaxis"]["autorange"] == "reversed"
    assert layout["title"]["text"] == "&lt;i&gt;map&lt;/i&gt;"
    z = array(trace["z"])
    assert z.shape == (2, 3)
    np.testing.assert_allclose(z.sum(axis=1), 1.0, rtol=1e-5)
    assert trace["customdata"][0][1][1] == LONG  # full name on hover
    assert trace["customdata"][1][0][0] == "x&amp;y"
    assert layout["coloraxis"]["cmin"] == 0.0


def test_shorten_cuts_and_escapes():
    assert shorten("short") == "short"
    assert shorten(LONG, 10) == "a column …"
    assert shorten("<script>", 100) == "&lt;script&gt;"


def test_head_grid_one_subplot_per_head_on_one_shared_colour_scale(atlas):
    queries, keys = atlas.names(1, "num_num")
    weights = atlas.cohort_map(1, "num_num").mean  # (4, 3, 3)
    fig = head_grid(weights, queries, keys, columns=3).to_plotly_json()
    traces = fig["data"]
    assert len(traces) == 4 == weights.shape[0]
    assert [a["text"] for a in fig["layout"]["annotations"]] == [f"head {h}" for h in range(4)]
    assert {t["coloraxis"] for t in traces} == {"coloraxis"}
    assert not any(k.startswith("coloraxis") and k != "coloraxis" for k in fig["layout"])
    assert fig["layout"]["coloraxis"]["cmax"] == pytest.approx(float(weights.max()))
    assert len({t["xaxis"] for t in traces}) == 4
    for h, trace in enumerate(traces):
        np.testing.assert_allclose(array(trace["z"]), weights[h])
        np.testing.assert_allclose(array(trace["z"]).sum(1), 1.0, rtol=1e-5)
    assert fig["layout"]["xaxis4"]["ticktext"][0] == "&lt;b&gt;bold&lt;/b&gt;"


def test_difference_heatmap_greys_out_noise_and_hovers_diff_and_se():
    diff = np.array([[0.2, -0.01], [-0.3, 0.0]])
    se = np.array([[0.05, 0.05], [0.05, np.inf]])
    muted = np.abs(diff) < 2 * se
    nothing = np.full(diff.shape, np.nan)
    difference = MapDifference(
        diff=diff,
        se=se,
        t=diff / se,
        df=nothing,
        p=nothing,
        p_adjusted=nothing,
        significant=~muted,
        q=0.05,
        tested=True,
        cells_tested=4,
    )
    fig = difference_heatmap(difference, ["q1", "q2"], ["k1", "k2"])
    grey, colour = fig.to_plotly_json()["data"]
    grey_z, colour_z = array(grey["z"]), array(colour["z"])
    np.testing.assert_array_equal(np.isnan(colour_z), muted)
    np.testing.assert_array_equal(~np.isnan(grey_z), muted)
    np.testing.assert_allclose(colour_z[~muted], diff[~muted])
    assert grey["showscale"] is False and grey["hoverongaps"] is False
    assert list(colour["customdata"][0][0][2:]) == ["+0.2000", "0.0500"]
    assert colour["customdata"][1][1][3] == "∞"
    axis = fig.to_plotly_json()["layout"]["coloraxis"]
    assert axis["cmin"] == -axis["cmax"] == pytest.approx(-0.3)


def test_importance_bars_largest_on_top_with_escaped_names():
    fig = importance_bars({"<a>": 0.5, "b": 0.2, "c": 0.3}, errors={"b": 0.01}).to_plotly_json()
    (bar,) = fig["data"]
    assert list(array(bar["x"])) == [0.2, 0.3, 0.5]
    assert fig["layout"]["yaxis"]["ticktext"] == ["b", "c", "&lt;a&gt;"]
    assert list(array(bar["error_x"]["array"])) == [0.01, 0.0, 0.0]


def test_sanity_figures(atlas):
    scatter = agreement_scatter({"a": 0.1, "b": 0.2}, {"a": 1.0, "b": 3.0, "c": 0.0}, spearman=1.0)
    data = scatter.to_plotly_json()
    assert (
        list(array(data["data"][0]["x"])) == [0.1, 0.2]
        and "ρ = 1.00" in data["layout"]["title"]["text"]
    )
    bars = divergence_bars(map_divergence(atlas, atlas)).to_plotly_json()
    assert len(bars["data"][0]["x"]) == 8 and list(bars["layout"]["yaxis"]["range"]) == [0, 1]


def test_report_is_self_contained_and_escaped(atlas):
    queries, keys = atlas.names(0, "num_cat")
    maps = [
        ("map one", heatmap(atlas.cohort_map(0, "num_cat", head=0).mean, queries, keys)),
        ("map <two>", head_grid(atlas.cohort_map(0, "num_cat").mean, queries, keys)),
    ]
    page = run_report(
        title="Run <1>",
        data_summary={"rows": 30, "target": "=species"},
        metrics={"accuracy": 0.81234, "nested": {"a": [1, 2]}},
        baselines={"gradient boosting": {"accuracy": 0.9}},
        figures=maps,
        heads=head_table(atlas),
        sanity={"map_divergence": map_divergence(atlas, atlas), "rollout_vs_permutation": None},
    )
    assert page.count("plotly.js v") == 1  # the library, embedded once
    assert not re.search(r"<script[^>]+src=", page)  # nothing fetched
    assert page.count("Plotly.newPlot") == 2
    assert "<title>Run &lt;1&gt;</title>" in page and "map &lt;two&gt;" in page
    assert "0.8123" in page and "=species" in page and "Not measured." in page
    assert page.count("<tr>") > 2 * 4 * 4  # the head table


def test_colour_scale_from_zero_or_fitted_to_the_values():
    weights = np.array([[[0.4, 0.6], [0.55, 0.45]], [[0.5, 0.5], [0.42, 0.58]]])  # (H, Tq, Tk)
    names = ["a", "b"]
    cases = [
        (head_grid(weights, names, names), (0.0, 0.6)),
        (head_grid(weights, names, names, fit=True), (0.4, 0.6)),
        (heatmap(weights[1], names, names), (0.0, 0.58)),
        (heatmap(weights[1], names, names, fit=True), (0.42, 0.58)),
    ]
    for figure, (low, high) in cases:
        axis = figure.layout.coloraxis
        assert (axis.cmin, axis.cmax) == pytest.approx((low, high))
