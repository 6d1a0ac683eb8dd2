"""Explore page: attention maps by layer, map, head and cohort, with the sanity checks beside."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import session
from dashboard.sets import maps_of
from mrta.analysis.cohorts import ALL_ROWS
from mrta.analysis.labels import format_value, token_frame
from mrta.analysis.rows import row_attention
from mrta.analysis.sets import ROLLOUT as SET_ROLLOUT
from mrta.analysis.sets import SetExplanation, measure_name
from mrta.nn.layer import MAP_LABELS
from mrta.pipelines.explain import Explanation, analysed_rows, filter_atlas, run_checks
from mrta.report import figures

ROLLOUT = "rollout"
AGGREGATIONS = ["whole dataset", "a cohort", "difference of two cohorts", "one row", "filter"]
OPERATORS = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}
SHOWN_ROWS = 80  # rows of a set's map drawn by default; a larger set shows its most attended
MAX_SHOWN_ROWS = 160  # at most: a map of n rows is n² cells, each with both rows' values
TOP_ROWS = 20  # rows of a set in its bar chart
POSITION = "(position in the set)"


def page() -> None:
    st.header("Explore")
    run, explanation = session.get("run"), session.get("explanation")
    if run is None or explanation is None:
        st.info(
            "Train a model on the Train page, or open a saved one on the Open run page, first; "
            "its attention is recorded right after."
        )
        return
    if isinstance(explanation, SetExplanation):
        _sets(run, explanation)
        return
    atlas = explanation.atlas
    st.caption(
        f"Attention of the trained model over {explanation.rows:,} rows"
        + (
            f" (a seeded sample of {explanation.sampled_from:,})"
            if explanation.sampled_from
            else ""
        )
        + ". Rows of a map are queries, columns are keys; each row of a map sums to 1."
    )
    c1, c2, c3 = st.columns([1, 2, 2])
    layer = c1.selectbox(
        "Layer", range(len(atlas.layer_names)), format_func=lambda i: f"layer {i}", key="x_layer"
    )
    map_ids = [m for (lyr, m) in atlas.map_keys if lyr == layer]
    view = c2.selectbox(
        "Map",
        [*map_ids, ROLLOUT],
        format_func=lambda m: "rollout: column importance" if m == ROLLOUT else MAP_LABELS[m],
        key="x_map",
    )
    aggregation = c3.selectbox("Rows", AGGREGATIONS, key="x_rows")
    if len(map_ids) < 4:
        st.info(
            "This table has only one type of column, so only its self-attention map exists; "
            "cross-type maps need both numerical and categorical columns."
        )
    left, right = st.columns([3, 1])
    with left:
        if view == ROLLOUT:
            _rollout(explanation, aggregation)
        else:
            _map(run, explanation, layer, view, aggregation)
    with right:
        _sanity(run, explanation, layer, view)
    _head_table(explanation)


def _cohort_choice(atlas, label: str, key: str, default: int = 0):
    labels = list(atlas.cohort_labels)
    i = st.selectbox(
        label, range(len(labels)), index=default, format_func=labels.__getitem__, key=key
    )
    return atlas.cohorts[i]


def _head_choice(heads: int) -> int | str | None:
    options = ["all heads", "mean of heads", *range(heads)]
    choice = st.selectbox(
        "Heads",
        options,
        format_func=lambda h: f"head {h}" if isinstance(h, int) else h,
        key="x_head",
        help="All heads as small multiples on one colour scale; click one to enlarge it.",
    )
    return {"all heads": None, "mean of heads": "mean"}.get(choice, choice)


def _map(run, explanation: Explanation, layer: int, map_id: str, aggregation: str) -> None:
    atlas = explanation.atlas
    heads = atlas.means[(layer, map_id)].shape[1]
    head = _head_choice(heads)
    queries, keys = atlas.names(layer, map_id)
    title = f"layer {layer}, {MAP_LABELS[map_id]}"
    if aggregation == "difference of two cohorts":
        a = _cohort_choice(atlas, "Cohort A", "x_a", default=min(1, len(atlas.cohorts) - 1))
        b = _cohort_choice(atlas, "Cohort B", "x_b")
        z = st.slider("Mute differences smaller than this many standard errors", 0.0, 4.0, 2.0)
        if head is None:
            st.caption("Differences are shown one head at a time: showing the mean of heads.")
            head = "mean"
        difference = atlas.difference(layer, map_id, a, b, head, z)
        shown = int((~difference.muted).sum())
        st.caption(f"{shown} of {difference.muted.size} cells differ by more than {z:g} SE.")
        figure = figures.difference_heatmap(difference, queries, keys, title=f"{title}: A − B")
        st.plotly_chart(figure, key="x_fig")
        return
    if aggregation == "one row":
        maps, queries, keys = _one_row(run, explanation, layer, map_id)
        if maps is None:
            return
        count = 1
    else:
        cohort = ALL_ROWS
        if aggregation == "a cohort":
            cohort = _cohort_choice(atlas, "Cohort", "x_cohort")
        elif aggregation == "filter":
            atlas, cohort = _filtered(run, explanation)
            if atlas is None:
                return
        maps = atlas.cohort_map(layer, map_id, cohort).mean  # (H, Tq, Tk)
        count = atlas.cohort_map(layer, map_id, cohort).count
    st.caption(f"{count:,} rows")
    _draw(maps, queries, keys, head, title)


def _draw(maps: np.ndarray, queries, keys, head, title: str) -> None:
    fit = st.toggle(
        "Fit the colour scale to the values",
        key="x_fit",
        help="Off: from 0 to the largest weight, honest about how flat a map is. On: from the "
        "smallest to the largest weight, to see the structure of a near-uniform map.",
    )
    if head is None:
        figure = figures.head_grid(maps, queries, keys, title=f"{title}: every head", fit=fit)
        event = st.plotly_chart(figure, key="x_fig", on_select="rerun", selection_mode="points")
        points = event.selection.points if event and event.selection else []
        if points:  # a click on a small multiple enlarges that head
            st.session_state["x_head"] = int(points[0]["curve_number"])
            st.rerun()
        return
    weights = maps.mean(axis=0) if head == "mean" else maps[head]
    label = "mean of heads" if head == "mean" else f"head {head}"
    figure = figures.heatmap(weights, queries, keys, title=f"{title}: {label}", fit=fit)
    st.plotly_chart(figure, key="x_fig")


def _one_row(run, explanation: Explanation, layer: int, map_id: str):
    rows = analysed_rows(run, run.frame, len(run.frame), 0)
    tokens = token_frame(run.schema, rows)
    st.caption("Pick a row (the table is searchable and sortable).")
    picked = st.dataframe(
        rows.head(5000), on_select="rerun", selection_mode="single-row", key="x_row", height=220
    )
    selected = picked.selection.rows if picked and picked.selection else []
    if not selected:
        st.info("Select a row to see its maps, tokens labelled with its values.")
        return None, None, None
    i = selected[0]
    encoded = run.preprocessor.transform(rows.iloc[[i]])
    one = row_attention(run.model, encoded, 0, tokens.iloc[[i]])
    query_stream, key_stream = map_id.split("_")
    maps = one.atlas.cohort_map(layer, map_id).mean
    return maps, one.labels[query_stream], one.labels[key_stream]


def _filtered(run, explanation: Explanation):
    """A custom cohort from a condition on one column: its own pass over the rows."""
    frame = run.frame
    c1, c2, c3 = st.columns([2, 1, 2])
    column = c1.selectbox("Column", list(run.schema.feature_columns), key="x_fcol")
    op = c2.selectbox("Condition", list(OPERATORS), key="x_fop")
    value = c3.text_input("Value", key="x_fval")
    if not value:
        st.info("Write a value to compare the column with.")
        return None, None
    raw = frame[column]
    try:
        operand = float(value) if pd.api.types.is_numeric_dtype(raw) else value
    except ValueError:
        st.error(f"{column} holds numbers: write a number, not {value!r}.")
        return None, None
    mask = np.asarray(OPERATORS[op](raw.to_numpy(), operand), dtype=bool) & raw.notna().to_numpy()
    name = f"{column} {op} {value}"
    if not mask.any():
        st.warning(f"No row has {name}.")
        return None, None
    cache = st.session_state.setdefault("x_filters", {})
    if (id(run), name) not in cache:
        with st.spinner(f"Recording attention for rows with {name}…"):
            cache[(id(run), name)] = filter_atlas(run, name, mask)
    return cache[(id(run), name)], ("filter", name)


def _rollout(explanation: Explanation, aggregation: str) -> None:
    atlas = explanation.atlas
    cohort = _cohort_choice(atlas, "Cohort", "x_rcohort") if aggregation == "a cohort" else ALL_ROWS
    importance = atlas.importance(cohort)
    st.plotly_chart(
        figures.importance_bars(importance, title="How much each column flows into the prediction"),
        key="x_rollout",
    )
    st.caption(
        "Rollout multiplies every layer's head-averaged maps, with the residual connections, "
        "and averages the result over the rows: a share per input column, summing to 1. "
        "The numerical and the categorical columns always share it half and half (each cross "
        "stage is half residual), so compare a column with others of its own type."
    )


def _sanity(run, explanation: Explanation, layer: int, view: str) -> None:
    st.markdown("**Sanity checks**")
    for entry in explanation.divergence:
        if entry["layer"] == layer and entry["map_id"] == view:
            st.metric("Divergence from the untrained model", f"{entry['divergence']:.3f} bits")
            st.caption(
                "Mean Jensen–Shannon divergence between this map and the same map of the "
                "model before training (0 = unchanged, 1 = disjoint). Near 0, the map "
                "reflects the architecture, not what was learned."
            )
    sanity = explanation.sanity
    agreement = sanity.get("rollout_vs_permutation")
    if agreement is not None:
        for stream, spearman in (sanity.get("rollout_vs_permutation_by_stream") or {}).items():
            value = spearman["spearman"]
            label = "numerical" if stream == "num" else "categorical"
            shown = "—" if value is None else f"{value:.2f}"
            st.metric(f"Rollout vs permutation, {label} columns (Spearman)", shown)
        overall = agreement["spearman"]
        st.caption(
            "Rank agreement between attention rollout and permutation importance on "
            "validation rows, within each type of column (rollout splits its importance half "
            "and half between the types by construction"
            + ("" if overall is None else f"; over all columns: {overall:.2f}")
            + "). Low or negative: attention is not where the predictions come from; read "
            "the maps with care. — means too few columns to rank."
        )
    elif st.button("Run ablation and permutation checks", key="x_checks"):
        bar = st.progress(0.0, text="Starting")

        def progress(done: int, total: int, message: str) -> None:
            bar.progress(min(done / max(total, 1), 1.0), text=message)

        try:
            run_checks(run, explanation, progress=progress)
        except Exception as error:  # shown, and the page keeps working
            st.error(f"The checks failed: {error}")
            return
        st.rerun()
    else:
        st.caption(
            "Head ablation and permutation importance run on up to 2,000 validation rows, "
            "on demand."
        )


def _head_table(explanation: Explanation) -> None:
    st.subheader("Heads")
    st.caption(
        "Entropy: 1 = attention spread evenly, 0 = on one key. Divergence: from the untrained "
        "model. Loss/metric change: when the head is zeroed (after the checks run)."
    )
    table = pd.DataFrame([dataclasses.asdict(h) for h in explanation.heads])
    st.dataframe(table.drop(columns=["layer_name"]), hide_index=True, key="x_heads")


# -- one prediction per group: attention between the rows of a set -------------------------------
def _sets(run, explanation: SetExplanation) -> None:
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
    labels = _measure_labels(explanation)
    st.subheader("Across the sets")
    left, right = st.columns(2)
    measure = left.selectbox(
        "Measure (here and for a set's rows)",
        explanation.measures,
        format_func=labels.__getitem__,
        key="x_s_measure",
    )
    columns = [c for c in explanation.values.columns if c != explanation.group_by]
    columns.sort(key=lambda c: c == explanation.order_by)  # the features first
    column = right.selectbox("By the rows' values in", columns, key="x_s_column")
    _set_summary(explanation, measure, labels[measure], column)
    st.subheader("One set")
    key = _set_choice(explanation)
    if key is None:
        return
    label_column = _set_map(run, explanation, key)
    _set_rows(explanation, key, measure, labels[measure], label_column)


def _measure_labels(explanation: SetExplanation) -> dict[str, str]:
    labels = {SET_ROLLOUT: "rollout: the row's share of the set's representation"}
    for layer, map_id in explanation.map_keys:
        labels[measure_name(layer, map_id)] = (
            f"attention received: layer {layer}, {MAP_LABELS[map_id]}"
        )
    return labels


def _set_summary(explanation: SetExplanation, measure: str, label: str, column: str) -> None:
    table = explanation.summary(column, measure).dropna(subset=["rows"])
    figure = figures.summary_bars(
        table["group"].astype(str).tolist(),
        table["mean"].to_numpy(),
        table["sem"].to_numpy(),
        table["rows"].astype(int).tolist(),
        column=column,
        measure=label,
        title=f"Mean {label.split(':')[0]} of the rows, by {column}",
    )
    st.plotly_chart(figure, key="x_s_summary")
    st.caption(
        "Each bar runs from an even share (1, dotted) to the mean over the analysed rows of a "
        "level (or of a quantile bin, for numbers), with its standard error: above the line, "
        "rows like these draw more than an even share of their set's attention."
    )


def _set_choice(explanation: SetExplanation) -> str | None:
    sets, group_by = explanation.sets, explanation.group_by
    filters = ["every set"]
    if "correct" in sets.columns:
        filters += ["wrong predictions", "right predictions"]
    elif "error" in sets.columns:
        filters += ["largest errors first"]
    how = st.radio("Sets", filters, horizontal=True, key="x_s_filter")
    if how == "wrong predictions":
        shown = sets[~sets["correct"].astype(bool)]
    elif how == "right predictions":
        shown = sets[sets["correct"].astype(bool)]
    elif how == "largest errors first":
        shown = sets.loc[sets["error"].abs().sort_values(ascending=False).index]
    else:
        shown = sets
    if shown.empty:
        st.info(f"None of the analysed sets: no {how}.")
        return None
    keys = shown[group_by].astype(str).tolist()
    texts = dict(zip(keys, (_set_text(row) for _, row in shown.iterrows()), strict=True))
    stored = session.get("x_chosen_set")
    key = st.selectbox(
        f"Set ({len(keys):,})",
        keys,
        index=keys.index(stored) if stored in keys else 0,
        format_func=lambda k: f"{k} · {texts[k]}",
        key=f"x_set:{how}",
    )
    st.session_state["x_chosen_set"] = key  # kept across pages, for the Export page too
    return key


def _set_text(row: pd.Series) -> str:
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
    with st.spinner(f"Recording the maps of set {key}…"):
        maps = maps_of(run, key)
    c1, c2, c3, c4 = st.columns(4)
    layers = sorted({layer for layer, _ in maps.maps})
    layer = c1.selectbox("Layer", layers, format_func=lambda i: f"layer {i}", key="x_s_layer")
    map_ids = [m for (lyr, m) in explanation.map_keys if lyr == layer and (lyr, m) in maps.maps]
    map_id = c2.selectbox("Map", map_ids, format_func=MAP_LABELS.__getitem__, key="x_s_map")
    weights = maps.maps[(layer, map_id)]  # (H, n, n)
    heads = ["mean of heads", *range(weights.shape[0])]
    head = c3.selectbox(
        "Heads",
        heads,
        format_func=lambda h: f"head {h}" if isinstance(h, int) else h,
        key="x_s_head",
    )
    columns = [c for c in maps.values.columns if c != explanation.group_by]
    options = [*([maps.order_by] if maps.order_by in columns else []), POSITION]
    options += [c for c in columns if c not in options]
    column = c4.selectbox("Label rows by", options, key="x_s_label")
    column = None if column == POSITION else column
    labels = maps.labels(column) if column else [f"row {i}" for i in range(len(maps.values))]
    hover = maps.hover()
    w = weights.mean(axis=0) if head == "mean of heads" else weights[head]  # (n, n)
    n = w.shape[0]
    rows = np.arange(n)
    if n > SHOWN_ROWS:
        shown = st.slider(
            "Rows shown (those that receive the most attention)",
            10,
            min(n, MAX_SHOWN_ROWS),
            SHOWN_ROWS,
            key="x_s_rows",
        )
        received = w.sum(axis=0)  # (n,) attention each row receives from the set
        rows = np.sort(np.argsort(-received, kind="stable")[:shown])
        st.caption(
            f"This set has {n:,} rows: the map shows the {shown} that receive the most "
            "attention in it, in set order. Their weights are those of the whole set, so a row "
            "of this map sums to less than 1."
        )
        w = w[np.ix_(rows, rows)]
    fit = st.toggle(
        "Fit the colour scale to the values",
        key="x_s_fit",
        help="Off: from 0 to the largest weight. On: from the smallest to the largest.",
    )
    what = "mean of heads" if head == "mean of heads" else f"head {head}"
    figure = figures.set_heatmap(
        w,
        [labels[i] for i in rows],
        [hover[i] for i in rows],
        title=f"Set {key}: layer {layer}, {MAP_LABELS[map_id]}, {what}",
        fit=fit,
    )
    st.plotly_chart(figure, key="x_s_map_fig")
    st.caption(
        "Rows of the map are the set's rows as queries, columns the same rows as keys; each "
        "row of the map sums to 1 (the set's padding gets no attention). Hover a cell for "
        "both rows' values."
    )
    return column


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
        figures.row_bars(
            top[measure].to_numpy(),
            [names[p] for p in top["position"]],
            hover,
            measure=label.split(":")[0],
            title=f"The {len(top)} most attended of {len(table):,} rows",
        ),
        key="x_s_bars",
    )
    shown = ["position", measure, *([SET_ROLLOUT] if measure != SET_ROLLOUT else []), *values]
    right.dataframe(
        table[[c for c in dict.fromkeys(shown) if c in table.columns]],
        hide_index=True,
        key="x_s_table",
        height=min(38 + 35 * len(table), 420),
    )
    right.caption(
        "Every row of the set with its values, ranked by the measure (1 = an even share; "
        "rollout: how much of the pooled representation the prediction rests on comes from "
        "the row)."
    )


if __name__ == "__main__":
    page()
