"""The Explore page's maps of a run on rows: one map of a layer for the whole table, a cohort,
the difference of two cohorts, one row or a filter of the user's; and the rollout's importance."""

from __future__ import annotations

import functools

import numpy as np
import streamlit as st

from mrta.errors import TableError, counted
from mrta.pipelines.explore import (
    ALL_ROWS,
    OPERATORS,
    TRIVIAL_MAP,
    UNIFORM_MAP,
    UNIFORM_TOLERANCE,
    Explanation,
    RowFilter,
    default_cohort,
    filter_cohort,
    rows_note,
    rows_scope,
)
from mrta.report import figures
from mrta.report.importance_figures import rollout_by_stream
from mrta.streams import MAP_LABELS
from mrta_dashboard import keys, session
from mrta_dashboard.parts import colour, difference, figure_export, one_row
from mrta_dashboard.text import md

AGGREGATIONS = ["whole dataset", "a cohort", "difference of two cohorts", "one row", "filter"]
ROLLOUT_TITLE = "attention received, rolled out"
WHOLE_TABLE_ROWS = "every row recorded"
LABEL_NOTES = {
    UNIFORM_MAP: (
        f"This map is **uniform**: over all the rows recorded, every query's entropy is within "
        f"{UNIFORM_TOLERANCE} of the even spread's. It shows no preference, whatever structure "
        "a fitted colour scale draws in it."
    ),
    TRIVIAL_MAP: (
        "This map is **trivial by construction**: it has a single key, so every weight is 1 "
        "whatever the model learned."
    ),
}


def map_label(explanation: Explanation, layer: int, map_id: str) -> str | None:
    """``"uniform"``, ``"trivial by construction"`` or ``None``: what the trained model's map
    over all rows is by measurement or by construction."""
    for entry in explanation.divergence:
        if (entry["layer"], entry["map_id"]) == (layer, map_id):
            return entry.get("label")
    return None


def map_name(explanation: Explanation, layer: int, map_id: str) -> str:
    """The map's name with its label, as every title and menu shows it."""
    label = map_label(explanation, layer, map_id)
    return MAP_LABELS[map_id] + (f" ({label})" if label else "")


def cohort_choice(atlas, label: str, key: str):
    """A cohort of the atlas; the list opens on the first prediction-based cohort of the test
    rows (the rows the model did not train on), when there is one."""
    labels = list(atlas.cohort_labels)
    default = atlas.cohorts.index(default_cohort(atlas.cohorts))
    i = st.selectbox(
        label, range(len(labels)), index=default, format_func=labels.__getitem__, key=key
    )
    return atlas.cohorts[i]


def head_choice(heads: int) -> int | str | None:
    """A head, ``"mean"``, or ``None`` for all heads side by side."""
    options = ["all heads", "mean of heads", *range(heads)]
    choice = st.selectbox(
        "Heads",
        options,
        format_func=lambda h: f"head {h}" if isinstance(h, int) else h,
        key=keys.HEAD,
        help="All heads as small multiples on one colour scale; click one to enlarge it.",
    )
    return {"all heads": None, "mean of heads": "mean"}.get(choice, choice)


def rows_scope_words(atlas, cohort) -> str:
    """Which rows a cohort is of: every row recorded (saying when they are of every split),
    or the cohort's split's rows."""
    if cohort != ALL_ROWS:
        return rows_scope(cohort)
    if any(c[0] == "split" for c in atlas.cohorts):
        return f"{WHOLE_TABLE_ROWS} (training, validation and test rows together)"
    return WHOLE_TABLE_ROWS


def rows_words(atlas, cohort, count: int) -> str:
    """The rows of a cohort's map, in words (a cohort's label names its split's rows): what
    the figure's title names."""
    if cohort == ALL_ROWS:
        return f"{rows_scope_words(atlas, cohort)}: {counted(count, 'row')}"
    return f"{atlas.cohort_labels[atlas.index(cohort)]}: {counted(count, 'row')}"


def show_map(run, explanation: Explanation, layer: int, map_id: str, aggregation: str) -> None:
    atlas = explanation.atlas
    head = head_choice(atlas.means[(layer, map_id)].shape[1])
    queries, keys_ = atlas.names(layer, map_id)
    title = f"layer {layer}, {map_name(explanation, layer, map_id)}"
    if note := LABEL_NOTES.get(map_label(explanation, layer, map_id)):
        st.caption(note)
    if aggregation == "difference of two cohorts":
        difference.show(atlas, layer, map_id, head, queries, keys_, title)
        return
    if aggregation == "one row":
        found = one_row.pick(run, layer, map_id)
        if found is None:
            return
        maps, queries, keys_, rows = found
    else:
        cohort = ALL_ROWS
        if aggregation == "a cohort":
            cohort = cohort_choice(atlas, "Cohort", keys.COHORT)
        elif aggregation == "filter":
            atlas, cohort = _filtered(run)
            if atlas is None:
                return
        chosen = atlas.cohort_map(layer, map_id, cohort)
        maps = chosen.mean  # (H, Tq, Tk)
        st.caption(f"{counted(chosen.count, 'row')}: {rows_scope_words(atlas, cohort)}.")
        if note := rows_note(atlas.cohorts):
            st.caption(note)
        rows = rows_words(atlas, cohort, chosen.count)
    _draw(maps, queries, keys_, head, title, rows)


