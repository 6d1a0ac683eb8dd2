"""Tables too large for memory, read in chunks: one pass types, counts and samples a file; the
schema and the preprocessor are fitted on the sample; then the file is encoded chunk by chunk.

A CSV (plain or gzipped) is streamed by pyarrow's CSV reader with every column read as text, a
Parquet file batch by batch. Each chunk's text is typed by pyarrow's own CSV inference and the
types of all chunks are widened into one per column (integers in one chunk and decimals in
another: decimals), which are the types `mrta.data.read.read_table` gives the whole file. So a
chunk here is exactly the same rows of `read_table`'s frame, and encoding chunk by chunk gives
exactly the tensors of encoding the whole frame.

Memory is bounded by the chunk size (plus the sample and what is returned), not by the file:

    scan = scan_table("big.csv")                       # one pass: types, rows, seeded sample
    schema = scan.infer_schema(target="y")             # on the sample, with a note saying so
    preprocessor = scan.fit_preprocessor(schema)       # quantiles and vocabularies on the sample
    encoded = encode_file(scan.layout, preprocessor)   # chunk by chunk; `rows=` for a shard
    picked = read_rows(scan.layout, [17, 3, 40])       # a few rows, by position in the file

The layout travels as JSON (`TableLayout.to_dict`), so workers that each encode their shard
of one file need not scan it again. What a sample cannot see: a target class missing from it
stops `encode_file` with a `TableError` that names the label, and a level kept by the
vocabulary must be frequent in the sample. A gzipped Parquet file is refused: Parquet needs
random access (and compresses its own columns).
"""

from __future__ import annotations

import base64
import codecs
import gzip
import io
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc
import pyarrow.parquet as pq
import torch

from mrta.data.preprocessing import EncodedTable, PreprocessingOptions, Preprocessor
from mrta.data.read import (
    FALLBACK_ENCODINGS,
    GZIP_MAGIC,
    PARQUET_MAGIC,
    SNIFF_BYTES,
    CsvDialect,
    clean_names,
    convert_options,
    convert_text,
    encoding_note,
    gzip_error,
    infer_text_types,
    normalize_parquet,
    parquet_error,
    parquet_names,
    parquet_order,
    require_rows,
    skipped_rows_note,
    sniff_csv,
    widen_type,
)
from mrta.data.schema import TableSchema, infer_schema
from mrta.errors import TableError, positive_int

# Rows parsed, typed and encoded at a time: about 20 MB of text for a 30-column table, large
# enough that per-chunk overheads vanish, small enough to stay far below a machine's memory.
DEFAULT_CHUNK_ROWS = 100_000
# Rows kept to infer the schema and fit the preprocessor on: twice the rows the quantiles are
# fitted on anyway (`PreprocessingOptions.quantile_subsample`), and enough that a level seen
# once in 2,000 rows is seen about 100 times.
DEFAULT_SAMPLE_ROWS = 200_000
# A streamed training holds its encoded training rows in memory: about 100 bytes a row for 20
# columns, so 20 million rows are ~2 GB. A bigger file is refused while it is first read.
DEFAULT_MAX_FILE_ROWS = 20_000_000
# The first bytes of a CSV that its encoding, delimiter and decimal mark are detected on.
HEAD_BYTES = 16 * SNIFF_BYTES
# Bytes the CSV reader parses at a time: pyarrow's default. Its reader reads up to 32 blocks
# ahead, so this, not the chunk size, bounds the text in flight (a row longer than a block
# makes the pass start again with blocks 16 times as large, up to the maximum).
BLOCK_BYTES = 1024**2
MAX_BLOCK_BYTES = 256 * 1024**2
LAYOUT_FORMAT_VERSION = 1


