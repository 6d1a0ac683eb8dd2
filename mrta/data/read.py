"""Reading a CSV or Parquet file (a path, bytes or a file object) into a DataFrame; refusing
what is no table.

The file's bytes are inspected before parsing: gzip and Parquet are recognised by their magic
bytes, other binary files (an Excel workbook renamed `.csv`, a zip, a PDF) are refused by theirs,
the text encoding and the delimiter are detected, and then pyarrow's CSV reader parses the whole
file. A Parquet file's text columns are typed exactly as the CSV reader types text (numbers
stored as text become numbers, "NA" becomes missing), so the same table gives the same
DataFrame, and so the same schema, whichever format it comes in.

The public helpers after `read_table` are shared with `mrta.data.stream`, which reads files too
large for memory chunk by chunk and must decide exactly what `read_table` decides.
"""

from __future__ import annotations

import codecs
import gzip
import io
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from mrta.errors import TableError


@dataclass(frozen=True)
class ReadingOptions:
    """Limits on what is read; each field's `why` metadata is the reason for its default."""

    max_bytes: int = field(
        default=200 * 1024**2,
        metadata={"why": "Streamlit's own upload limit; a bigger table would not train in minutes"},
    )
    max_rows: int = field(
        default=1_000_000,
        metadata={"why": "a million rows is already more than a short CPU training run can see"},
    )
    sample_over_max_rows: bool = field(
        default=False,
        metadata={"why": "drop rows only when the user asks; refusing is the honest default"},
    )
    seed: int = field(default=0, metadata={"why": "the sample of an over-long file is repeatable"})
    min_rows: int = field(
        default=2,
        metadata={"why": "training needs many rows; predicting needs one (mrta predict sets 1)"},
    )
    max_line_bytes: int = field(
        default=16 * 1024**2,
        metadata={"why": "a longer line is no table row: a file without line breaks, or a blob"},
    )


#: Environment variables that raise (or lower) the reading limits of every whole-table read,
#: the dashboard's included: `ReadingOptions` field -> variable.
LIMIT_VARIABLES = {
    "max_bytes": "MRTA_MAX_TABLE_BYTES",
    "max_rows": "MRTA_MAX_TABLE_ROWS",
    "max_line_bytes": "MRTA_MAX_LINE_BYTES",
}


def reading_limits(environ: Mapping[str, str] | None = None, **settings: Any) -> ReadingOptions:
    """`ReadingOptions` with the limits of :data:`LIMIT_VARIABLES` set in the environment, and
    then `settings`; raises `TableError` for a variable that is not a positive whole number."""
    environ = os.environ if environ is None else environ
    limits: dict[str, Any] = {}
    for name, variable in LIMIT_VARIABLES.items():
        text = environ.get(variable, "").strip().replace("_", "")
        if not text:
            continue
        if not text.isdigit() or int(text) < 1:
            raise TableError(
                f"{variable}={environ[variable]!r} is not a positive whole number: set it to a "
                "limit such as 500000000, or unset it for the default."
            )
        limits[name] = int(text)
    return ReadingOptions(**{**limits, **settings})


GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
# Leading bytes of files that people rename to .csv, with what to call them in the message.
BINARY_SIGNATURES = (
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook is one)"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old-style Excel .xls (or other Office) file"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"SQLite format 3", "an SQLite database"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
)
_PARQUET_BATCH = 65_536  # rows of a Parquet file read at a time when sampling it
_LINE_WINDOW = 16 * 1024**2  # bytes searched for line breaks at a time
# Candidate delimiters, in the order that breaks a tie.
DELIMITERS = (",", ";", "\t", "|")
# Enough of the file to see the header and a few dozen rows when detecting the delimiter.
SNIFF_BYTES = 64 * 1024
# Encodings tried, in order, for a file that is not UTF-8, with the names the notes give them.
FALLBACK_ENCODINGS = {"cp1252": "Windows-1252", "latin-1": "Latin-1 (ISO-8859-1)"}
# Cell spellings read as missing: pyarrow's defaults plus "?" (UCI data sets) and "None" (Python).
NULL_VALUES = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "n/a",
    "nan",
    "null",
    "?",
    "None",
)
_NULL_SET = pa.array(NULL_VALUES)
_QUOTED = re.compile(r'"(?:[^"]|"")*"')
_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d+,\d+\s*")
_DECIMAL_POINT = re.compile(r"\s*[+-]?\d+\.\d+\s*")
# What pyarrow's message on an unreadable Parquet file starts with, of no use to the user.
_PARQUET_SOURCE = re.compile(r"^Could not open Parquet input source '[^']*': ")
# The column pyarrow writes for pandas' unnamed index; pandas' CSV gives it an empty name.
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")
# Rows of text typed at a time: the CSV writer's and reader's buffers stay a few MB.
REPARSE_ROWS = 16_384
# Types the CSV reader infers that widen into one another (a column of integers in one part of
# a file and decimals in another is decimals), each chain from narrow to wide; any other mix of
# types is text. Checked against pyarrow's own inference in tests/test_large_input.py.
_WIDENING = (
    (pa.int64(), pa.float64()),
    (pa.date32(), pa.timestamp("s"), pa.timestamp("ns")),
    (pa.timestamp("s", "UTC"), pa.timestamp("ns", "UTC")),
)


