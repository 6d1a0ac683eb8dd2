"""Compare page: the session's run against another run trained or opened in this browser session,
both recorded on the same rows (:func:`mrta.pipelines.compare.compare_runs`): maps side by side
with their tested difference and divergence, importances with their rank correlation, metrics."""

from __future__ import annotations

import streamlit as st

from mrta.errors import counted, one_line
from mrta.pipelines.compare import compare_runs
from mrta.pipelines.explain import DEFAULT_MAX_ROWS
from mrta.pipelines.explore import SetExplanation
from mrta_dashboard import keys, session
from mrta_dashboard.parts import compare, difference
from mrta_dashboard.text import md

#: How many comparisons the session keeps, newest last.
KEEP = 4
#: How to get a second run, when the session has only one.
SECOND_RUN = (
    "To compare, this session needs a second run: train again on the Train page with another "
    "seed (or other settings), or open a saved run on the Open run page. Every run this session "
    "trains or opens is remembered here, so the current one stays available to compare with."
)


def page() -> None:
    st.header("Compare")
    st.caption(
        "The current run against another run of this session, both recorded on the same rows "
        "in one pass: each shared map of both on one colour scale, their difference tested cell "
        "by cell, how far apart they are, their column importances and their metrics."
    )
    found = session.require_run("then come back here to compare it with another run")
    if found is None:
        return
    run, explanation = found
    if isinstance(explanation, SetExplanation) or run.sets is not None:
        st.info(
            "This run predicts one row per group of rows: comparing runs works on runs of one "
            "row per example."
        )
        return
    seen = {known.uid: (known, name) for known, name in session.seen_runs()}
    current = seen.get(run.uid, (run, "the current run"))[1]
    others = [uid for uid, (known, _) in seen.items() if uid != run.uid and known.sets is None]
    st.markdown(f"**A** (the current run): {md(current)}")
    if not others:
        st.info(SECOND_RUN)
        return
    other_uid = st.selectbox(
        "B: compare it with",
        others[::-1],  # the newest first
        format_func=lambda uid: seen[uid][1],
        key=keys.COMPARE_WITH,
    )
    other, other_name = seen[other_uid]
    rows = run.frame
    if rows is None:
        st.info(
            "The current run holds no rows to record both runs on (it was saved without "
            "--save-data): compare it from the command line, `mrta compare RUN_A RUN_B --data "
            "FILE --out DIR`."
        )
        return
    q = difference.q_input(keys.COMPARE_Q)
    st.caption(
        f"On the rows the current run is explored on ({counted(len(rows), 'row')}; at most "
        f"{DEFAULT_MAX_ROWS:,} of those with both runs' targets, a seeded sample, are "
        "recorded). Columns are matched by name; what only one run reads is left out and said "
        "below."
    )
    cache = st.session_state.setdefault(keys.COMPARISONS, {})
    key = (run.uid, other_uid, q)
    if key not in cache:
        if not st.button("Compare", type="primary", key=keys.COMPARE_BUTTON):
            return
        comparison = _compare(run, other, (current, other_name), rows, q)
        if comparison is None:
            return
        cache[key] = comparison
        for stale in list(cache)[:-KEEP]:
            del cache[stale]
    compare.show(cache[key])


def _compare(run, other, names, rows, q):
    """Both runs compared with a progress bar, or ``None`` after saying why they cannot be."""
    bar = st.progress(0.0, text="Starting")

    def progress(done: int, total: int, message: str) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=message)

    try:
        comparison = compare_runs(run, other, rows, names=names, q=q, progress=progress)
    except Exception as error:  # a message, never a traceback
        bar.empty()
        st.error(f"These runs cannot be compared: {md(one_line(error))}")
        return None
    bar.empty()
    return comparison


if __name__ == "__main__":
    page()
