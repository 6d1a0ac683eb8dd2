"""The Explore page's *Stability across seeds*: for a run of seed members, computed on demand in
the background (:func:`mrta.pipelines.stability.seed_stability`) and kept for the session per
run, the agreement of the members' column importances beside chance, every map's unstable cells
and spread, and for the map in view the members' mean with its unstable cells marked, the spread
of its cells and the head matching, each with what it can and cannot tell; for a run of one
model, how to get one."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from mrta.errors import counted
from mrta.pipelines.stability import ONE_MODEL, seed_stability
from mrta.pipelines.train_run import threads_of
from mrta.report.stability_figures import MEAN_WORDS, SPREAD_WORDS, stability_heatmaps
from mrta.report.stability_report import (
    AGREEMENT_NOTE,
    HEADS_NOTE,
    SECTION,
    SPREAD_NOTE,
    UNSTABLE_NOTE,
    agreement_records,
    head_records,
    map_records,
    map_title,
    matching_sentence,
    rows_words,
)
from mrta_dashboard import jobs, session
from mrta_dashboard.parts import figure_export, seeds
from mrta_dashboard.text import md

# -- the keys of this part ------------------------------------------------------------------------
STABILITY = "x_st_results"  # {(run uid, NAME): SeedStability}
NAME = "stability"
STABILITY_JOB = "x_st_job"  # the Job computing it
BUTTON, CANCEL, RETRY = "x_st_go", "x_st_cancel", "x_st_retry"
AGREEMENT_TABLE, MAPS_TABLE, HEADS_TABLE = "x_st_agreement", "x_st_maps", "x_st_heads"
MEAN_FIGURE, SPREAD_FIGURE = "x_st_mean", "x_st_spread"
MEAN_HTML, SPREAD_HTML = "x_st_mean_html", "x_st_spread_html"
TITLE = "computing the stability across seeds"


def computed(run) -> Any | None:
    """The stability of `run`'s seed members, where this session computed it."""
    return session.run_cached(STABILITY, run, NAME)


def with_stability(run, explanation):
    """`explanation` with the stability this session computed for `run` (a copy; the same
    explanation when there is none), so that the report includes it."""
    found = computed(run)
    if found is None or getattr(explanation, "stability", None) is not None:
        return explanation
    return dataclasses.replace(explanation, stability=found)


def section(run, explanation, in_view: tuple[int, str] | None) -> None:
    """The section, below the map of the run's member in view; `in_view`: its layer and map
    (``None`` for the rollout, which has no cells to compare)."""
    st.subheader(SECTION)
    if run.seeds < 2:
        st.markdown(md(ONE_MODEL))
        return
    stability = _stability(run, explanation)
    if stability is None:
        return
    st.caption(
        f"{rows_words(stability)} as member 0 (the session's maps); every figure and table "
        "here compares all of them, whichever member the maps above show."
    )
    st.markdown("**Do the members rank the columns alike?**")
    if stability.agreement:
        frame = pd.DataFrame(agreement_records(stability))
        shown = frame.drop(columns="what it says").round(4)
        st.dataframe(shown, hide_index=True, key=AGREEMENT_TABLE)
        st.markdown("\n".join(f"- {sentence}" for sentence in frame["what it says"]))
        st.caption(
            f"Ranked on {counted(stability.importance_rows, 'test row')} (those the checks "
            f"rank the columns on). {AGREEMENT_NOTE}"
        )
    if stability.note:
        st.info(md(stability.note))
    st.markdown("**Every map across the members**")
    st.dataframe(pd.DataFrame(map_records(stability)).round(4), hide_index=True, key=MAPS_TABLE)
    st.caption(f"{UNSTABLE_NOTE} {SPREAD_NOTE}")
    if in_view is None:
        st.caption("Pick a map above to see its cells across the members.")
        return
    _map(stability, explanation, *in_view)


def _map(stability, explanation, layer: int, map_id: str) -> None:
    """The map in view across the members: their mean with the unstable cells marked, the
    spread of its cells, and the head matching."""
    found = stability.map(layer, map_id)
    title = map_title(found)
    drawn = stability_heatmaps(
        found.cells,
        explanation.atlas.names(layer, map_id),
        title=title,
        rows=rows_words(stability),
    )
    shown = (
        (MEAN_WORDS, MEAN_FIGURE, MEAN_HTML, UNSTABLE_NOTE),
        (SPREAD_WORDS, SPREAD_FIGURE, SPREAD_HTML, SPREAD_NOTE),
    )
    for column, figure, (what, key, html_key, note) in zip(
        st.columns(2), drawn, shown, strict=True
    ):
        with column:
            st.plotly_chart(figure, key=key)
            figure_export.download(figure, f"{title}, {what}", html_key)
            st.caption(note)
    st.markdown(f"**Head matching** ({matching_sentence(found)})")
    st.dataframe(pd.DataFrame(head_records(found)).round(4), hide_index=True, key=HEADS_TABLE)
    st.caption(
        f"Read a row as: head (the member's column) of member i is head (the first column) of "
        f"member 0. {HEADS_NOTE}"
    )


def _stability(run, explanation):
    """The stability of `run`'s members: kept, being computed (its progress shown), or asked
    for with the button; ``None`` until it is in."""
    prepare = None
    job = session.get(STABILITY_JOB)
    if computed(run) is None and (job is None or job.owner != seeds.owner(run, NAME)):
        st.caption(
            f"Records members 1 to {run.seeds - 1} on the same "
            f"{counted(explanation.rows, 'row')} as member 0, then the four column importances "
            f"of each of the {run.seeds} members on the test rows: in the background, on demand."
        )
        if st.button(f"Compute the stability across the {run.seeds} members", key=BUTTON):
            prepare = _prepare(run, explanation)
    return seeds.background(
        STABILITY_JOB,
        STABILITY,
        run,
        NAME,
        title=TITLE,
        prepare=prepare,
        buttons=(CANCEL, RETRY),
    )


def _prepare(run, explanation) -> Callable[[], Callable[[jobs.Job], Any]]:
    """What the job computes: the stability of copies of the run's members (:func:`detached`)."""

    def prepare() -> Callable[[jobs.Job], Any]:
        shadow = seeds.detached(run)

        def work(job: jobs.Job):
            with threads_of(run.training):
                return seed_stability(shadow, explanation, progress=_progress(job))

        return work

    return prepare


def _progress(job: jobs.Job) -> Callable[[int, int, str], None]:
    """The job's progress callback: each phase named, its fraction done; the stop button's
    press ends the job at the next step."""

    def progress(done: int, total: int, message: str) -> None:
        if job.cancel.is_set():
            raise jobs.Cancelled
        if message != job.phase:
            job.begin(message)
        job.fraction = done / max(total, 1)
        job.detail = f"{done:,} of {total:,}"

    return progress
