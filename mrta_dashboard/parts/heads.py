"""The table of heads below the maps: how focused each head of the map in view is, where it
looks most, how far it moved in training and, once the checks ran, what zeroing it costs; every
layer and map on demand."""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st
from pandas.io.formats.style import Styler

from mrta.pipelines.explore import Explanation
from mrta.streams import MAP_LABELS
from mrta.task import Task
from mrta_dashboard import keys

NOT_RUN = "not run yet"
#: The field of each head's statistics -> the column shown.
COLUMNS = {
    "layer": "layer",
    "map_id": "map",
    "head": "head",
    "entropy": "entropy per row (0–1)",
    "mean_map_entropy": "entropy of the mean map (0–1)",
    "max_weight": "largest mean weight",
    "max_query": "its query",
    "max_key": "its key",
    "divergence": "moved in training (bits)",
    "loss_delta": "loss change when zeroed",
    "metric_delta": "metric change when zeroed",
}
DELTAS = ("loss_delta", "metric_delta")


def metric_name(task: Task) -> str:
    """The metric the ablation measures: accuracy, or R² for a regression."""
    return "R²" if task == Task.REGRESSION else "accuracy"


def head_frame(
    explanation: Explanation, task: Task, layer: int | None = None, map_id: str | None = None
) -> pd.DataFrame:
    """The heads of one layer's map (every layer and map when `layer` is ``None``), one line
    each, with the columns of :data:`COLUMNS` (the metric's own name in its column)."""
    heads = [
        dataclasses.asdict(h)
        for h in explanation.heads
        if layer is None or (h.layer, h.map_id) == (layer, map_id)
    ]
    frame = pd.DataFrame(heads, columns=[*COLUMNS, "layer_name"]).drop(columns=["layer_name"])
    frame["map_id"] = frame["map_id"].map(MAP_LABELS)
    for delta in DELTAS:  # None (not run) as NaN, so that the column stays a number to sort
        frame[delta] = pd.to_numeric(frame[delta], errors="coerce")
    names = dict(COLUMNS, metric_delta=f"{metric_name(task)} change when zeroed")
    return frame.rename(columns=names)


def styled(frame: pd.DataFrame) -> Styler:
    """`frame` with every number to four decimals and a delta that was not measured as
    :data:`NOT_RUN`."""
    deltas = [c for c in frame.columns if c.endswith("change when zeroed")]
    numbers = [c for c in frame.select_dtypes("number").columns if c not in ("layer", "head")]
    return frame.style.format("{:.4f}", subset=numbers, na_rep="—").format(
        "{:.4f}", subset=deltas, na_rep=NOT_RUN
    )


def show(run, explanation: Explanation, in_view: tuple[int, str] | None) -> None:
    """The table of the heads of the map `in_view` (layer, map id), or of every map on demand
    or when no one map is in view (``None``: the rollout, which spans them all)."""
    st.subheader("Heads")
    every = in_view is None or st.toggle(
        "Every layer and map",
        key=keys.HEADS_ALL,
        help="Off: the heads of the map in view only.",
    )
    frame = head_frame(explanation, run.schema.task, *(() if every else in_view))
    where = "every layer and map" if every else f"layer {in_view[0]}, {MAP_LABELS[in_view[1]]}"
    st.caption(
        f"The heads of {where}. Entropy: 1 = attention spread evenly over the keys, 0 = on one "
        "key; per row averages each row's own map, of the mean map is higher when the head "
        "looks at different keys for different rows. Largest mean weight: the map's largest "
        "cell, with its query and key. Moved in training: mean Jensen–Shannon divergence from "
        "the same head of the untrained model."
    )
    st.dataframe(styled(frame), hide_index=True, key=keys.HEAD_TABLE)
    metric = metric_name(run.schema.task)
    st.caption(
        "Changes when the head is zeroed, on the validation rows of the checks: the value "
        "with the head zeroed minus the value with it. A positive loss change means the model "
        f"does worse without the head (it uses it); a negative {metric} change means the same, "
        f"since higher {metric} is better. Near 0: the head can go without cost (other heads "
        f"may stand in for it). {NOT_RUN.capitalize()}: the checks have not run (the button "
        "beside the map)."
    )
