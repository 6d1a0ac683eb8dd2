"""Reading a CSV (a path, bytes or a file object) into a DataFrame; refusing what is no table.

The file's bytes are inspected before parsing: gzip is recognised by its magic bytes, binary
files (an Excel workbook renamed `.csv`, a zip, a PDF) are refused by theirs, the text encoding
and the delimiter are detected, and then pyarrow's CSV reader parses the whole file.
"""

from __future__ import annotations

import codecs
import gzip
import io
import os
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

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


GZIP_MAGIC = b"\x1f\x8b"
# Leading bytes of files that people rename to .csv, with what to call them in the message.
BINARY_SIGNATURES = (
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook is one)"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old-style Excel .xls (or other Office) file"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"PAR1", "a Parquet file"),
    (b"SQLite format 3", "an SQLite database"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
)
# Candidate delimiters, in the order that breaks a tie.
DELIMITERS = (",", ";", "\t", "|")
# Enough of the file to see the header and a few dozen rows when detecting the delimiter.
SNIFF_BYTES = 64 * 1024
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
_QUOTED = re.compile(r'"(?:[^"]|"")*"')
_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d+,\d+\s*")
_DECIMAL_POINT = re.compile(r"\s*[+-]?\d+\.\d+\s*")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


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


def read_table(
    source: str | os.PathLike[str] | bytes | BinaryIO, options: ReadingOptions | None = None
) -> ReadResult:
    """Read a CSV from a path, bytes or a binary file object into a DataFrame.

    Raises `TableError` for anything that is not a table of at least two data rows.
    """
    options = options or ReadingOptions()
    raw = _load_bytes(source, options.max_bytes)
    compressed = raw.startswith(GZIP_MAGIC)
    if compressed:
        raw = _gunzip(raw, options.max_bytes)
    _refuse_binary(raw)
    utf8, encoding, notes = _decode(raw)
    if not utf8.strip():
        raise TableError(
            "The file is empty: upload a CSV with a header row and at least two rows of data."
        )
    lines = _head_lines(utf8)
    delimiter, missing_index_name = _detect_delimiter(lines)
    decimal = _detect_decimal(lines) if delimiter == ";" else "."
    if decimal == ",":
        notes.append("Numbers use a decimal comma (1,5 means 1.5) and were read that way.")
    if missing_index_name:
        # Like R's write.table: the rows carry one more field (their names) than the header.
        utf8 = delimiter.encode() + utf8
    frame, skipped, first_skipped = _parse(utf8, delimiter, decimal)
    if skipped:
        notes.append(
            f"{skipped:,} row(s) with the wrong number of fields were skipped "
            f"(the first reads {first_skipped[:60]!r})."
        )
    frame, name_notes = _clean_names(frame)
    notes.extend(name_notes)
    rows_in_file = len(frame)
    frame = _limit_rows(frame, options, notes)
    return ReadResult(
        frame=frame,
        encoding=encoding,
        delimiter=delimiter,
        decimal=decimal,
        compressed=compressed,
        rows_in_file=rows_in_file,
        notes=tuple(notes),
    )


def _limit_rows(frame: pd.DataFrame, options: ReadingOptions, notes: list[str]) -> pd.DataFrame:
    """Refuse too few rows; refuse or sample too many."""
    rows_in_file = len(frame)
    if rows_in_file == 0:
        raise TableError(
            "The file has a header but no data rows: upload a CSV with at least two rows of data."
        )
    if rows_in_file == 1:
        raise TableError(
            "The file has only one data row: a model needs a table with many rows, "
            "so upload the full table."
        )
    if rows_in_file > options.max_rows:
        if not options.sample_over_max_rows:
            raise TableError(
                f"The file has {rows_in_file:,} rows, more than the limit of "
                f"{options.max_rows:,}: ask for a random sample or upload a smaller file."
            )
        frame = (
            frame.sample(n=options.max_rows, random_state=options.seed)
            .sort_index()
            .reset_index(drop=True)
        )
        notes.append(
            f"The file has {rows_in_file:,} rows, more than the limit of {options.max_rows:,}; "
            f"a random sample of {options.max_rows:,} rows (seed {options.seed}) is used."
        )
    return frame


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
        "upload a smaller file, such as a sample of its rows, or raise the limit."
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
        raise TableError(
            f"The file starts like a gzip archive but cannot be decompressed ({error}): "
            "upload the CSV itself or a complete .csv.gz."
        ) from error
    if len(data) > max_bytes:
        _refuse_size(max_bytes)
    return data


def _refuse_binary(raw: bytes) -> None:
    for signature, what in BINARY_SIGNATURES:
        if raw.startswith(signature):
            raise TableError(
                f"This file is {what}, not a CSV text table: open it in its program and export "
                "it as CSV (in Excel: File > Save As > CSV UTF-8)."
            )
    head = raw[:8192]
    if b"\x00" in head and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise TableError(
            "This file holds binary data, not text: upload a CSV file "
            "(in Excel: File > Save As > CSV UTF-8)."
        )


def _decode(raw: bytes) -> tuple[bytes, str, list[str]]:
    """The text as UTF-8 bytes for the parser (no BOM), the encoding's name, and notes."""
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
        if _is_utf8(raw):
            return raw, "utf-8-sig", []
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16").encode("utf-8"), "utf-16", []
        except UnicodeDecodeError as error:
            raise TableError(
                "The file starts like UTF-16 text but is not valid UTF-16: "
                "save it again as CSV UTF-8."
            ) from error
    elif _is_utf8(raw):
        return raw, "utf-8", []
    for encoding, label in (("cp1252", "Windows-1252"), ("latin-1", "Latin-1 (ISO-8859-1)")):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        note = (
            f"The file is not valid UTF-8; it was read as {label}. If accented letters look "
            "wrong, save the file as CSV UTF-8 and upload it again."
        )
        return text.encode("utf-8"), encoding, [note]
    raise AssertionError("latin-1 decodes any bytes")


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
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


def _parse(utf8: bytes, delimiter: str, decimal: str) -> tuple[pd.DataFrame, int, str]:
    """Parse with pyarrow; return the frame, how many malformed rows were skipped, the first."""
    skipped: list[str] = []

    def skip(row: pacsv.InvalidRow) -> str:
        skipped.append(row.text)
        return "skip"

    parse_options = pacsv.ParseOptions(
        delimiter=delimiter, newlines_in_values=True, invalid_row_handler=skip
    )
    convert_options = pacsv.ConvertOptions(
        decimal_point=decimal,
        null_values=list(NULL_VALUES),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        # Empty lists keep yes/no-like columns as text, spelled as in the file.
        true_values=[],
        false_values=[],
    )
    # pyarrow parses in blocks (1 MB by default, in parallel); a row longer than a block needs
    # one block for the whole file.
    for block_size in (None, len(utf8) + 1):
        try:
            table = pacsv.read_csv(
                io.BytesIO(utf8),
                read_options=pacsv.ReadOptions(block_size=block_size),
                parse_options=parse_options,
                convert_options=convert_options,
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


def _clean_names(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Strip header whitespace, name empty headers and make duplicate names unique, visibly."""
    notes = []
    names = [str(name).strip() for name in frame.columns]
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
    frame.columns = names
    return frame, notes