@dataclass(frozen=True, eq=False)
class ReadResult:
    """A parsed table, how it was read, and notes for the user."""

    frame: pd.DataFrame
    encoding: str
    delimiter: str
    decimal: str
    compressed: bool
    rows_in_file: int
    notes: tuple[str, ...] = ()
    format: str = "csv"  # "csv" or "parquet" (which has no delimiter: "")


def read_table(
    source: str | os.PathLike[str] | bytes | BinaryIO, options: ReadingOptions | None = None
) -> ReadResult:
    """Read a CSV or Parquet file from a path, bytes or a binary file object into a DataFrame.

    Parquet is recognised by its magic bytes, whatever the file is called. Raises `TableError`
    for anything that is not a table of at least two data rows.
    """
    options = options or reading_limits()
    raw = _load_bytes(source, options.max_bytes)
    compressed = raw.startswith(GZIP_MAGIC)
    if compressed:
        raw = _gunzip(raw, options.max_bytes)
    if raw.startswith(PARQUET_MAGIC):
        return _read_parquet(raw, options, compressed)
    refuse_binary(raw)
    refuse_long_lines(raw, options.max_line_bytes)
    utf8, encoding, notes = _decode(raw)
    dialect = _sniff_decoded(utf8, encoding, notes)
    notes = list(dialect.notes)
    if dialect.row_names:
        # Like R's write.table: the rows carry one more field (their names) than the header.
        utf8 = dialect.delimiter.encode() + utf8
    frame, skipped, first_skipped = _parse(utf8, dialect.delimiter, dialect.decimal)
    if skipped:
        notes.append(skipped_rows_note(skipped, first_skipped))
    frame.columns, name_notes = clean_names(frame.columns)
    notes.extend(name_notes)
    rows_in_file = len(frame)
    frame = _limit_rows(frame, options, notes)
    return ReadResult(
        frame=frame,
        encoding=dialect.encoding,
        delimiter=dialect.delimiter,
        decimal=dialect.decimal,
        compressed=compressed,
        rows_in_file=rows_in_file,
        notes=tuple(notes),
    )


def _read_parquet(raw: bytes, options: ReadingOptions, compressed: bool) -> ReadResult:
    """A Parquet file's table, its text columns typed as the CSV reader types text.

    The row count comes from the file's metadata before any row is read: too few or too many
    rows are refused unread, and a sample of an over-long file is read batch by batch, so that
    memory follows the rows kept, not the rows in the file.
    """
    try:
        parquet = pq.ParquetFile(pa.BufferReader(raw))
        rows_in_file = parquet.metadata.num_rows
        require_rows(rows_in_file, "table", options.min_rows)
        notes: list[str] = []
        if rows_in_file <= options.max_rows:
            table = parquet.read()
        else:
            refuse_rows(rows_in_file, options)
            table = _parquet_sample(parquet, rows_in_file, options)
            notes.append(sample_note(rows_in_file, options))
    except (pa.ArrowException, OSError) as error:
        raise parquet_error(error) from error
    table = normalize_parquet(table.select(parquet_order(table.schema)))
    table = convert_text(table, infer_text_types(table))
    frame = table.to_pandas(date_as_object=False, ignore_metadata=True)
    frame.columns, name_notes = clean_names(parquet_names(frame.columns))
    return ReadResult(
        frame=frame,
        encoding="utf-8",
        delimiter="",
        decimal=".",
        compressed=compressed,
        rows_in_file=rows_in_file,
        notes=(*name_notes, *notes),
        format="parquet",
    )


