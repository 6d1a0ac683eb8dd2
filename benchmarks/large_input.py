"""Reading and preprocessing a 2,000,000-row table in chunks, as CSV and as Parquet.

Run `python -m benchmarks.large_input` (about 6 minutes on 2 cores); it prints a table and
writes `benchmarks/results/large_input.json`. The table is `data_speed.make_csv`'s 30 mixed
columns, generated in blocks of 200,000 rows (each block from its own seed) into a temporary
directory, then converted to Parquet (types as the CSV reader infers them). For each format,
each measurement runs in a fresh process, so that its peak memory (the resident set's
high-water mark, `VmHWM`) is its own; "added" is that peak less the memory before the work
(the imports: Python, torch, pandas, pyarrow, scikit-learn):

- streaming fit: `scan_table` (one pass: types, row count, a seeded sample of 200,000 rows),
  the schema inferred on the sample and the preprocessor fitted on it;
- streaming encode: `encode_file` of every row, chunk by chunk, with that preprocessor;
- whole file, for comparison: `read_table` of the whole file, then `transform` of the frame
  with the same preprocessor (the same tensors as the streaming encode);
- the scan alone, with a small sample (10,000 rows) so that the chunk shows: chunks of 20,000
  and 100,000 rows, and chunks of 100,000 rows over a 500,000-row file;
- streamed training (CSV only; ``--part train`` runs it alone and updates the result file):
  ``mrta train`` on the whole file with a 60-second budget on one thread, which streams it
  because it is over the reading limits, with the run's test metrics beside gradient boosting's.

`torch.set_num_threads(1)`; pyarrow's reader keeps its own thread pool. Timings on a shared
machine move by 10-20%: rerun on a quiet one before publishing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sklearn
import torch

from benchmarks.data_speed import make_csv
from benchmarks.memory import memory_mb
from mrta import cli
from mrta.data.preprocessing import Preprocessor
from mrta.data.read import ReadingOptions, convert_options, read_table
from mrta.data.stream import TableLayout, encode_file, scan_table
from mrta.runs.run import Run

ROWS = 2_000_000
SMALL_ROWS = 500_000  # the same table cut short: the scan's memory does not grow with the file
BLOCK_ROWS = 200_000  # rows generated at a time
CHUNK_ROWS = 100_000
SMALL_CHUNK_ROWS = 20_000
SAMPLE_ROWS = 200_000
SCAN_SAMPLE_ROWS = 10_000  # the scan-alone runs: small, so that the chunk's memory shows
TARGET = "y"
SEED = 0
TRAIN_BUDGET = 60  # seconds of streamed training
RESULT = Path(__file__).resolve().parent / "results" / "large_input.json"


def write_files(folder: Path, rows: int, small_rows: int) -> dict[str, Path]:
    """The table as CSV (and its first `small_rows` rows as another CSV) and as Parquet."""
    paths = {
        "csv": folder / "table.csv",
        "csv_small": folder / "small.csv",
        "parquet": folder / "table.parquet",
        "parquet_small": folder / "small.parquet",
    }
    starts = range(0, rows, BLOCK_ROWS)
    sizes = [min(BLOCK_ROWS, rows - start) for start in starts]
    seeds = [SEED + k for k in range(len(sizes))]
    with (
        open(paths["csv"], "wb") as big,
        open(paths["csv_small"], "wb") as small,
        ProcessPoolExecutor(2) as pool,
    ):
        blocks = pool.map(make_csv, sizes, seeds)
        for k, (start, block) in enumerate(zip(starts, blocks, strict=True)):
            if k:
                block = block[block.index(b"\n") + 1 :]  # the header once
            big.write(block)
            if start < small_rows:
                small.write(block)
    for name in ("csv", "csv_small"):
        # Types as the CSV reader infers them over the whole file: the usual typed Parquet file.
        table = pacsv.read_csv(paths[name], convert_options=convert_options("."))
        pq.write_table(table, paths[name.replace("csv", "parquet")])
        del table
    return paths


def measure(kind: str, path: str, chunk_rows: int, state: str) -> dict[str, float]:
    """One measurement in this (fresh) process; `state` is a folder for the fit's results."""
    torch.set_num_threads(1)
    baseline = memory_mb("VmRSS")
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    peaks: dict[str, float] = {}
    if kind in ("scan", "fit"):
        sample_rows = SAMPLE_ROWS if kind == "fit" else SCAN_SAMPLE_ROWS
        scan = scan_table(path, sample_rows=sample_rows, chunk_rows=chunk_rows, seed=SEED)
        seconds["scan"] = time.perf_counter() - start
        peaks["scan"] = memory_mb("VmHWM")
        rows = scan.rows
        if kind == "fit":
            schema = scan.infer_schema(target=TARGET)
            preprocessor = scan.fit_preprocessor(schema)
            seconds["schema_and_fit"] = time.perf_counter() - start - seconds["scan"]
            Path(state, "layout.json").write_text(json.dumps(scan.layout.to_dict()))
            Path(state, "preprocessor.json").write_text(json.dumps(preprocessor.to_dict()))
    elif kind == "encode":
        layout = TableLayout.from_dict(json.loads(Path(state, "layout.json").read_text()))
        preprocessor = Preprocessor.from_dict(
            json.loads(Path(state, "preprocessor.json").read_text())
        )
        start = time.perf_counter()
        encoded = encode_file(layout, preprocessor, chunk_rows=chunk_rows)
        rows = len(encoded)
        assert torch.isfinite(encoded.numerical).all()
    elif kind == "train":
        out = Path(state, "run")
        argv = ["train", path, "--target", TARGET, "--out", str(out), "--threads", "1"]
        argv += ["--no-control"]  # the figure is the model's own run; a control takes as long again
        if cli.main([*argv, "--time-budget", str(TRAIN_BUDGET)]) != 0:
            raise RuntimeError("mrta train failed")
        trained = Run.load(out)
        rows = sum(len(getattr(trained.splits, split)) for split in ("train", "validation", "test"))
        seconds["training"] = trained.training.elapsed
        scores = {
            name: {m: round(trained.metrics[name][m], 4) for m in ("accuracy", "roc_auc")}
            for name in ("model", "hgb", "trivial")
        }
    elif kind == "whole":
        preprocessor = Preprocessor.from_dict(
            json.loads(Path(state, "preprocessor.json").read_text())
        )
        start = time.perf_counter()
        options = ReadingOptions(max_bytes=2**40, max_rows=10**9)
        frame = read_table(path, options).frame
        seconds["read"] = time.perf_counter() - start
        peaks["read"] = memory_mb("VmHWM")
        encoded = preprocessor.transform(frame)
        rows = len(encoded)
        assert torch.isfinite(encoded.numerical).all()
    else:
        raise ValueError(f"unknown measurement {kind!r}")
    total = time.perf_counter() - start
    peak = memory_mb("VmHWM")
    extra = (
        {"test_metrics": scores, "test_rows": len(trained.splits.test)} if kind == "train" else {}
    )
    return {
        **extra,
        "rows": rows,
        "seconds": round(total, 2),
        "rows_per_second": round(rows / total),
        "peak_rss_mb": round(peak),
        "rss_before_mb": round(baseline),
        "added_mb": round(peak - baseline),
        **{f"seconds_{stage}": round(value, 2) for stage, value in seconds.items()},
        **{f"peak_rss_mb_after_{stage}": round(value) for stage, value in peaks.items()},
    }


