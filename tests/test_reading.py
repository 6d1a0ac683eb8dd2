"""Reading CSV bytes: formats accepted, what is detected, and what is refused with which message."""

import gzip
import io
import zipfile

import numpy as np
import pytest

from mrta.data.read import ReadingOptions, read_table
from mrta.errors import TableError

SIMPLE = b"a,b\n1,x\n2,y\n3,z\n"


def test_path_bytes_and_file_object_read_the_same(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(SIMPLE)
    frames = [read_table(source).frame for source in (SIMPLE, path, str(path), io.BytesIO(SIMPLE))]
    for frame in frames:
        assert frame.equals(frames[0])
    assert list(frames[0].columns) == ["a", "b"]
    assert frames[0]["a"].tolist() == [1, 2, 3]


def test_windows_line_endings():
    frame = read_table(b"a,b\r\n1,x\r\n2,y\r\n").frame
    assert frame.to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(TableError, match="There is no file at"):
        read_table(tmp_path / "nope.csv")


@pytest.mark.parametrize("as_path", [False, True])
def test_gzip_is_detected_by_its_magic_bytes(tmp_path, as_path):
    data = gzip.compress(SIMPLE)
    source = data
    if as_path:
        source = tmp_path / "renamed.csv"  # no .gz suffix: the bytes decide
        source.write_bytes(data)
    result = read_table(source)
    assert result.compressed
    assert result.frame["b"].tolist() == ["x", "y", "z"]


def test_truncated_gzip_is_refused():
    with pytest.raises(TableError, match="starts like a gzip archive but cannot be decompressed"):
        read_table(gzip.compress(SIMPLE)[:-10])


@pytest.mark.parametrize(
    ("data", "encoding", "note"),
    [
        ("a,b\nJosé,1\nZoë,2\n".encode(), "utf-8", None),
        (b"\xef\xbb\xbf" + "a,b\nJosé,1\nZoë,2\n".encode(), "utf-8-sig", None),
        ("a,b\nJosé,1\nZoë,2\n".encode("utf-16"), "utf-16", None),
        ("a,b\nJosé,1\nZoë,2\n".encode("latin-1"), "cp1252", "read as Windows-1252"),
        # 0x81 is undefined in cp1252, so only Latin-1 decodes it
        (b"a,b\nJos\xe9\x81,1\nZo\xeb,2\n", "latin-1", "read as Latin-1"),
    ],
)
def test_encoding_is_detected(data, encoding, note):
    result = read_table(data)
    assert result.encoding == encoding
    assert list(result.frame.columns) == ["a", "b"]  # no BOM glued to the first name
    assert result.frame["a"].iloc[0].startswith("José")
    if note is None:
        assert result.notes == ()
    else:
        assert len(result.notes) == 1
        assert note in result.notes[0]
        assert "save the file as CSV UTF-8" in result.notes[0]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_byte_order_mark_is_text_not_binary(codec, tmp_path):
    from mrta.data.stream import scan_table

    text = "a,b,c\n" + "".join(f"José {i},{i},{i / 2}\n" for i in range(50))
    result = read_table(text.encode(codec))
    assert result.encoding == codec
    assert result.frame.equals(read_table(text.encode()).frame)
    assert "without a byte-order mark" in result.notes[0]
    path = tmp_path / "table.csv"  # the streamed reader agrees, chunk by chunk
    path.write_bytes(text.encode(codec))
    assert scan_table(path, chunk_rows=7).rows == 50
    with pytest.raises(TableError, match="binary data"):  # zeros anywhere else stay binary
        read_table(b"a,b\n1,\x00\x00\x002\n3,4\n")


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_detected(delimiter):
    data = delimiter.join(["x", "y", "z"]) + "\n" + delimiter.join(["1.5", "a b", "3"]) + "\n"
    data += delimiter.join(["2.5", "c", "4"]) + "\n"
    result = read_table(data.encode())
    assert result.delimiter == delimiter
    assert result.frame.shape == (2, 3)
    assert result.frame["x"].tolist() == [1.5, 2.5]


def test_semicolon_with_decimal_commas():
    result = read_table(b"price;qty;name\n1,5;2;a,b\n3,25;4;c\n")
    assert (result.delimiter, result.decimal) == (";", ",")
    assert result.frame["price"].tolist() == [1.5, 3.25]
    assert result.frame["name"].tolist() == ["a,b", "c"]
    assert any("decimal comma" in note for note in result.notes)


def test_semicolon_with_decimal_points_keeps_points():
    result = read_table(b"price;qty\n1.5;2\n3.25;4\n")
    assert result.decimal == "."
    assert result.frame["price"].tolist() == [1.5, 3.25]
    assert result.notes == ()


def test_quoted_fields_with_commas_and_newlines():
    data = b'id,comment,score\n1,"hello, world",3\n2,"line one\nline two, again",4\n3,"""q""",5\n'
    frame = read_table(data).frame
    assert frame["comment"].tolist() == ["hello, world", "line one\nline two, again", '"q"']
    assert frame["score"].tolist() == [3, 4, 5]


def test_a_row_longer_than_a_parser_block_is_read():
    long_text = "line\n" * 300_000  # 1.5 MB inside one quoted field, beyond pyarrow's block
    frame = read_table(f'a,b\n1,"{long_text}"\n2,x\n'.encode()).frame
    assert frame["b"].str.len().tolist() == [len(long_text), 1]


def test_header_whitespace_duplicates_and_empty_names():
    result = read_table(b" a ,a,b\t, ,a\n1,2,3,4,5\n6,7,8,9,10\n")
    assert list(result.frame.columns) == ["a", "a (2)", "b", "Unnamed: 3", "a (3)"]
    assert result.frame["a (2)"].tolist() == [2, 7]
    assert any(
        "Duplicate column names were made unique: 'a' -> 'a (2)', 'a' -> 'a (3)'" in note
        for note in result.notes
    )
    assert any("had no name and are called 'Unnamed: 3'" in note for note in result.notes)


def test_header_one_short_gets_a_row_name_column():
    result = read_table(b'"x","y"\n"1",5,"a"\n"2",6,"b"\n')  # R's write.table
    assert list(result.frame.columns) == ["Unnamed: 0", "x", "y"]
    assert result.frame["x"].tolist() == [5, 6]


def test_rows_with_the_wrong_number_of_fields_are_skipped_and_counted():
    result = read_table(b"a,b\n1,2\n3\n4,5\n6,7\n")
    assert result.frame["a"].tolist() == [1, 4, 6]
    assert result.notes == (
        "1 row(s) with the wrong number of fields were skipped (the first reads '3').",
    )


def _xlsx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"  \n\n \r\n", "The file is empty"),
        (b"a,b,c\n", "has a header but no data rows"),
        (b"a,b,c\n1,2,3\n", "has only one data row"),
        (_xlsx_bytes(), "This file is a zip archive (an Excel .xlsx workbook is one), not a CSV"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "an old-style Excel .xls"),
        (b"%PDF-1.7\n...", "a PDF document"),
        (b"a,b\n\x00\x01\x02,\x03\n", "This file holds binary data, not text"),
        (gzip.compress(_xlsx_bytes()), "This file is a zip archive"),
        (b"just one column\nof words\nhere\n", "No delimiter (comma, semicolon, tab or pipe)"),
        (b'a,"b\n1,2\n3,4\n', "could not be parsed as a table (CSV parse error"),
    ],
)
def test_not_a_table_is_refused_with_a_clear_message(data, message):
    with pytest.raises(TableError) as error:
        read_table(data)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert ":" in str(error.value)  # what is wrong: what to do