def _parquet_sample(parquet: pq.ParquetFile, rows: int, options: ReadingOptions) -> pa.Table:
    """A seeded uniform sample of ``options.max_rows`` of the file's ``rows`` rows, in file
    order, read a batch at a time."""
    keep = np.sort(np.random.default_rng(options.seed).choice(rows, options.max_rows, False))
    parts, start = [], 0
    for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH):
        stop = start + batch.num_rows
        chosen = keep[np.searchsorted(keep, start) : np.searchsorted(keep, stop)] - start
        if len(chosen):
            parts.append(batch.take(pa.array(chosen)))
        start = stop
    return pa.Table.from_batches(parts, schema=parquet.schema_arrow)


def _limit_rows(
    frame: pd.DataFrame, options: ReadingOptions, notes: list[str], what: str = "CSV"
) -> pd.DataFrame:
    """Refuse too few rows; refuse or sample too many."""
    rows_in_file = len(frame)
    require_rows(rows_in_file, what, options.min_rows)
    if rows_in_file > options.max_rows:
        refuse_rows(rows_in_file, options)
        frame = (
            frame.sample(n=options.max_rows, random_state=options.seed)
            .sort_index()
            .reset_index(drop=True)
        )
        notes.append(sample_note(rows_in_file, options))
    return frame


def refuse_rows(rows_in_file: int, options: ReadingOptions) -> None:
    """Raise `TableError` for a file over the row limit, unless a sample was asked for."""
    if not options.sample_over_max_rows:
        raise TableError(
            f"The file has {rows_in_file:,} rows, more than the limit of "
            f"{options.max_rows:,}: ask for a random sample or upload a smaller file (or raise "
            f"the limit, {LIMIT_VARIABLES['max_rows']})."
        )


def sample_note(rows_in_file: int, options: ReadingOptions) -> str:
    return (
        f"The file has {rows_in_file:,} rows, more than the limit of {options.max_rows:,}; "
        f"a random sample of {options.max_rows:,} rows (seed {options.seed}) is used."
    )


def refuse_long_lines(raw: bytes, max_line_bytes: int) -> None:
    """Raise `TableError` when a line of ``raw`` (ended by a line feed or a carriage return) is
    longer than ``max_line_bytes``: checked a window at a time, before anything is parsed."""
    if len(raw) <= max_line_bytes:
        return
    data = np.frombuffer(raw, dtype=np.uint8)
    last_break = -1  # the position of the last line break seen
    for start in range(0, len(data), _LINE_WINDOW):
        window = data[start : start + _LINE_WINDOW]
        breaks = np.flatnonzero((window == 10) | (window == 13)) + start
        ends = np.concatenate(([last_break], breaks))
        if len(ends) > 1 and int(np.diff(ends).max()) - 1 > max_line_bytes:
            break
        if len(breaks):
            last_break = int(breaks[-1])
        if start + len(window) - last_break - 1 > max_line_bytes:
            break
    else:
        return
    raise TableError(
        f"A line of the file is longer than {_format_bytes(max_line_bytes)}: a table's row is "
        "never that long, so check that the file is a CSV with one row per line (or raise the "
        f"limit, {LIMIT_VARIABLES['max_line_bytes']})."
    )


def require_rows(rows: int, what: str = "CSV", minimum: int = 2) -> None:
    """Raise `TableError` for a file with fewer than `minimum` data rows (two, unless a single
    row will do: predicting); `what` names its format."""
    if rows == 0:
        rows_needed = "at least two rows" if minimum > 1 else "at least one row"
        raise TableError(
            f"The file has a header but no data rows: upload a {what} with {rows_needed} of data."
        )
    if rows == 1 and minimum > 1:
        raise TableError(
            "The file has only one data row: a model needs a table with many rows, "
            "so upload the full table."
        )


def _load_bytes(source: str | os.PathLike[str] | bytes | BinaryIO, max_bytes: int) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        raw = bytes(source)
    elif isinstance(source, str | os.PathLike):
        if not os.path.isfile(source):
            raise TableError(f"There is no file at {os.fspath(source)!r}: check the path.")
        if os.path.getsize(source) > max_bytes:
            _refuse_size(max_bytes)
        with open(source, "rb") as handle:
            raw = handle.read()
    else:
        raw = source.read(max_bytes + 1)
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
    if len(raw) > max_bytes:
        _refuse_size(max_bytes)
    return raw


