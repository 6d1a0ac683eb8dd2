"""Below the maps of a run on rows: every map beside its null (the divergences of the trained
model and of the control from the untrained model, the learned, uniform and trivial labels),
the ablation tables once the checks ran (single heads zeroed, single heads replaced by their
mean, whole maps zeroed). The table of heads is :mod:`mrta_dashboard.parts.heads`'s."""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from mrta.pipelines.explore import LEARNED_FACTOR, Explanation
from mrta.streams import MAP_LABELS
from mrta_dashboard import keys
from mrta_dashboard.parts.checks import learned_words

ABLATIONS = {  # keys.ABLATIONS -> (tab, the explanation's attribute, what was done)
    "heads": ("Single heads zeroed", "ablation", "one head's output set to zero"),
    "mean": (
        "Single heads replaced by their mean",
        "mean_ablation",
        "one head's output replaced by its mean over the rows (what it says whatever the row)",
    ),
    "maps": ("Whole maps zeroed", "map_ablation", "every head of one map set to zero"),
}


def tables(run, explanation: Explanation) -> None:
    maps_beside_nulls(run, explanation)
    ablation_tables(explanation)


def maps_beside_nulls(run, explanation: Explanation) -> None:
    st.subheader("Every map beside its null")
    table = pd.DataFrame(
        [
            {
                "layer": entry["layer"],
                "map": MAP_LABELS[entry["map_id"]],
                "trained vs untrained (bits)": entry["divergence"],
                "control vs untrained (bits)": entry.get("control_divergence"),
                "learned": learned_words(run, entry),
                "label": entry.get("label") or "",
            }
            for entry in explanation.divergence
        ]
    )
    st.dataframe(table.style.format(precision=4, na_rep="—"), hide_index=True, key=keys.MAP_TABLE)
    st.caption(
        f"Learned: more than {LEARNED_FACTOR:g} times the control's divergence (the rule beside "
        "the map). Uniform: every query row within 0.01 of the even spread's entropy. Trivial "
        "by construction: a single key, every weight 1."
    )


def ablation_tables(explanation: Explanation) -> None:
    results = {kind: getattr(explanation, ABLATIONS[kind][1]) for kind in keys.ABLATIONS}
    if all(result is None for result in results.values()):
        return
    st.subheader("Ablation")
    baseline = next(result for result in results.values() if result is not None)
    metric = "" if baseline.baseline_metric is None else f", metric {baseline.baseline_metric:.4f}"
    st.caption(
        f"Loss and metric change on {baseline.rows:,} validation rows when part of the model "
        f"is removed (baseline loss {baseline.baseline_loss:.4f}{metric}). Heads of one map "
        "can stand in for each other: a map whose single heads cost nothing may still cost "
        "much when it is zeroed whole."
    )
    tabs = st.tabs([ABLATIONS[kind][0] for kind in keys.ABLATIONS])
    for tab, kind in zip(tabs, keys.ABLATIONS, strict=True):
        with tab:
            result = results[kind]
            if result is None:
                st.info("Run the checks again to get this table.")
                continue
            entries = result.maps if kind == "maps" else result.heads
            table = pd.DataFrame([dataclasses.asdict(entry) for entry in entries])
            table["map_id"] = table["map_id"].map(MAP_LABELS)
            table = table.rename(columns={"map_id": "map"}).drop(columns=["loss", "metric"])
            table = table.sort_values("loss_delta", ascending=False)
            st.caption(f"{ABLATIONS[kind][2].capitalize()}; largest loss increase first.")
            st.dataframe(
                table.style.format(precision=4, na_rep="—"),
                hide_index=True,
                key=keys.ablation_table(kind),
            )
