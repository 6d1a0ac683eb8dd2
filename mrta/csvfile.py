"""The one CSV writer: every CSV the project writes goes through it, and cells a spreadsheet would
run as a formula are escaped.

:func:`write_csv` writes a frame as :meth:`pandas.DataFrame.to_csv` does, with the same options,
after :func:`escape_cell` has escaped every text cell (a ``str`` in an object, string or
categorical column), every header and every kept index label. Numbers are left alone: numeric,
boolean and missing values are written as pandas writes them (a float ``-1.5`` stays ``-1.5``),
and so is text that is a plain negative number such as ``"-1"`` (a class label read from a
column of numbers), which a spreadsheet reads as that number and never runs. A file with a
carriage return inside a text cell has its text quoted, so that no spreadsheet starts a line,
and a formula, there.

Only files that the project reads back as data (a run's saved ``data.csv``), whose values must
come back as they went in, are written with ``escape=False``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Hashable
from typing import Any

import pandas as pd

# Leading characters that make a spreadsheet read a cell as a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Text that is a negative number and nothing else: a spreadsheet reads it as that number.
_NEGATIVE_NUMBER = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def escape_cell(text: str) -> str:
    """Prefix ``'`` to text that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``,
    tab, carriage return at the start); a plain negative number such as ``-1.5`` is left as it
    is. Escaping twice changes nothing more."""
    if not text.startswith(FORMULA_STARTS) or _NEGATIVE_NUMBER.fullmatch(text):
        return text
    return f"'{text}"


def _escape_value(value: Any) -> Any:
    return escape_cell(value) if isinstance(value, str) else value


def _escape_label(label: Hashable) -> Hashable:
    """A header or index label: always text (a tuple, one level of a multi-row header, each
    part); ``None``, an unnamed index, stays unnamed."""
    if isinstance(label, tuple):
        return tuple(_escape_label(part) for part in label)
    return None if label is None else escape_cell(str(label))


def _holds_text(column: pd.Series | pd.Index) -> bool:
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _holds_text(pd.Index(dtype.categories))
    return pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.StringDtype)


def _escape_cells(column: pd.Series) -> pd.Series | None:
    """`column` with its text escaped, or ``None`` when nothing in it needs escaping."""
    if not _holds_text(column):
        return None
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(object)  # escaping may merge categories
    try:
        starts = column.str.startswith(FORMULA_STARTS, na=False)
    except (AttributeError, TypeError):  # no text at all, or bytes among it
        starts = column.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_STARTS))
    starts = starts.astype(bool)
    if not starts.any():
        return None
    column = column.copy()
    column[starts] = column[starts].map(_escape_value)
    return column


def escape_frame(frame: pd.DataFrame, *, index: bool = True) -> pd.DataFrame:
    """`frame` as :func:`write_csv` writes it: text cells and headers escaped (and, with
    `index`, the index's labels and names). `frame` itself is never changed."""
    escaped = frame
    for i in range(frame.shape[1]):
        column = _escape_cells(frame.iloc[:, i])
        if column is not None:
            if escaped is frame:
                escaped = frame.copy(deep=False)
            escaped.isetitem(i, column)
    headers = [_escape_label(name) for name in frame.columns]
    if headers != list(frame.columns):
        escaped = escaped.set_axis(
            pd.MultiIndex.from_tuples(headers, names=frame.columns.names)
            if isinstance(frame.columns, pd.MultiIndex)
            else pd.Index(headers, dtype=object, name=frame.columns.name),
            axis=1,
        )
    if index:
        escaped = escaped.set_axis(_escape_index(escaped.index), axis=0)
    return escaped


def _escape_index(index: pd.Index) -> pd.Index:
    names = [_escape_value(name) for name in index.names]
    if isinstance(index, pd.MultiIndex):
        levels = [_escape_index(level) if _holds_text(level) else level for level in index.levels]
        return index.set_levels(levels, verify_integrity=False).set_names(names)
    if _holds_text(index):
        index = pd.Index(index.map(_escape_value), dtype=object)
    return index.set_names(names)


def _escaped_labels(value: Any) -> Any:
    """A ``header``, ``columns`` or ``index_label`` option with its text escaped like the frame's
    own headers; ``True``, ``False`` and ``None`` as they are."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return escape_cell(value)
    return [_escape_label(label) for label in value]


def write_csv(
    frame: pd.DataFrame,
    path_or_buffer: Any = None,
    *,
    escape: bool = True,
    **to_csv_options: Any,
) -> str | None:
    """Write `frame` as CSV to `path_or_buffer` (a path, or an open text handle: write a file in
    chunks with the header once, then ``header=False``), with `to_csv_options` as
    :meth:`pandas.DataFrame.to_csv` takes them; without a target, return the CSV text.

    Every text cell, header and kept index label that a spreadsheet would run as a formula is
    escaped by :func:`escape_cell`; numbers, booleans and missing values are written as pandas
    writes them. ``escape=False`` writes the values exactly, only for a file the project reads
    back as data.
    """
    if escape:
        index = bool(to_csv_options.get("index", True))
        frame = escape_frame(frame, index=index)
        for option in ("header", "columns", "index_label"):
            if option in to_csv_options:
                to_csv_options[option] = _escaped_labels(to_csv_options[option])
        if "quoting" not in to_csv_options and _holds_carriage_return(frame, index=index):
            # Python's csv module leaves a field with a bare carriage return unquoted, and a
            # spreadsheet that starts a line there would read what follows as a new cell.
            to_csv_options["quoting"] = csv.QUOTE_NONNUMERIC
    return frame.to_csv(path_or_buffer, **to_csv_options)


def _holds_carriage_return(frame: pd.DataFrame, *, index: bool) -> bool:
    """Whether a header or a text cell of `frame` (or, with `index`, an index label) holds
    ``\\r`` anywhere."""
    labels = [*frame.columns, *frame.index.names] if index else frame.columns
    if any("\r" in str(name) for name in labels):
        return True
    columns = [frame.iloc[:, i] for i in range(frame.shape[1])]
    if index:
        columns += [pd.Series(frame.index.get_level_values(i)) for i in range(frame.index.nlevels)]
    for column in columns:
        if not _holds_text(column):
            continue
        try:
            found = column.str.contains("\r", regex=False, na=False)
        except (AttributeError, TypeError):
            found = column.map(lambda v: isinstance(v, str) and "\r" in v)
        if found.astype(bool).any():
            return True
    return False
