"""Hostile tables and zips, built small: decompression bombs, a Parquet file of fifty million
rows, a line of 150 MB. Each is refused while it is read, with one message, before memory
follows what it claims; the memory of each case is measured in a fresh process
(:func:`test_hostile_runs.load_in_fresh_processes`).
"""

from __future__ import annotations

import gzip
import re
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_hostile_runs import FIXTURE, MEMORY_CAP, load_in_fresh_processes

from mrta.cli import main
from mrta.data.read import ReadingOptions, read_table, reading_limits, refuse_long_lines
from mrta.data.stream import scan_table
from mrta.errors import ArchiveError, TableError
from mrta.pipelines.archive import open_zip

MB = 1 << 20


# -- crafting, small ---------------------------------------------------------------------------
def repeated_chunks(block: bytes, total: int):
    for _ in range(total // len(block)):
        yield block


def gzip_bomb(path: Path, unpacked: int) -> Path:
    """A gzipped CSV of two integer columns that unpacks to `unpacked` bytes."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
    with path.open("wb") as out:
        out.write(compressor.compress(b"a,b\n"))
        for chunk in repeated_chunks(b"1,2\n" * (MB // 4), unpacked):
            out.write(compressor.compress(chunk))
        out.write(compressor.flush())
    return path


def parquet_of_rows(path: Path, rows: int, group: int = 1_000_000) -> Path:
    """A Parquet file of `rows` rows (two columns), written a row group at a time."""
    block = pa.table({"a": pa.array(np.arange(group) % 7), "b": pa.array(["x"] * group)})
    with pq.ParquetWriter(path, block.schema) as writer:
        for start in range(0, rows, group):
            writer.write_table(block.slice(0, min(group, rows - start)))
    return path


def run_zip_with(path: Path, member: str, unpacked: int) -> Path:
    """The fixture run, zipped, with `member` (a path inside the run) holding `unpacked`
    bytes of one repeated CSV row."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(FIXTURE.iterdir()):
            if file.name != member:
                archive.write(file, f"run/{file.name}")
        with archive.open(f"run/{member}", "w", force_zip64=True) as out:
            for chunk in repeated_chunks(b"1,2\n" * (MB // 4), unpacked):
                out.write(chunk)
    return path


def long_line(path: Path, length: int) -> Path:
    with path.open("wb") as out:
        out.write(b"a,b\n1,")
        for chunk in repeated_chunks(b"x" * MB, length):
            out.write(chunk)
        out.write(b"\n2,y\n")
    return path


# -- each case in a fresh process --------------------------------------------------------------
CASES: dict[str, tuple[str, str]] = {  # case: (what opens it, what the refusal says)
    "a zip whose data.csv unpacks to 300 MB": (
        "zip",
        r"holds run/data\.csv, which unpacks to more than the 209,715,200 bytes a run's file",
    ),
    "a zip whose analysis file unpacks 1,000 times its size": (
        "zip",
        r"unpacks to more than 200 times its compressed size: it is a decompression bomb",
    ),
    "a Parquet file of 50 million rows": (
        "table",
        r"The file has 50,000,000 rows, more than the limit of 1,000,000",
    ),
    "a gzip bomb read whole": ("table", r"larger than the limit of 200 MB \(once decompressed\)"),
    "a gzip bomb streamed": ("scan", r"more than 1,000,000 rows, the limit of a streamed table"),
    "a line of 150 MB": ("table", r"A line of the file is longer than 16 MB"),
}


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    base = tmp_path_factory.mktemp("bombs")
    paths = {
        "a zip whose data.csv unpacks to 300 MB": run_zip_with(
            base / "data.zip", "data.csv", 300 * MB
        ),
        "a zip whose analysis file unpacks 1,000 times its size": run_zip_with(
            base / "analysis.zip", "analysis/atlas.npz", 100 * MB
        ),
        "a Parquet file of 50 million rows": parquet_of_rows(base / "rows.parquet", 50_000_000),
        "a gzip bomb read whole": gzip_bomb(base / "bomb.csv.gz", 400 * MB),
        "a line of 150 MB": long_line(base / "line.csv", 150 * MB),
    }
    paths["a gzip bomb streamed"] = paths["a gzip bomb read whole"]
    cases = {
        case: {"path": str(paths[case]), "op": op, "env": {}} for case, (op, _) in CASES.items()
    }
    results = load_in_fresh_processes(cases)
    for case, path in paths.items():
        results[case]["file_bytes"] = path.stat().st_size
    return results


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss in KiB and /proc: Linux")
@pytest.mark.parametrize("case", list(CASES))
def test_a_bomb_is_refused_while_it_is_read_within_the_memory_cap(case, measured):
    result = measured[case]
    assert result["outcome"] in ("TableError", "ArchiveError"), result
    assert result["is_run_error"], result  # one of the project's own errors
    assert re.search(CASES[case][1], result["message"]), result["message"]
    assert result["file_bytes"] < 160 * MB
    growth = result["after"] - result["before"]
    assert growth < MEMORY_CAP, f"{case}: {growth / MB:.0f} MiB above the start"


# -- in process ----------------------------------------------------------------------------------
def test_a_parquet_file_over_the_row_limit_is_refused_from_its_metadata(tmp_path, monkeypatch):
    path = parquet_of_rows(tmp_path / "t.parquet", 5_000, group=1_000)

    def unread(*args, **kwargs):
        raise AssertionError("the rows must not be read")

    monkeypatch.setattr(pq.ParquetFile, "read", unread)
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", unread)
    with pytest.raises(TableError, match="has 5,000 rows, more than the limit of 100"):
        read_table(path, ReadingOptions(max_rows=100))
    one_row = parquet_of_rows(tmp_path / "one.parquet", 1)
    with pytest.raises(TableError, match="only one data row"):
        read_table(one_row)


def test_a_parquet_sample_is_seeded_uniform_and_in_file_order(tmp_path):
    frame = pd.DataFrame({"a": np.arange(5_000), "b": [f"v{i % 3}" for i in range(5_000)]})
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pandas(frame), path, row_group_size=700)
    options = ReadingOptions(max_rows=300, sample_over_max_rows=True, seed=3)
    first, again = read_table(path, options), read_table(path, options)
    assert len(first.frame) == 300 and first.rows_in_file == 5_000
    pd.testing.assert_frame_equal(first.frame, again.frame)
    values = first.frame["a"].to_numpy()
    assert np.all(np.diff(values) > 0)  # file order, no repeats
    assert (first.frame["b"] == frame.set_index("a").loc[values, "b"].to_numpy()).all()
    assert values.min() < 500 and values.max() > 4_500  # drawn from the whole file
    assert any("a random sample of 300 rows (seed 3)" in note for note in first.notes)
    other = read_table(path, ReadingOptions(max_rows=300, sample_over_max_rows=True, seed=4))
    assert not np.array_equal(other.frame["a"].to_numpy(), values)


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b"\r"])
def test_a_line_is_refused_only_beyond_the_line_limit(ending):
    limit = 1_000
    within = b"a,b" + ending + b"1," + b"x" * (limit - 2) + ending + b"2,y" + ending
    refuse_long_lines(within * 3, limit)  # many lines, each within
    beyond = b"a,b" + ending + b"1," + b"x" * (limit - 1) + ending
    with pytest.raises(TableError, match="A line of the file is longer than"):
        refuse_long_lines(beyond * 3, limit)
    with pytest.raises(TableError, match="A line of the file is longer than"):
        refuse_long_lines(b"x" * (limit + 1), limit)  # no line break at all