def _refuse_size(max_bytes: int) -> None:
    raise TableError(
        f"The file is larger than the limit of {_format_bytes(max_bytes)} (once decompressed): "
        "upload a smaller file, such as a sample of its rows, or raise the limit "
        f"({LIMIT_VARIABLES['max_bytes']})."
    )


def _format_bytes(size: int) -> str:
    if size < 1024:
        return f"{size:,} bytes"
    if size < 1024**2:
        return f"{size / 1024:,.0f} KB"
    return f"{size / 1024**2:,.0f} MB"


def _gunzip(raw: bytes, max_bytes: int) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            data = stream.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise gzip_error(error) from error
    if len(data) > max_bytes:
        _refuse_size(max_bytes)
    return data


def gzip_error(error: Exception) -> TableError:
    """The error for a file that starts like gzip but does not decompress."""
    return TableError(
        f"The file starts like a gzip archive but cannot be decompressed ({error}): "
        "upload the CSV itself or a complete .csv.gz."
    )


def parquet_error(error: Exception) -> TableError:
    """The error for a file that starts like Parquet but cannot be read."""
    reason = (str(error).splitlines() or [type(error).__name__])[0]
    reason = _PARQUET_SOURCE.sub("", reason).split(". ")[0].rstrip(".")
    return TableError(
        f"The file starts like a Parquet file but cannot be read ({reason}): it may be "
        "truncated or damaged, so save it again or upload the table as CSV."
    )


def refuse_binary(raw: bytes) -> None:
    """Raise `TableError` if `raw` (a file's first bytes will do) is a known binary format."""
    for signature, what in BINARY_SIGNATURES:
        if raw.startswith(signature):
            raise TableError(
                f"This file is {what}, not a CSV text table: open it in its program and export "
                "it as CSV (in Excel: File > Save As > CSV UTF-8)."
            )
    head = raw[:8192]
    utf16 = head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or _bomless_utf16(head)
    if b"\x00" in head and not utf16:
        raise TableError(
            "This file holds binary data, not text: upload a CSV file "
            "(in Excel: File > Save As > CSV UTF-8)."
        )


@dataclass(frozen=True)
class CsvDialect:
    """How a CSV file is written, as detected from its first bytes."""

    encoding: str  # a Python codec: utf-8(-sig), utf-16(-le, -be), cp1252 or latin-1
    delimiter: str
    decimal: str
    row_names: bool  # the header lacks the rows' first field (R's write.table): it gets a name
    notes: tuple[str, ...]


def sniff_csv(raw: bytes, complete: bool) -> CsvDialect:
    """The encoding, delimiter and decimal mark of a CSV from its (decompressed) bytes.

    `complete` says whether `raw` is the whole file or only its head. A head longer than
    `SNIFF_BYTES` gives what the whole file gives, except for an encoding error beyond the head.
    Raises `TableError` for a binary or empty file and for a file of one column.
    """
    refuse_binary(raw)
    utf8, encoding, notes = _decode(raw, complete)
    return _sniff_decoded(utf8, encoding, notes)


def _sniff_decoded(utf8: bytes, encoding: str, notes: list[str]) -> CsvDialect:
    if not utf8.strip():
        raise TableError(
            "The file is empty: upload a CSV with a header row and at least two rows of data."
        )
    lines = _head_lines(utf8)
    delimiter, row_names = _detect_delimiter(lines)
    decimal = _detect_decimal(lines) if delimiter == ";" else "."
    if decimal == ",":
        notes.append("Numbers use a decimal comma (1,5 means 1.5) and were read that way.")
    return CsvDialect(encoding, delimiter, decimal, row_names, tuple(notes))


