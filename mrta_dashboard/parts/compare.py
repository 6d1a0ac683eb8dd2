"""The Compare page's views of two runs compared on the same rows: what was compared and left out,
the metrics side by side, the divergence of every shared map, one map of both on one colour
scale with their difference, and the column importances side by side with their rank
correlation; each says what it can and cannot tell."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mrta.pipelines.compare import Comparison
from mrta.pipelines.explore import METHOD_TITLES
from mrta.report.compare_figures import (
    difference_map,
    importances_side_by_side,
    map_title,
    maps_side_by_side,
    rho_text,
)
from mrta.report.compare_report import (
    DIVERGENCE_NOTE,
    IMPORTANCE_NOTE,
    MAPS_NOTE,
    left_out_words,
    metrics_side_by_side,
    rows_words,
)
from mrta_dashboard import keys
from mrta_dashboard.parts import figure_export
from mrta_dashboard.text import md


def show(comparison: Comparison) -> None:
    """Every view of `comparison` (A: the current run, B: the other)."""
    a, b = comparison.runs
    st.markdown(f"**A**: {md(a)} · **B**: {md(b)} · differences are A − B.")
    st.caption(
        f"Both recorded in one pass on the same rows ({md(rows_words(comparison))}), so each "
        "row gives one difference per cell: the rows' own variation cancels in the test."
    )
    for note in comparison.notes:
        st.info(md(note))
    _metrics(comparison)
    _divergences(comparison)
    _one_map(comparison)
    _importances(comparison)


def _metrics(comparison: Comparison) -> None:
    st.subheader("Metrics side by side")
    header, rows = metrics_side_by_side(comparison)
    st.dataframe(pd.DataFrame(rows, columns=header), hide_index=True, key=keys.COMPARE_METRICS)
    st.caption(
        "Each run's own metrics on its own test split (gradient boosting: on the same split "
        "as its run). Runs split differently were not scored on the same rows, so a small gap "
        "may be the split's, not the model's."
    )


def _divergences(comparison: Comparison) -> None:
    st.subheader("How far apart each map is")
    table = pd.DataFrame(
        [
            {
                "map": map_title(m),
                "divergence": m.divergence,
                "cells that differ": m.difference.passing,
                "cells tested": m.difference.cells_tested,
                "rows sum to 1": "yes" if m.shared.complete else "no (keys left out)",
            }
            for m in comparison.maps
        ]
    )
    st.dataframe(table, hide_index=True, key=keys.COMPARE_DIVERGENCE)
    st.caption(
        f"{DIVERGENCE_NOTE} Cells that differ: at a false discovery rate of q = "
        f"{comparison.q:g} over the cells of each map."
    )


def _one_map(comparison: Comparison) -> None:
    st.subheader("One map of both runs")
    titles = [map_title(m) for m in comparison.maps]
    chosen = st.selectbox(
        "Map", range(len(titles)), format_func=titles.__getitem__, key=keys.COMPARE_MAP
    )
    compared = comparison.maps[chosen]
    rows = rows_words(comparison)
    left, right = st.columns([3, 2])
    left.plotly_chart(
        maps_side_by_side(compared, comparison.runs, rows=rows), key=keys.COMPARE_MAPS_FIGURE
    )
    right.metric(
        "Divergence between the two maps",
        f"{compared.divergence:.4f} bits",
        help="Mean Jensen–Shannon divergence over the query rows: 0 for identical maps, 1 at most.",
    )
    right.caption(MAPS_NOTE)
    left_out = left_out_words(compared, comparison.runs)
    if left_out:
        right.warning(md(left_out))
    figure = difference_map(compared, comparison.runs, rows=rows)
    st.plotly_chart(figure, key=keys.COMPARE_DIFFERENCE_FIGURE)
    st.caption(compared.difference.caption())
    if compared.difference.tested:
        st.caption(
            "Grey cells: no difference detected at the false discovery rate q; a grey cell is "
            "not shown to be equal, only not shown to differ."
        )
    a, b = comparison.runs
    name = f"{map_title(compared)}: {a} − {b} · {rows}"
    figure_export.download(figure, name, keys.COMPARE_DIFFERENCE_HTML)


def _importances(comparison: Comparison) -> None:
    st.subheader("Column importances side by side")
    a, b = comparison.importance["a"], comparison.importance["b"]
    table = pd.DataFrame(
        [
            {"importance": METHOD_TITLES.get(method, method), "rank correlation": rho_text(result)}
            for method, result in comparison.rank_correlation.items()
        ]
    )
    st.dataframe(table, hide_index=True, key=keys.COMPARE_IMPORTANCE_TABLE)
    figure = importances_side_by_side(a, b, comparison.runs, comparison.rank_correlation)
    st.plotly_chart(figure, key=keys.COMPARE_IMPORTANCE_FIGURE)
    st.caption(IMPORTANCE_NOTE)
