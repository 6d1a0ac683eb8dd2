"""Exploring a run beyond its recorded explanation: a cohort of the user's own filter, one row's
maps, and the explanation that fits the run's kind (rows or sets).

What the dashboard's Explore page computes on demand lives here, so that it can be done from
Python as well; with it, the few names of the analysis that a face shows (the whole table's
cohort, the kinds of explanation, a set's measures, a value as a label), so that the faces import
pipelines, never the analysis itself:

```python
from mrta.pipelines.explore import RowFilter, filter_cohort, one_row_attention, row_map

atlas, cohort = filter_cohort(run, RowFilter("bill_length_mm", ">", "45"))
atlas.cohort_map(0, "num_num", cohort).mean              # (heads, queries, keys)
one = one_row_attention(run, run.frame, 0)
maps, queries, keys = row_map(one, 0, "cat_num")         # the first row's maps, labelled
```
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mrta.analysis.atlas import AttentionAtlas
from mrta.analysis.checks import LEARNED_FACTOR
from mrta.analysis.cohorts import (
    ALL_ROWS,
    CohortKey,
    containing,
    default_cohort,
    rows_note,
    rows_scope,
)
from mrta.analysis.collect import ProgressFn
from mrta.analysis.difference import DEFAULT_Q
from mrta.analysis.explanation import Explanation
from mrta.analysis.importance import METHOD_NOTES, METHOD_TITLES, METHODS
from mrta.analysis.labels import format_value, token_frame
from mrta.analysis.rows import RowAttention, row_attention
from mrta.analysis.scoring import CHECK_ROWS
from mrta.analysis.sets import ROLLOUT, SE_CLUSTERED, SetExplanation, measure_name
from mrta.analysis.stats import TRIVIAL_MAP, UNIFORM_MAP, UNIFORM_TOLERANCE
from mrta.errors import RunError, TableError
from mrta.pipelines.explain import analysed_rows, explain, filter_atlas
from mrta.pipelines.explain_sets import explain_sets
from mrta.runs.run import Run

__all__ = [  # its own names, and those of the analysis that a face shows
    "ALL_ROWS",
    "CHECK_ROWS",
    "DEFAULT_Q",
    "LEARNED_FACTOR",
    "METHODS",
    "METHOD_NOTES",
    "METHOD_TITLES",
    "OPERATORS",
    "ROLLOUT",
    "SE_CLUSTERED",
    "TRIVIAL_MAP",
    "UNIFORM_MAP",
    "UNIFORM_TOLERANCE",
    "Explanation",
    "RowFilter",
    "SetExplanation",
    "containing",
    "default_cohort",
    "explain_run",
    "explorable_rows",
    "filter_cohort",
    "format_value",
    "measure_name",
    "one_row_attention",
    "row_map",
    "rows_note",
    "rows_scope",
]

#: The comparisons a filter may make between a column and a value.
OPERATORS = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


@dataclass(frozen=True)
class RowFilter:
    """A condition on one column, as a user writes it: ``bill_length_mm > 45``, ``island ==
    Dream``. The value is text; it is read as a number when the column holds numbers."""

    column: str
    op: str  # one of OPERATORS
    value: str

    def __post_init__(self) -> None:
        if self.op not in OPERATORS:
            raise ValueError(f"op must be one of {', '.join(OPERATORS)}, got {self.op!r}")

    @property
    def name(self) -> str:
        """The filter in words, as its cohort is labelled."""
        return f"{self.column} {self.op} {self.value}"

    @property
    def cohort(self) -> CohortKey:
        """The cohort's key in the atlas :func:`filter_cohort` records."""
        return ("filter", self.name)

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """Which rows of `frame` meet the condition (never those missing the column's value).

        Shape: ``(N,)`` bool. Raises `TableError` when the column is not in `frame`, or holds
        numbers and the value is not one.
        """
        if self.column not in frame.columns:
            raise TableError(f"There is no column named {self.column!r} to filter the rows by.")
        raw = frame[self.column]
        try:
            operand = float(self.value) if pd.api.types.is_numeric_dtype(raw) else self.value
        except ValueError:
            raise TableError(
                f"{self.column} holds numbers: write a number, not {self.value!r}."
            ) from None
        matches = np.asarray(OPERATORS[self.op](raw.to_numpy(), operand), dtype=bool)
        return matches & raw.notna().to_numpy()


def filter_cohort(run: Run, row_filter: RowFilter) -> tuple[AttentionAtlas, CohortKey]:
    """The attention of the run's rows that meet `row_filter` (their own recording pass, at
    most :data:`~mrta.pipelines.explain.DEFAULT_MAX_ROWS` of them), and the cohort's key in it.

    Raises `TableError` when the filter cannot be read or no row with a target meets it, and
    `RunError` when the run holds no rows.
    """
    frame = _rows_of(run)
    mask = row_filter.mask(frame)
    if not mask.any():
        raise TableError(f"No row has {row_filter.name}.")
    try:
        atlas = filter_atlas(run, row_filter.name, mask, frame)
    except ValueError as error:  # rows match, but none of them has a target
        raise TableError(f"No row with a target has {row_filter.name}.") from error
    return atlas, row_filter.cohort


def explorable_rows(run: Run) -> pd.DataFrame:
    """Every row of the run's table that has a target, in table order: the rows one of which
    :func:`one_row_attention` shows. Raises `RunError` when the run holds no rows."""
    frame = _rows_of(run)
    return analysed_rows(run, frame, len(frame), 0)


def one_row_attention(run: Run, rows: pd.DataFrame, position: int) -> RowAttention:
    """Every map of the row at `position` of `rows` (raw rows with the run's columns), its
    tokens labelled with the row's values."""
    row = rows.iloc[[position]]
    encoded = run.preprocessor.transform(row)
    return row_attention(run.model, encoded, 0, token_frame(run.schema, row))


def row_map(one: RowAttention, layer: int, map_id: str) -> tuple[np.ndarray, list[str], list[str]]:
    """One map of a row's attention and its axes' labels (queries, keys: the row's values).

    Shape: ``(heads, queries, keys)``.
    """
    query_stream, key_stream = map_id.split("_")
    maps = one.atlas.cohort_map(layer, map_id).mean
    return maps, one.labels[query_stream], one.labels[key_stream]


def explain_run(
    run: Run, frame: pd.DataFrame | None = None, *, progress: ProgressFn | None = None
) -> Explanation | SetExplanation:
    """The explanation the run's kind has: :func:`~mrta.pipelines.explain.explain` for a run on
    rows, :func:`~mrta.pipelines.explain_sets.explain_sets` for a run on sets (over `frame`,
    by default the run's own table). `progress` counts rows or sets."""
    if run.sets is None:
        return explain(run, frame, progress=progress)
    return explain_sets(run, _rows_of(run) if frame is None else frame, progress=progress)


def _rows_of(run: Run) -> pd.DataFrame:
    if run.frame is None:
        raise RunError("This run holds no rows: open it with a table to explore it on.")
    return run.frame