def _decode(raw: bytes, complete: bool = True) -> tuple[bytes, str, list[str]]:
    """The text as UTF-8 bytes for the parser (no BOM), the encoding's name, and notes.

    With `complete=False`, `raw` is the head of a longer file and may end inside a character.
    """
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
        if _is_utf8(raw, complete):
            return raw, "utf-8-sig", []
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = codecs.getincrementaldecoder("utf-16")().decode(raw, final=complete)
        except UnicodeDecodeError as error:
            raise TableError(
                "The file starts like UTF-16 text but is not valid UTF-16: "
                "save it again as CSV UTF-8."
            ) from error
        return text.encode("utf-8"), "utf-16", []
    elif codec := _bomless_utf16(raw[:8192]):
        try:
            text = codecs.getincrementaldecoder(codec)().decode(raw, final=complete)
        except UnicodeDecodeError as error:
            raise TableError(
                "The file looks like UTF-16 text without a byte-order mark but is not valid "
                "UTF-16: save it again as CSV UTF-8."
            ) from error
        order = "little" if codec.endswith("le") else "big"
        note = (
            f"The file is UTF-16 ({order}-endian) without a byte-order mark; it was read as "
            "such. Saving it as CSV UTF-8 avoids the guess."
        )
        return text.encode("utf-8"), codec, [note]
    elif _is_utf8(raw, complete):
        return raw, "utf-8", []
    for encoding in FALLBACK_ENCODINGS:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        return text.encode("utf-8"), encoding, [encoding_note(encoding)]
    raise AssertionError("latin-1 decodes any bytes")


def _bomless_utf16(head: bytes) -> str | None:
    """``"utf-16-le"`` or ``"utf-16-be"`` when `head` reads as UTF-16 text without a byte-order
    mark: text of Latin script puts a zero byte in every other place (after each character in
    little-endian, before it in big-endian) and almost none in the others; else ``None``."""
    pairs = len(head) // 2
    if pairs < 4:
        return None
    even, odd = head[: 2 * pairs : 2], head[1 : 2 * pairs : 2]
    for codec, zeros, others in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        if zeros.count(0) >= 0.9 * pairs and others.count(0) <= 0.01 * pairs:
            return codec
    return None


def encoding_note(encoding: str) -> str:
    """The note for a file read in one of the `FALLBACK_ENCODINGS`."""
    return (
        f"The file is not valid UTF-8; it was read as {FALLBACK_ENCODINGS[encoding]}. If "
        "accented letters look wrong, save the file as CSV UTF-8 and upload it again."
    )


