"""Explore page: attention maps by layer, map, head and cohort, with the sanity checks beside;
for a run on sets, the attention between the rows of a set."""

from __future__ import annotations

import streamlit as st

from mrta.errors import counted
from mrta.pipelines.explore import SetExplanation
from mrta_dashboard import control, keys, session
from mrta_dashboard.parts import (
    ablation,
    checks,
    gates,
    heads,
    importance,
    maps,
    seeds,
    set_browser,
    stability,
    verdict,
)

ROLLOUT = "rollout"


def page() -> None:
    found = verdict.run_page("Explore", "its attention is recorded right after")
    if found is None:
        return
    run, explanation = found
    if isinstance(explanation, SetExplanation):
        set_browser.show(run, explanation)
        return
    first_layer, first_map = _first_map(run, explanation)
    member = seeds.picker(run)
    shown = seeds.member_view(run, explanation, member)
    if shown is None:  # the member's maps are being recorded (or it failed): the page says so
        return
    recorded = explanation  # member 0's: the one the stability compares the others with
    member_run, explanation = shown  # the member's; the verdict above is the run's
    atlas = explanation.atlas
    sample = (
        f" (a seeded sample of {explanation.sampled_from:,})" if explanation.sampled_from else ""
    )
    model = f"seed member {member}" if run.seeds > 1 else "the trained model"
    st.caption(
        f"Attention of {model} over {counted(explanation.rows, 'row')}{sample}. "
        "Rows of a map are queries, columns are keys; each row of a map sums to 1."
    )
    gates.caption(member_run)
    c1, c2, c3 = st.columns([1, 2, 2])
    kept = session.get(keys.LAYER_KEPT)
    opening = first_layer if kept is None else kept
    shown = session.get(keys.LAYER)
    layer = opening if shown is None else shown
    map_ids = [m for (lyr, m) in atlas.map_keys if lyr == layer]
    view = c2.selectbox(
        "Map",
        [*map_ids, ROLLOUT],
        index=map_ids.index(first_map) if layer == first_layer and first_map in map_ids else 0,
        format_func=lambda m: (
            "attention received, rolled out (every layer)"
            if m == ROLLOUT
            else maps.map_name(explanation, layer, m)
        ),
        key=keys.MAP,
    )
    if view == ROLLOUT:  # it spans every layer: no layer to choose
        c1.caption("Layer")
        c1.markdown("every layer")
    else:
        layer = c1.selectbox(
            "Layer",
            range(len(atlas.layer_names)),
            index=opening,
            format_func=lambda i: f"layer {i}",
            key=keys.LAYER,
        )
        st.session_state[keys.LAYER_KEPT] = layer
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
            maps.show_map(member_run, explanation, layer, view, aggregation)
    with right:
        checks.sanity(member_run, explanation, layer, view)
    in_view = None if view == ROLLOUT else (layer, view)
    stability.section(run, recorded, in_view)
    importance.section(explanation)
    ablation.tables(member_run, explanation)
    heads.show(member_run, explanation, in_view)


def _first_map(run, explanation) -> tuple[int, str]:
    """The map the page opens on: the most learned one (the one whose divergence from the
    untrained model most exceeds its control's; while the control is pending, the one that
    moved most). Chosen once per run, so that it does not jump when the control lands."""
    stored = session.get(keys.FIRST_MAP)
    if stored is None or stored[0] != run.uid:
        if control.pending(run):
            how = "it moved most from the untrained model (chosen while the control was pending)"
        elif explanation.control is None:
            how = "it moved most from the untrained model (there is no control to compare with)"
        else:
            how = "it moved from the untrained model most beyond what the control moved"
        stored = (run.uid, explanation.first_map(), how)
        st.session_state[keys.FIRST_MAP] = stored
    _, (layer, map_id), how = stored
    st.caption(f"Opened on layer {layer}, {maps.map_name(explanation, layer, map_id)}: {how}.")
    return layer, map_id


if __name__ == "__main__":
    page()
