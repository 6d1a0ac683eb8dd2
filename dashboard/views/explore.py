"""Explore page: attention maps by layer, map, head and cohort, with the sanity checks beside."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import session
from mrta import figures
from mrta.aggregate import ALL_ROWS, row_attention, token_frame
from mrta.explain import Explanation, analysed_rows, filter_atlas, run_checks
from mrta.layer import MAP_LABELS

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


def page() -> None:
    st.header("Explore")
    run, explanation = session.get("run"), session.get("explanation")
    if run is None or explanation is None:
        st.info("Train a model on the Train page first; its attention is recorded right after.")
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


if __name__ == "__main__":
    page()
