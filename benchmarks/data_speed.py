"""Time the data pipeline on a 100,000-row, 30-column mixed CSV, stage by stage.

Run `python -m benchmarks.data_speed`; it prints a table and writes
`benchmarks/results/data_speed.json`. The CSV is generated in memory from a fixed seed: numbers
with missing values, numbers written as text ("$1,234.50", "45%"), yes/no, codes, categories up
to 5,000 levels, dates, an identifier and a binary target.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow
import sklearn
import torch

from mrta.data.preprocessing import Preprocessor
from mrta.data.read import read_table
from mrta.data.schema import infer_schema
from mrta.data.splits import make_splits

ROWS = 100_000
REPEATS = 3
SEED = 0
RESULT = Path(__file__).resolve().parent / "results" / "data_speed.json"


def make_csv(rows: int = ROWS, seed: int = SEED) -> bytes:
    """A mixed-type CSV of 30 columns (29 and the target `y`)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {"row_id": np.arange(rows)}
    for j in range(12):
        values = rng.normal(j, 1 + j, rows)
        values[rng.random(rows) < 0.05 * (j % 3)] = np.nan  # a third of them have none missing
        columns[f"num_{j}"] = values.round(4)
    for j in range(3):
        columns[f"count_{j}"] = rng.poisson(20 + 10 * j, rows)
    columns["price"] = [f"${v:,.2f}" for v in rng.lognormal(6, 1, rows)]
    columns["share"] = [f"{v}%" for v in rng.integers(0, 101, rows)]
    columns["rating"] = rng.integers(1, 6, rows)
    for j, levels in enumerate((3, 12, 60, 400)):
        columns[f"cat_{j}"] = rng.choice([f"level {k}" for k in range(levels)], rows)
    columns["zip_code"] = rng.choice([f"Z{k:04d}" for k in range(5000)], rows)
    cities = rng.choice(["Paris", "Oslo", "Rome", "Lima"], rows).astype(object)
    cities[rng.random(rows) < 0.1] = None
    columns["city"] = cities
    columns["member"] = rng.choice(["yes", "no"], rows)
    columns["newsletter"] = rng.choice(["Y", "N"], rows)
    days = rng.integers(0, 3 * 365, rows)
    columns["signup"] = (pd.Timestamp("2021-01-01") + pd.to_timedelta(days, unit="D")).strftime(
        "%Y-%m-%d"
    )
    columns["note"] = [f"customer said {k}" for k in rng.integers(0, rows * 10, rows)]
    logit = columns["num_0"] - 0.5 * (columns["rating"] - 3)
    columns["y"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-np.nan_to_num(logit))), "yes", "no")
    frame = pd.DataFrame(columns)
    assert frame.shape[1] == 30
    return frame.to_csv(index=False).encode()


def time_pipeline(data: bytes) -> dict[str, float]:
    """Seconds per stage for one run of the pipeline over `data`."""
    seconds = {}
    start = time.perf_counter()
    table = read_table(data)
    seconds["read"] = time.perf_counter() - start
    start = time.perf_counter()
    schema = infer_schema(table.frame, target="y")
    seconds["schema"] = time.perf_counter() - start
    start = time.perf_counter()
    splits = make_splits(table.frame, schema)
    seconds["split"] = time.perf_counter() - start
    start = time.perf_counter()
    preprocessor = Preprocessor.fit(table.frame.iloc[list(splits.train)], schema)
    seconds["fit"] = time.perf_counter() - start
    start = time.perf_counter()
    encoded = preprocessor.transform(table.frame.iloc[list(splits.train + splits.validation)])
    seconds["transform"] = time.perf_counter() - start
    assert torch.isfinite(encoded.numerical).all()
    start = time.perf_counter()
    Preprocessor.from_dict(json.loads(json.dumps(preprocessor.to_dict())))
    seconds["json_round_trip"] = time.perf_counter() - start
    seconds["total"] = sum(seconds.values())
    return seconds


def main() -> None:
    """Run the benchmark, print a table and write the JSON result."""
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    data = make_csv()
    runs = [time_pipeline(data) for _ in range(REPEATS)]
    median = {stage: statistics.median(run[stage] for run in runs) for stage in runs[0]}
    schema = infer_schema(read_table(data).frame, target="y")
    result = {
        "benchmark": "data_speed",
        "what": "median seconds of each stage over repeated runs on one generated CSV",
        "rows": ROWS,
        "columns": 30,
        "csv_megabytes": round(len(data) / 1024**2, 2),
        "repeats": REPEATS,
        "seconds_median": {stage: round(value, 4) for stage, value in median.items()},
        "tokens": {
            "numerical": len(schema.numerical_tokens),
            "categorical": len(schema.categorical_tokens),
            "ignored": [spec.name for spec in schema.columns if spec.role == "ignored"],
        },
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "pandas": pd.__version__,
            "pyarrow": pyarrow.__version__,
            "scikit_learn": sklearn.__version__,
            "numpy": np.__version__,
        },
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{ROWS:,} rows x 30 columns, {result['csv_megabytes']} MB CSV, median of {REPEATS}")
    for stage, value in median.items():
        print(f"  {stage:<16} {value:8.3f} s")


if __name__ == "__main__":
    main()
