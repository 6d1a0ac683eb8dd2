"""What one browser session holds, kept in ``st.session_state`` (never shared between sessions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from mrta.data.read import ReadResult, read_table
from mrta.data.samples import DEFAULT_SAMPLE, SampleTable
from mrta.data.sets import MAX_SET_SIZE, SetOptions


@dataclass
class LoadedTable:
    """The table the pages work on, and the user's choices about it."""

    name: str  # file name, as shown
    source_id: str  # identifies the upload or sample, so it is read once
    read: ReadResult
    target: str | None = None
    task: str = "auto"
    roles: dict[str, str] = field(default_factory=dict)  # the user's role overrides
    group_by: str | None = None  # per group of this key ("": key not chosen yet); None: per row
    order_by: str | None = None  # the column that orders a group's rows (group mode only)
    max_set_size: int = MAX_SET_SIZE  # rows kept per group (group mode only)

    @property
    def frame(self):
        return self.read.frame

    def set_options(self) -> SetOptions | None:
        """How rows become sets in group mode; ``None`` for one prediction per row."""
        if not self.group_by:
            return None
        return SetOptions(self.group_by, self.order_by, int(self.max_set_size))


def table() -> LoadedTable | None:
    return st.session_state.get("table")


def set_table(loaded: LoadedTable) -> None:
    st.session_state["table"] = loaded


def load_sample(sample: SampleTable) -> LoadedTable:
    loaded = LoadedTable(
        name=sample.file,
        source_id=f"sample:{sample.file}",
        read=read_table(sample.path),
        target=sample.target,
        group_by=sample.group_by,
    )
    set_table(loaded)
    return loaded


def ensure_table() -> LoadedTable:
    """The session's table; a new session opens on the default sample."""
    return table() or load_sample(DEFAULT_SAMPLE)


def get(key: str, default: Any = None) -> Any:
    return st.session_state.get(key, default)


def schema():
    """The schema the Data page settled on for the current table, if any."""
    stored, loaded = st.session_state.get("schema"), table()
    if stored is None or loaded is None or stored[0] != loaded.source_id:
        return None
    return stored[1]


def adopt_finished_job() -> None:
    """Make a finished training job's run the session's run (once)."""
    job = st.session_state.get("job")
    if job is None or job.running or job.result is None:
        return
    if st.session_state.get("run_job") is not job:
        st.session_state["run"], st.session_state["explanation"] = job.result
        st.session_state["run_job"] = job


# -- runs opened from a zip or a runs folder (the Open run page) ----------------------------------
@dataclass
class RunOrigin:
    """Where the session's run came from, when it was opened rather than trained here."""

    name: str  # the zip's file name or the run folder's name
    where: str  # "the uploaded file x.zip", "the runs folder: /srv/runs/x"
    created: str  # as shown, e.g. "2024-05-01 12:00 UTC"
    rows: str  # what it is explored on, in words


def run_origin() -> RunOrigin | None:
    """The origin of the session's run when it was opened (``None`` for one trained here)."""
    stored, run = st.session_state.get("run_origin"), st.session_state.get("run")
    if stored is None or run is None or stored[0] is not run:
        return None
    return stored[1]


def unsaved_trained_run() -> bool:
    """Whether the session holds a run trained in the page (opening another replaces it)."""
    adopt_finished_job()
    return st.session_state.get("run") is not None and run_origin() is None


def set_opened_run(run, explanation, origin: RunOrigin) -> None:
    """Make an opened run the session's run, and drop what belonged to the one it replaces:
    the finished training job that still holds it, cached exports and filters, and Explore's
    choices (its layers, cohorts and rows may not exist in the new run). The table stays."""
    job = st.session_state.get("job")
    if job is not None and not job.running:
        st.session_state.pop("job", None)
        st.session_state.pop("run_job", None)
    for key in [k for k in st.session_state if isinstance(k, str) and k.startswith("x_")]:
        del st.session_state[key]
    st.session_state.pop("e_files", None)
    st.session_state["run"], st.session_state["explanation"] = run, explanation
    st.session_state["run_origin"] = (run, origin)


def adopt_opened_run() -> bool:
    """Make a finished Open-run job's run the session's run (once); True when it just did."""
    job = st.session_state.get("open_job")
    if job is None or job.running or job.result is None or job.cancel.is_set():
        return False
    if st.session_state.get("open_job_adopted") is job:
        return False
    run, explanation, origin = job.result
    set_opened_run(run, explanation, origin)
    st.session_state["open_job_adopted"] = job
    return True


def run_caption() -> str | None:
    """One line on the session's run for the sidebar: which run, and where it came from."""
    run = st.session_state.get("run")
    if run is None:
        return None
    origin = run_origin()
    if origin is None:
        return f"Run: trained in this page (→ {run.schema.target}); not saved until exported"
    return f"Run: **{origin.name}** from {origin.where}, saved {origin.created}; {origin.rows}"


def release_uploads(file_ids) -> None:
    """Drop uploaded files' bytes from the server's memory once they have been read (Streamlit
    keeps them until the session ends otherwise); their uploaders must get new keys."""
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        for file_id in file_ids:
            ctx.uploaded_file_mgr.remove_file(session_id=ctx.session_id, file_id=file_id)
    except (AttributeError, ImportError, KeyError):  # another file manager: kept to the end
        pass