def test_a_line_across_search_windows_is_measured_whole(monkeypatch):
    monkeypatch.setattr("mrta.data.read._LINE_WINDOW", 64)
    data = (b"1,2\n" * 20) + b"y" * 150 + b"\n" + b"3,4\n" * 20
    refuse_long_lines(data, 150)
    with pytest.raises(TableError, match="longer than"):
        refuse_long_lines(data, 149)


def test_the_reading_limits_come_from_the_environment():
    limits = reading_limits({"MRTA_MAX_TABLE_ROWS": "2_000_000", "MRTA_MAX_TABLE_BYTES": "5"})
    assert limits.max_rows == 2_000_000 and limits.max_bytes == 5
    assert reading_limits({}, min_rows=1) == ReadingOptions(min_rows=1)
    with pytest.raises(TableError, match=r"MRTA_MAX_LINE_BYTES='-3' is not a positive whole"):
        reading_limits({"MRTA_MAX_LINE_BYTES": "-3"})


def test_read_table_follows_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n" + "".join(f"{i},{i}\n" for i in range(50)))
    monkeypatch.setenv("MRTA_MAX_TABLE_ROWS", "20")
    with pytest.raises(TableError, match=r"more than the limit of 20: .*MRTA_MAX_TABLE_ROWS"):
        read_table(path)


def test_a_streamed_scan_stops_at_its_row_limit_and_reports_progress(tmp_path):
    path = gzip_bomb(tmp_path / "bomb.csv.gz", 4 * MB)  # a million rows
    seen: list[int] = []
    with pytest.raises(TableError, match="more than 50,000 rows, the limit of a streamed table"):
        scan_table(path, max_rows=50_000, chunk_rows=10_000, progress=seen.append)
    assert seen == [10_000 * k for k in range(1, 6)]


def test_zip_members_are_bounded_while_unpacked(tmp_path, monkeypatch):
    path = run_zip_with(tmp_path / "run.zip", "data.csv", 2 * MB)
    monkeypatch.setenv("MRTA_MAX_TABLE_BYTES", str(MB))
    with pytest.raises(ArchiveError, match=r"holds run/data\.csv, which unpacks to more than"):
        open_zip(path)
    monkeypatch.delenv("MRTA_MAX_TABLE_BYTES")
    # past its first bytes, a member may unpack to at most MAX_RATIO times its packed size
    monkeypatch.setattr("mrta.pipelines.archive._RATIO_FROM", 1024)
    with pytest.raises(ArchiveError, match="200 times its compressed size"):
        open_zip(path)


@pytest.mark.slow
def test_mrta_train_refuses_a_streamed_file_over_its_row_limit(tmp_path, capsys):
    path = gzip_bomb(tmp_path / "bomb.csv.gz", 400 * MB)  # 100 million rows, 0.4 MB
    code = main(
        ["train", str(path), "--target", "b", "--out", str(tmp_path / "run"),
         "--max-file-rows", "200000", "--chunk-rows", "50000"]
    )  # fmt: skip
    assert code == 1
    error = capsys.readouterr().err
    assert "more than 200,000 rows, the limit of a streamed table" in error
    assert "--max-file-rows" in error and not (tmp_path / "run").exists()


def test_a_gzip_member_of_a_plain_read_is_bounded(tmp_path):
    path = tmp_path / "t.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n" + b"1,2\n" * 1_000))
    with pytest.raises(TableError, match="larger than the limit of 1 KB"):
        read_table(path, ReadingOptions(max_bytes=1024))