def run(kind: str, path: Path, chunk_rows: int, state: Path) -> dict[str, float]:
    """`measure` in a fresh Python process (so that its peak memory is its own)."""
    command = [sys.executable, "-m", "benchmarks.large_input", "--measure", kind, str(path)]
    command += [str(chunk_rows), str(state)]
    root = Path(__file__).resolve().parents[1]
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=root).stdout
    result = json.loads(output.strip().splitlines()[-1])
    print(
        f"  {kind:<7} {path.name:<14} chunk {chunk_rows:>7,}: {result['seconds']:7.1f} s, "
        f"{result['rows_per_second']:>9,} rows/s, peak {result['peak_rss_mb']:>6,} MB",
        flush=True,
    )
    return result


def train_only(rows: int) -> None:
    """The streamed-training measurement alone, merged into the result file."""
    with tempfile.TemporaryDirectory() as folder:
        paths = write_files(Path(folder), rows, min(SMALL_ROWS, rows // 4))
        trained = run("train", paths["csv"], CHUNK_ROWS, Path(folder))
    print(json.dumps(trained, indent=2))
    if rows == ROWS:
        result = json.loads(RESULT.read_text())
        result["runs"]["csv"]["streamed_train"] = trained
        RESULT.write_text(json.dumps(result, indent=2) + "\n")


def main(rows: int, small_rows: int) -> None:
    """Generate the files, run every measurement, print a table and write the JSON result."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        folder_path = Path(folder)
        paths = write_files(folder_path, rows, small_rows)
        sizes = {name: round(path.stat().st_size / 1024**2, 1) for name, path in paths.items()}
        row_groups = pq.ParquetFile(paths["parquet"]).metadata
        print(f"{rows:,} rows x 30 columns: CSV {sizes['csv']} MB, Parquet {sizes['parquet']} MB")
        runs: dict[str, dict[str, object]] = {}
        for fmt in ("csv", "parquet"):
            state = folder_path / f"state_{fmt}"
            state.mkdir()
            big, small = paths[fmt], paths[f"{fmt}_small"]
            runs[fmt] = {
                "streaming_fit": run("fit", big, CHUNK_ROWS, state),
                "streaming_encode": run("encode", big, CHUNK_ROWS, state),
                "whole_file": run("whole", big, CHUNK_ROWS, state),
                "scan_by_chunk_rows": {
                    str(chunk): run("scan", big, chunk, state)
                    for chunk in (SMALL_CHUNK_ROWS, CHUNK_ROWS)
                },
                "scan_of_a_smaller_file": run("scan", small, CHUNK_ROWS, state),
            }
        runs["csv"]["streamed_train"] = run("train", paths["csv"], CHUNK_ROWS, folder_path)
    result = {
        "benchmark": "large_input",
        "what": (
            "seconds, rows per second and peak memory (VmHWM, each measurement in a fresh "
            "process) of reading and preprocessing a mixed table in chunks, against reading "
            "it whole"
        ),
        "rows": rows,
        "smaller_file_rows": small_rows,
        "columns": 30,
        "megabytes": sizes,
        "parquet_row_groups": row_groups.num_row_groups,
        "chunk_rows": CHUNK_ROWS,
        "sample_rows": SAMPLE_ROWS,
        "scan_alone_sample_rows": SCAN_SAMPLE_ROWS,
        "torch_threads": 1,
        "runs": runs,
        "total_seconds": round(time.perf_counter() - started),
        "caveat": (
            "measured on a shared 2-core machine with other work running: timings are "
            "approximate (rerun on a quiet machine before publishing); memory is steadier"
        ),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "pandas": pd.__version__,
            "pyarrow": pyarrow.__version__,
            "scikit_learn": sklearn.__version__,
            "numpy": np.__version__,
        },
    }
    if rows == ROWS:
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)


def print_table(result: dict) -> None:
    """The README's table: peak memory of the process, and what the work added to it."""
    print()
    print("| format | what | seconds | rows/s | peak memory | added by the work |")
    print("|---|---|---:|---:|---:|---:|")
    for fmt, runs in result["runs"].items():
        alone = f"scan alone ({result['scan_alone_sample_rows']:,}-row sample)"
        smaller = f"{alone}, a {result['smaller_file_rows']:,}-row file"
        rows = [
            ("scan, schema and fit on a 200,000-row sample", runs["streaming_fit"]),
            ("encode every row, chunk by chunk", runs["streaming_encode"]),
            ("whole file: read_table, then encode", runs["whole_file"]),
            *(
                (f"{alone}, chunks of {int(chunk):,} rows", value)
                for chunk, value in runs["scan_by_chunk_rows"].items()
            ),
            (smaller, runs["scan_of_a_smaller_file"]),
        ]
        if "streamed_train" in runs:
            rows.append((f"mrta train, {TRAIN_BUDGET} s budget, streamed", runs["streamed_train"]))
        for what, value in rows:
            print(
                f"| {fmt} | {what} | {value['seconds']:.1f} | {value['rows_per_second']:,} | "
                f"{value['peak_rss_mb']:,} MB | {value['added_mb']:,} MB |"
            )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        _, _, kind, path, chunk_rows, state = sys.argv
        print(json.dumps(measure(kind, path, int(chunk_rows), state)))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--rows", type=int, default=ROWS, help="a smaller run writes no file")
        parser.add_argument("--part", choices=("all", "train"), default="all")
        arguments = parser.parse_args()
        if arguments.part == "train":
            train_only(arguments.rows)
        else:
            main(arguments.rows, min(SMALL_ROWS, arguments.rows // 4))