@dataclass(frozen=True)
class TableLayout:
    """How a file is read: found by one pass over it, what `read_table` decides for the whole.

    Pass it (as `scan.layout`) to `iter_chunks` and `encode_file` to skip that pass.
    """

    path: str
    format: str  # "csv" or "parquet"
    compressed: bool  # gzipped
    dialect: CsvDialect | None  # a CSV's encoding, delimiter and decimal mark; None for Parquet
    file_names: tuple[str, ...]  # the header as in the file
    columns: tuple[str, ...]  # the names `read_table` gives the columns (stripped, unique)
    types: tuple[pa.DataType, ...]  # per column, the type `read_table` gives it
    rows: int  # data rows, not counting rows skipped for a wrong number of fields
    size: int  # bytes on disk, to notice a file that changed since
    block_bytes: int  # bytes the CSV reader parses at a time
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (the types as a base64 Arrow schema), for workers that read the same file
        without scanning it again; `from_dict` gives back an equal layout."""
        schema = pa.schema([pa.field(f"c{i}", kind) for i, kind in enumerate(self.types)])
        return {
            "format_version": LAYOUT_FORMAT_VERSION,
            "path": self.path,
            "format": self.format,
            "compressed": self.compressed,
            "dialect": None if self.dialect is None else asdict(self.dialect),
            "file_names": list(self.file_names),
            "columns": list(self.columns),
            "types": base64.b64encode(schema.serialize().to_pybytes()).decode("ascii"),
            "rows": self.rows,
            "size": self.size,
            "block_bytes": self.block_bytes,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableLayout:
        """Inverse of `to_dict`."""
        if data.get("format_version") != LAYOUT_FORMAT_VERSION:
            raise TableError(
                f"This saved layout has format {data.get('format_version')!r}, but this version "
                f"reads format {LAYOUT_FORMAT_VERSION}: scan the file again."
            )
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(data["types"])))
        dialect = data["dialect"]
        return cls(
            path=data["path"],
            format=data["format"],
            compressed=data["compressed"],
            dialect=None
            if dialect is None
            else CsvDialect(**{**dialect, "notes": tuple(dialect["notes"])}),
            file_names=tuple(data["file_names"]),
            columns=tuple(data["columns"]),
            types=tuple(schema.types),
            rows=data["rows"],
            size=data["size"],
            block_bytes=data["block_bytes"],
            notes=tuple(data["notes"]),
        )


@dataclass(frozen=True, eq=False)
class TableScan:
    """What one pass over a file found: its layout and a seeded uniform sample of its rows.

    `sample` holds at most the `sample_rows` asked for, typed as `read_table` would type them,
    in file order; its index is each row's position in the file (0 is the first data row).
    """

    layout: TableLayout
    sample: pd.DataFrame
    seed: int

    @property
    def rows(self) -> int:
        """Data rows in the file."""
        return self.layout.rows

    @property
    def notes(self) -> tuple[str, ...]:
        """Notes on how the file was read."""
        return self.layout.notes

    @property
    def sampled(self) -> bool:
        """Whether the sample leaves rows out."""
        return len(self.sample) < self.rows

    def infer_schema(self, target: str | None = None, **kwargs: Any) -> TableSchema:
        """`mrta.data.schema.infer_schema` on the sample (same arguments), with a note saying so."""
        schema = infer_schema(self.sample, target, **kwargs)
        if not self.sampled:
            return schema
        note = (
            f"Column types were inferred on a seeded sample of {len(self.sample):,} of the "
            f"{self.rows:,} rows (seed {self.seed})."
        )
        return replace(schema, notes=(note, *schema.notes))

    def fit_preprocessor(
        self,
        schema: TableSchema,
        options: PreprocessingOptions | None = None,
        *,
        rows: Iterable[int] | None = None,
    ) -> Preprocessor:
        """`Preprocessor.fit` on the sample's rows, or on those among `rows` (the training split's
        positions in the file), with a note when that leaves rows of the file (or split) out.

        Numerical quantiles and category vocabularies are then those of the sample; a level
        is kept if the sample holds it `options.min_category_count` times.
        """
        frame = self.sample
        total, which = self.rows, ""
        if rows is not None:
            wanted = np.unique(np.fromiter(rows, dtype=np.int64))
            frame = frame[np.isin(frame.index.to_numpy(), wanted)]
            total, which = len(wanted), " training"
        preprocessor = Preprocessor.fit(frame, schema, options)
        if len(frame) == total:
            return preprocessor
        note = (
            f"Numerical quantiles and category vocabularies were fitted on a seeded sample of "
            f"{len(frame):,} of the {total:,}{which} rows (seed {self.seed})."
        )
        state = preprocessor.to_dict()  # loads back bit-identically, with one more note
        return Preprocessor.from_dict({**state, "notes": [note, *state["notes"]]})


def scan_table(
    path: str | os.PathLike[str],
    *,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    max_rows: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> TableScan:
    """Read a CSV (plain or gzipped) or Parquet file once, `chunk_rows` rows at a time: find
    its layout (encoding, delimiter, column types), count its rows and keep a uniform sample.

    The sample is the `sample_rows` rows with the smallest of a seeded random key drawn for
    each row in file order: the same for the same seed whatever the chunk size. `progress` is
    called with the rows read so far after each chunk. Raises `TableError` for a missing file,
    for anything `read_table` refuses, and as soon as more than `max_rows` rows were read.
    """
    positive_int(chunk_rows, "chunk_rows")
    if sample_rows < 0:
        raise ValueError(f"sample_rows must be at least 0, not {sample_rows}")
    if max_rows is not None:
        positive_int(max_rows, "max_rows")
    settings = _ScanSettings(chunk_rows, sample_rows, seed, max_rows, progress)
    layout, sample = _scan(os.fspath(path), settings)
    everything = list(range(len(layout.columns)))
    frame = _to_frame(sample.table, layout, everything, sample.positions)
    return TableScan(layout=layout, sample=frame, seed=seed)


def read_layout(
    path: str | os.PathLike[str], *, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> TableLayout:
    """The layout of a file, found by reading it once in chunks (`scan_table` without a sample)."""
    positive_int(chunk_rows, "chunk_rows")
    layout, _ = _scan(os.fspath(path), _ScanSettings(chunk_rows, 0, 0))
    return layout


def iter_chunks(
    source: str | os.PathLike[str] | TableLayout,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    *,
    columns: Sequence[str] | None = None,
) -> Iterator[pd.DataFrame]:
    """The file's rows as DataFrames of `chunk_rows` rows (the last may be shorter), typed and
    named as `read_table` types and names the whole file, indexed by position in the file.

    `columns` (names as `read_table` gives them) reads only those, in file order. From a path,
    a first pass finds the layout; pass `scan.layout` to skip it.
    """
    positive_int(chunk_rows, "chunk_rows")
    layout = as_layout(source, chunk_rows)
    selected = _select(layout, columns)
    for start, chunk in _text_chunks(layout, chunk_rows, selected):
        yield _to_frame(chunk, layout, selected, np.arange(start, start + chunk.num_rows))


def encode_file(
    source: str | os.PathLike[str] | TableLayout,
    preprocessor: Preprocessor,
    *,
    rows: Sequence[int] | np.ndarray | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    with_target: bool = True,
) -> EncodedTable:
    """Encode a file's rows, or those at positions `rows` (in that order, as `frame.iloc[rows]`
    would), chunk by chunk; only the encoded tensors are kept.

    Gives exactly `preprocessor.transform(read_table(path).frame.iloc[rows])`, in memory
    bounded by the chunk size and the result. Only the columns the preprocessor reads are
    parsed; chunks without a wanted row are not typed. From a path, a first pass finds the
    layout; pass `scan.layout` to skip it.

    Shape:
        numerical, indicators: (n, n_numerical) float32; categorical: (n, n_categorical) int64;
        target: (n,) or None; n is `len(rows)`, or the file's row count.
    """
    positive_int(chunk_rows, "chunk_rows")
    layout = as_layout(source, chunk_rows)
    schema = preprocessor.schema
    schema.require_columns(pd.DataFrame(columns=list(layout.columns)))
    wanted = set(schema.feature_columns)
    if with_target and schema.target is not None:
        wanted.add(schema.target)
    selected = _select(layout, [name for name in layout.columns if name in wanted])
    positions, order = _positions(rows, layout.rows)
    n_rows = layout.rows if positions is None else len(positions)
    # The result is allocated once, from an encoding of no rows, and filled chunk by chunk.
    empty = _to_frame(_empty_text(layout, selected), layout, selected, np.arange(0))
    result = _allocate(preprocessor.transform(empty, with_target=with_target), n_rows)
    filled = 0
    for start, chunk in _text_chunks(layout, chunk_rows, selected):
        local = np.arange(chunk.num_rows)
        if positions is not None:
            lo, hi = np.searchsorted(positions, [start, start + chunk.num_rows])
            if lo == hi:
                continue
            local = positions[lo:hi] - start
            chunk = chunk.take(local)
        frame = _to_frame(chunk, layout, selected, start + local)
        piece = preprocessor.transform(frame, with_target=with_target)
        for name in _TENSORS:
            if getattr(result, name) is not None:
                getattr(result, name)[filled : filled + len(piece)] = getattr(piece, name)
        filled += len(piece)
    return result if order is None else _take(result, order)


def read_rows(
    source: str | os.PathLike[str] | TableLayout,
    rows: Sequence[int] | np.ndarray,
    *,
    columns: Sequence[str] | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> pd.DataFrame:
    """The rows at positions `rows` (in that order, as `frame.iloc[rows]` would), typed and
    named as `read_table` types and names the whole file, indexed by position in the file.

    For a sample of a file too large to read whole: memory is bounded by the chunk size and
    the rows returned; chunks without a wanted row are not typed, and the pass stops after the
    last one. `columns` reads only those, in file order. The values are those of the whole
    frame; an integer column whose picked rows have no gap comes as int64 where the whole
    frame, with a gap elsewhere, has float64.
    """
    positive_int(chunk_rows, "chunk_rows")
    layout = as_layout(source, chunk_rows)
    selected = _select(layout, columns)
    positions, order = _positions(rows, layout.rows)
    assert positions is not None
    pieces = [_to_frame(_empty_text(layout, selected), layout, selected, np.arange(0))]
    if positions.size:
        for start, chunk in _text_chunks(layout, chunk_rows, selected):
            lo, hi = np.searchsorted(positions, [start, start + chunk.num_rows])
            if lo < hi:
                local = positions[lo:hi] - start
                pieces.append(_to_frame(chunk.take(local), layout, selected, start + local))
            if hi == positions.size:
                break
    frame = pd.concat(pieces[1:]) if len(pieces) > 1 else pieces[0]
    return frame if order is None else frame.iloc[order]


# --- the pass over a file --------------------------------------------------------------------


class _WrongEncoding(Exception):
    """The file's text is not in the encoding its head suggested."""


