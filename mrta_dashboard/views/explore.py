"""Explore page: attention maps by layer, map, head and cohort, with the sanity checks beside;
for a run on sets, the attention between the rows of a set."""

from __future__ import annotations

import streamlit as st

from mrta.pipelines.explore import SetExplanation
from mrta.streams import MAP_LABELS
from mrta_dashboard import keys, session
from mrta_dashboard.parts import checks, maps, set_browser

ROLLOUT = "rollout"


def page() -> None:
    st.header("Explore")
    found = session.require_run("its attention is recorded right after")
    if found is None:
        return
    run, explanation = found
    if isinstance(explanation, SetExplanation):
        set_browser.show(run, explanation)
        return
    atlas = explanation.atlas
    sample = (
        f" (a seeded sample of {explanation.sampled_from:,})" if explanation.sampled_from else ""
    )
    st.caption(
        f"Attention of the trained model over {explanation.rows:,} rows{sample}. "
        "Rows of a map are queries, columns are keys; each row of a map sums to 1."
    )
    c1, c2, c3 = st.columns([1, 2, 2])
    layer = c1.selectbox(
        "Layer", range(len(atlas.layer_names)), format_func=lambda i: f"layer {i}", key=keys.LAYER
    )
    map_ids = [m for (lyr, m) in atlas.map_keys if lyr == layer]
    view = c2.selectbox(
        "Map",
        [*map_ids, ROLLOUT],
        format_func=lambda m: "rollout: column importance" if m == ROLLOUT else MAP_LABELS[m],
        key=keys.MAP,
    )
    aggregation = c3.selectbox("Rows", maps.AGGREGATIONS, key=keys.ROWS)
    if len(map_ids) < 4:
        st.info(
            "This table has only one type of column, so only its self-attention map exists; "
            "cross-type maps need both numerical and categorical columns."
        )
    left, right = st.columns([3, 1])
    with left:
        if view == ROLLOUT:
            maps.show_rollout(explanation, aggregation)
        else:
            maps.show_map(run, explanation, layer, view, aggregation)
    with right:
        checks.sanity(run, explanation, layer, view)
    checks.head_table(explanation)


if __name__ == "__main__":
    page()
