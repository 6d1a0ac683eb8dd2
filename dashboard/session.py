"""What one browser session holds, kept in ``st.session_state`` (never shared between sessions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from mrta.reading import ReadResult, read_table
from mrta.samples import DEFAULT_SAMPLE, SampleTable


@dataclass
class LoadedTable:
    """The table the pages work on, and the user's choices about it."""

    name: str  # file name, as shown
    source_id: str  # identifies the upload or sample, so it is read once
    read: ReadResult
    target: str | None = None
    task: str = "auto"
    roles: dict[str, str] = field(default_factory=dict)  # the user's role overrides

    @property
    def frame(self):
        return self.read.frame


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