def _draw(maps: np.ndarray, queries, keys_, head, title: str, rows: str) -> None:
    scale = colour.choice(keys.FIT)
    fit = scale == colour.FIT
    if head is None:
        name = f"{title}: every head"
        figure = figures.head_grid(
            maps, queries, keys_, title=name, rows=rows, fit=fit, clickable=True
        )
        colour.centre(figure, maps, scale)
        grid = keys.head_grid(session.get(keys.GRID_ROUND) or 0)
        enlarge = functools.partial(_enlarge, grid, maps.shape[0])
        st.plotly_chart(figure, key=grid, on_select=enlarge, selection_mode="points")
        st.caption(
            "Click a head to enlarge it (the Heads menu above brings every head back). Long "
            "axis labels are shortened (…); hover a cell for its full query and key."
        )
        colour.caption(maps, scale)
    else:
        weights = maps.mean(axis=0) if head == "mean" else maps[head]
        name = f"{title}: {'mean of heads' if head == 'mean' else f'head {head}'}"
        figure = figures.heatmap(weights, queries, keys_, title=name, rows=rows, fit=fit)
        st.plotly_chart(colour.centre(figure, weights, scale), key=keys.FIGURE)
        colour.caption(weights, scale)
    figure_export.download(figure, f"{name} · {rows}", keys.FIGURE_HTML)


def _enlarge(grid: str, heads: int) -> None:
    """On a click on a small multiple: show its head alone (a new grid round, so that a later
    click on the same cell counts again)."""
    state = st.session_state.get(grid)
    points = state["selection"]["points"] if state else []
    if points:
        st.session_state[keys.HEAD] = figures.clicked_head(points[0]["curve_number"], heads)
        st.session_state[keys.GRID_ROUND] = (session.get(keys.GRID_ROUND) or 0) + 1


def _filtered(run):
    """A custom cohort from a condition on one column: its own pass over the rows, once per
    run and filter for the session. Returns its atlas and its cohort (or Nones)."""
    c1, c2, c3 = st.columns([2, 1, 2])
    column = c1.selectbox("Column", list(run.schema.feature_columns), key=keys.FILTER_COLUMN)
    op = c2.selectbox("Condition", list(OPERATORS), key=keys.FILTER_OP)
    value = c3.text_input("Value", key=keys.FILTER_VALUE)
    if not value:
        st.info("Write a value to compare the column with.")
        return None, None
    row_filter = RowFilter(column, op, value)

    def record():
        with st.spinner(f"Recording attention for rows with {row_filter.name}…"):
            return filter_cohort(run, row_filter)

    try:
        return session.run_cache(keys.FILTERS, run, row_filter.name, record)
    except TableError as error:
        st.warning(md(error))
        return None, None


def show_rollout(explanation: Explanation, aggregation: str) -> None:
    atlas = explanation.atlas
    cohort = ALL_ROWS
    if aggregation == "a cohort":
        cohort = cohort_choice(atlas, "Cohort", keys.ROLLOUT_COHORT)
    elif aggregation != "whole dataset":
        st.info(
            f"The rollout is recorded for every row and each cohort, not for {aggregation}: "
            "shown over every row recorded."
        )
    rows = rows_words(atlas, cohort, int(atlas.counts[atlas.index(cohort)]))
    streams = {name: s for s, names in atlas.token_names[0].items() for name in names}
    title = f"{ROLLOUT_TITLE.capitalize()}, every layer"
    figure = rollout_by_stream(atlas.importance(cohort), streams, title=title, rows=rows)
    st.plotly_chart(figure, key=keys.ROLLOUT_FIGURE)
    figure_export.download(figure, f"{title} · {rows}", keys.ROLLOUT_HTML)
    st.caption(
        "Rollout multiplies every layer's head-averaged maps, with each residual connection "
        "counted as half, and averages the result over the rows: a share per input column, "
        "summing to 1. It says where the attention weights point, not what the model needs: "
        "the numerical and the categorical columns always receive half each (each cross stage "
        "is half residual), and a weight on a value that carries nothing still counts. The "
        "importances below, once the checks ran, say which ranking the model's behaviour bears "
        "out."
    )
