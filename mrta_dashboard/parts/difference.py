"""The Explore page's difference of two cohorts' maps: by default a cohort against the rest of
the rows it is a part of, each cell tested by Welch's t with the false discovery rate held at
a q the reader sets, and the rows each cohort is of said beside it."""

from __future__ import annotations

import streamlit as st

from mrta.errors import counted
from mrta.pipelines.explore import DEFAULT_Q, containing, default_cohort, rows_scope
from mrta.report import figures
from mrta_dashboard import keys
from mrta_dashboard.parts import figure_export
from mrta_dashboard.text import md

REST = "the rest of its rows"  # the comparison the view opens on


def show(atlas, layer: int, map_id: str, head, queries, keys_, title: str) -> None:
    labels = dict(zip(atlas.cohorts, atlas.cohort_labels, strict=True))
    choices = [c for c in atlas.cohorts if len(c) > 1]  # every cohort but all rows
    if not choices:
        st.info("This table has no cohorts to compare.")
        return
    start = default_cohort(choices)
    a = st.selectbox(
        "Cohort A",
        choices,
        index=choices.index(start),
        format_func=lambda c: labels[c],
        key=keys.COHORT_A,
    )
    b = st.selectbox(
        "Against",
        [REST, *atlas.cohorts],
        format_func=lambda c: c if c == REST else labels[c],
        key=keys.COHORT_B,
        help="The rest of the rows A is a part of (all rows, or its split's rows) is the "
        "default: it shares no row with A, so every cell can be tested.",
    )
    q = q_input(keys.DIFFERENCE_Q)
    if head is None:
        st.caption("Differences are shown one map at a time: showing the mean of heads.")
        head = "mean"
    within = containing(a)
    count = {c: int(n) for c, n in zip(atlas.cohorts, atlas.counts, strict=True)}
    if b == REST:
        if count[within] == count[a]:
            st.info(f"{md(labels[a])} is every one of its rows: it has no rest to compare with.")
            return
        difference = atlas.difference_from_rest(layer, map_id, a, head=head, q=q)
        against = f"the rest of the {rows_scope(a)}"
        b_rows = count[within] - count[a]
    else:
        difference = atlas.difference(layer, map_id, a, b, head, q=q)
        against = labels[b]
        b_rows = count[b]
    a_words = f"{labels[a]}, {counted(count[a], 'row')}"  # a label names its split's rows
    b_words = f"{against}, {counted(b_rows, 'row')}"
    st.caption(f"A: {md(a_words)} · B: {md(b_words)}.")
    st.caption(difference.caption())
    name = f"{title}: A − B, {'mean of heads' if head == 'mean' else f'head {head}'}"
    rows = f"A: {a_words} · B: {b_words}"
    figure = figures.difference_heatmap(difference, queries, keys_, title=name, rows=rows)
    st.plotly_chart(figure, key=keys.FIGURE)
    if difference.tested:
        st.caption(
            "Grey cells: no difference detected at the false discovery rate q (the legend above "
            "the map); a grey cell is not shown to be equal, only not shown to differ."
        )
    figure_export.download(figure, f"{name} · {rows}", keys.FIGURE_HTML)


def q_input(key: str) -> float:
    """The false discovery rate of a map's tested cells, chosen (0.001 to 0.5; default
    :data:`DEFAULT_Q`) with the widget `key`."""
    return st.number_input(
        "False discovery rate q",
        min_value=0.001,
        max_value=0.5,
        value=DEFAULT_Q,
        step=0.01,
        format="%.3f",
        key=key,
        help="Of the cells shown as different, at most this share is expected to be so by "
        "chance (Benjamini–Yekutieli).",
    )
