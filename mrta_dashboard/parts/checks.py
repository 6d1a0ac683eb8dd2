"""Beside every map of a run on rows: the sanity checks (the map against the untrained model's;
rollout against permutation importance, on demand) and the table of heads."""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from mrta.pipelines.explain import run_checks
from mrta.pipelines.explore import CHECK_ROWS, Explanation
from mrta_dashboard import keys


def sanity(run, explanation: Explanation, layer: int, view: str) -> None:
    st.markdown("**Sanity checks**")
    for entry in explanation.divergence:
        if entry["layer"] == layer and entry["map_id"] == view:
            st.metric("Divergence from the untrained model", f"{entry['divergence']:.3f} bits")
            st.caption(
                "Mean Jensen–Shannon divergence between this map and the same map of the "
                "model before training (0 = unchanged, 1 = disjoint). Near 0, the map "
                "reflects the architecture, not what was learned."
            )
    agreement = explanation.sanity.get("rollout_vs_permutation")
    if agreement is not None:
        _agreement(explanation.sanity, agreement["spearman"])
    elif st.button("Run ablation and permutation checks", key=keys.CHECKS):
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
            f"Head ablation and permutation importance run on up to {CHECK_ROWS:,} validation "
            "rows, on demand."
        )


def _agreement(sanity: dict, overall: float | None) -> None:
    for stream, spearman in (sanity.get("rollout_vs_permutation_by_stream") or {}).items():
        value = spearman["spearman"]
        label = "numerical" if stream == "num" else "categorical"
        shown = "—" if value is None else f"{value:.2f}"
        st.metric(f"Rollout vs permutation, {label} columns (Spearman)", shown)
    st.caption(
        "Rank agreement between attention rollout and permutation importance on "
        "validation rows, within each type of column (rollout splits its importance half "
        "and half between the types by construction"
        + ("" if overall is None else f"; over all columns: {overall:.2f}")
        + "). Low or negative: attention is not where the predictions come from; read "
        "the maps with care. — means too few columns to rank."
    )


def head_table(explanation: Explanation) -> None:
    st.subheader("Heads")
    st.caption(
        "Entropy: 1 = attention spread evenly, 0 = on one key. Divergence: from the untrained "
        "model. Loss/metric change: when the head is zeroed (after the checks run)."
    )
    table = pd.DataFrame([dataclasses.asdict(h) for h in explanation.heads])
    st.dataframe(table.drop(columns=["layer_name"]), hide_index=True, key=keys.HEAD_TABLE)
