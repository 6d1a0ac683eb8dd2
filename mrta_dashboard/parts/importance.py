"""Below the maps of a run on rows, once the checks ran: the four column importances side by
side, each with what it can and cannot tell, and their deletion curves against random orders,
which say which of them earned trust on this run."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mrta.errors import counted
from mrta.pipelines.explore import METHOD_NOTES, METHOD_TITLES, METHODS, Explanation
from mrta.report.importance_figures import deletion_curves, importance_panels
from mrta.report.run_report import faithfulness_words
from mrta_dashboard import keys
from mrta_dashboard.parts import figure_export


def section(explanation: Explanation) -> None:
    st.subheader("Column importance, and how far to trust it")
    importances = explanation.importance
    if importances is None:
        st.caption(
            "Four column importances (permutation, attention received rolled out, value norm, "
            "gradient-weighted relevance), each checked by a deletion curve against random "
            "orders, come with the checks above: they run on the test rows."
        )
        return
    figure = importance_panels(importances)
    st.plotly_chart(figure, key=keys.IMPORTANCE_FIGURE)
    figure_export.download(
        figure,
        f"Column importance on {counted(importances.rows, 'test row')}",
        keys.IMPORTANCE_HTML,
    )
    for method in METHODS:
        if method in importances:
            st.caption(f"**{METHOD_TITLES[method]}.** {METHOD_NOTES[method]}")
    faithfulness = explanation.faithfulness
    if faithfulness is None:
        return
    st.markdown(f"**Faithfulness.** {faithfulness_words(faithfulness)}")
    figure = deletion_curves(faithfulness)
    st.plotly_chart(figure, key=keys.DELETION_FIGURE)
    figure_export.download(
        figure, f"Deletion curves on {counted(faithfulness.rows, 'test row')}", keys.DELETION_HTML
    )
    st.dataframe(faithfulness_table(faithfulness), hide_index=True, key=keys.FAITHFULNESS_TABLE)
    level = round(100 * faithfulness.level)
    st.caption(
        "Columns are removed one by one in each method's order (most important first), each "
        "replaced by its training mean or most frequent level, and the test loss is measured "
        f"after each removal on {counted(faithfulness.rows, 'test row')} that did not rank the "
        "columns. "
        "The area is the signed area between the curve and the mean of "
        f"{len(faithfulness.random.orders)} random orders over the fraction of columns removed "
        "(trapezoid rule, in loss units; positive where the curve runs above); higher means "
        "the ranking finds what the model uses first, under this kind of removal (on an "
        "interaction it can mislead: see the README). "
        f"The {level} % "
        "interval is a bootstrap over those rows; a method beats random when its lower end "
        "is above zero. The random orders' own areas spread as the last row shows: what an "
        "arbitrary ranking scores on this run."
    )


def faithfulness_table(faithfulness) -> pd.DataFrame:
    """One row per method: its area, interval and verdict; then the random orders' spread."""
    rows = [
        {
            "method": METHOD_TITLES.get(method, method),
            "area": result.area,
            "low": result.low,
            "high": result.high,
            "beats random": "yes" if result.beats_random else "no",
        }
        for method, result in faithfulness.methods.items()
    ]
    random = faithfulness.random
    rows.append(
        {
            "method": f"{len(random.orders)} random orders (5th–95th percentile of their areas)",
            "area": None,
            "low": random.low,
            "high": random.high,
            "beats random": "",
        }
    )
    return pd.DataFrame(rows)
