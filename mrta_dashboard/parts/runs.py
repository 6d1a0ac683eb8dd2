"""The Open run page's choice of the run: an uploaded zip or a run from the runs folder, read
once and described; a run that cannot be read is refused with its reason."""

from __future__ import annotations

import streamlit as st

from mrta.errors import RunError, one_line
from mrta.pipelines.archive import (
    RUNS_DIR_ENV,
    OpenedRun,
    format_created,
    list_runs,
    open_run_dir,
    open_zip,
    runs_folder,
)
from mrta.task import Task
from mrta_dashboard import keys, session
from mrta_dashboard.text import md

KEPT = "Nothing was changed: the table and the run open before are kept."


def uploader_round() -> int:
    """Bumped after a run is opened, so that the uploaders let go of their files."""
    return st.session_state.setdefault(keys.OPEN_ROUND, 0)


def from_zip() -> OpenedRun | None:
    upload = st.file_uploader(
        "A zipped run directory (.zip), as the Export page's “Download the run (.zip)” makes it",
        type=["zip"],
        key=keys.open_zip(uploader_round()),
    )
    if upload is None:
        return None
    st.session_state.setdefault(keys.OPEN_UPLOADS, set()).add(upload.file_id)
    return _pending(f"zip:{upload.file_id}", lambda: open_zip(upload.getvalue(), name=upload.name))


def from_folder() -> OpenedRun | None:
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
        key=keys.OPEN_DIR,
    )
    if chosen is None or chosen not in by_path:
        return None
    entry = by_path[chosen]
    if entry.problem:
        st.error(f"{md(entry.name)} cannot be opened: {md(entry.problem)}. {KEPT}")
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
    stored = session.get(keys.OPEN_PENDING)
    if stored is None or stored[0] != key:
        try:
            with st.spinner("Reading the run…"):
                stored = (key, read())
        except RunError as error:
            stored = (key, str(error))
        except Exception as error:  # shown once and remembered: never a traceback, no retry
            stored = (key, f"The run could not be read ({one_line(error)}).")
        st.session_state[keys.OPEN_PENDING] = stored
    if isinstance(stored[1], str):
        st.error(f"{md(stored[1])} {KEPT}")
        return None
    return stored[1]


def describe(opened: OpenedRun) -> None:
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
    st.subheader(md(opened.name))
    st.caption(
        f"Saved {format_created(opened.created)} (run format {opened.format_version}) · "
        f"{task}, predicts **{md(schema.target)}** from {len(schema.numerical_tokens)} numerical "
        f"and {len(schema.categorical_tokens)} categorical columns · "
        f"{run.model_config.num_layers} layer(s), {run.model_config.num_heads} heads" + scores
    )
    if run.sets is not None:
        st.caption(
            f"One prediction per group of **{md(run.sets.group_by)}**: attention is between rows."
        )
    if run.control is not None:
        st.caption(run.control_status())
    else:  # a run saved before controls existed, or trained without one: said where it matters
        st.info(run.control_status(), icon=":material/info:")
    for note in opened.notes:
        st.info(md(note))