def _is_utf8(raw: bytes, complete: bool = True) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(raw, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def _head_lines(utf8: bytes) -> list[str]:
    """The first non-blank lines of the file, with quoted fields (which may hold delimiters and
    line breaks) replaced by a placeholder."""
    head = utf8[:SNIFF_BYTES].decode("utf-8", errors="ignore")  # may cut a character short
    unquoted = _QUOTED.sub("_", head)
    unquoted = unquoted[: unquoted.find('"') + 1 or None]  # cut inside a quote left open
    lines = [line for line in unquoted.splitlines() if line.strip()]
    if len(utf8) > SNIFF_BYTES and len(lines) > 2:
        lines = lines[:-1]  # the last line may be cut short
    return lines


def _detect_delimiter(lines: list[str]) -> tuple[str, bool]:
    """The delimiter, and whether the header lacks the rows' first (row-name) field."""
    best: tuple[bool, float, str] | None = None
    for delimiter in DELIMITERS:
        counts = [line.count(delimiter) for line in lines]
        data_counts = counts[1:] or counts
        mode, _ = Counter(data_counts).most_common(1)[0]
        header_matches = counts[0] == mode
        if mode == 0 or not (header_matches or counts[0] == mode - 1 >= 1):
            continue
        consistency = sum(count == mode for count in data_counts) / len(data_counts)
        # A header that matches the rows beats one short by a row-name field; then the more
        # consistent count wins; at a tie the earlier candidate.
        if best is None or (header_matches, consistency) > best[:2]:
            best = (header_matches, consistency, delimiter)
    if best is None:
        raise TableError(
            "No delimiter (comma, semicolon, tab or pipe) separates the columns of this file: "
            "a table needs at least two columns, so check that it is a CSV file."
        )
    return best[2], not best[0]


def _detect_decimal(lines: list[str]) -> str:
    """The decimal mark of a semicolon-separated file: "," if decimal commas outnumber points."""
    fields = [cell for line in lines[1:] for cell in line.split(";")]
    commas = sum(bool(_DECIMAL_COMMA.fullmatch(cell)) for cell in fields)
    points = sum(bool(_DECIMAL_POINT.fullmatch(cell)) for cell in fields)
    return "," if commas > points else "."


def convert_options(
    decimal: str,
    column_types: dict[str, pa.DataType] | None = None,
    include_columns: Sequence[str] | None = None,
) -> pacsv.ConvertOptions:
    """How the CSV reader turns text into values: missing spellings, decimal mark, no booleans."""
    return pacsv.ConvertOptions(
        decimal_point=decimal,
        null_values=list(NULL_VALUES),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        # Empty lists keep yes/no-like columns as text, spelled as in the file.
        true_values=[],
        false_values=[],
        column_types=column_types or {},
        include_columns=list(include_columns or ()),
    )


def skipped_rows_note(skipped: int, first: str) -> str:
    """The note for rows dropped because they had the wrong number of fields."""
    return (
        f"{skipped:,} row(s) with the wrong number of fields were skipped "
        f"(the first reads {first[:60]!r})."
    )


def _parse(utf8: bytes, delimiter: str, decimal: str) -> tuple[pd.DataFrame, int, str]:
    """Parse with pyarrow; return the frame, how many malformed rows were skipped, the first."""
    skipped: list[str] = []

    def skip(row: pacsv.InvalidRow) -> str:
        skipped.append(row.text)
        return "skip"

    parse_options = pacsv.ParseOptions(
        delimiter=delimiter, newlines_in_values=True, invalid_row_handler=skip
    )
    # pyarrow parses in blocks (1 MB by default, in parallel); a row longer than a block needs
    # one block for the whole file.
    for block_size in (None, len(utf8) + 1):
        try:
            table = pacsv.read_csv(
                io.BytesIO(utf8),
                read_options=pacsv.ReadOptions(block_size=block_size),
                parse_options=parse_options,
                convert_options=convert_options(decimal),
            )
            break
        except pa.ArrowInvalid as error:
            reason = str(error).splitlines()[0]
            if block_size is None and "straddling" in reason:
                skipped.clear()
                continue
            raise TableError(
                f"The file could not be parsed as a table ({reason}): check that it is a CSV "
                "file with one header row."
            ) from error
    frame = table.to_pandas(date_as_object=False)
    return frame, len(skipped), skipped[0] if skipped else ""


def clean_names(columns: Iterable[object]) -> tuple[list[str], list[str]]:
    """Header names stripped, empty ones named and duplicates made unique, with notes on it."""
    notes = []
    names = [str(name).strip() for name in columns]
    unnamed = [i for i, name in enumerate(names) if not name]
    for i in unnamed:
        names[i] = f"Unnamed: {i}"
    if unnamed:
        listed = ", ".join(f"'{names[i]}'" for i in unnamed)
        notes.append(f"{len(unnamed)} column(s) had no name and are called {listed}.")
    taken = set(names)
    seen: set[str] = set()
    renamed = []
    for i, name in enumerate(names):
        if name in seen:
            k = 2
            while f"{name} ({k})" in taken:
                k += 1
            names[i] = f"{name} ({k})"
            taken.add(names[i])
            renamed.append(f"'{name}' -> '{names[i]}'")
        seen.add(names[i])
    if renamed:
        notes.append(f"Duplicate column names were made unique: {', '.join(renamed)}.")
    return names, notes


def parquet_names(columns: Iterable[object]) -> list[str]:
    """A Parquet file's column names, pandas' unnamed index column unnamed as in pandas' CSV."""
    return ["" if _PANDAS_INDEX.fullmatch(str(name)) else str(name) for name in columns]


def parquet_order(schema: pa.Schema) -> list[int]:
    """Column positions in the order pandas' CSV would have them: a DataFrame's index, which
    pyarrow stores after the columns, first."""
    metadata = schema.pandas_metadata or {}
    index = [name for name in metadata.get("index_columns", []) if isinstance(name, str)]
    names = schema.names
    if not index or len(set(names)) < len(names) or not set(index) <= set(names):
        return list(range(len(names)))
    first = [names.index(name) for name in index]
    return first + [i for i in range(len(names)) if i not in first]


def normalize_parquet(table: pa.Table) -> pa.Table:
    """A Parquet table's columns as the CSV reader would hand them over: text (plain or
    dictionary-encoded) as strings, still to be typed; decimals as float64; numbers, booleans,
    dates and timestamps as they are.

    Raises `TableError` for a column no table cell can hold: nested values (lists, structs,
    maps) or bytes that are not text.
    """
    columns = []
    for name, column in zip(table.column_names, table.columns, strict=True):
        kind = column.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
            column = column.cast(kind)
        if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            column = column.cast(pa.string())
        elif pa.types.is_decimal(kind):
            column = column.cast(pa.float64())
        elif pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            try:
                column = column.cast(pa.string())
            except pa.ArrowInvalid as error:
                raise TableError(
                    f"Column {name!r} of the Parquet file holds bytes that are not text: "
                    "drop it or store it as text before saving the file."
                ) from error
        elif pa.types.is_nested(kind) or not (
            pa.types.is_string(kind)
            or pa.types.is_null(kind)
            or pa.types.is_boolean(kind)
            or pa.types.is_integer(kind)
            or pa.types.is_floating(kind)
            or pa.types.is_temporal(kind)
        ):
            raise TableError(
                f"Column {name!r} of the Parquet file holds {kind} values, which a table cell "
                "cannot hold: drop or flatten it before saving the file."
            )
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def infer_text_types(table: pa.Table, decimal: str = ".") -> list[pa.DataType]:
    """The type pyarrow's CSV reader would give each column, for the string columns of `table`
    (other columns keep their type).

    The string columns are written out as CSV and read back, so the inference is pyarrow's own,
    exactly: integers, decimals (with the mark `decimal`), dates, timestamps or text.
    """
    text = [i for i, kind in enumerate(table.schema.types) if pa.types.is_string(kind)]
    types = list(table.schema.types)
    for i in text:
        types[i] = pa.null()
    strings = table.select(text)
    for start in range(0, table.num_rows if text else 0, REPARSE_ROWS):
        inferred = _reparse(strings.slice(start, REPARSE_ROWS), decimal, None)
        for i, kind in zip(text, inferred.schema.types, strict=True):
            types[i] = widen_type(types[i], kind)
    return types


def convert_text(table: pa.Table, types: Sequence[pa.DataType], decimal: str = ".") -> pa.Table:
    """`table` with its string columns converted to `types` as pyarrow's CSV reader converts.

    `types` (one per column) must come from `infer_text_types` on these rows or on a larger table
    that holds them, widened with `widen_type`, so that every value converts.
    """
    columns = list(table.columns)
    text = []
    for i, (kind, wanted) in enumerate(zip(table.schema.types, types, strict=True)):
        if pa.types.is_string(kind) and pa.types.is_string(wanted):
            # Text stays text; only the spellings of a missing value become missing.
            columns[i] = pc.if_else(pc.is_in(columns[i], _NULL_SET), None, columns[i])
        elif pa.types.is_string(kind):
            text.append(i)
    wanted_types = {f"c{k}": types[i] for k, i in enumerate(text)}
    strings = table.select(text)
    pieces = [
        _reparse(strings.slice(start, REPARSE_ROWS), decimal, wanted_types)
        for start in range(0, table.num_rows if text else 0, REPARSE_ROWS)
    ]
    for k, i in enumerate(text):
        columns[i] = pa.chunked_array([piece.column(k) for piece in pieces], types[i])
    return pa.table(columns, names=table.column_names)


def _reparse(
    table: pa.Table, decimal: str, column_types: dict[str, pa.DataType] | None
) -> pa.Table:
    """String columns through pyarrow's CSV writer and reader: every value is written quoted and
    read back by the converter that reads a CSV file, so typing is exactly the CSV reader's."""
    names = [f"c{k}" for k in range(table.num_columns)]
    sink = pa.BufferOutputStream()
    pacsv.write_csv(
        table.rename_columns(names), sink, write_options=pacsv.WriteOptions(include_header=False)
    )
    data = sink.getvalue()
    parse_options = pacsv.ParseOptions(newlines_in_values=True)
    for block_size in (None, data.size + 1):
        try:
            return pacsv.read_csv(
                pa.BufferReader(data),
                read_options=pacsv.ReadOptions(column_names=names, block_size=block_size),
                parse_options=parse_options,
                convert_options=convert_options(decimal, column_types),
            )
        except pa.ArrowInvalid as error:
            if block_size is not None or "straddling" not in str(error):
                raise
    raise AssertionError("one block holds any row")


def widen_type(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """The type the CSV reader gives a column whose parts it types `a` and `b`."""
    if a == b or pa.types.is_null(b):
        return a
    if pa.types.is_null(a):
        return b
    for chain in _WIDENING:
        if a in chain and b in chain:
            return max(a, b, key=chain.index)
    return pa.string()
