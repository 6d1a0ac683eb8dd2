"""The Explore page's views say what they show: figure titles name their rows, figures keep a
readable height, the heads table shows the map in view with human names, the one-row picker
shows how the model fared on each row, and any figure exports as a standalone page."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from test_dashboard import new_app, plotly_json, wait_for_training
from test_train import QUICK, TINY_MODEL, tiny_frame

from mrta.analysis.difference import MapDifference
from mrta.analysis.heads import HeadStats
from mrta.analysis.importance import ColumnImportances, MethodImportance
from mrta.errors import counted
from mrta.pipelines.row_outcomes import RESIDUAL, RIGHT, row_outcomes
from mrta.pipelines.train_run import train_run
from mrta.report import figures
from mrta.report.importance_figures import importance_panels, rollout_by_stream
from mrta.task import Task
from mrta_dashboard import keys
from mrta_dashboard.parts import figure_export, heads, one_row


def plot_height(layout: dict) -> float:
    """The plot area's height in pixels: the figure's less its top and bottom margins."""
    return layout["height"] - layout["margin"]["t"] - layout["margin"]["b"]


# -- figures ---------------------------------------------------------------------------------------
def test_counted_says_one_row_and_many_rows():
    assert counted(1, "row") == "1 row"
    assert counted(0, "row") == "0 rows"
    assert counted(2000, "test row") == "2,000 test rows"


def test_titles_name_the_rows_shown_escaped_on_their_own_line():
    weights = np.full((2, 2, 3), 1 / 3)
    grid = figures.head_grid(weights, ["a", "b"], ["x", "y", "z"], title="m", rows="<b>: 5 rows")
    one = figures.heatmap(weights[0], ["a", "b"], ["x", "y", "z"], title="m", rows="cohort c")
    assert grid.layout.title.text.endswith("&lt;b&gt;: 5 rows</span>")
    assert one.layout.title.text.startswith("m<br>") and "cohort c" in one.layout.title.text


def test_small_multiples_carry_axis_titles_and_a_point_per_cell_that_names_its_head():
    weights = np.random.default_rng(0).dirichlet(np.ones(3), size=(6, 2))  # (H=6, Tq=2, Tk=3)
    fig = figures.head_grid(weights, ["a", "b"], ["x", "y", "z"], columns=4, clickable=True)
    layout = fig.to_plotly_json()["layout"]
    assert layout["yaxis"]["title"]["text"] == "queries"  # the first column
    assert layout["yaxis5"]["title"]["text"] == "queries"  # the first of the second row
    bottom = {layout[f"xaxis{i}"]["title"]["text"] for i in (3, 4, 5, 6)}
    assert bottom == {"keys"}, "the lowest head of each column names its axis"
    assert layout["xaxis"].get("showticklabels") is False, "a head with one below it"
    points = [t for t in fig.data if t.type == "scatter"]
    assert len(points) == 6 and all(len(t.x) == 2 * 3 for t in points)
    assert all(t.marker.opacity == 0 for t in points)
    for curve, trace in enumerate(fig.data):
        assert trace.name == f"head {figures.clicked_head(curve, 6)}"
    assert layout["coloraxis"]["colorbar"]["tickformat"] == ".3~g"


def test_a_figure_leaves_room_for_its_longest_label():
    long = ["a very long column name indeed, more than the axis shows"]
    short = figures.heatmap(np.ones((1, 1)), ["q"], ["k"])
    longer = figures.heatmap(np.ones((1, 1)), ["q"], long)
    assert longer.layout.height > short.layout.height
    assert longer.layout.xaxis.automargin and longer.layout.yaxis.automargin
    room = figures.TITLE_ROOM + figures.label_room(["k"], figures.MAX_LABEL)
    assert short.layout.height - room >= figures.MIN_PLOT


def test_the_difference_map_has_a_legend_for_its_grey_cells():
    diff = np.array([[0.2, -0.01]])
    nothing = np.full(diff.shape, np.nan)
    common = dict(t=nothing, df=nothing, p=nothing, p_adjusted=nothing, q=0.05, cells_tested=2)
    tested = MapDifference(
        diff=diff,
        se=np.full(diff.shape, 0.05),
        significant=np.array([[True, False]]),
        tested=True,
        **common,
    )
    fig = figures.difference_heatmap(tested, ["q"], ["a", "b"], title="d", rows="A: x · B: y")
    (legend,) = fig.layout.annotations
    assert "grey: no difference detected" in legend.text and "q = 0.05" in legend.text
    assert "A: x · B: y" in fig.layout.title.text
    untested = replace(tested, tested=False, significant=np.zeros(diff.shape, bool))
    (note,) = figures.difference_heatmap(untested, ["q"], ["a", "b"]).layout.annotations
    assert "not tested" in note.text


@pytest.mark.parametrize("columns", [1, 2, 12])
def test_importance_charts_keep_a_readable_plot_however_few_the_columns(columns):
    names = [f"c{i}" for i in range(columns)]
    streams = {n: "num" if i % 2 == 0 else "cat" for i, n in enumerate(names)}
    shares = {n: 1 / columns for n in names}
    rollout = rollout_by_stream(shares, streams, rows="every row recorded: 1 row")
    layout = rollout.to_plotly_json()["layout"]
    assert plot_height(layout) >= 150, "three columns once squashed it into a 10-pixel strip"
    assert "every row recorded: 1 row" in layout["title"]["text"]
    method = MethodImportance(mean=shares, se={n: 0.01 for n in names})
    panels = importance_panels(
        ColumnImportances(rows=1, methods={"permutation": method}, streams=streams)
    )
    layout = panels.to_plotly_json()["layout"]
    assert plot_height(layout) >= 150 and "on 1 test row ·" in layout["title"]["text"]


def test_any_figure_is_a_standalone_page_that_opens_offline():
    fig = figures.heatmap(np.ones((1, 1)), ["q"], ["k"], title="layer 0", rows="rows <x>")
    page = figures.standalone_html(fig, "layer 0 · rows <x>")
    assert page.startswith("<!doctype html>") and "<title>layer 0 · rows &lt;x&gt;</title>" in page
    assert "<script src" not in page, "no script is fetched"
    assert len(page) > 1_000_000, "plotly.js is inside"
    assert figure_export.file_name("layer 0, num → cat: head 2 · <b>") == (
        "layer-0-num-cat-head-2-b.html"
    )
    assert figure_export.file_name("→") == "figure.html"


# -- the heads table -------------------------------------------------------------------------------
def head(layer: int, map_id: str, number: int, loss: float | None = None) -> HeadStats:
    return HeadStats(
        layer,
        f"layer {layer}",
        map_id,
        number,
        0.5,
        0.6,
        0.4,
        "q",
        "k",
        divergence=0.01,
        loss_delta=loss,
        metric_delta=None,
    )


def test_the_heads_table_shows_the_map_in_view_with_human_names_and_not_run_yet():
    shown = [head(lyr, m, h) for lyr in (0, 1) for m in ("num_num", "cat_num") for h in (0, 1)]
    Shown = SimpleNamespace(heads=shown)

    frame = heads.head_frame(Shown, Task.MULTICLASS, 1, "cat_num")
    assert len(frame) == 2 and set(frame["layer"]) == {1}
    assert set(frame["map"]) == {"categorical → numerical"}
    assert "accuracy change when zeroed" in frame.columns and "max_weight" not in frame.columns
    assert len(heads.head_frame(Shown, Task.REGRESSION)) == 8
    assert "R² change when zeroed" in heads.head_frame(Shown, Task.REGRESSION).columns
    html = heads.styled(frame).to_html()
    assert html.count(heads.NOT_RUN) == 4 and "None" not in html and "nan" not in html
    assert "0.5000" in html and "0.0100" in html, "one number format"
    Shown.heads = [head(0, "num_num", 0, loss=0.125)]
    assert "0.1250" in heads.styled(heads.head_frame(Shown, Task.BINARY, 0, "num_num")).to_html()


# -- the one-row picker ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs():
    config = replace(QUICK, max_epochs=1)
    return {
        task: train_run(
            tiny_frame(task, rows=120), "y", model_config=TINY_MODEL, train_config=config
        )
        for task in ("multiclass", "regression")
    }


@pytest.mark.slow
def test_each_row_comes_with_its_prediction_and_whether_it_was_right(runs):
    run = runs["multiclass"]
    rows = run.frame.iloc[:40]
    outcomes = row_outcomes(run, rows)
    probabilities = run.predict_frame(rows)
    assert list(outcomes.index) == list(rows.index)
    assert (outcomes["predicted"] == probabilities["prediction"]).all()
    np.testing.assert_allclose(
        outcomes["probability"], probabilities[list(run.class_labels)].max(axis=1)
    )
    assert (outcomes[RIGHT] == (outcomes["predicted"] == rows["y"])).all()
    wrong = one_row.listed_positions(outcomes, "wrong predictions only")
    assert list(wrong) == list(np.flatnonzero(~outcomes[RIGHT].to_numpy()))
    first = outcomes.iloc[0]
    words = one_row.row_words(rows.index[0], first)
    assert words.startswith(f"one row: row {rows.index[0]} of the table · predicted ")
    assert words.endswith(": right" if first[RIGHT] else ": wrong")


@pytest.mark.slow
def test_a_regression_row_comes_with_its_residual_largest_first(runs):
    run = runs["regression"]
    rows = run.frame.iloc[:30]
    outcomes = row_outcomes(run, rows)
    np.testing.assert_allclose(outcomes[RESIDUAL], rows["y"] - outcomes["predicted"], rtol=1e-6)
    order = one_row.listed_positions(outcomes, "largest errors first")
    residuals = np.abs(outcomes[RESIDUAL].to_numpy())[order]
    assert (np.diff(residuals) <= 0).all()
    assert "(residual " in one_row.row_words(7, outcomes.iloc[0])


def test_a_table_column_named_like_an_outcome_is_kept_apart():
    rows = pd.DataFrame({"right": [1, 2], "x": [3, 4]}, index=[10, 11])
    outcomes = pd.DataFrame({"predicted": ["a", "b"], "right": [True, False]}, index=[10, 11])
    table = one_row.picker_table(rows, outcomes, np.array([1]))
    assert list(table.columns) == ["predicted", "right", "right (table)", "x"]
    assert list(table.index) == [11]


# -- the Explore page through AppTest --------------------------------------------------------------
@pytest.fixture(scope="module")
def explore():
    """Penguins trained once with the smallest budget, on the Explore page."""
    at = new_app()
    at.switch_page("views/train.py").run()
    at.number_input(key="budget:quick").set_value(5.0)
    at.button[0].click().run()
    wait_for_training(at)
    at.switch_page("views/explore.py").run()
    assert not at.exception
    return at


def captions(at) -> str:
    """Every caption of the page, one a line."""
    return "\n".join(c.value for c in at.caption)


def figure_titles(at) -> list[str]:
    return [
        plotly_json(at, i)["layout"]["title"]["text"] for i in range(len(at.get("plotly_chart")))
    ]


def export_buttons(at) -> list[str]:
    return [b.proto.label for b in at.get("download_button")]


@pytest.mark.slow
def test_the_heads_table_follows_the_map_in_view_and_shows_every_head_on_demand(explore):
    at = explore
    at.selectbox(key=keys.LAYER).set_value(1).run()
    at.selectbox(key=keys.MAP).set_value("cat_num").run()
    table = at.dataframe[-1].value
    assert len(table) == 4, "the default model has four heads"
    assert set(table["layer"]) == {1} and set(table["map"]) == {"categorical → numerical"}
    assert "entropy per row (0–1)" in table.columns and "accuracy change when zeroed" in table
    assert "The heads of layer 1, categorical → numerical." in captions(at)
    assert "minus the value with it" in captions(at), "the sign of each delta"
    at.toggle(key=keys.HEADS_ALL).set_value(True).run()
    assert len(at.dataframe[-1].value) == 2 * 4 * 4
    at.toggle(key=keys.HEADS_ALL).set_value(False).run()


@pytest.mark.slow
@pytest.mark.parametrize(
    "rows, named",
    [
        ("whole dataset", ["every row recorded (training, validation and test rows together): "]),
        ("a cohort", [", test rows: "]),
        ("difference of two cohorts", ["A: ", " · B: the rest of the test rows"]),
    ],
)
def test_every_figure_title_names_its_rows_and_every_figure_exports(explore, rows, named):
    at = explore
    at.selectbox(key=keys.MAP).set_value("num_num").run()
    at.selectbox(key=keys.ROWS).set_value(rows).run()
    assert not at.exception and not at.error
    title = figure_titles(at)[0]
    assert all(part in title for part in named), title
    assert title.rstrip("</span>").endswith(("rows", "row")) or "B: " in title
    assert "Download this figure (HTML)" in export_buttons(at)
    at.selectbox(key=keys.ROWS).set_value("whole dataset").run()


@pytest.mark.slow
def test_the_rollout_hides_the_layer_keeps_a_readable_height_and_exports(explore):
    at = explore
    at.selectbox(key=keys.LAYER).set_value(1).run()
    at.selectbox(key=keys.MAP).set_value("rollout").run()
    assert not at.exception
    assert keys.LAYER not in [s.key for s in at.selectbox], "the rollout spans every layer"
    layout = plotly_json(at)["layout"]
    assert plot_height(layout) >= 150
    assert (
        "every layer" in layout["title"]["text"] and "every row recorded" in layout["title"]["text"]
    )
    assert "Download this figure (HTML)" in export_buttons(at)
    at.selectbox(key=keys.MAP).set_value("num_num").run()
    assert at.selectbox(key=keys.LAYER).value == 1, "the layer chosen comes back with the menu"


def row_picker(at) -> pd.DataFrame | None:
    """The one-row view's list of rows (its first column is the prediction), if shown."""
    shown = [d.value for d in at.dataframe if list(d.value.columns[:1]) == ["predicted"]]
    return shown[0] if shown else None


@pytest.mark.slow
def test_the_row_picker_lists_predictions_and_the_wrong_ones_on_demand(explore):
    at = explore
    at.selectbox(key=keys.ROWS).set_value("one row").run()
    assert not at.exception
    assert at.radio(key=keys.ROW_SHOW).options == ["every row", "wrong predictions only"]
    every = row_picker(at)
    assert list(every.columns[:4]) == ["predicted", "probability", "true", "right"]
    assert every["probability"].between(0, 1).all() and len(every) == 344
    assert "Pick a row (the table's 344 rows;" in captions(at)
    at.radio(key=keys.ROW_SHOW).set_value("wrong predictions only").run()
    wrong = row_picker(at)
    if wrong is None:
        assert every["right"].all()
        assert "No wrong prediction among the table's 344 rows" in at.info[-1].value
    else:
        assert not wrong["right"].any() and len(wrong) == (~every["right"]).sum()
        assert f"wrong predictions only: {len(wrong):,} row" in captions(at)
    at.radio(key=keys.ROW_SHOW).set_value("every row").run()
    at.selectbox(key=keys.ROWS).set_value("whole dataset").run()
