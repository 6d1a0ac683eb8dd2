"""What one browser session holds, kept in ``st.session_state`` (never shared between sessions)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from mrta.data.fingerprint import TableFingerprint, fingerprint
from mrta.data.read import ReadResult, read_table
from mrta.data.samples import DEFAULT_SAMPLE, SampleTable
from mrta.data.sets import MAX_SET_SIZE, SetOptions
from mrta_dashboard import keys
from mrta_dashboard.text import md


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
    identity: TableFingerprint | None = field(default=None, repr=False)  # see fingerprint()

    @property
    def frame(self):
        return self.read.frame

    def fingerprint(self) -> TableFingerprint:
        """The table's content fingerprint, computed once: what a run trained on it holds as
        its ``table`` (another upload of the same content has the same one)."""
        if self.identity is None:
            self.identity = fingerprint(self.frame)
        return self.identity

    def set_options(self) -> SetOptions | None:
        """How rows become sets in group mode; ``None`` for one prediction per row."""
        if not self.group_by:
            return None
        return SetOptions(self.group_by, self.order_by, int(self.max_set_size))


def table() -> LoadedTable | None:
    return st.session_state.get(keys.TABLE)


def set_table(loaded: LoadedTable) -> None:
    st.session_state[keys.TABLE] = loaded


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
    stored, loaded = st.session_state.get(keys.SCHEMA), table()
    if stored is None or loaded is None or stored[0] != loaded.source_id:
        return None
    return stored[1]


def ready(loaded: LoadedTable, schema) -> None:
    """The Data page's choices about `loaded` give `schema`: the Train page trains on it."""
    st.session_state[keys.SCHEMA] = (loaded.source_id, schema)
    st.session_state.pop(keys.DATA_PROBLEM, None)


def not_ready(loaded: LoadedTable, problem: str) -> None:
    """The Data page's choices about `loaded` cannot be trained on: the Train page says why."""
    st.session_state[keys.SCHEMA] = (loaded.source_id, None)
    st.session_state[keys.DATA_PROBLEM] = (loaded.source_id, problem)


# -- the session's run ---------------------------------------------------------------------------
def require_run(then: str):
    """The session's run and its explanation; ``None`` when there is none yet, after saying
    how to get one (`then`: what the page does with it, e.g. "its attention is recorded right
    after"). Every page that needs a run starts with it."""
    run, explanation = get(keys.RUN), get(keys.EXPLANATION)
    if run is None or explanation is None:
        st.info(
            "Train a model on the Train page, or open a saved one on the Open run page, first; "
            f"{then}."
        )
        return None
    return run, explanation


def _replace_run(run, explanation) -> None:
    """Make `run` the session's run, and drop what belonged to the one it replaces: its cached
    views and exports and the Explore page's choices (:data:`keys.RUN_VIEWS`). The table stays."""
    for key in keys.RUN_VIEWS:
        st.session_state.pop(key, None)
    st.session_state[keys.RUN], st.session_state[keys.EXPLANATION] = run, explanation


def adopt_finished_job() -> None:
    """Make a finished training job's run the session's run (once)."""
    job = st.session_state.get(keys.TRAIN_JOB)
    if job is None or job.running or job.result is None:
        return
    if st.session_state.get(keys.TRAIN_JOB_ADOPTED) is not job:
        _replace_run(*job.result)
        st.session_state[keys.TRAIN_JOB_ADOPTED] = job
        run = job.result[0]
        remember_run(run, f"trained here on {job.title}, seed {run.train_config.seed}")


def of_table(run, loaded: LoadedTable) -> bool:
    """Whether `run` was trained on the table `loaded` holds (same content, by fingerprint): the
    Train page shows a run's results only under its own table."""
    table = getattr(run, "table", None)
    if table is None or table.sha256 is None:
        return False  # a run saved without its table's digest: no telling
    return table.sha256 == loaded.fingerprint().sha256


