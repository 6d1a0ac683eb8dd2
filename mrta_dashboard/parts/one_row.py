"""The Explore page's one-row view: a row picked from the table, listed with the model's
prediction and how it fared (so that a wrong prediction is one click away), and its maps with
the row's values on the axes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from mrta.errors import counted
from mrta.pipelines.explore import explorable_rows, format_value, one_row_attention, row_map
from mrta.pipelines.row_outcomes import PROBABILITY, RESIDUAL, RIGHT, row_outcomes
from mrta_dashboard import keys, session

PICKED_ROWS = 5000  # rows of the table a row is picked from


def pick(run, layer: int, map_id: str):
    """The maps of the row picked, its values on the axes, and the row in words (the figure's
    title names it); ``None`` until a row is picked."""
    rows = explorable_rows(run)
    total = len(rows)
    rows = rows.head(PICKED_ROWS)
    outcomes = session.run_cache(keys.ROW_OUTCOMES, run, len(rows), lambda: row_outcomes(run, rows))
    every, wrong, largest = keys.ROW_LISTS
    regression = RESIDUAL in outcomes.columns
    how = st.radio(
        "List", [every, largest if regression else wrong], horizontal=True, key=keys.ROW_SHOW
    )
    positions = listed_positions(outcomes, how)
    scope = (
        f"the first {PICKED_ROWS:,} of the table's {total:,} rows"
        if total > len(rows)
        else f"the table's {counted(total, 'row')}"
    )
    if not len(positions):
        st.info(f"No wrong prediction among {scope}: the model got each of them right.")
        return None
    st.caption(picker_note(regression, scope, how, len(positions)))
    picked = st.dataframe(
        picker_table(rows, outcomes, positions),
        on_select="rerun",
        selection_mode="single-row",
        key=keys.row_picker(how),
        height=220,
        column_config={PROBABILITY: st.column_config.NumberColumn(format="percent")},
    )
    selected = picked.selection.rows if picked and picked.selection else []
    if not selected:
        st.info("Select a row to see its maps, tokens labelled with its values.")
        return None
    position = int(positions[selected[0]])
    maps, queries, keys_ = row_map(one_row_attention(run, rows, position), layer, map_id)
    return maps, queries, keys_, row_words(rows.index[position], outcomes.iloc[position])


def listed_positions(outcomes: pd.DataFrame, how: str) -> np.ndarray:
    """The positions in `outcomes` of the rows a list shows, in its order: every row, the wrong
    predictions only, or every row by its absolute residual, largest first."""
    _, wrong, largest = keys.ROW_LISTS
    if how == wrong:
        return np.flatnonzero(~outcomes[RIGHT].to_numpy(dtype=bool))
    if how == largest:
        residual = np.abs(outcomes[RESIDUAL].to_numpy(dtype=np.float64))
        return np.argsort(-np.nan_to_num(residual, nan=-1.0), kind="stable")
    return np.arange(len(outcomes))


def picker_table(rows: pd.DataFrame, outcomes: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """The model's outcome first, then the row's own columns (one that has an outcome's name is
    suffixed ``(table)``), for the rows at `positions`."""
    own = rows.rename(columns=lambda c: f"{c} (table)" if c in outcomes.columns else c)
    return pd.concat([outcomes, own], axis=1).iloc[positions]


def picker_note(regression: bool, scope: str, how: str, listed: int) -> str:
    """What the picker lists and what its first columns say."""
    if regression:
        columns = "predicted and actual in the target's units, residual = actual − predicted"
    else:
        columns = (
            "predicted: the most probable class; probability: the model's probability of it; "
            "right: whether it is the row's class"
        )
    which = scope if how == keys.ROW_LISTS[0] else f"{how}: {counted(listed, 'row')} of {scope}"
    return (
        f"Pick a row ({which}; the list is searchable and sortable). {columns.capitalize()}. "
        "Rows the model trained on are among them, and are more often right than unseen ones."
    )


def row_words(label, outcome: pd.Series) -> str:
    """The row picked and how the model fared on it, in a few words."""
    if RESIDUAL in outcome.index:
        return (
            f"one row: row {label} of the table · predicted {format_value(outcome['predicted'])}"
            f", actual {format_value(outcome['actual'])} (residual {outcome[RESIDUAL]:+.4g})"
        )
    verdict = "right" if outcome[RIGHT] else "wrong"
    return (
        f"one row: row {label} of the table · predicted {format_value(outcome['predicted'])} "
        f"({outcome[PROBABILITY]:.0%}), true {format_value(outcome['true'])}: {verdict}"
    )
