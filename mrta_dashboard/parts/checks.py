"""Beside every map of a run on rows, each check next to its null: the map's divergence from the
untrained model beside the control's (and whether it counts as learned), and, on demand,
rollout against permutation importance for the trained model beside the untrained model and
the control, and the button that runs the checks and the importances."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mrta.pipelines.explain import run_checks
from mrta.pipelines.explore import CHECK_ROWS, LEARNED_FACTOR, Explanation
from mrta_dashboard import control, keys
from mrta_dashboard.text import md

#: The rule a map is judged by, stated wherever the judgement is shown.
LEARNED_RULE = (
    "A map counts as learned where its divergence from the untrained model is more than "
    f"{LEARNED_FACTOR:g} times the control's (the same model trained on shuffled labels, whose "
    "maps move too), and it is neither uniform nor trivial by construction."
)
NULLS = {"untrained": "untrained model", "control": "control (shuffled labels)"}


def divergence_entry(explanation: Explanation, layer: int, map_id: str) -> dict | None:
    for entry in explanation.divergence:
        if (entry["layer"], entry["map_id"]) == (layer, map_id):
            return entry
    return None


def learned_words(run, entry: dict) -> str:
    """Whether a map counts as learned, in words (or why that cannot be said)."""
    if entry.get("learned") is not None:
        return "learned" if entry["learned"] else "not learned"
    return "control pending" if control.pending(run) else "no control"


def sanity(run, explanation: Explanation, layer: int, view: str) -> None:
    st.markdown("**Checks beside their nulls**")
    entry = divergence_entry(explanation, layer, view)
    if entry is not None:
        _divergence(run, entry)
    _agreement(run, explanation)


def _divergence(run, entry: dict) -> None:
    st.metric(
        "Trained vs untrained",
        f"{entry['divergence']:.4f} bits",
        help="How far the trained model's map moved from the untrained model's.",
    )
    theirs = entry.get("control_divergence")
    if theirs is not None:
        shown = f"{theirs:.4f} bits"
    else:
        shown = "pending" if control.pending(run) else "no control"
    st.metric(
        "Control vs untrained",
        shown,
        help="How far the control's map moved (the same model trained on shuffled labels): "
        "the null the trained model's move is compared with.",
    )
    words = learned_words(run, entry)
    label = f" · {entry['label']}" if entry.get("label") else ""
    st.markdown(f"This map: **{words}**{label}")
    note = ""
    if control.pending(run):
        note = " The control is still training: the comparison comes when it lands."
    elif theirs is None:
        note = f" {run.control_status()}"
    st.caption(
        "Mean Jensen–Shannon divergence (bits; 0 = unchanged, 1 = disjoint) between the "
        f"map and the same map before training. {LEARNED_RULE}{note}"
    )


def _agreement(run, explanation: Explanation) -> None:
    sanity = explanation.sanity
    trained = sanity.get("rollout_vs_permutation")
    if trained is not None:
        for stream, result in (sanity.get("rollout_vs_permutation_by_stream") or {}).items():
            label = "numerical" if stream == "num" else "categorical"
            value = result["spearman"]
            shown = "—" if value is None else f"{value:.2f}"
            st.metric(f"Rollout vs permutation, {label} columns (Spearman)", shown)
        st.caption(
            "Rank agreement between attention rollout and permutation importance (on test "
            "rows), within each type of column (rollout splits its importance half and half "
            "between the types by construction). — means too few columns to rank."
        )
        st.dataframe(
            agreement_table(trained, explanation.null_agreement, run),
            hide_index=True,
            key=keys.AGREEMENT_TABLE,
        )
        st.caption(
            "Over all columns, beside the nulls: the same agreement for the untrained model and "
            "for the control. The trained model's means something only where it is well above "
            "theirs. p: two-sided, under random orders of the columns (exact: every order "
            "enumerated; permutation: seeded random orders)."
        )
    wants_control = run.control is not None and "control" not in explanation.null_agreement
    if trained is not None and not wants_control:
        return
    label = "Run the checks again, with the control" if trained is not None else None
    if st.button(label or "Run the checks and the importances", key=keys.CHECKS):
        _run(run, explanation)
    else:
        st.caption(
            f"Head and map ablation (zeroed, and replaced by their mean) on up to {CHECK_ROWS:,} "
            f"validation rows; on up to {CHECK_ROWS:,} test rows, cut in two halves, four "
            "column importances on the first (permutation also for the nulls) and their "
            "deletion curves against random orders on the second. On demand."
        )


def agreement_table(trained: dict, nulls: dict, run) -> pd.DataFrame:
    """The rank agreement of the trained model beside the untrained model's and the control's."""
    rows = [("trained model", trained, "")]
    for name, words in NULLS.items():
        result = nulls.get(name)
        note = ""
        if result is None:
            if name == "control" and control.pending(run):
                note = "control pending"
            elif name == "control" and run.control is None:
                note = "no control"
            else:
                note = "run the checks again"
        rows.append((words, result or {}, note))
    return pd.DataFrame(
        [
            {
                "model": words,
                "Spearman": result.get("spearman"),
                "p": result.get("p_value"),
                "p method": result.get("p_value_method"),
                "columns": result.get("columns"),
                "note": note,
            }
            for words, result, note in rows
        ]
    )


def _run(run, explanation: Explanation) -> None:
    bar = st.progress(0.0, text="Starting")

    def progress(done: int, total: int, message: str) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=message)

    try:
        run_checks(run, explanation, progress=progress)
    except Exception as error:  # shown, and the page keeps working
        st.error(f"The checks failed: {md(error)}")
        return
    st.rerun()
