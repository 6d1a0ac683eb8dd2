"""A table's fingerprint (its row count, column names and a SHA-256 of its parsed content), and
the check of a table against one.

A run stores the fingerprint of the table it was trained on, so that the same file given again
can be recognised before the saved split's row indices are applied to it. The digest is of the
table **as parsed** (the DataFrame :func:`mrta.data.read.read_table` returns), not of the file's
bytes: the same table re-saved with other quoting, line endings, delimiter or compression, or as
Parquet, has the same digest, while any changed value, row or column name changes it.

The digest (method ``mrta-table-sha256/1``) is defined by this module, not by pandas' hashing,
so that it does not change with pandas versions, platforms or byte order. Each column is read
as one of three kinds and its values turned into bytes:

- ``number`` (integers, floats, booleans, pandas' nullable numbers): every value as a
  little-endian IEEE float64; missing values as the one canonical NaN and ``-0.0`` as ``0.0``.
  So a column read as int64 in one file and as float64 (because of a missing value) in another
  hashes the same where the values are the same; integers beyond 2**53 are compared as float64.
- ``time`` (datetime64 of any unit, timezone-aware ones in UTC, and timedelta64): a missing mask
  (one byte a row) and the nanoseconds as little-endian int64; values outside the nanosecond
  range are hashed as text.
- ``text`` (everything else): a missing mask (one byte a row), each value's UTF-8 length as
  little-endian int64 (0 when missing), and the UTF-8 bytes of the values one after another.
  Non-string values are written with ``str``.

A column's digest is the SHA-256 of ``b"mrta-column/1\\0"``, its kind and the SHA-256 of each of
its byte streams (so the digest does not depend on how the rows were split into chunks). The
table's digest is the SHA-256 of ``b"mrta-table/1\\0"``, the row count (int64) and, for every
column in order, its UTF-8 name (length-prefixed) and its column digest. The column digests are
kept too, so that a check can name the columns whose content differs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

METHOD = "mrta-table-sha256/1"
_COLUMN_TAG = b"mrta-column/1\x00"
_TABLE_TAG = b"mrta-table/1\x00"
_NAN = np.array([np.nan], dtype="<f8")[0]


@dataclass(frozen=True)
class TableFingerprint:
    """What identifies a table: rows, column names and the SHA-256 of its parsed content.

    ``sha256`` and ``column_sha256`` (one per column, in order) are ``None`` when the content was
    not hashed; ``method`` names the digest's definition (:data:`METHOD`).
    """

    rows: int
    columns: tuple[str, ...]
    sha256: str | None
    column_sha256: tuple[str, ...] | None = None
    method: str = METHOD

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "rows": self.rows,
            "columns": list(self.columns),
            "sha256": self.sha256,
            "column_sha256": None if self.column_sha256 is None else list(self.column_sha256),
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableFingerprint:
        """Inverse of :meth:`to_dict`."""
        digests = data.get("column_sha256")
        return cls(
            rows=int(data["rows"]),
            columns=tuple(str(name) for name in data["columns"]),
            sha256=data["sha256"],
            column_sha256=None if digests is None else tuple(digests),
            method=data.get("method", METHOD),
        )


class TableHasher:
    """The fingerprint of a table fed in chunks of rows (in order, all with the same columns):
    the same as :func:`fingerprint` of the whole table, however it is chunked."""

    def __init__(self, columns: Sequence[object]) -> None:
        self.columns = tuple(str(name) for name in columns)
        self.rows = 0
        self._kinds: list[str | None] = [None] * len(self.columns)
        self._streams: list[dict[str, Any]] = [{} for _ in self.columns]

    def update(self, chunk: pd.DataFrame) -> TableHasher:
        """Add the rows of `chunk`, whose columns must be this hasher's, in order."""
        names = tuple(str(name) for name in chunk.columns)
        if names != self.columns:
            raise ValueError(f"the chunk's columns {list(names)} are not {list(self.columns)}")
        for i in range(len(self.columns)):
            kind, parts = column_bytes(chunk.iloc[:, i])
            if self._kinds[i] is None:
                self._kinds[i] = kind
            elif self._kinds[i] != kind:  # e.g. a column numeric in one chunk, text in another
                self._kinds[i] = "mixed:" + "+".join(sorted({self._kinds[i], kind}))
            streams = self._streams[i]
            for part, data in parts.items():
                streams.setdefault(part, hashlib.sha256()).update(data)
        self.rows += len(chunk)
        return self

    def finish(self) -> TableFingerprint:
        """The fingerprint of the rows fed so far."""
        column_digests = []
        for kind, streams in zip(self._kinds, self._streams, strict=True):
            digest = hashlib.sha256(_COLUMN_TAG + (kind or "empty").encode() + b"\x00")
            for part in sorted(streams):
                digest.update(part.encode() + b"\x00" + streams[part].digest())
            column_digests.append(digest.hexdigest())
        table = hashlib.sha256(_TABLE_TAG + np.int64(self.rows).astype("<i8").tobytes())
        for name, digest in zip(self.columns, column_digests, strict=True):
            encoded = name.encode("utf-8", "surrogatepass")
            table.update(np.int64(len(encoded)).astype("<i8").tobytes() + encoded)
            table.update(bytes.fromhex(digest))
        return TableFingerprint(self.rows, self.columns, table.hexdigest(), tuple(column_digests))


