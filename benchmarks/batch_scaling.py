"""How large a batch uses a 30 s budget best, by the size of the table: steps per second,
examples per second and the validation score for batches of 128, 256 and 512 rows, the learning
rate scaled with the square root of the batch (1e-3 at 256).

Three tables of 10,000 rows or more (``loans``, ``synthetic_regression``, ``synthetic_binary``,
and ``ggplot2::diamonds`` with 53,940), one seed each, periodic numerical embeddings, trained as
:mod:`benchmarks.quality` trains (its tables, split and measure). Validation scores only: this
probe picks the rule that :mod:`benchmarks.quality` then checks as a candidate over every table
and three seeds.

Run ``python -m benchmarks.batch_scaling`` (about 7 minutes on 2 cores); it writes
``benchmarks/results/batch_scaling.json`` and prints a table.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from benchmarks.quality import TABLES, Candidate, measure
from mrta.data.read import read_table

RESULT = Path(__file__).resolve().parent / "results" / "batch_scaling.json"
LARGE = ("loans", "synthetic_regression", "synthetic_binary", "diamonds")
BATCHES = (128, 256, 512)


def settings(batch: int) -> Candidate:
    return Candidate(
        {"numerical_embedding": "plr"},
        {"batch_size": batch, "learning_rate": 1e-3 * (batch / 256) ** 0.5},
    )


def main() -> None:
    started, load_before = time.perf_counter(), os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in LARGE:
            table = TABLES[name]
            frame = read_table(table.csv(Path(folder))).frame
            for batch in BATCHES:
                row = measure(table, frame, f"batch {batch}", 0, settings(batch))
                row = {k: v for k, v in row.items() if not k.startswith("_")}
                row["rows"] = len(frame)
                row["examples_per_second"] = row["steps_per_second"] * row["batch_size"]
                rows.append(row)
                print(
                    f"{name} batch {batch}: validation {row['validation']:.4f}, "
                    f"{row['steps']} steps ({row['steps_per_second']:.1f}/s, "
                    f"{row['examples_per_second']:.0f} examples/s), {row['epochs']} epochs",
                    flush=True,
                )
    result = {
        "benchmark": "batch_scaling",
        "what": __doc__.split("\n\n")[0].replace("\n", " "),
        "runs": rows,
        "total_seconds": round(time.perf_counter() - started, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    RESULT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{result['total_seconds']:.0f} s in all; wrote {RESULT}")


if __name__ == "__main__":
    main()
