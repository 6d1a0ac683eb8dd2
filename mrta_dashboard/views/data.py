"""Data page: pick or upload a table, check how each column is read, choose the target."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from mrta.data.preprocessing import PreprocessingOptions
from mrta.data.read import read_table
from mrta.data.samples import SAMPLE_TABLES
from mrta.data.schema import Kind, Role, TableSchema, infer_schema
from mrta.errors import TableError
from mrta_dashboard import keys, session
from mrta_dashboard.parts import grouping
from mrta_dashboard.text import md, md_list

EDITABLE_ROLES = [Role.NUMERICAL.value, Role.CATEGORICAL.value, Role.IGNORED.value]
TASKS = ["auto", "binary", "multiclass", "regression"]


def page() -> None:
    st.header("Data")
    _choose_source()
    loaded = session.table()
    st.subheader(md(loaded.name))
    st.caption(
        f"{len(loaded.frame):,} rows × {loaded.frame.shape[1]} columns · encoding "
        f"{loaded.read.encoding} · delimiter {loaded.read.delimiter!r}"
        + (" · gzip" if loaded.read.compressed else "")
    )
    for note in loaded.read.notes:
        st.info(md(note))
    st.dataframe(loaded.frame.head(200), height=240)
    schema = _target_and_schema(loaded)
    if schema is not None:
        _warnings(loaded.frame, schema)


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
    if options is None:
        st.success(
            f"Ready to train: {summary}; {len(schema.numerical_tokens)} numerical and "
            f"{len(schema.categorical_tokens)} categorical tokens."
        )
    else:
        st.success(
            f"Ready to train: {summary}, one prediction per group of **{md(options.group_by)}**; "
            f"the rows of a group are its tokens, each with {len(schema.numerical_tokens)} "
            f"numerical and {len(schema.categorical_tokens)} categorical values."
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
    chosen = {name: role for name, role in loaded.roles.items() if name not in forced}
    base = pd.DataFrame(
        {
            "column": [c.name for c in rows],
            "role": [chosen.get(c.name, c.role.value) for c in rows],
            "why": [
                "the group key: it names the example, never a feature"
                if c.name in forced
                else c.reason
                for c in rows
            ],
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
        key=keys.roles(loaded.source_id, loaded.target, loaded.task, loaded.group_by),
    )
    inferred_roles = pd.Series([c.role.value for c in rows], index=edited.index)
    changed = (edited["role"] != inferred_roles) & ~edited["column"].isin(list(forced))
    return dict(zip(edited.loc[changed, "column"], edited.loc[changed, "role"], strict=True))


def _warnings(frame: pd.DataFrame, schema: TableSchema) -> None:
    ignored = [c.name for c in schema.columns if c.role is Role.IGNORED]
    if ignored:
        st.warning(f"Not used by the model: {md_list(ignored)} (see the reasons above).")
    dates = [c.name for c in schema.columns if c.kind is Kind.DATE and c.role is Role.NUMERICAL]
    if dates:
        st.info(f"Dates turned into year, month and weekday tokens: {md_list(dates)}.")
    missing = frame[list(schema.feature_columns)].isna().mean()
    missing = missing[missing > 0].sort_values(ascending=False)
    if len(missing):
        listed = ", ".join(f"{md(name)} ({share:.0%})" for name, share in missing.head(6).items())
        st.info(
            f"{len(missing)} feature columns have missing values: {listed}. Numbers get a "
            "missing-indicator in their own token; categories a reserved level."
        )
    limit = PreprocessingOptions().max_vocabulary  # levels with an embedding, at most
    wide = [name for name in schema.categorical_columns if frame[name].nunique(dropna=True) > limit]
    if wide:
        st.warning(
            f"High-cardinality columns: {md_list(wide)}. Only their most frequent levels get "
            "an embedding; the rest share the reserved level."
        )
    for note in schema.notes:
        st.info(md(note))


if __name__ == "__main__":
    page()
