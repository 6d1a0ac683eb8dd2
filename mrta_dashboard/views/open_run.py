"""Open run page: a saved run (an uploaded zip, or one from the runs folder) and the rows to
explore it on; its attention is recorded in the background (or read from the analysis saved
with it), and it becomes the session's run for the Explore and Export pages."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from mrta.data.read import read_table
from mrta.errors import TableError
from mrta.pipelines.archive import (
    OpenedRun,
    check_rows,
    explore_on,
    format_created,
    frame_source,
    source_key,
    trained_on,
)
from mrta.pipelines.explain import DEFAULT_MAX_ROWS
from mrta.pipelines.explore import explain_run
from mrta_dashboard import jobs, keys, session
from mrta_dashboard.parts import runs
from mrta_dashboard.parts.runs import KEPT
from mrta_dashboard.text import md

SOURCES = ["Upload a zipped run", "From the runs folder"]


@dataclass
class Rows:
    """The rows chosen to explore the run on."""

    ident: str  # which rows: "saved", "table:<source id>", "upload:<file id>"
    frame: pd.DataFrame
    words: str  # "the rows saved with it", "the uploaded new.csv", ...
    sources: tuple[str, ...]  # source keys a cached analysis may have been computed on


def page() -> None:
    st.header("Open run")
    st.caption(
        "Explore a run trained elsewhere (`mrta train`, or another session's Export page) "
        "exactly like one trained here: choose the run, then the rows to explore it on."
    )
    job = session.get(keys.OPEN_JOB)
    if job is not None and job.running:
        stopping = "Stopping; the run open before is kept."
        jobs.watch(keys.OPEN_JOB, ("Cancel", keys.OPEN_CANCEL), stopping)
        return
    session.adopt_opened_run()
    _current()
    if job is not None and job.error:
        st.error(f"The run could not be explored ({md(job.error)}). {KEPT}")
    elif job is not None and job.cancel.is_set():
        st.info("Opening the run was cancelled: the run open before is kept.")
        st.session_state.pop(keys.OPEN_JOB)
    kept = session.get(keys.OPEN_SOURCE_KEPT, SOURCES[0])  # widgets' state goes while a job runs
    source = st.radio(
        "The run", SOURCES, index=SOURCES.index(kept), horizontal=True, key=keys.OPEN_SOURCE
    )
    st.session_state[keys.OPEN_SOURCE_KEPT] = source
    opened = runs.from_zip() if source == SOURCES[0] else runs.from_folder()
    if opened is None:
        return
    runs.describe(opened)
    rows = _rows(opened)
    if rows is None:
        return
    _open(opened, rows)


def _current() -> None:
    origin = session.run_origin()
    if origin is not None:
        st.success(
            f"Open now: **{origin.name}** from {origin.where} (saved {origin.created}), "
            f"explored on {origin.rows}."
        )
        st.page_link("views/explore.py", label="Explore its attention", icon=":material/grid_view:")


# -- the rows ------------------------------------------------------------------------------------
def _rows(opened: OpenedRun) -> Rows | None:
    loaded = session.table()
    choices = {}
    if opened.run.frame is not None:
        choices["saved"] = f"The rows saved with the run ({len(opened.run.frame):,})"
    choices["table"] = f"The table loaded in this session ({loaded.name})"
    choices["upload"] = "Upload a CSV"
    choice = st.radio(
        "Explore it on", list(choices), format_func=choices.get, horizontal=True, key=keys.OPEN_ROWS
    )
    cached = opened.cached is not None
    if choice == "saved":
        sources = (opened.saved_rows_source(DEFAULT_MAX_ROWS),)
        rows = Rows("saved", opened.run.frame, "the rows saved with it", sources)
    elif choice == "table":
        frame = loaded.frame
        sources = (frame_source(frame, DEFAULT_MAX_ROWS),) if cached else ()
        words = f"this session's table {loaded.name}"
        rows = Rows(f"table:{loaded.source_id}", frame, words, sources)
    else:
        rows = _uploaded_rows(cached)
        if rows is None:
            return None
    checked = _check(opened, rows)
    if isinstance(checked, str):
        st.error(f"{md(checked)} {KEPT}")
        return None
    count, same_table = checked
    recorded = min(count, DEFAULT_MAX_ROWS)
    if opened.run.sets is not None:
        st.caption(
            f"{count:,} rows with a target, one set per group of {opened.run.sets.group_by}."
        )
    else:
        st.caption(
            f"{count:,} rows with a target; the maps record "
            + (f"all {recorded:,}." if recorded == count else f"a seeded sample of {recorded:,}.")
        )
    if same_table:
        st.caption(
            "These are the rows the run was trained on (its split fits them): the test-split "
            "figures and the checks (head ablation, permutation importance) work as for a run "
            "trained here."
        )
    else:
        st.warning(
            "These are not the rows the run was trained on (its split does not fit them): the "
            "maps can be explored; the checks need the training table or rows saved with the run."
        )
    rows.words += " (the table it was trained on)" if same_table else " (other rows)"
    return rows


def _uploaded_rows(cached: bool) -> Rows | None:
    upload = st.file_uploader(
        "The rows to explore it on: a CSV with the run's columns (may be gzipped)",
        type=["csv", "tsv", "txt", "gz"],
        key=keys.open_csv(runs.uploader_round()),
    )
    if upload is None:
        return None
    st.session_state.setdefault(keys.OPEN_UPLOADS, set()).add(upload.file_id)
    stored = session.get(keys.OPEN_CSV)
    if stored is None or stored[0] != upload.file_id:
        data = upload.getvalue()
        try:
            read = read_table(data)
        except TableError as error:
            st.error(f"{md(upload.name)} was not read: {md(error)} {KEPT}")
            return None
        stored = (upload.file_id, read.frame, (source_key(data, DEFAULT_MAX_ROWS),))
        st.session_state[keys.OPEN_CSV] = stored
    _, frame, sources = stored
    if cached:
        sources = (*sources, frame_source(frame, DEFAULT_MAX_ROWS))
    return Rows(f"upload:{upload.file_id}", frame, f"the uploaded {upload.name}", sources)


def _check(opened: OpenedRun, rows: Rows) -> tuple[int, bool] | str:
    """Rows with a target and whether they are the training table, or why they do not fit."""
    key = (session.get(keys.OPEN_PENDING)[0], rows.ident)
    stored = session.get(keys.OPEN_CHECKED)
    if stored is None or stored[0] != key:
        try:
            result = check_rows(opened.run, rows.frame), trained_on(opened.run, rows.frame)
        except (TableError, ValueError) as error:
            result = f"These rows do not fit the run: {error}"
        stored = (key, result)
        st.session_state[keys.OPEN_CHECKED] = stored
    return stored[1]


# -- opening -------------------------------------------------------------------------------------
def _open(opened: OpenedRun, rows: Rows) -> None:
    cached = opened.cached_for(*rows.sources)
    if cached is not None:
        fresh = st.checkbox(
            "Record the attention again (the analysis saved with the run fits these rows)",
            key=keys.OPEN_RECOMPUTE,
        )
        cached = None if fresh else cached
    allowed = True
    training = session.get(keys.TRAIN_JOB)
    if training is not None and training.running:
        st.warning("A model is training on the Train page: wait for it, or cancel it, first.")
        allowed = False
    elif session.unsaved_trained_run():
        st.warning(
            "The model trained in this page is not saved: opening this run replaces it. "
            "Download it from the Export page first to keep it."
        )
        allowed = st.checkbox("Replace the model trained in this page", key=keys.OPEN_REPLACE)
    elif session.run_origin() is not None:
        st.caption(
            f"Opening replaces {md(session.run_origin().name)} (it stays where it was saved)."
        )
    if not st.button("Open this run", type="primary", key=keys.OPEN_BUTTON, disabled=not allowed):
        return
    run = explore_on(opened.run, rows.frame)
    origin = session.RunOrigin(
        name=opened.name,
        where=opened.where,
        created=format_created(opened.created),
        rows=rows.words,
    )
    st.session_state[keys.OPEN_ROUND] = runs.uploader_round() + 1  # new uploaders, files freed
    session.release_uploads(st.session_state.pop(keys.OPEN_UPLOADS, ()))
    for key in keys.OPEN_CHOICE:
        st.session_state.pop(key, None)
    if cached is not None:
        session.set_opened_run(run, cached, origin)
        st.rerun()

    def work(job: jobs.Job):
        unit = "rows" if run.sets is None else "sets"
        return run, explain_run(run, progress=job.recording(unit, cancellable=True)), origin

    st.session_state[keys.OPEN_JOB] = jobs.start(f"open {opened.name}", work)
    st.rerun()


if __name__ == "__main__":
    page()