class _RowTooLong(Exception):
    """A row does not fit in a block of the CSV reader."""


@dataclass
class _Sample:
    """A reservoir: the rows with the smallest random keys, in file order."""

    size: int
    rng: np.random.Generator
    table: pa.Table | None = None
    keys: np.ndarray | None = None
    positions: np.ndarray | None = None
    threshold: float = np.inf  # keys at or above it can no longer enter

    def add(self, chunk: pa.Table, start: int) -> None:
        keys = self.rng.random(chunk.num_rows)
        keep = np.flatnonzero(keys < self.threshold)
        if keep.size == 0:
            return
        piece = chunk.take(keep) if keep.size < chunk.num_rows else chunk
        if self.table is None:
            self.table, self.keys, self.positions = piece, keys[keep], start + keep
        else:
            self.table = pa.concat_tables([self.table, piece])
            self.keys = np.concatenate([self.keys, keys[keep]])
            self.positions = np.concatenate([self.positions, start + keep])
        if len(self.keys) >= 2 * self.size:
            self.compact()

    def compact(self) -> None:
        if self.keys is None or len(self.keys) <= self.size:
            return
        best = np.sort(np.argpartition(self.keys, self.size - 1)[: self.size])  # file order
        self.threshold = float(self.keys[best].max())
        self.table = self.table.take(best)
        self.keys, self.positions = self.keys[best], self.positions[best]


