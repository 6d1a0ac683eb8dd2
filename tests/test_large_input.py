"""Large inputs: Parquet read like CSV, and files streamed in chunks (mrta.data.stream) giving
exactly what reading the whole file gives.

Memory is left to `benchmarks/large_input.py`: pyarrow's CSV reader reads up to 32 blocks of
1 MB ahead, so a bound on memory only shows on files of more than about 50 MB.
"""

import gzip
import io
import itertools
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import torch

from mrta.data.preprocessing import Preprocessor
from mrta.data.read import ReadingOptions, infer_text_types, read_table, widen_type
from mrta.data.schema import infer_schema
from mrta.data.splits import make_splits
from mrta.data.stream import TableLayout, encode_file, iter_chunks, read_layout, scan_table
from mrta.errors import TableError

ROWS = 150


def mixed_csv(rows: int = ROWS, seed: int = 0) -> bytes:
    """A small mixed-type CSV: numbers with gaps, numbers as text, codes, yes/no, dates,
    categories with missing values, free text, an identifier and a binary target `y`."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 1, rows).round(2)
    income[rng.random(rows) < 0.1] = np.nan
    city = rng.choice(["Paris", "Oslo", "Rome", "Lima", "?"], rows).astype(object)
    city[rng.random(rows) < 0.1] = None
    frame = pd.DataFrame(
        {
            "row_id": np.arange(rows),
            "age": rng.integers(18, 90, rows),
            "income": income,
            "price": [f"${v:,.2f}" for v in rng.lognormal(6, 1, rows)],
            "share": [f"{v}%" for v in rng.integers(0, 101, rows)],
            "rating": rng.integers(1, 6, rows),
            "city": city,
            "zip": rng.choice(["01234", "20500", "75001", "00501"], rows),
            "member": rng.choice(["yes", "no"], rows),
            "signup": (
                pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 900, rows), "D")
            ).strftime("%Y-%m-%d"),
            "note": [f"said {k} things" for k in rng.integers(0, 10 * rows, rows)],
            "y": rng.choice(["yes", "no"], rows),
        }
    )
    return frame.to_csv(index=False).encode()


def as_parquet(frame: pd.DataFrame, **kwargs) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, **kwargs)
    return buffer.getvalue()


def text_parquet(data: bytes, **kwargs) -> bytes:
    """The CSV `data` as a Parquet file whose every column is text, as in the file."""
    text = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    return as_parquet(text, **kwargs)


def assert_same_encoding(a, b) -> None:
    for name in ("numerical", "indicators", "categorical", "target"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and torch.equal(x, y), name
    assert a.numerical_tokens == b.numerical_tokens
    assert a.categorical_tokens == b.categorical_tokens


def assert_same_frame(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a, b = a.reset_index(drop=True), b.reset_index(drop=True)
    assert list(a.columns) == list(b.columns)
    assert a.dtypes.to_dict() == b.dtypes.to_dict()
    assert a.equals(b)


@pytest.fixture(scope="module")
def mixed() -> bytes:
    return mixed_csv()


@pytest.fixture(scope="module")
def whole(mixed):
    """The whole-file path: read, schema, preprocessor fitted on every row, encoded."""
    frame = read_table(mixed).frame
    schema = infer_schema(frame, target="y")
    preprocessor = Preprocessor.fit(frame, schema)
    return frame, schema, preprocessor, preprocessor.transform(frame)


@pytest.fixture(scope="module")
def files(tmp_path_factory, mixed):
    """The same table as CSV, gzipped CSV, Parquet of text and Parquet in small row groups."""
    folder = tmp_path_factory.mktemp("large")
    paths = {
        "csv": folder / "t.csv",
        "csv.gz": folder / "t.csv.gz",
        "parquet": folder / "t.parquet",
        "parquet-groups": folder / "groups.parquet",
        "parquet-typed": folder / "typed.parquet",
    }
    paths["csv"].write_bytes(mixed)
    paths["csv.gz"].write_bytes(gzip.compress(mixed))
    paths["parquet"].write_bytes(text_parquet(mixed))
    paths["parquet-groups"].write_bytes(text_parquet(mixed, row_group_size=40))
    paths["parquet-typed"].write_bytes(as_parquet(read_table(mixed).frame, row_group_size=64))
    return paths


# --- Parquet wherever a CSV goes -----------------------------------------------------------


def test_parquet_of_text_reads_like_the_csv(mixed, whole):
    frame, schema, preprocessor, encoded = whole
    result = read_table(text_parquet(mixed))
    assert result.format == "parquet"
    assert_same_frame(result.frame, frame)
    assert frame["zip"].dtype.kind == "i"  # the CSV reader reads "01234" as 1234; so does Parquet
    assert infer_schema(result.frame, target="y").to_dict() == schema.to_dict()
    assert_same_encoding(preprocessor.transform(result.frame), encoded)


def test_parquet_of_typed_columns_reads_like_the_csv(whole):
    frame, schema, _, encoded = whole
    result = read_table(as_parquet(frame))
    assert_same_frame(result.frame, frame)
    assert infer_schema(result.frame, target="y").to_dict() == schema.to_dict()
    refit = Preprocessor.fit(result.frame, schema)
    assert_same_encoding(refit.transform(result.frame), encoded)


def test_parquet_from_a_path_bytes_or_a_file_object(tmp_path, mixed):
    data = text_parquet(mixed)
    path = tmp_path / "named like a csv.csv"  # recognised by its bytes, not its name
    path.write_bytes(data)
    frames = [read_table(source).frame for source in (data, path, str(path), io.BytesIO(data))]
    for frame in frames[1:]:
        assert_same_frame(frame, frames[0])


def test_parquet_keeps_the_limits_and_the_name_cleaning():
    table = pa.table({" a ": range(50), "a": range(50), "": ["x"] * 50})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    data = buffer.getvalue()
    result = read_table(data)
    assert list(result.frame.columns) == ["a", "a (2)", "Unnamed: 2"]
    assert result.notes == (
        "1 column(s) had no name and are called 'Unnamed: 2'.",
        "Duplicate column names were made unique: 'a' -> 'a (2)'.",
    )
    with pytest.raises(TableError, match="has 50 rows, more than the limit of 20"):
        read_table(data, ReadingOptions(max_rows=20))
    sampled = read_table(data, ReadingOptions(max_rows=20, sample_over_max_rows=True))
    assert len(sampled.frame) == 20 and sampled.rows_in_file == 50
    with pytest.raises(TableError, match="larger than the limit of 100 bytes"):
        read_table(data, ReadingOptions(max_bytes=100))
    with pytest.raises(TableError, match="only one data row"):
        read_table(as_parquet(pd.DataFrame({"a": [1], "b": [2]})))


def test_an_unnamed_pandas_index_is_named_as_in_pandas_csv():
    frame = pd.DataFrame({"a": [1.5, 2.5, 3.5]}, index=[10, 20, 30])
    from_parquet = read_table(as_parquet(frame)).frame
    from_csv = read_table(frame.to_csv().encode()).frame
    assert_same_frame(from_parquet, from_csv)
    assert list(from_parquet.columns) == ["Unnamed: 0", "a"]


@pytest.mark.parametrize("cut", [8, 100, -12])
def test_a_damaged_parquet_file_is_refused_in_one_sentence(tmp_path, mixed, cut):
    data = text_parquet(mixed)
    broken = data[:cut] if cut > 0 else data[:cut] + b"PAR1"
    path = tmp_path / "broken.parquet"
    path.write_bytes(broken)
    for attempt in (lambda: read_table(broken), lambda: scan_table(path)):
        with pytest.raises(TableError) as error:
            attempt()
        message = str(error.value)
        assert message.startswith("The file starts like a Parquet file but cannot be read (")
        assert message.endswith("so save it again or upload the table as CSV.")
        assert "\n" not in message and message.count(". ") == 0


def test_a_parquet_column_of_lists_is_refused_by_name(tmp_path):
    table = pa.table({"a": [1, 2, 3], "tags": [[1], [2, 3], []]})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    path = tmp_path / "nested.parquet"
    path.write_bytes(buffer.getvalue())
    for attempt in (lambda: read_table(buffer.getvalue()), lambda: scan_table(path)):
        with pytest.raises(TableError, match=r"Column 'tags' of the Parquet file holds list"):
            attempt()


# --- chunks give exactly the whole file -----------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "chunk_rows"),
    [
        *(pytest.param(kind, 1, marks=pytest.mark.slow) for kind in ("csv", "parquet")),  # 2-3 s
        *itertools.product(["csv", "parquet"], [7, 64, 10_000]),
        *itertools.product(["csv.gz", "parquet-groups", "parquet-typed"], [7, 64, 10_000]),
    ],
)
def test_chunked_encoding_equals_whole_file_encoding(files, whole, kind, chunk_rows):
    frame, _, preprocessor, encoded = whole
    layout = read_layout(files[kind], chunk_rows=max(chunk_rows, 7))
    assert layout.rows == ROWS and layout.columns == tuple(frame.columns)
    assert layout == read_layout(files[kind], chunk_rows=10_000)  # types: whole file's
    assert_same_encoding(encode_file(layout, preprocessor, chunk_rows=chunk_rows), encoded)


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "parquet-groups"])
def test_chunks_are_the_whole_files_rows(files, whole, kind):
    frame = whole[0]
    chunks = list(iter_chunks(files[kind], 40))
    assert [len(chunk) for chunk in chunks] == [40, 40, 40, 30]
    assert chunks[1].index.tolist() == list(range(40, 80))  # positions in the file
    assert_same_frame(pd.concat(chunks), frame)
    picked = pd.concat(iter_chunks(files[kind], 40, columns=["y", "age"]))
    assert_same_frame(picked, frame[["age", "y"]])  # file order


def test_gzip_chunks_equal_plain_chunks(files):
    plain = list(iter_chunks(files["csv"], 33))
    zipped = list(iter_chunks(files["csv.gz"], 33))
    assert len(plain) == len(zipped) == 5
    for a, b in zip(plain, zipped, strict=True):
        assert a.equals(b)


def test_rows_are_encoded_in_the_order_asked(files, whole):
    frame, _, preprocessor, _ = whole
    layout = read_layout(files["csv"])
    rows = [149, 3, 3, 77, 0, 120]
    expected = preprocessor.transform(frame.iloc[rows])
    assert_same_encoding(encode_file(layout, preprocessor, rows=rows, chunk_rows=16), expected)
    shard = np.arange(1, ROWS, 4)  # one worker's shard
    expected = preprocessor.transform(frame.iloc[shard])
    assert_same_encoding(encode_file(layout, preprocessor, rows=shard, chunk_rows=16), expected)
    none = encode_file(layout, preprocessor, rows=[])
    assert none.numerical.shape == (0, len(preprocessor.numerical_tokens))
    assert none.categorical.shape == (0, len(preprocessor.categorical_tokens))
    assert none.target.shape == (0,)
    without = encode_file(layout, preprocessor, rows=rows, with_target=False)
    assert without.target is None


def test_row_positions_outside_the_file_are_refused(files, whole):
    layout = read_layout(files["csv"])
    with pytest.raises(TableError, match=r"Row position 150 is outside the file, which has 150"):
        encode_file(layout, whole[2], rows=[0, 150])
    with pytest.raises(TableError, match=r"Row position -1 is outside the file"):
        encode_file(layout, whole[2], rows=[-1])


def test_splits_from_the_target_column_alone(files, whole):
    frame, schema, _, _ = whole
    targets = pd.concat(iter_chunks(files["csv"], 50, columns=[schema.target]))
    assert make_splits(targets, schema) == make_splits(frame, schema)


def test_parquet_types_stream_as_read_table_reads_them(tmp_path):
    n = 12
    table = pa.table(
        {
            "flag": pa.array([True, False, None] * 4),
            "small": pa.array(range(n), pa.int8()),
            "unsigned": pa.array(range(n), pa.uint32()),
            "single": pa.array([0.5 * i for i in range(n)], pa.float32()),
            "money": pa.array([f"{i}.25" for i in range(n)]).cast(pa.decimal128(6, 2)),
            "zoned": pa.array(range(n), pa.timestamp("ms", "Europe/Paris")),
            "day": pa.array(range(n), pa.date32()),
            "level": pa.array(["a", "b", "c"] * 4).dictionary_encode(),
            "long text": pa.array(["x", "NA", "12"] * 4, pa.large_string()),
            "nothing": pa.nulls(n),
        }
    )
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path, row_group_size=5)
    expected = read_table(path).frame
    assert expected["money"].dtype == "float64" and expected["long text"].isna().sum() == 4
    for chunk_rows in (1, 5, 7, 100):
        scan = scan_table(path, chunk_rows=chunk_rows)
        assert_same_frame(scan.sample, expected)
        assert_same_frame(pd.concat(iter_chunks(scan.layout, chunk_rows)), expected)


# --- types decided over the whole file --------------------------------------------------------


def test_types_widen_across_chunks_as_in_the_whole_file(tmp_path):
    head = "n,when,code,mixed,empty\n" + "1,2024-01-01,1,7,\n" * 30
    tail = "2.5,2024-01-01 10:30:00,A7,8,\n" + "3,2024-01-02,2,x,\n"
    data = (head + tail).encode()
    path = tmp_path / "widen.csv"
    path.write_bytes(data)
    frame = read_table(data).frame
    assert [str(t) for t in frame.dtypes] == ["float64", "datetime64[s]", "str", "str", "object"]
    for chunk_rows in (1, 10, 31, 100):
        scan = scan_table(path, chunk_rows=chunk_rows)
        assert_same_frame(scan.sample, frame)
        assert_same_frame(pd.concat(iter_chunks(scan.layout, chunk_rows)), frame)


REPRESENTATIVES = {
    "missing": "NA",
    "integer": "3",
    "decimal": "3.5",
    "date": "2024-01-01",
    "time": "12:30:00",
    "timestamp": "2024-01-01 10:00:00",
    "timestamp ns": "2024-01-01 10:00:00.123456789",
    "zoned": "2024-01-01T00:00:00Z",
    "zoned ns": "2024-01-01T00:00:00.123456789Z",
    "text": "abc",
}


def _arrow_type(data: bytes) -> pa.DataType:
    table = pacsv.read_csv(
        io.BytesIO(data + b"NA\n"),
        convert_options=pacsv.ConvertOptions(
            null_values=["NA"], strings_can_be_null=True, true_values=[], false_values=[]
        ),
    )
    return table.schema.field("v").type


@pytest.mark.parametrize(("a", "b"), itertools.combinations(REPRESENTATIVES, 2))
def test_widening_two_parts_of_a_column_is_pyarrows_inference_of_both(a, b):
    first, second = REPRESENTATIVES[a], REPRESENTATIVES[b]
    both = _arrow_type(f"v\n{first}\n{second}\n".encode())
    one = infer_text_types(pa.table({"v": [first if first != "NA" else None]}))[0]
    other = infer_text_types(pa.table({"v": [second if second != "NA" else None]}))[0]
    assert widen_type(one, other) == both
    assert widen_type(other, one) == both


# --- CSV dialects stream as read_table reads them ----------------------------------------------

DIALECTS = {
    "semicolon, decimal comma": b"a;b;c\n1,5;x;3\n2,25;y;4\n3,0;z;5\n",
    "tab": b"a\tb\n1\tx\n2\ty\n3\tz\n",
    "header without the row-name field": b'"a","b"\n"1",3,"x"\n"2",4,"y"\n"3",5,"z"\n',
    "utf-16": "a,b\n1,é\n2,ü\n3,ö\n".encode("utf-16"),
    "utf-8 with BOM": b"\xef\xbb\xbfa,b\n1,x\n2,y\n",
    "windows-1252": "a,b\n1,café\n2,naïve\n".encode("cp1252"),
    "quoted line breaks": b'a,b\n1,"line one\nline two"\n2,"x, y"\n3,z\n',
    "rows with too many fields": b"a,b\n1,x\n2,y,extra\n3,z\n4,w\n",
    "padded and repeated names": b" a ,a,,b\n1,2,3,4\n5,6,7,8\n",
    "blank lines, CRLF": b"\r\n\r\na,b\r\n1,x\r\n\r\n2,y\r\n",
}


@pytest.mark.parametrize("name", DIALECTS)
def test_every_dialect_streams_as_read_table_reads_it(tmp_path, name):
    data = DIALECTS[name]
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    expected = read_table(data)
    for chunk_rows in (1, 2, 1000):
        scan = scan_table(path, chunk_rows=chunk_rows)
        assert scan.notes == expected.notes
        assert_same_frame(scan.sample, expected.frame)
        assert_same_frame(pd.concat(iter_chunks(scan.layout, chunk_rows)), expected.frame)


def test_an_encoding_error_past_the_head_reads_the_file_again(tmp_path):
    # More than the head of ASCII, then a Windows-1252 letter: read_table reads all as cp1252.
    data = b"a,b\n" + b"1,plain\n" * 150_000 + "2,café\n".encode("cp1252")
    path = tmp_path / "late.csv"
    path.write_bytes(data)
    expected = read_table(data)
    scan = scan_table(path, chunk_rows=50_000, sample_rows=10)
    assert scan.layout.dialect.encoding == expected.encoding == "cp1252"
    assert scan.notes == expected.notes
    last = list(iter_chunks(scan.layout, 50_000))[-1]
    assert last["b"].iloc[-1] == "café"


# --- the sample and its notes ------------------------------------------------------------------


def test_sample_is_seeded_of_the_right_size_and_in_file_order(files, whole):
    frame = whole[0]
    scans = [scan_table(files["csv"], sample_rows=30, seed=7, chunk_rows=c) for c in (1, 13, 500)]
    sample = scans[0].sample
    assert len(sample) == 30 and scans[0].rows == ROWS
    assert np.all(np.diff(sample.index) > 0)
    for other in scans[1:]:  # the same whatever the chunk size
        assert other.sample.equals(sample)
    assert scan_table(files["parquet"], sample_rows=30, seed=7).sample.equals(sample)
    assert_same_frame(sample, frame.iloc[sample.index])
    assert not scan_table(files["csv"], sample_rows=30, seed=8).sample.index.equals(sample.index)
    assert len(scan_table(files["csv"], sample_rows=0).sample) == 0


def test_sample_is_uniform(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\n" + b"".join(f"{i},{i % 3}\n".encode() for i in range(20)))
    counts = np.zeros(20)
    for seed in range(200):
        counts[scan_table(path, sample_rows=5, seed=seed, chunk_rows=6).sample.index] += 1
    # Each row is in a sample with probability 1/4: 50 of 200 expected, sd about 6.1.
    assert counts.sum() == 1000
    assert counts.min() > 25 and counts.max() < 75


def test_schema_and_preprocessor_on_a_sample_say_so(files):
    scan = scan_table(files["csv"], sample_rows=100, seed=3)
    schema = scan.infer_schema(target="y")
    assert schema.notes[0] == (
        "Column types were inferred on a seeded sample of 100 of the 150 rows (seed 3)."
    )
    assert infer_schema(scan.sample, target="y").notes == schema.notes[1:]
    preprocessor = scan.fit_preprocessor(schema)
    assert preprocessor.notes[0] == (
        "Numerical quantiles and category vocabularies were fitted on a seeded sample of 100 "
        "of the 150 rows (seed 3)."
    )
    again = Preprocessor.from_dict(json.loads(json.dumps(preprocessor.to_dict())))
    assert again.notes == preprocessor.notes
    train = range(0, ROWS, 2)
    on_train = scan.fit_preprocessor(schema, rows=train)
    kept = int(np.isin(scan.sample.index, list(train)).sum())
    assert on_train.notes[0] == (
        f"Numerical quantiles and category vocabularies were fitted on a seeded sample of {kept} "
        "of the 75 training rows (seed 3)."
    )
    fitted = Preprocessor.fit(scan.sample[np.isin(scan.sample.index, list(train))], schema)
    sample = scan.sample
    assert_same_encoding(on_train.transform(sample), fitted.transform(sample))


def test_a_sample_of_every_row_adds_no_note(files, whole):
    _, schema, preprocessor, _ = whole
    scan = scan_table(files["csv"])
    assert scan.infer_schema(target="y").to_dict() == schema.to_dict()
    assert scan.fit_preprocessor(schema).to_dict() == preprocessor.to_dict()


# --- errors -----------------------------------------------------------------------------------


def test_a_missing_file_is_refused(tmp_path, whole):
    missing = tmp_path / "nope.csv"
    for attempt in (
        lambda: scan_table(missing),
        lambda: read_layout(missing),
        lambda: next(iter_chunks(missing)),
        lambda: encode_file(missing, whole[2]),
    ):
        with pytest.raises(TableError, match=r"^There is no file at '.*nope.csv': check the path"):
            attempt()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"a,b,c\n", "has a header but no data rows"),
        (b"a,b,c\n1,2,3\n", "has only one data row"),
        (b"PK\x03\x04" + bytes(50), "This file is a zip archive"),
        (b"just one column\nof words\nhere\n", "No delimiter"),
        (gzip.compress(b"a,b\n1,2\n")[:-8], "starts like a gzip archive but cannot be"),
    ],
)
def test_what_read_table_refuses_a_scan_refuses_alike(tmp_path, data, message):
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    with pytest.raises(TableError, match=message) as error:
        scan_table(path)
    assert "\n" not in str(error.value) and ":" in str(error.value)


def test_a_gzip_cut_short_past_its_head_is_refused(tmp_path):
    data = b"a,b\n" + b"".join(f"{i},{i * 7 % 13}\n".encode() for i in range(200_000))
    packed = gzip.compress(data, compresslevel=1)
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(packed[: len(packed) * 3 // 4])
    with pytest.raises(TableError, match=r"starts like a gzip archive but cannot be decompressed"):
        scan_table(path)


def test_a_file_whose_columns_changed_since_the_scan_is_refused(tmp_path, whole):
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\n1,x\n2,y\n3,z\n")
    layout = read_layout(path)
    path.write_bytes(b"a,c\n1,x\n2,y\n3,z\n")  # same size, another column
    with pytest.raises(TableError, match=r"The columns of .* changed since it was scanned"):
        list(iter_chunks(layout))
    path.write_bytes(b"a,b\n1,x\n2,y\n3,z\n4,w\n")
    with pytest.raises(TableError, match=r"changed since it was scanned \(16 bytes then, 20"):
        list(iter_chunks(layout))
    path.write_bytes(b"a,b\nq,x\n2,y\n3,z\n")  # same size, text where integers were
    with pytest.raises(TableError, match=r"does not fit its column's type as scanned \("):
        list(iter_chunks(layout))


def test_columns_the_file_lacks_are_named(files, whole):
    layout = read_layout(files["csv"])
    with pytest.raises(TableError, match=r"The file has no column\(s\) 'nope': check the names"):
        next(iter_chunks(layout, columns=["age", "nope"]))
    other = pd.DataFrame(
        {"age": [1, 2, 3] * 10, "weight": [1.0, 2.5, 3.5] * 10, "y": ["a", "b", "a"] * 10}
    )
    foreign = Preprocessor.fit(other, infer_schema(other, target="y"))
    with pytest.raises(TableError, match=r"lacks the column\(s\) 'weight'"):
        encode_file(layout, foreign)


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "parquet"])
def test_a_layout_travels_as_json(files, whole, kind):
    layout = read_layout(files[kind])
    again = TableLayout.from_dict(json.loads(json.dumps(layout.to_dict())))
    assert again == layout
    assert (layout.format == "parquet") == (layout.dialect is None)
    assert layout.compressed == (kind == "csv.gz")
    rows = np.arange(0, ROWS, 3)
    assert_same_encoding(
        encode_file(again, whole[2], rows=rows), encode_file(layout, whole[2], rows=rows)
    )
    with pytest.raises(TableError, match="scan the file again"):
        TableLayout.from_dict({**layout.to_dict(), "format_version": 0})