def fingerprint(frame: pd.DataFrame) -> TableFingerprint:
    """The fingerprint of a table as read (see the module docstring for the digest)."""
    return TableHasher(frame.columns).update(frame).finish()


def fingerprint_chunks(
    columns: Sequence[object], chunks: Iterable[pd.DataFrame]
) -> TableFingerprint:
    """The fingerprint of a table read in chunks: equal to :func:`fingerprint` of the whole."""
    hasher = TableHasher(columns)
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.finish()


def shape_only(rows: int, columns: Sequence[object]) -> TableFingerprint:
    """A fingerprint of row count and column names, without a content digest."""
    return TableFingerprint(rows, tuple(str(name) for name in columns), None, None)


def column_bytes(column: pd.Series) -> tuple[str, dict[str, bytes]]:
    """A column's kind and its byte streams (see the module docstring)."""
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype) or (
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)
    ):
        values = column.to_numpy(dtype="float64", na_value=np.nan)
        values = np.where(np.isnan(values), _NAN, values + 0.0)  # one NaN; -0.0 + 0.0 is 0.0
        return "number", {"values": values.astype("<f8").tobytes()}
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        timed = _nanoseconds(column)
        if timed is not None:
            return "time", timed
    return "text", _text_bytes(column)


def _nanoseconds(column: pd.Series) -> dict[str, bytes] | None:
    try:
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            column = column.dt.tz_convert("UTC").dt.tz_localize(None)
        unit = (
            "datetime64[ns]"
            if pd.api.types.is_datetime64_any_dtype(column.dtype)
            else ("timedelta64[ns]")
        )
        converted = column.astype(unit)
    except (OverflowError, ValueError, pd.errors.OutOfBoundsDatetime):
        return None
    missing = converted.isna().to_numpy()
    values = converted.to_numpy().view("int64").copy()
    values[missing] = 0
    return {"missing": missing.astype(np.uint8).tobytes(), "values": values.astype("<i8").tobytes()}


def _text_bytes(column: pd.Series) -> dict[str, bytes]:
    missing = column.isna().to_numpy(dtype=bool)
    values = column.to_numpy(dtype=object)
    try:
        array = pa.array(values, type=pa.large_string(), mask=missing)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all strings: written with str()
        array = pa.array(
            [None if gone else str(value) for value, gone in zip(values, missing, strict=True)],
            type=pa.large_string(),
        )
    array = pc.fill_null(array, "")  # a missing value is 0 bytes long, and in the mask
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    offsets = np.frombuffer(array.buffers()[1], dtype="<i8")[
        array.offset : array.offset + len(array) + 1
    ]
    data = array.buffers()[2]
    content = b"" if data is None else data.to_pybytes()[offsets[0] : offsets[-1]]
    return {
        "missing": missing.astype(np.uint8).tobytes(),
        "lengths": np.diff(offsets).astype("<i8").tobytes(),
        "bytes": bytes(content),
    }