@dataclass(frozen=True)
class _ScanSettings:
    """How a first pass reads a file: chunk and sample sizes, the sample's seed, the row
    limit and the progress callback (rows read so far)."""

    chunk_rows: int
    sample_rows: int
    seed: int
    max_rows: int | None = None
    progress: Callable[[int], None] | None = None


def _scan(path: str, settings: _ScanSettings) -> tuple[TableLayout, _Sample]:
    """The layout of the file at `path` and a sample of its rows as text, in one pass (a CSV
    whose text turns out not to be in the encoding of its head is read again in the next)."""
    layout = _open(path)
    while True:
        try:
            if layout.format == "csv":
                layout = _with_header(layout)
            return _pass(layout, settings)
        except _WrongEncoding:
            layout = _next_encoding(layout)
        except _RowTooLong:
            if layout.block_bytes >= MAX_BLOCK_BYTES:
                raise TableError(
                    f"A row of this file is longer than {MAX_BLOCK_BYTES // 1024**2} MB: check "
                    "that it is a CSV file with one row per line (or quoted line breaks)."
                ) from None
            layout = replace(layout, block_bytes=min(16 * layout.block_bytes, MAX_BLOCK_BYTES))


def _pass(layout: TableLayout, settings: _ScanSettings) -> tuple[TableLayout, _Sample]:
    chunk_rows, sample_rows, max_rows = settings.chunk_rows, settings.sample_rows, settings.max_rows
    sample = _Sample(sample_rows, np.random.default_rng(settings.seed))
    types = [pa.null()] * len(layout.file_names)
    skipped: list[str] = []
    decimal = layout.dialect.decimal if layout.dialect else "."
    rows = 0
    everything = list(range(len(layout.file_names)))
    for start, chunk in _text_chunks(layout, chunk_rows, everything, skipped):
        chunk_types = infer_text_types(chunk, decimal)
        types = [widen_type(a, b) for a, b in zip(types, chunk_types, strict=True)]
        if sample_rows:
            sample.add(chunk, start)
        rows = start + chunk.num_rows
        if max_rows is not None and rows > max_rows:
            raise TableError(
                f"The file has more than {max_rows:,} rows, the limit of a streamed table: "
                "train on a sample of its rows, or raise the limit (mrta train "
                "--max-file-rows N)."
            )
        if settings.progress is not None:
            settings.progress(rows)
    require_rows(rows, "CSV" if layout.format == "csv" else "table")
    sample.compact()
    notes = list(layout.notes)
    if skipped:
        notes.append(skipped_rows_note(len(skipped), skipped[0]))
    if sample.table is None:
        sample.table = _empty_text(layout, everything)
        sample.positions = np.arange(0)
    return replace(layout, types=tuple(types), rows=rows, notes=tuple(notes)), sample


