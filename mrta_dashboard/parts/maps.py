"""The Explore page's maps of a run on rows: one map of a layer for the whole table, a cohort,
the difference of two cohorts, one row or a filter of the user's; and the rollout's importance."""

from __future__ import annotations

import numpy as np
import streamlit as st

from mrta.errors import TableError
from mrta.pipelines.explore import (
    ALL_ROWS,
    OPERATORS,
    TRIVIAL_MAP,
    UNIFORM_MAP,
    UNIFORM_TOLERANCE,
    Explanation,
    RowFilter,
    default_cohort,
    explorable_rows,
    filter_cohort,
    one_row_attention,
    row_map,
    rows_note,
    rows_scope,
)
from mrta.report import figures
from mrta.report.importance_figures import rollout_by_stream
from mrta.streams import MAP_LABELS
from mrta_dashboard import keys, session
from mrta_dashboard.parts import colour, difference

AGGREGATIONS = ["whole dataset", "a cohort", "difference of two cohorts", "one row", "filter"]
ROLLOUT_TITLE = "attention received, rolled out"
WHOLE_TABLE_ROWS = "every row recorded"
PICKED_ROWS = 5000  # rows of the table a row is picked from
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
        maps, queries, keys_ = _one_row(run, layer, map_id)
        if maps is None:
            return
        st.caption("One row.")
    else:
        cohort = ALL_ROWS
        if aggregation == "a cohort":
            cohort = cohort_choice(atlas, "Cohort", keys.COHORT)
        elif aggregation == "filter":
            atlas, cohort = _filtered(run)
            if atlas is None:
                return
        chosen = atlas.cohort_map(layer, map_id, cohort)
        maps, count = chosen.mean, chosen.count  # (H, Tq, Tk)
        which = WHOLE_TABLE_ROWS if cohort == ALL_ROWS else rows_scope(cohort)
        if cohort == ALL_ROWS and any(c[0] == "split" for c in atlas.cohorts):
            which += " (training, validation and test rows together)"
        st.caption(f"{count:,} rows: {which}.")
        if note := rows_note(atlas.cohorts):
            st.caption(note)
    _draw(maps, queries, keys_, head, title)


def _draw(maps: np.ndarray, queries, keys_, head, title: str) -> None:
    scale = colour.choice(keys.FIT)
    fit = scale == colour.FIT
    if head is None:
        figure = figures.head_grid(maps, queries, keys_, title=f"{title}: every head", fit=fit)
        colour.centre(figure, maps, scale)
        event = st.plotly_chart(figure, key=keys.FIGURE, on_select="rerun", selection_mode="points")
        colour.caption(maps, scale)
        points = event.selection.points if event and event.selection else []
        if points:  # a click on a small multiple enlarges that head
            st.session_state[keys.HEAD] = int(points[0]["curve_number"])
            st.rerun()
        return
    weights = maps.mean(axis=0) if head == "mean" else maps[head]
    label = "mean of heads" if head == "mean" else f"head {head}"
    figure = figures.heatmap(weights, queries, keys_, title=f"{title}: {label}", fit=fit)
    st.plotly_chart(colour.centre(figure, weights, scale), key=keys.FIGURE)
    colour.caption(weights, scale)


def _one_row(run, layer: int, map_id: str):
    """The maps of a row picked from the table, its values on the axes (or Nones)."""
    rows = explorable_rows(run)
    st.caption("Pick a row (the table is searchable and sortable).")
    picked = st.dataframe(
        rows.head(PICKED_ROWS),
        on_select="rerun",
        selection_mode="single-row",
        key=keys.ROW,
        height=220,
    )
    selected = picked.selection.rows if picked and picked.selection else []
    if not selected:
        st.info("Select a row to see its maps, tokens labelled with its values.")
        return None, None, None
    return row_map(one_row_attention(run, rows, selected[0]), layer, map_id)


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
        st.warning(str(error))
        return None, None


def show_rollout(explanation: Explanation, aggregation: str) -> None:
    atlas = explanation.atlas
    cohort = ALL_ROWS
    if aggregation == "a cohort":
        cohort = cohort_choice(atlas, "Cohort", keys.ROLLOUT_COHORT)
    streams = {name: s for s, names in atlas.token_names[0].items() for name in names}
    st.plotly_chart(
        rollout_by_stream(atlas.importance(cohort), streams, title=ROLLOUT_TITLE.capitalize()),
        key=keys.ROLLOUT_FIGURE,
    )
    st.caption(
        "Rollout multiplies every layer's head-averaged maps, with each residual connection "
        "counted as half, and averages the result over the rows: a share per input column, "
        "summing to 1. It says where the attention weights point, not what the model needs: "
        "the numerical and the categorical columns always receive half each (each cross stage "
        "is half residual), and a weight on a value that carries nothing still counts. The "
        "importances below, once the checks ran, say which ranking the model's behaviour bears "
        "out."
    )
