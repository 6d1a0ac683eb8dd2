"""The Explore page of a run on sets (one prediction per group): a measure of the rows across
the sets, then one set's row × row map and its rows, most attended first."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from mrta.pipelines.explain_sets import set_maps
from mrta.pipelines.explore import (
    ROLLOUT,
    SE_CLUSTERED,
    SetExplanation,
    format_value,
    measure_name,
)
from mrta.report import set_figures
from mrta.streams import MAP_LABELS
from mrta_dashboard import keys, session
from mrta_dashboard.parts import colour

SHOWN_ROWS = 80  # rows of a set's map drawn by default; a larger set shows its most attended
MAX_SHOWN_ROWS = 160  # at most: a map of n rows is n² cells, each with both rows' values
TOP_ROWS = 20  # rows of a set in its bar chart
KEPT_MAPS = 4  # sets' maps kept per session (a set of 1,000 rows weighs about 128 MB of maps)
POSITION = "(position in the set)"


def show(run, explanation: SetExplanation) -> None:
    st.caption(
        f"One prediction per group of **{explanation.group_by}**: the tokens are a group's "
        f"rows, so attention is between rows. {len(explanation.sets):,} sets and "
        f"{len(explanation.rows):,} rows analysed"
        + (
            f" (a seeded sample of the {explanation.sampled_from:,} groups)"
            if explanation.sampled_from
            else ""
        )
        + ". Every measure is relative to an even share: 1 is what each row of its set would "
        "draw if attention were spread evenly, 3 is three times that."
    )
    labels = {ROLLOUT: "rollout: the row's share of the set's pooled (mean and max) representation"}
    for layer, map_id in explanation.map_keys:
        labels[measure_name(layer, map_id)] = (
            f"attention received: layer {layer}, {MAP_LABELS[map_id]}"
        )
    st.subheader("Across the sets")
    left, right = st.columns(2)
    measure = left.selectbox(
        "Measure (here and for a set's rows)",
        explanation.measures,
        format_func=labels.__getitem__,
        key=keys.SET_MEASURE,
    )
    columns = [c for c in explanation.values.columns if c != explanation.group_by]
    columns.sort(key=lambda c: c == explanation.order_by)  # the features first
    column = right.selectbox("By the rows' values in", columns, key=keys.SET_COLUMN)
    _summary(explanation, measure, labels[measure], column)
    st.subheader("One set")
    key = _set_choice(explanation)
    if key is None:
        return
    label_column = _set_map(run, explanation, key)
    _set_rows(explanation, key, measure, labels[measure], label_column)


def _summary(explanation: SetExplanation, measure: str, label: str, column: str) -> None:
    table = explanation.summary(column, measure).dropna(subset=["rows"])
    figure = set_figures.summary_bars(
        table["group"].astype(str).tolist(),
        table["mean"].to_numpy(),
        table[SE_CLUSTERED].to_numpy(),
        table["rows"].astype(int).tolist(),
        column=column,
        measure=label,
        title=f"Mean {label.split(':')[0]} of the rows, by {column}",
    )
    st.plotly_chart(figure, key=keys.SET_SUMMARY_FIGURE)
    note = f" {set_figures.ROLLOUT_NOTE}" if measure == ROLLOUT else ""
    st.caption(
        "Each bar runs from an even share (1, dotted) to the mean over the analysed rows of a "
        "level (or of a quantile bin, for numbers), with its standard error clustered by set "
        "(none where a level's rows all come from one set): above the line, rows like these "
        f"draw more than an even share of their set's attention. {set_figures.SE_NOTE}{note}"
    )


def _set_choice(explanation: SetExplanation) -> str | None:
    sets, group_by = explanation.sets, explanation.group_by
    every, wrong, right, largest = keys.SET_FILTERS
    filters = [every]
    if "correct" in sets.columns:
        filters += [wrong, right]
    elif "error" in sets.columns:
        filters += [largest]
    how = st.radio("Sets", filters, horizontal=True, key=keys.SET_FILTER)
    if how == wrong:
        shown = sets[~sets["correct"].astype(bool)]
    elif how == right:
        shown = sets[sets["correct"].astype(bool)]
    elif how == largest:
        shown = sets.loc[sets["error"].abs().sort_values(ascending=False).index]
    else:
        shown = sets
    if shown.empty:
        st.info(f"None of the analysed sets: no {how}.")
        return None
    keys_ = shown[group_by].astype(str).tolist()
    texts = dict(zip(keys_, (set_text(row) for _, row in shown.iterrows()), strict=True))
    stored = session.get(keys.CHOSEN_SET)
    key = st.selectbox(
        f"Set ({len(keys_):,})",
        keys_,
        index=keys_.index(stored) if stored in keys_ else 0,
        format_func=lambda k: f"{k} · {texts[k]}",
        key=keys.set_picker(how),
    )
    st.session_state[keys.CHOSEN_SET] = key  # kept across pages, for the Export page too
    return key


def set_text(row: pd.Series) -> str:
    """A set's size, prediction and truth, in a few words."""
    text = f"{int(row['n_rows']):,} rows · predicted {format_value(row['prediction'])}"
    if "probability" in row:
        text += f" ({row['probability']:.0%})"
    if "target" in row:
        text += f" · true {format_value(row['target'])}"
    if "correct" in row:
        text += " ✓" if row["correct"] else " ✗"
    return text