def _open(path: str) -> TableLayout:
    """The layout as far as the file's head tells: format, dialect and header names."""
    if not os.path.isfile(path):
        raise TableError(f"There is no file at {path!r}: check the path.")
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        magic = handle.read(len(PARQUET_MAGIC))
    if magic == PARQUET_MAGIC:
        parquet = _parquet_file(path)
        try:
            normalize_parquet(parquet.schema_arrow.empty_table())  # refuse nested columns now
        finally:
            parquet.close()
        schema = parquet.schema_arrow
        raw_names = [schema.names[i] for i in parquet_order(schema)]
        columns, notes = clean_names(parquet_names(raw_names))
        return TableLayout(
            path, "parquet", False, None, tuple(raw_names), tuple(columns), (), -1, size, 0,
            tuple(notes),
        )  # fmt: skip
    compressed = magic.startswith(GZIP_MAGIC)
    try:
        with gzip.open(path, "rb") if compressed else open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES + 1)
    except (OSError, EOFError) as error:
        raise gzip_error(error) from error
    if head.startswith(PARQUET_MAGIC):
        raise TableError(
            "This file is a gzipped Parquet file: decompress it (Parquet compresses its own "
            "columns) and read the .parquet file."
        )
    complete = len(head) <= HEAD_BYTES
    dialect = sniff_csv(head[:HEAD_BYTES], complete)
    return TableLayout(path, "csv", compressed, dialect, (), (), (), -1, size, BLOCK_BYTES)


def _with_header(layout: TableLayout) -> TableLayout:
    """A CSV's layout with the header's names, as the CSV reader reads them, and notes."""
    assert layout.dialect is not None
    try:
        with _utf8_stream(layout) as stream:
            options = convert_options(layout.dialect.decimal)
            raw_names = list(_csv_reader(layout, stream, options, lambda row: "skip").schema.names)
    except UnicodeDecodeError as error:
        raise _WrongEncoding from error
    except pa.ArrowInvalid as error:
        raise _csv_error(error) from error
    except (OSError, EOFError) as error:
        if layout.compressed:
            raise gzip_error(error) from error
        raise
    columns, notes = clean_names(raw_names)
    return replace(
        layout,
        file_names=tuple(raw_names),
        columns=tuple(columns),
        notes=(*layout.dialect.notes, *notes),
    )