# -- checking a table against a fingerprint ---------------------------------------------------
@dataclass(frozen=True)
class TableCheck:
    """Whether a table is the one a fingerprint describes, and what was compared.

    ``checked`` names what was compared (``"row count"``, ``"column names"``, ``"content"``);
    ``differences`` holds one sentence per difference found (empty when the table matches);
    ``notes`` say what could not be checked, and why.
    """

    checked: tuple[str, ...]
    differences: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def matches(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        """One paragraph: the verdict, what was checked, the differences and the notes."""
        what = _listing(self.checked)
        head = (
            f"The table matches (checked: {what})."
            if self.matches
            else f"The table does not match (checked: {what}): " + " ".join(self.differences)
        )
        return " ".join([head, *self.notes])


def check_table(table: pd.DataFrame | TableFingerprint, expected: TableFingerprint) -> TableCheck:
    """Compare a table with `expected`: its row count, its column names (and their order) and,
    when `expected` has a digest, its content, column by column.

    `table` is the table as read, or its fingerprint (e.g. :func:`fingerprint_chunks` of a file
    read in chunks); a fingerprint without a digest is compared by rows and columns only.
    """
    comparable = expected.sha256 is not None and expected.method == METHOD
    if isinstance(table, TableFingerprint):
        found = table
    elif comparable:
        found = fingerprint(table)
    else:  # no digest to compare with: none is computed
        found = shape_only(len(table), table.columns)
    differences = _shape_differences(found.rows, found.columns, expected)
    checked = ["row count", "column names"]
    notes = []
    if expected.sha256 is None:
        notes.append("The content was not compared: the run holds no digest of it.")
    elif not comparable:
        notes.append(
            f"The content was not compared: the run's digest ({expected.method}) is of a "
            f"method this version does not compute ({METHOD})."
        )
    elif found.sha256 is None or found.method != METHOD:
        notes.append("The content was not compared: the table's digest was not computed.")
    else:
        checked.append("content")
        differences.extend(_content_differences(found, expected, bool(differences)))
    return TableCheck(tuple(checked), tuple(differences), tuple(notes))


def _shape_differences(
    rows: int, columns: Iterable[object], expected: TableFingerprint
) -> list[str]:
    differences = []
    if rows != expected.rows:
        differences.append(
            f"It has {rows:,} rows, and the table the run was trained on had {expected.rows:,}."
        )
    names = [str(name) for name in columns]
    missing = [name for name in expected.columns if name not in names]
    extra = [name for name in names if name not in expected.columns]
    if missing:
        differences.append(f"It lacks the column(s) {_quoted(missing)} of the run's table.")
    if extra:
        differences.append(f"It has column(s) the run's table did not: {_quoted(extra)}.")
    if not missing and not extra and tuple(names) != expected.columns:
        differences.append("Its columns are in another order than the run's table's.")
    return differences


def _content_differences(
    found: TableFingerprint, expected: TableFingerprint, shape_differs: bool
) -> list[str]:
    if found.sha256 == expected.sha256:
        return []
    if found.rows != expected.rows:
        return ["Its content differs too (its SHA-256 is not the run's table's)."]
    by_name = dict(zip(found.columns, found.column_sha256 or (), strict=True))
    wanted = dict(zip(expected.columns, expected.column_sha256 or (), strict=True))
    differences = []
    changed = [name for name, digest in wanted.items() if by_name.get(name, digest) != digest]
    if changed:
        differences.append(f"The values differ in the column(s) {_quoted(changed)}.")
    renamed = [
        f"{old!r} as {new!r}"
        for old, digest in wanted.items()
        if old not in by_name
        for new, other in by_name.items()
        if new not in wanted and other == digest
    ]
    if renamed:
        differences.append(f"It seems to hold renamed columns: {', '.join(renamed)}.")
    if not differences and not shape_differs:
        differences.append("Its content differs (its SHA-256 is not the run's table's).")
    return differences


def _quoted(names: Sequence[str], most: int = 8) -> str:
    shown = ", ".join(repr(name) for name in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _listing(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]