def run_name(run) -> str:
    """The session's run in words (Markdown): where it was opened from, or the table and target
    it was trained on in this page."""
    origin = run_origin()
    if origin is not None:
        return f"**{md(origin.name)}**, opened from {md(origin.where)}"
    job = st.session_state.get(keys.TRAIN_JOB_ADOPTED)
    if job is not None and job.result is not None and job.result[0] is run:
        return f"trained in this page on **{md(job.title)}**"
    return f"trained in this page (→ **{md(run.schema.target)}**)"


#: How many runs the session remembers for the Compare page (each holds its model and rows).
REMEMBERED_RUNS = 5


def remember_run(run, words: str) -> None:
    """Remember `run` (once) for the Compare page, named "run N: `words`" (plain text); the
    oldest is forgotten past :data:`REMEMBERED_RUNS`."""
    seen = st.session_state.setdefault(keys.SEEN_RUNS, [])
    if any(known.uid == run.uid for known, _ in seen):
        return
    number = st.session_state[keys.SEEN_COUNT] = st.session_state.get(keys.SEEN_COUNT, 0) + 1
    seen.append((run, f"run {number}: {words}"))
    del seen[:-REMEMBERED_RUNS]


def seen_runs() -> list[tuple[object, str]]:
    """The runs this session has had (trained or opened), each with its name, oldest first."""
    return list(st.session_state.get(keys.SEEN_RUNS, []))


def run_cache(state_key: str, run, name: Any, compute: Callable[[], Any], keep: int = 16) -> Any:
    """``compute()``, once per run and `name` for the session (the last `keep` of them), in
    the cache ``st.session_state[state_key]``. Keyed by ``run.uid``, never by ``id(run)``:
    Python gives a freed run's id to the next object, so a new run could be shown an old
    run's views. Other runs' entries are dropped."""
    cache: dict = st.session_state.setdefault(state_key, {})
    key = (run.uid, name)
    if key not in cache:
        for stale in [k for k in cache if k[0] != run.uid]:
            del cache[stale]
        while len(cache) >= keep:
            cache.pop(next(iter(cache)))
        cache[key] = compute()
    return cache[key]


def run_cached(state_key: str, run, name: Any) -> Any:
    """What :func:`run_cache` holds for `run` and `name`, or ``None``."""
    return st.session_state.get(state_key, {}).get((run.uid, name))


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
    stored, run = st.session_state.get(keys.RUN_ORIGIN), st.session_state.get(keys.RUN)
    if stored is None or run is None or stored[0] != run.uid:
        return None
    return stored[1]


def unsaved_trained_run() -> bool:
    """Whether the session holds a run trained in the page (opening another replaces it)."""
    adopt_finished_job()
    return st.session_state.get(keys.RUN) is not None and run_origin() is None


def set_opened_run(run, explanation, origin: RunOrigin) -> None:
    """Make an opened run the session's run (see :func:`_replace_run`), and drop the finished
    training job that still holds the run it replaces."""
    job = st.session_state.get(keys.TRAIN_JOB)
    if job is not None and not job.running:
        st.session_state.pop(keys.TRAIN_JOB, None)
        st.session_state.pop(keys.TRAIN_JOB_ADOPTED, None)
    _replace_run(run, explanation)
    st.session_state[keys.RUN_ORIGIN] = (run.uid, origin)
    remember_run(run, f"{origin.name}, opened from {origin.where}")


def adopt_opened_run() -> bool:
    """Make a finished Open-run job's run the session's run (once); True when it just did."""
    job = st.session_state.get(keys.OPEN_JOB)
    if job is None or job.running or job.result is None or job.cancel.is_set():
        return False
    if st.session_state.get(keys.OPEN_JOB_ADOPTED) is job:
        return False
    run, explanation, origin = job.result
    set_opened_run(run, explanation, origin)
    st.session_state[keys.OPEN_JOB_ADOPTED] = job
    return True


def run_caption() -> str | None:
    """One line on the session's run for the sidebar: which run, and where it came from."""
    run = st.session_state.get(keys.RUN)
    if run is None:
        return None
    origin = run_origin()
    if origin is None:
        return f"Run: {run_name(run)}; not saved until exported"
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