def _next_encoding(layout: TableLayout) -> TableLayout:
    """The layout with the next fallback encoding (the header is to be read again in it)."""
    assert layout.dialect is not None
    fallbacks = list(FALLBACK_ENCODINGS)
    current = layout.dialect.encoding
    following = fallbacks[fallbacks.index(current) + 1 :] if current in fallbacks else fallbacks
    if not following or current == "utf-16":
        raise TableError(
            f"The file is not valid {current} text throughout: save it again as CSV UTF-8."
        )
    encoding = following[0]
    notes = [note for note in layout.dialect.notes if "not valid UTF-8" not in note]
    dialect = replace(layout.dialect, encoding=encoding, notes=(encoding_note(encoding), *notes))
    return replace(layout, dialect=dialect)


def as_layout(source: str | os.PathLike[str] | TableLayout, chunk_rows: int) -> TableLayout:
    """`source` itself when it is a layout already, else the layout read from its file."""
    if isinstance(source, TableLayout):
        return source
    return read_layout(source, chunk_rows=chunk_rows)


def _select(layout: TableLayout, columns: Sequence[str] | None) -> list[int]:
    """Positions of the named columns (all of them for None), in file order."""
    if columns is None:
        return list(range(len(layout.columns)))
    unknown = [name for name in columns if name not in layout.columns]
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        raise TableError(f"The file has no column(s) {listed}: check the names.")
    wanted = set(columns)
    return [i for i, name in enumerate(layout.columns) if name in wanted]


# --- chunks of text ----------------------------------------------------------------------------


def _text_chunks(
    layout: TableLayout,
    chunk_rows: int,
    selected: list[int],
    skipped: list[str] | None = None,
) -> Iterator[tuple[int, pa.Table]]:
    """(position of the first row, rows) for each chunk of `chunk_rows` rows of the selected
    columns: a Parquet file's as stored (text as strings), a CSV's as text or, once the layout
    has the types, converted to them by the reader itself (the converter that `read_table`'s
    reader uses, so the values are the same)."""
    if not os.path.isfile(layout.path):
        raise TableError(f"There is no file at {layout.path!r}: check the path.")
    if os.path.getsize(layout.path) != layout.size:
        raise TableError(
            f"The file {layout.path!r} changed since it was scanned ({layout.size:,} bytes "
            f"then, {os.path.getsize(layout.path):,} now): scan it again."
        )
    if layout.format == "parquet":
        batches = _parquet_batches(layout, chunk_rows, selected)
    else:
        batches = _csv_batches(layout, selected, [] if skipped is None else skipped)
    start = 0
    for chunk in _rebatch(batches, chunk_rows):
        yield start, chunk
        start += chunk.num_rows
    if layout.rows >= 0 and start != layout.rows:
        raise TableError(
            f"The file {layout.path!r} has {start:,} rows now but had {layout.rows:,} when it "
            "was scanned: scan it again."
        )


def _rebatch(batches: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The same rows in tables of exactly `rows` rows, the last one possibly shorter."""
    pending: list[pa.Table] = []
    count = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        count += batch.num_rows
        if count < rows:
            continue
        joined = pa.concat_tables(pending)
        offset = 0
        while count - offset >= rows:
            yield joined.slice(offset, rows)
            offset += rows
        rest = joined.slice(offset)
        pending, count = ([rest], rest.num_rows) if rest.num_rows else ([], 0)
    if count:
        yield pa.concat_tables(pending)


def _check_names(layout: TableLayout, found: Sequence[str], expected: Sequence[str]) -> None:
    """Raise `TableError` if the file's columns are not those it had when it was scanned."""
    if list(found) != list(expected):
        raise TableError(
            f"The columns of {layout.path!r} changed since it was scanned (now "
            f"{', '.join(map(repr, found))}; then {', '.join(map(repr, expected))}): scan it again."
        )


def _parquet_file(path: str) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path, buffer_size=1024**2, pre_buffer=False)
    except (pa.ArrowException, OSError) as error:
        raise parquet_error(error) from error


