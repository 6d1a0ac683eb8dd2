"""Open run page: a saved run (an uploaded zip, or one from the runs folder) and the rows to
explore it on; its attention is recorded in the background (or read from the analysis saved
with it), and it becomes the session's run for the Explore and Export pages."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from dashboard import jobs, session
from mrta.pipelines.explain_sets import explain_sets
from mrta.data.read import read_table
from mrta.errors import RunError, TableError
from mrta.pipelines.archive import (
    RUNS_DIR_ENV,
    OpenedRun,
    check_rows,
    explore_on,
    format_created,
    frame_source,
    list_runs,
    open_run_dir,
    open_zip,
    runs_folder,
    source_key,
    trained_on,
)
from mrta.pipelines.explain import DEFAULT_MAX_ROWS, explain
from mrta.task import Task

SOURCES = ["Upload a zipped run", "From the runs folder"]
KEPT = "Nothing was changed: the table and the run open before are kept."


@dataclass
class Rows:
    """The rows chosen to explore the run on."""

    ident: str  # which rows: "saved", "table:<source id>", "upload:<file id>"
    frame: pd.DataFrame
    words: str  # "the rows saved with it", "the uploaded new.csv", ...
    sources: tuple[str, ...]  # source keys a cached analysis may have been computed on


class _Cancelled(Exception):
    pass


def page() -> None:
    st.header("Open run")
    st.caption(
        "Explore a run trained elsewhere (`mrta train`, or another session's Export page) "
        "exactly like one trained here: choose the run, then the rows to explore it on."
    )
    job = session.get("open_job")
    if job is not None and job.running:
        _progress()
        return
    session.adopt_opened_run()
    _current()
    if job is not None and job.error:
        st.error(f"The run could not be explored ({job.error}). {KEPT}")
    elif job is not None and job.cancel.is_set():
        st.info("Opening the run was cancelled: the run open before is kept.")
        st.session_state.pop("open_job")
    kept = session.get("o_source_kept", SOURCES[0])  # widget state is dropped while a job runs
    source = st.radio(
        "The run", SOURCES, index=SOURCES.index(kept), horizontal=True, key="o_source"
    )
    st.session_state["o_source_kept"] = source
    opened = _from_zip() if source == SOURCES[0] else _from_folder()
    if opened is None:
        return
    _describe(opened)
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


def _uploader_round() -> int:
    """Bumped after a run is opened, so that the uploaders let go of their files."""
    return st.session_state.setdefault("o_round", 0)


# -- the run -------------------------------------------------------------------------------------
def _from_zip() -> OpenedRun | None:
    upload = st.file_uploader(
        "A zipped run directory (.zip), as the Export page's “Download the run (.zip)” makes it",
        type=["zip"],
        key=f"o_zip:{_uploader_round()}",
    )
    if upload is None:
        return None
    st.session_state.setdefault("o_uploads", set()).add(upload.file_id)
    return _pending(f"zip:{upload.file_id}", lambda: open_zip(upload.getvalue(), name=upload.name))


def _from_folder() -> OpenedRun | None:
    folder, how = runs_folder()
    configure = (
        f"start the dashboard with `mrta dashboard --runs-dir DIR` (or set {RUNS_DIR_ENV}=DIR), "
        "or save runs under `runs/` in the folder it starts in (`mrta train ... --out runs/NAME`)."
    )
    if folder is None:
        st.info(f"No runs folder is configured: {configure}")
        return None
    try:
        entries = _listing(str(folder))
    except RunError as error:
        st.info(f"{error} It is {how}; {configure}")
        return None
    if not entries:
        st.info(
            f"The runs folder {folder} holds no saved run (a run is a folder with a "
            f"manifest.json): save one there with `mrta train ... --out {folder}/NAME`."
        )
        return None
    st.caption(f"Runs folder: `{folder}` ({how}); newest first.")
    by_path = {str(entry.path): entry for entry in entries}
    chosen = st.selectbox(
        "Run",
        list(by_path),
        index=None,
        format_func=lambda path: by_path[path].label,
        placeholder="Choose a run",
        key="o_dir",
    )
    if chosen is None or chosen not in by_path:
        return None
    entry = by_path[chosen]
    if entry.problem:
        st.error(f"{entry.name} cannot be opened: {entry.problem}. {KEPT}")
        return None
    try:
        stamp = (entry.path / "manifest.json").stat().st_mtime_ns
    except OSError:
        stamp = 0
    where = f"the runs folder ({folder})"
    return _pending(
        f"dir:{entry.path}:{stamp}", lambda: open_run_dir(entry.path, name=entry.name, where=where)
    )


@st.cache_data(ttl=10, show_spinner=False)
def _listing(folder: str):
    return list_runs(folder)


def _pending(key: str, read) -> OpenedRun | None:
    """The run read from ``key`` (read once, kept until another is chosen), or its refusal."""
    stored = session.get("o_pending")
    if stored is None or stored[0] != key:
        try:
            with st.spinner("Reading the run…"):
                stored = (key, read())
        except RunError as error:
            stored = (key, str(error))
        st.session_state["o_pending"] = stored
    if isinstance(stored[1], str):
        st.error(f"{stored[1]} {KEPT}")
        return None
    return stored[1]


def _describe(opened: OpenedRun) -> None:
    run = opened.run
    schema = run.schema
    task = schema.task.value
    key, label = ("r2", "R²") if task == Task.REGRESSION else ("roc_auc", "ROC AUC")
    model, hgb = run.metrics.get("model", {}).get(key), run.metrics.get("hgb", {}).get(key)
    scores = (
        f" · test {label} {model:.3f} (gradient boosting {hgb:.3f})"
        if isinstance(model, float) and isinstance(hgb, float)
        else ""
    )
    st.subheader(opened.name)
    st.caption(
        f"Saved {format_created(opened.created)} (run format {opened.format_version}) · "
        f"{task}, predicts **{schema.target}** from {len(schema.numerical_tokens)} numerical "
        f"and {len(schema.categorical_tokens)} categorical columns · "
        f"{run.model_config.num_layers} layer(s), {run.model_config.num_heads} heads" + scores
    )
    sets = getattr(run, "sets", None)
    if sets is not None:
        st.caption(f"One prediction per group of **{sets.group_by}**: attention is between rows.")
    for note in opened.notes:
        st.info(note)


# -- the rows ------------------------------------------------------------------------------------
def _rows(opened: OpenedRun) -> Rows | None:
    loaded = session.table()
    choices = {}
    if opened.run.frame is not None:
        choices["saved"] = f"The rows saved with the run ({len(opened.run.frame):,})"
    choices["table"] = f"The table loaded in this session ({loaded.name})"
    choices["upload"] = "Upload a CSV"
    choice = st.radio(
        "Explore it on", list(choices), format_func=choices.get, horizontal=True, key="o_rows"
    )
    cached = opened.cached is not None
    if choice == "saved":
        keys = (opened.saved_rows_source(DEFAULT_MAX_ROWS),)
        rows = Rows("saved", opened.run.frame, "the rows saved with it", keys)
    elif choice == "table":
        frame = loaded.frame
        keys = (frame_source(frame, DEFAULT_MAX_ROWS),) if cached else ()
        rows = Rows(f"table:{loaded.source_id}", frame, f"this session's table {loaded.name}", keys)
    else:
        rows = _uploaded_rows(cached)
        if rows is None:
            return None
    checked = _check(opened, rows)
    if isinstance(checked, str):
        st.error(f"{checked} {KEPT}")
        return None
    count, same_table = checked
    recorded = min(count, DEFAULT_MAX_ROWS)
    sets = getattr(opened.run, "sets", None)
    if sets is not None:
        st.caption(f"{count:,} rows with a target, one set per group of {sets.group_by}.")
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
        key=f"o_csv:{_uploader_round()}",
    )
    if upload is None:
        return None
    st.session_state.setdefault("o_uploads", set()).add(upload.file_id)
    stored = session.get("o_csv")
    if stored is None or stored[0] != upload.file_id:
        data = upload.getvalue()
        try:
            read = read_table(data)
        except TableError as error:
            st.error(f"{upload.name} was not read: {error} {KEPT}")
            return None
        keys = (source_key(data, DEFAULT_MAX_ROWS),)
        stored = (upload.file_id, read.frame, keys)
        st.session_state["o_csv"] = stored
    _, frame, keys = stored
    if cached:
        keys = (*keys, frame_source(frame, DEFAULT_MAX_ROWS))
    return Rows(f"upload:{upload.file_id}", frame, f"the uploaded {upload.name}", keys)


def _check(opened: OpenedRun, rows: Rows) -> tuple[int, bool] | str:
    """Rows with a target and whether they are the training table, or why they do not fit."""
    key = (session.get("o_pending")[0], rows.ident)
    stored = session.get("o_checked")
    if stored is None or stored[0] != key:
        try:
            result = check_rows(opened.run, rows.frame), trained_on(opened.run, rows.frame)
        except (TableError, ValueError) as error:
            result = f"These rows do not fit the run: {error}"
        stored = (key, result)
        st.session_state["o_checked"] = stored
    return stored[1]


# -- opening -------------------------------------------------------------------------------------
def _open(opened: OpenedRun, rows: Rows) -> None:
    cached = opened.cached_for(*rows.sources)
    if cached is not None:
        fresh = st.checkbox(
            "Record the attention again (the analysis saved with the run fits these rows)",
            key="o_recompute",
        )
        cached = None if fresh else cached
    allowed = True
    training = session.get("job")
    if training is not None and training.running:
        st.warning("A model is training on the Train page: wait for it, or cancel it, first.")
        allowed = False
    elif session.unsaved_trained_run():
        st.warning(
            "The model trained in this page is not saved: opening this run replaces it. "
            "Download it from the Export page first to keep it."
        )
        allowed = st.checkbox("Replace the model trained in this page", key="o_replace")
    elif session.run_origin() is not None:
        st.caption(f"Opening replaces {session.run_origin().name} (it stays where it was saved).")
    if not st.button("Open this run", type="primary", key="o_open", disabled=not allowed):
        return
    run = explore_on(opened.run, rows.frame)
    origin = session.RunOrigin(
        name=opened.name,
        where=opened.where,
        created=format_created(opened.created),
        rows=rows.words,
    )
    st.session_state["o_round"] = _uploader_round() + 1  # new uploaders, and their files freed
    session.release_uploads(st.session_state.pop("o_uploads", ()))
    for key in ("o_pending", "o_csv", "o_checked", "o_replace", "o_recompute", "open_job"):
        st.session_state.pop(key, None)
    if cached is not None:
        session.set_opened_run(run, cached, origin)
        st.rerun()

    def work(job: jobs.Job):
        unit = "rows" if getattr(run, "sets", None) is None else "sets"

        def progress(done: int, total: int, message: str) -> None:
            if job.cancel.is_set():
                raise _Cancelled
            job.fraction = done / max(total, 1)
            job.phase = f"{message}: {done:,} of {total:,} {unit}"

        try:
            if getattr(run, "sets", None) is None:
                return run, explain(run, progress=progress), origin
            return run, explain_sets(run, run.frame, progress=progress), origin
        except _Cancelled:
            return None

    st.session_state["open_job"] = jobs.start(f"open {opened.name}", work)
    st.rerun()


@st.fragment(run_every=0.5)
def _progress() -> None:
    job = session.get("open_job")
    if not job.running:
        st.rerun()  # the whole page: the run is open, or the error
    st.progress(min(job.fraction, 1.0), text=f"{job.title}: {job.phase} · {job.elapsed:.0f} s")
    if st.button("Cancel", key="o_cancel"):
        job.cancel.set()
        st.toast("Stopping; the run open before is kept.")


if __name__ == "__main__":
    page()