def test_xlsx_renamed_csv_is_refused_from_a_path(tmp_path):
    path = tmp_path / "book.csv"
    path.write_bytes(_xlsx_bytes())
    with pytest.raises(TableError, match=r"in Excel: File > Save As > CSV UTF-8"):
        read_table(path)


@pytest.mark.parametrize("wrap", [bytes, io.BytesIO, gzip.compress])
def test_size_limit(wrap):
    data = b"a,b\n" + b"1,2\n" * 100
    with pytest.raises(TableError, match=r"larger than the limit of 100 bytes"):
        read_table(wrap(data), ReadingOptions(max_bytes=100))


def test_size_limit_from_a_path(tmp_path):
    path = tmp_path / "big.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * 1000)
    with pytest.raises(TableError, match=r"larger than the limit of 2 KB"):
        read_table(path, ReadingOptions(max_bytes=2048))


def test_row_limit_refuses_by_default():
    data = b"a,b\n" + b"".join(f"{i},{i % 3}\n".encode() for i in range(50))
    with pytest.raises(TableError, match=r"has 50 rows, more than the limit of 20: ask for a"):
        read_table(data, ReadingOptions(max_rows=20))


def test_row_limit_samples_when_asked():
    data = b"a,b\n" + b"".join(f"{i},{i % 3}\n".encode() for i in range(50))
    options = ReadingOptions(max_rows=20, sample_over_max_rows=True, seed=3)
    result = read_table(data, options)
    assert len(result.frame) == 20
    assert result.rows_in_file == 50
    values = result.frame["a"].to_numpy()
    assert np.all(np.diff(values) > 0)  # file order kept
    assert result.frame.index.tolist() == list(range(20))
    assert read_table(data, options).frame.equals(result.frame)  # seeded
    assert result.notes == (
        "The file has 50 rows, more than the limit of 20; a random sample of 20 rows "
        "(seed 3) is used.",
    )