def _parquet_batches(
    layout: TableLayout, chunk_rows: int, selected: list[int]
) -> Iterator[pa.Table]:
    parquet = _parquet_file(layout.path)
    with parquet:
        schema = parquet.schema_arrow
        _check_names(layout, [schema.names[i] for i in parquet_order(schema)], layout.file_names)
        names = [layout.file_names[i] for i in selected]
        try:
            for batch in parquet.iter_batches(batch_size=chunk_rows, columns=names):
                table = pa.Table.from_batches([batch])
                yield normalize_parquet(
                    table.select(names) if len(set(names)) == len(names) else table
                )
        except (pa.ArrowException, OSError) as error:
            raise parquet_error(error) from error


def _csv_batches(
    layout: TableLayout, selected: list[int], skipped: list[str]
) -> Iterator[pa.Table]:
    """A CSV's rows as text (missing spellings already missing), batch by batch."""
    assert layout.dialect is not None

    def skip(row: pacsv.InvalidRow) -> str:
        skipped.append(row.text)
        return "skip"

    names = [layout.file_names[i] for i in selected]
    include = names if len(set(names)) == len(names) else None  # duplicates: read all
    typed = include is not None and bool(layout.types)
    if typed:
        column_types = {layout.file_names[i]: layout.types[i] for i in selected}
    else:
        column_types = {name: pa.string() for name in layout.file_names}
    options = convert_options(layout.dialect.decimal, column_types, include)
    try:
        with _utf8_stream(layout) as stream:
            reader = _csv_reader(layout, stream, options, skip)
            _check_names(layout, reader.schema.names, names if include else layout.file_names)
            for batch in reader:
                table = pa.Table.from_batches([batch])
                yield table if include is not None else table.select(selected)
    except UnicodeDecodeError as error:
        raise _WrongEncoding from error
    except pa.ArrowKeyError as error:  # a column to include is not in the header
        raise TableError(
            f"The columns of {layout.path!r} changed since it was scanned (it lacks some of "
            f"{', '.join(map(repr, names))}): scan it again."
        ) from error
    except pa.ArrowInvalid as error:
        if typed and "conversion error" in str(error):
            raise _changed_values(layout, error) from error
        raise _csv_error(error) from error
    except (OSError, EOFError) as error:
        if layout.compressed:
            raise gzip_error(error) from error
        raise


def _changed_values(layout: TableLayout, error: Exception) -> TableError:
    """The error for a value that does not fit the type its column was scanned with: only
    possible if the file changed (keeping its size) since."""
    reason = str(error).splitlines()[0]
    return TableError(
        f"A value of {layout.path!r} does not fit its column's type as scanned ({reason}): "
        "scan the file again."
    )


def _csv_error(error: pa.ArrowInvalid) -> Exception:
    """What a CSV reader's error means: another encoding, a bigger block, or no table."""
    reason = str(error).splitlines()[0]
    if "invalid UTF8" in reason:
        return _WrongEncoding()
    if "straddling" in reason:
        return _RowTooLong()
    return TableError(
        f"The file could not be parsed as a table ({reason}): check that it is a CSV "
        "file with one header row."
    )


def _csv_reader(
    layout: TableLayout, stream: Any, options: pacsv.ConvertOptions, skip: Any
) -> pacsv.CSVStreamingReader:
    assert layout.dialect is not None
    return pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(block_size=layout.block_bytes),
        parse_options=pacsv.ParseOptions(
            delimiter=layout.dialect.delimiter, newlines_in_values=True, invalid_row_handler=skip
        ),
        convert_options=options,
    )


def _utf8_stream(layout: TableLayout) -> Any:
    """The file's text as a UTF-8 byte stream for the CSV reader: decompressed, decoded, with
    a leading delimiter when the header lacks the row-name field (as `read_table` does)."""
    assert layout.dialect is not None
    dialect = layout.dialect
    plain = dialect.encoding in ("utf-8", "utf-8-sig")
    if plain and not dialect.row_names:
        return pa.input_stream(layout.path, compression="gzip" if layout.compressed else None)
    prefix = dialect.delimiter.encode() if dialect.row_names else b""
    return pa.PythonFile(_Utf8Reader(layout, prefix), mode="r")


