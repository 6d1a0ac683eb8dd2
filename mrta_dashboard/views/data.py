"""Data page: pick or upload a table, check how each column is read, choose the target."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mrta.data.preprocessing import PreprocessingOptions
from mrta.data.read import read_table
from mrta.data.samples import SAMPLE_TABLES
from mrta.data.schema import Role, TableSchema, infer_schema
from mrta.errors import TableError, counted
from mrta_dashboard import keys, session
from mrta_dashboard.parts import grouping
from mrta_dashboard.text import md, md_list

EDITABLE_ROLES = [Role.NUMERICAL.value, Role.CATEGORICAL.value, Role.IGNORED.value]
IGNORED_NOTE = "Ignored column(s)"  # how the schema's note listing the ignored columns begins
TASKS = ["auto", "binary", "multiclass", "regression"]


def page() -> None:
    st.header("Data")
    _choose_source()
    loaded = session.table()
    st.subheader(md(loaded.name))
    st.caption(
        f"{counted(len(loaded.frame), 'row')} × {counted(loaded.frame.shape[1], 'column')} · "
        f"encoding {loaded.read.encoding} · delimiter {loaded.read.delimiter!r}"
        + (" · gzip" if loaded.read.compressed else "")
    )
    for note in loaded.read.notes:
        st.info(md(note))
    st.dataframe(loaded.frame.head(200), height=240)
    schema = _target_and_schema(loaded)
    if schema is not None:
        _warnings(loaded.frame, schema, set(loaded.read.notes))


def _choose_source() -> None:
    loaded = session.table()
    uploaded = loaded.source_id.startswith("upload:")  # back from another page: keep it
    source = st.radio(
        "Table",
        ["A sample table", "Upload a CSV"],
        index=1 if uploaded else 0,
        horizontal=True,
        key=keys.SOURCE,
    )
    if source == "A sample table":
        samples = SAMPLE_TABLES
        names = [s.file for s in samples]
        current = names.index(loaded.name) if loaded.name in names else 0
        choice = st.selectbox(
            "Sample table",
            samples,
            index=current,
            format_func=lambda s: (
                f"{s.title} ({s.file})"
                + (f" · one prediction per {s.group_by}" if s.group_by else "")
            ),
            key=keys.SAMPLE,
        )
        if loaded.source_id != f"sample:{choice.file}":
            session.load_sample(choice)
        return
    upload = st.file_uploader(
        "A CSV file (comma, semicolon, tab or pipe separated; may be gzipped) or a Parquet file",
        type=["csv", "tsv", "txt", "gz", "parquet"],
        key=keys.UPLOAD,
    )
    if upload is None or loaded.source_id == f"upload:{upload.file_id}":
        return
    try:
        read = read_table(upload.getvalue())
    except TableError as error:
        st.error(f"{md(upload.name)} was not loaded: {md(error)} The table loaded before is kept.")
        return
    session.set_table(session.LoadedTable(upload.name, f"upload:{upload.file_id}", read))


def _target_and_schema(loaded: session.LoadedTable) -> TableSchema | None:
    columns = list(loaded.frame.columns)
    left, right = st.columns(2)
    target = left.selectbox(
        "Target (the column to predict)",
        columns,
        index=columns.index(loaded.target) if loaded.target in columns else None,
        placeholder="Choose a column",
        key=keys.target(loaded.source_id),
    )
    task = right.selectbox(
        "Task", TASKS, index=TASKS.index(loaded.task), key=keys.task(loaded.source_id)
    )
    if target != loaded.target:
        loaded.roles.pop(target, None)
    loaded.target, loaded.task = target, task
    if target is None:
        st.info("Choose the column to predict to see how the others are used.")
        return None
    options, preview_box = grouping.choose(loaded)
    if loaded.group_by is not None and options is None:
        problem = "choose the key column that groups the rows (or predict per row)"
        st.info(f"Not ready to train: {problem}.")
        session.not_ready(loaded, problem)
        return None
    forced = {options.group_by: Role.IGNORED.value} if options else {}
    try:
        inferred = _infer(loaded, forced)
        roles = _edit_roles(loaded, inferred, forced)
        schema = _infer(loaded, {**roles, **forced}) if roles else inferred
    except TableError as error:
        st.error(md(error))
        return None
    loaded.roles = roles
    if options is not None and not grouping.check(loaded, schema, options, preview_box):
        return None
    session.ready(loaded, schema)
    summary = f"**{schema.task.value}**" + (
        f" over {len(schema.class_labels)} classes: {md_list(schema.class_labels[:8])}"
        if schema.class_labels
        else ""
    )
    numerical, categorical = len(schema.numerical_tokens), len(schema.categorical_tokens)
    if options is None:
        st.success(
            f"Ready to train: {summary}; {counted(numerical, 'numerical token')} and "
            f"{counted(categorical, 'categorical token')}."
        )
    else:
        st.success(
            f"Ready to train: {summary}, one prediction per group of **{md(options.group_by)}**; "
            f"the rows of a group are its tokens, each with {counted(numerical, 'numerical value')}"
            f" and {counted(categorical, 'categorical value')}."
        )
    return schema


def _infer(loaded: session.LoadedTable, roles: dict[str, str]) -> TableSchema:
    task = None if loaded.task == "auto" else loaded.task
    inferred = st.session_state.setdefault(keys.INFERRED, {})
    key = (loaded.source_id, loaded.target, task, tuple(sorted(roles.items())))
    if key not in inferred:
        inferred[key] = infer_schema(loaded.frame, loaded.target, task=task, roles=roles)
    return inferred[key]


def _edit_roles(
    loaded: session.LoadedTable, inferred: TableSchema, forced: dict[str, str]
) -> dict[str, str]:
    """The schema as an editable table, showing the roles the user chose before (kept in
    `loaded`, since the editor's own state goes when the page is left); returns the roles that
    differ from the inferred ones (never those of the `forced` columns: the group key stays
    ignored)."""
    rows = [c for c in inferred.columns if c.role is not Role.TARGET]
    key = keys.roles(loaded.source_id, loaded.target, loaded.task, loaded.group_by)
    chosen = {name: role for name, role in loaded.roles.items() if name not in forced}
    chosen.update(_edits(key, rows, forced))  # made in the editor just now: shown with their why
    why = _reasons(loaded, inferred, chosen, forced)
    base = pd.DataFrame(
        {
            "column": [c.name for c in rows],
            "role": [chosen.get(c.name, c.role.value) for c in rows],
            "why": [why[c.name] for c in rows],
        }
    )
    st.markdown("**How each column is used** (change a role in the table)")
    edited = st.data_editor(
        base,
        column_config={
            "role": st.column_config.SelectboxColumn("role", options=EDITABLE_ROLES, required=True),
            "why": st.column_config.TextColumn("why", width="large"),
        },
        disabled=["column", "why"],
        hide_index=True,
        key=key,
    )
    inferred_roles = pd.Series([c.role.value for c in rows], index=edited.index)
    changed = (edited["role"] != inferred_roles) & ~edited["column"].isin(list(forced))
    return dict(zip(edited.loc[changed, "column"], edited.loc[changed, "role"], strict=True))


def _edits(key: str, rows: list, forced: dict[str, str]) -> dict[str, str]:
    """The roles changed in the roles editor since the page last ran, by column name, read from
    its state before it is drawn (``edited_rows``: row position -> changed cells), so that the
    why column and the warnings below show them in this same run."""
    state = st.session_state.get(key)
    edited = state.get("edited_rows", {}) if isinstance(state, dict) else {}
    changes = {}
    for position, cells in edited.items():
        if not 0 <= int(position) < len(rows):
            continue
        name = rows[int(position)].name
        if cells.get("role") in EDITABLE_ROLES and name not in forced:
            changes[name] = cells["role"]
    return changes


def _reasons(
    loaded: session.LoadedTable,
    inferred: TableSchema,
    chosen: dict[str, str],
    forced: dict[str, str],
) -> dict[str, str]:
    """Why each column has its role, with the roles `chosen` ("ignored, as you chose ..."); as
    inferred where those roles do not make a schema (the error is shown below the table)."""
    roles = {c.name: c.role.value for c in inferred.columns if c.role is not Role.TARGET}
    changed = {n: r for n, r in chosen.items() if n in roles and r != roles[n]}
    try:
        schema = _infer(loaded, {**changed, **forced}) if changed else inferred
    except TableError:
        schema = inferred
    group_key = "the group key: it names the example, never a feature"
    return {c.name: group_key if c.name in forced else c.reason for c in schema.columns}


def _warnings(frame: pd.DataFrame, schema: TableSchema, shown: set[str]) -> None:
    """The warnings and notes on how the table is used, each once (`shown`: notes already on
    the page, such as the reading notes)."""
    ignored = [c.name for c in schema.columns if c.role is Role.IGNORED]
    if ignored:
        st.warning(f"Not used by the model: {md_list(ignored)} (see the reasons above).")
    missing = frame[list(schema.feature_columns)].isna().mean()
    missing = missing[missing > 0].sort_values(ascending=False)
    if len(missing):
        listed = ", ".join(f"{md(name)} ({share:.0%})" for name, share in missing.head(6).items())
        verb = "has" if len(missing) == 1 else "have"
        st.info(
            f"{counted(len(missing), 'feature column')} {verb} missing values: {listed}. Numbers "
            "get a missing-indicator in their own token; categories a reserved level."
        )
    limit = PreprocessingOptions().max_vocabulary  # levels with an embedding, at most
    wide = [name for name in schema.categorical_columns if frame[name].nunique(dropna=True) > limit]
    if wide:
        st.warning(
            f"High-cardinality columns: {md_list(wide)}. Only their most frequent levels get "
            "an embedding; the rest share the reserved level."
        )
    for note in dict.fromkeys(schema.notes):
        # the schema's own list of ignored columns is the warning above, with the reasons
        if note not in shown and not note.startswith(IGNORED_NOTE):
            st.info(md(note))


if __name__ == "__main__":
    page()