def _set_map(run, explanation: SetExplanation, key: str) -> str | None:
    """The set's row × row map; returns the column that labels its rows (None: positions)."""
    if run.frame is None:
        st.info("This run holds no rows, so its sets' maps cannot be drawn.")
        return explanation.order_by

    def record():
        with st.spinner(f"Recording the maps of set {key}…"):
            return set_maps(run, run.frame, key)

    maps = session.run_cache(keys.SET_MAPS, run, key, record, keep=KEPT_MAPS)
    c1, c2, c3, c4 = st.columns(4)
    layers = sorted({layer for layer, _ in maps.maps})
    layer = c1.selectbox("Layer", layers, format_func=lambda i: f"layer {i}", key=keys.SET_LAYER)
    map_ids = [m for (lyr, m) in explanation.map_keys if lyr == layer and (lyr, m) in maps.maps]
    map_id = c2.selectbox("Map", map_ids, format_func=MAP_LABELS.__getitem__, key=keys.SET_MAP)
    weights = maps.maps[(layer, map_id)]  # (H, n, n)
    head = c3.selectbox(
        "Heads",
        ["mean of heads", *range(weights.shape[0])],
        format_func=lambda h: f"head {h}" if isinstance(h, int) else h,
        key=keys.SET_HEAD,
    )
    columns = [c for c in maps.values.columns if c != explanation.group_by]
    options = [*([maps.order_by] if maps.order_by in columns else []), POSITION]
    options += [c for c in columns if c not in options]
    column = c4.selectbox("Label rows by", options, key=keys.SET_LABEL)
    column = None if column == POSITION else column
    labels = maps.labels(column) if column else [f"row {i}" for i in range(len(maps.values))]
    hover = maps.hover()
    w = weights.mean(axis=0) if head == "mean of heads" else weights[head]  # (n, n)
    rows = _most_attended(w)
    scale = colour.choice(keys.SET_FIT)
    what = "mean of heads" if head == "mean of heads" else f"head {head}"
    shown = w[np.ix_(rows, rows)]
    figure = set_figures.set_heatmap(
        shown,
        [labels[i] for i in rows],
        [hover[i] for i in rows],
        title=f"Set {key}: layer {layer}, {MAP_LABELS[map_id]}, {what}",
        fit=scale == colour.FIT,
    )
    colour.centre(figure, shown, scale, uniform=colour.uniform_weight(w))  # the whole set's
    st.plotly_chart(figure, key=keys.SET_MAP_FIGURE)
    colour.caption(w, scale, what="rows of the set")
    st.caption(
        "Rows of the map are the set's rows as queries, columns the same rows as keys; each "
        "row of the map sums to 1 (the set's padding gets no attention). Hover a cell for "
        "both rows' values."
    )
    return column


def _most_attended(w: np.ndarray) -> np.ndarray:
    """The rows of a set's map to draw, in set order: all of a small set's, else the chosen
    number of those that receive the most attention. Shape: ``(n, n)`` -> ``(shown,)``."""
    n = w.shape[0]
    if n <= SHOWN_ROWS:
        return np.arange(n)
    shown = st.slider(
        "Rows shown (those that receive the most attention)",
        10,
        min(n, MAX_SHOWN_ROWS),
        SHOWN_ROWS,
        key=keys.SET_ROWS,
    )
    st.caption(
        f"This set has {n:,} rows: the map shows the {shown} that receive the most "
        "attention in it, in set order. Their weights are those of the whole set, so a row "
        "of this map sums to less than 1."
    )
    received = w.sum(axis=0)  # (n,) attention each row receives from the set
    return np.sort(np.argsort(-received, kind="stable")[:shown])


def _set_rows(
    explanation: SetExplanation, key: str, measure: str, label: str, column: str | None
) -> None:
    st.markdown("**The set's rows, most attended first**")
    table = explanation.set_rows(key, measure)
    values = [c for c in explanation.values.columns if c != explanation.group_by]
    by_position = table.sort_values("position")
    if column in table.columns:
        texts = [format_value(v) for v in by_position[column]]
        repeated = {t for t in texts if texts.count(t) > 1}
        texts = [
            f"{t} (#{p})" if t in repeated else t
            for t, p in zip(texts, by_position["position"], strict=True)
        ]
    else:
        texts = [f"row {p}" for p in by_position["position"]]
    names = dict(zip(by_position["position"], texts, strict=True))
    top = table.head(TOP_ROWS)
    hover = [", ".join(f"{c}={format_value(row[c])}" for c in values) for _, row in top.iterrows()]
    left, right = st.columns([2, 3])
    left.plotly_chart(
        set_figures.row_bars(
            top[measure].to_numpy(),
            [names[p] for p in top["position"]],
            hover,
            measure=label.split(":")[0],
            title=f"The {len(top)} most attended of {len(table):,} rows",
        ),
        key=keys.SET_BARS,
    )
    shown = ["position", measure, *([ROLLOUT] if measure != ROLLOUT else []), *values]
    right.dataframe(
        table[[c for c in dict.fromkeys(shown) if c in table.columns]],
        hide_index=True,
        key=keys.SET_TABLE,
        height=min(38 + 35 * len(table), 420),
    )
    right.caption(
        "Every row of the set with its values, ranked by the measure (1 = an even share; "
        "rollout: how much of the pooled representation the prediction rests on comes from "
        f"the row, read out as the model pools, by mean and max: {set_figures.ROLLOUT_NOTE})"
    )