class _Utf8Reader(io.RawIOBase):
    """A text file's bytes re-encoded as UTF-8 without BOM, after `prefix`."""

    def __init__(self, layout: TableLayout, prefix: bytes) -> None:
        assert layout.dialect is not None
        # The reader owns the file and closes it in `close`.
        opener = gzip.open if layout.compressed else open
        self._raw = opener(layout.path, "rb")
        encoding = layout.dialect.encoding
        self._decoder = (
            None if encoding in ("utf-8", "utf-8-sig") else codecs.getincrementaldecoder(encoding)()
        )
        start = self._raw.read(len(codecs.BOM_UTF8))
        if start == codecs.BOM_UTF8 and encoding != "utf-16":
            start = b""
        self._pending = prefix + self._convert(start, final=False)

    def _convert(self, data: bytes, final: bool) -> bytes:
        if self._decoder is None:
            return data
        return self._decoder.decode(data, final=final).encode("utf-8")

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        want = size if size is not None and size >= 0 else 1 << 62
        parts = [self._pending]
        have = len(self._pending)
        while have < want:
            data = self._raw.read(max(want - have, 1 << 16) if want < 1 << 62 else -1)
            converted = self._convert(data, final=not data)
            parts.append(converted)
            have += len(converted)
            if not data:
                break
        joined = b"".join(parts)
        self._pending = joined[want:] if want < len(joined) else b""
        return joined[:want]

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


# --- typing and encoding -----------------------------------------------------------------------


def _to_frame(
    chunk: pa.Table, layout: TableLayout, selected: list[int], positions: np.ndarray
) -> pd.DataFrame:
    """Rows of text (the `selected` columns) typed and named as `read_table` does."""
    types = [layout.types[i] for i in selected]
    decimal = layout.dialect.decimal if layout.dialect else "."
    try:
        typed = convert_text(chunk, types, decimal)
    except pa.ArrowInvalid as error:
        raise _changed_values(layout, error) from error
    frame = typed.to_pandas(date_as_object=False)
    frame.columns = [layout.columns[i] for i in selected]
    frame.index = pd.Index(positions, dtype=np.int64)
    return frame


def _empty_text(layout: TableLayout, selected: list[int]) -> pa.Table:
    return pa.table(
        [pa.array([], pa.string()) for _ in selected], names=[f"c{i}" for i in selected]
    )


def _positions(
    rows: Sequence[int] | np.ndarray | None, n_rows: int
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Sorted unique positions to read, and how to order what they give as `rows` asked
    (None when already in that order)."""
    if rows is None:
        return None, None
    asked = np.asarray(rows, dtype=np.int64).reshape(-1)
    if asked.size and (asked.min() < 0 or asked.max() >= n_rows):
        bad = asked[(asked < 0) | (asked >= n_rows)][0]
        raise TableError(
            f"Row position {bad:,} is outside the file, which has {n_rows:,} rows "
            f"(positions 0 to {n_rows - 1:,}): check the split or shard."
        )
    unique, inverse = np.unique(asked, return_inverse=True)
    if unique.size == asked.size and np.array_equal(unique, asked):
        return unique, None
    return unique, inverse


_TENSORS = ("numerical", "indicators", "categorical", "target")


def _allocate(empty: EncodedTable, n_rows: int) -> EncodedTable:
    """Room for `n_rows` rows of encodings shaped and typed like `empty`'s (which has none)."""

    def room(tensor: torch.Tensor | None) -> torch.Tensor | None:
        if tensor is None:
            return None
        return torch.empty((n_rows, *tensor.shape[1:]), dtype=tensor.dtype)

    return replace(empty, **{name: room(getattr(empty, name)) for name in _TENSORS})


def _take(encoded: EncodedTable, order: np.ndarray) -> EncodedTable:
    index = torch.from_numpy(order)
    return EncodedTable(
        numerical=encoded.numerical[index],
        indicators=encoded.indicators[index],
        categorical=encoded.categorical[index],
        target=None if encoded.target is None else encoded.target[index],
        numerical_tokens=encoded.numerical_tokens,
        categorical_tokens=encoded.categorical_tokens,
    )
