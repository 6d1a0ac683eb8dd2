"""The Data page's choice between one prediction per row and one per group of rows (set
resolution): the group key (a guess is proposed), the order of a group's rows, the set size, and
the check of the groups they make before any training."""

from __future__ import annotations

import streamlit as st

from mrta.data.schema import TableSchema
from mrta.data.sets import SetOptions, guess_group_key, preview_sets
from mrta.errors import TableError
from mrta_dashboard import keys, session
from mrta_dashboard.text import md

PER_ROW, PER_GROUP = "One prediction per row", "One prediction per group"
MAX_SET_SIZE_LIMIT = 10_000  # rows per set in the widget: attention grows with its square


def choose(loaded: session.LoadedTable):
    """One prediction per row, or per group of rows (set resolution): the key, the order of
    a group's rows and the set size. Returns the set options (``None`` per row, or while no
    key is chosen) and a container below the choices for the check of the groups."""
    frame, source = loaded.frame, loaded.source_id
    mode = st.radio(
        "Examples",
        [PER_ROW, PER_GROUP],
        index=0 if loaded.group_by is None else 1,
        horizontal=True,
        key=keys.mode(source),
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
        key=keys.group_by(source),
        help="The key is never a feature: its role is ignored.",
    )
    orders = [None, *(c for c in columns if c != group_by)]
    order_by = c2.selectbox(
        "Order a group's rows by",
        orders,
        index=orders.index(loaded.order_by) if loaded.order_by in orders else 0,
        format_func=lambda c: "table order" if c is None else c,
        key=keys.order_by(source),
        help="The model has no positions: the order labels the rows of a set (on the axes "
        "of its maps), it does not change the predictions.",
    )
    size = c3.number_input(
        "Rows per set, at most",
        min_value=1,
        max_value=MAX_SET_SIZE_LIMIT,
        value=min(int(loaded.max_set_size), MAX_SET_SIZE_LIMIT),
        step=100,
        key=keys.max_set_size(source),
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


def check(loaded: session.LoadedTable, schema: TableSchema, options: SetOptions, box) -> bool:
    """The groups' count and sizes, or the reason they cannot be sets (then not ready)."""
    previews = st.session_state.setdefault(keys.SET_PREVIEWS, {})
    key = (loaded.source_id, schema.target, schema.task.value, options)
    try:
        if key not in previews:
            previews[key] = preview_sets(loaded.frame, schema, options)
        preview = previews[key]
    except TableError as error:
        box.error(md(f"{options.group_by!r} cannot group the rows into examples. {error}"))
        session.not_ready(loaded, str(error))
        return False
    box.info(md(preview.describe(options.group_by)))
    return True
