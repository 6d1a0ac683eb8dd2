"""Data page: pick or upload a table, check how each column is read, choose the target."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import session
from dashboard.sets import guess_group_key, preview_sets
from mrta.data.read import read_table
from mrta.data.samples import SAMPLE_TABLES
from mrta.data.schema import Kind, Role, TableSchema, infer_schema
from mrta.data.sets import SetOptions
from mrta.errors import TableError

EDITABLE_ROLES = [Role.NUMERICAL.value, Role.CATEGORICAL.value, Role.IGNORED.value]
TASKS = ["auto", "binary", "multiclass", "regression"]
PER_ROW, PER_GROUP = "One prediction per row", "One prediction per group"
MAX_SET_SIZE_LIMIT = 10_000  # rows per set in the widget: attention grows with its square


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
    loaded = session.table()
    uploaded = loaded.source_id.startswith("upload:")  # back from another page: keep it
    source = st.radio(
        "Table",
        ["A sample table", "Upload a CSV"],
        index=1 if uploaded else 0,
        horizontal=True,
        key="source",
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
            key="sample",
        )
        if loaded.source_id != f"sample:{choice.file}":
            session.load_sample(choice)
        return
    upload = st.file_uploader(
        "A CSV file (comma, semicolon, tab or pipe separated; may be gzipped) or a Parquet file",
        type=["csv", "tsv", "txt", "gz", "parquet"],
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
    options, preview_box = _resolution(loaded)
    if loaded.group_by is not None and options is None:
        _not_ready(loaded, "choose the key column that groups the rows (or predict per row)")
        return None
    forced = {options.group_by: Role.IGNORED.value} if options else {}
    try:
        inferred = _infer(loaded, forced)
        roles = _edit_roles(loaded, inferred, forced)
        schema = _infer(loaded, {**roles, **forced}) if roles else inferred
    except TableError as error:
        st.error(str(error))
        return None
    loaded.roles = roles
    if options is not None and not _check_sets(loaded, schema, options, preview_box):
        return None
    st.session_state["schema"] = (loaded.source_id, schema)
    st.session_state.pop("data_problem", None)
    summary = f"**{schema.task.value}**" + (
        f" over {len(schema.class_labels)} classes: {', '.join(schema.class_labels[:8])}"
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
            f"Ready to train: {summary}, one prediction per group of **{options.group_by}**; "
            f"the rows of a group are its tokens, each with {len(schema.numerical_tokens)} "
            f"numerical and {len(schema.categorical_tokens)} categorical values."
        )
    return schema


def _resolution(loaded: session.LoadedTable):
    """One prediction per row, or per group of rows (set resolution): the key, the order of
    a group's rows and the set size. Returns the set options (``None`` per row, or while no
    key is chosen) and a container below the choices for the check of the groups."""
    frame, source = loaded.frame, loaded.source_id
    mode = st.radio(
        "Examples",
        [PER_ROW, PER_GROUP],
        index=0 if loaded.group_by is None else 1,
        horizontal=True,
        key=f"mode:{source}",
        help="Per group: the rows that share a key (a portfolio's positions, a patient's "
        "visits) are one example whose label belongs to the group; attention is then "
        "between the rows of a group.",
    )
    if mode == PER_ROW:
        loaded.group_by = loaded.order_by = None
        return None, None
    columns = [c for c in frame.columns if c != loaded.target]
    key = loaded.group_by
    if key not in columns:
        schema = session.schema()
        key = guess_group_key(frame, schema, loaded.target)
    c1, c2, c3 = st.columns([2, 2, 1])
    group_by = c1.selectbox(
        "Group key (one example per value)",
        columns,
        index=columns.index(key) if key in columns else None,
        placeholder="Choose the key column",
        key=f"group_by:{source}",
        help="The key is never a feature: its role is ignored.",
    )
    orders = [None, *(c for c in columns if c != group_by)]
    order_by = c2.selectbox(
        "Order a group's rows by",
        orders,
        index=orders.index(loaded.order_by) if loaded.order_by in orders else 0,
        format_func=lambda c: "table order" if c is None else c,
        key=f"order_by:{source}",
        help="The model has no positions: the order labels the rows of a set (on the axes "
        "of its maps), it does not change the predictions.",
    )
    size = c3.number_input(
        "Rows per set, at most",
        min_value=1,
        max_value=MAX_SET_SIZE_LIMIT,
        value=min(int(loaded.max_set_size), MAX_SET_SIZE_LIMIT),
        step=100,
        key=f"max_set_size:{source}",
        help="Larger groups keep a seeded random sample of this many rows.",
    )
    loaded.group_by, loaded.order_by, loaded.max_set_size = group_by, order_by, int(size)
    if group_by is None:
        loaded.group_by = ""  # group mode, no key yet
        return None, None
    st.caption(
        f"{group_by!r} is the group key: it names each example and is never read by the model "
        "(its role is ignored)."
    )
    return SetOptions(group_by, order_by, int(size)), st.container()


def _check_sets(loaded, schema: TableSchema, options: SetOptions, box) -> bool:
    """The groups' count and sizes, or the reason they cannot be sets (then not ready)."""
    key = ("set_preview", loaded.source_id, schema.target, schema.task.value, options)
    try:
        if key not in st.session_state:
            st.session_state[key] = preview_sets(loaded.frame, schema, options)
        preview = st.session_state[key]
    except TableError as error:
        box.error(f"{options.group_by!r} cannot group the rows into examples. {error}")
        _not_ready(loaded, str(error), shown=True)
        return False
    box.info(preview.describe(options.group_by))
    return True


def _not_ready(loaded: session.LoadedTable, problem: str, shown: bool = False) -> None:
    """The Data page's choices cannot be trained on: the Train page says why."""
    if not shown:
        st.info(f"Not ready to train: {problem}.")
    st.session_state["schema"] = (loaded.source_id, None)
    st.session_state["data_problem"] = (loaded.source_id, problem)


def _infer(loaded: session.LoadedTable, roles: dict[str, str]) -> TableSchema:
    task = None if loaded.task == "auto" else loaded.task
    key = ("inferred", loaded.source_id, loaded.target, task, tuple(sorted(roles.items())))
    if key not in st.session_state:
        st.session_state[key] = infer_schema(loaded.frame, loaded.target, task=task, roles=roles)
    return st.session_state[key]


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
        key=f"roles:{loaded.source_id}:{loaded.target}:{loaded.task}:{loaded.group_by}",
    )
    inferred_roles = pd.Series([c.role.value for c in rows], index=edited.index)
    changed = (edited["role"] != inferred_roles) & ~edited["column"].isin(list(forced))
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
