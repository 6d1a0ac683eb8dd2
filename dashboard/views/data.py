"""Data page: pick or upload a table, check how each column is read, choose the target."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import session
from mrta.errors import TableError
from mrta.reading import read_table
from mrta.samples import row_tables
from mrta.schema import Kind, Role, TableSchema, infer_schema

EDITABLE_ROLES = [Role.NUMERICAL.value, Role.CATEGORICAL.value, Role.IGNORED.value]
TASKS = ["auto", "binary", "multiclass", "regression"]


def page() -> None:
    st.header("Data")
    _choose_source()
    loaded = session.table()
    st.subheader(f"{loaded.name}")
    st.caption(
        f"{len(loaded.frame):,} rows × {loaded.frame.shape[1]} columns · encoding "
        f"{loaded.read.encoding} · delimiter {loaded.read.delimiter!r}"
        + (" · gzip" if loaded.read.compressed else "")
    )
    for note in loaded.read.notes:
        st.info(note)
    st.dataframe(loaded.frame.head(200), height=240)
    schema = _target_and_schema(loaded)
    if schema is not None:
        _warnings(loaded.frame, schema)


def _choose_source() -> None:
    source = st.radio("Table", ["A sample table", "Upload a CSV"], horizontal=True, key="source")
    loaded = session.table()
    if source == "A sample table":
        samples = row_tables()
        names = [s.file for s in samples]
        current = names.index(loaded.name) if loaded.name in names else 0
        choice = st.selectbox(
            "Sample table",
            samples,
            index=current,
            format_func=lambda s: f"{s.title} ({s.file})",
            key="sample",
        )
        if loaded.source_id != f"sample:{choice.file}":
            session.load_sample(choice)
        return
    upload = st.file_uploader(
        "A CSV file (comma, semicolon, tab or pipe separated; may be gzipped)",
        type=["csv", "tsv", "txt", "gz"],
        key="upload",
    )
    if upload is None or loaded.source_id == f"upload:{upload.file_id}":
        return
    try:
        read = read_table(upload.getvalue())
    except TableError as error:
        st.error(f"{upload.name} was not loaded: {error} The table loaded before is kept.")
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
        key=f"target:{loaded.source_id}",
    )
    task = right.selectbox(
        "Task", TASKS, index=TASKS.index(loaded.task), key=f"task:{loaded.source_id}"
    )
    if target != loaded.target:
        loaded.roles.pop(target, None)
    loaded.target, loaded.task = target, task
    if target is None:
        st.info("Choose the column to predict to see how the others are used.")
        return None
    try:
        inferred = _infer(loaded, {})
        roles = _edit_roles(loaded, inferred)
        schema = _infer(loaded, roles) if roles else inferred
    except TableError as error:
        st.error(str(error))
        return None
    loaded.roles = roles
    st.session_state["schema"] = (loaded.source_id, schema)
    summary = f"**{schema.task.value}**" + (
        f" over {len(schema.class_labels)} classes: {', '.join(schema.class_labels[:8])}"
        if schema.class_labels
        else ""
    )
    st.success(
        f"Ready to train: {summary}; {len(schema.numerical_tokens)} numerical and "
        f"{len(schema.categorical_tokens)} categorical tokens."
    )
    return schema


def _infer(loaded: session.LoadedTable, roles: dict[str, str]) -> TableSchema:
    task = None if loaded.task == "auto" else loaded.task
    key = ("inferred", loaded.source_id, loaded.target, task, tuple(sorted(roles.items())))
    if key not in st.session_state:
        st.session_state[key] = infer_schema(loaded.frame, loaded.target, task=task, roles=roles)
    return st.session_state[key]


def _edit_roles(loaded: session.LoadedTable, inferred: TableSchema) -> dict[str, str]:
    """The schema as an editable table; returns the roles the user changed."""
    rows = [c for c in inferred.columns if c.role is not Role.TARGET]
    base = pd.DataFrame(
        {
            "column": [c.name for c in rows],
            "role": [c.role.value for c in rows],
            "why": [c.reason for c in rows],
        }
    )
    st.markdown("**How each column is used** (change a role in the table)")
    edited = st.data_editor(
        base,
        column_config={
            "role": st.column_config.SelectboxColumn("role", options=EDITABLE_ROLES, required=True),
            "why": st.column_config.TextColumn("why (as inferred)", width="large"),
        },
        disabled=["column", "why"],
        hide_index=True,
        key=f"roles:{loaded.source_id}:{loaded.target}:{loaded.task}",
    )
    changed = edited["role"] != base["role"]
    return dict(zip(edited.loc[changed, "column"], edited.loc[changed, "role"], strict=True))


def _warnings(frame: pd.DataFrame, schema: TableSchema) -> None:
    ignored = [c.name for c in schema.columns if c.role is Role.IGNORED]
    if ignored:
        st.warning(f"Not used by the model: {', '.join(ignored)} (see the reasons above).")
    dates = [c.name for c in schema.columns if c.kind is Kind.DATE and c.role is Role.NUMERICAL]
    if dates:
        st.info(f"Dates turned into year, month and weekday tokens: {', '.join(dates)}.")
    missing = frame[list(schema.feature_columns)].isna().mean()
    missing = missing[missing > 0].sort_values(ascending=False)
    if len(missing):
        listed = ", ".join(f"{name} ({share:.0%})" for name, share in missing.head(6).items())
        st.info(
            f"{len(missing)} feature columns have missing values: {listed}. Numbers get a "
            "missing-indicator in their own token; categories a reserved level."
        )
    wide = [name for name in schema.categorical_columns if frame[name].nunique(dropna=True) > 1000]
    if wide:
        st.warning(
            f"High-cardinality columns: {', '.join(wide)}. Only their most frequent levels get "
            "an embedding; the rest share the reserved level."
        )
    for note in schema.notes:
        st.info(note)


if __name__ == "__main__":
    page()
