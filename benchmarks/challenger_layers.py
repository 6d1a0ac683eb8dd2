"""The race's challenger with the two attention layers of the defaults or with one, on
``diamonds``, the table where the race keeps it (issue 20).

On ``diamonds`` (37,758 training rows) the kept challenger's test R² followed the steps one core
gave it in 30 s. So this benchmark trains the library's challenger
(:func:`mrta.training.race.challenger` of the defaults) as the race does, on one thread for the
default budget, two trainings at once on the 2 cores, with ``num_layers`` 2 (the challenger
before) and 1 (the challenger now), on seeds 0–5 of the quality benchmark's split
(:mod:`benchmarks.quality`). Validation scores chose; test scores are beside.

Run ``python -m benchmarks.challenger_layers [--seeds N]`` (about 4 minutes for 6 seeds); it
writes ``benchmarks/results/challenger_layers.json`` and prints the README's table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.machine import machine
from benchmarks.quality import TABLES, Candidate, measure
from mrta.config import ModelConfig, TrainConfig
from mrta.data.read import read_table
from mrta.pipelines.train_run import RunPlan
from mrta.training.race import challenger

RESULT = Path(__file__).resolve().parent / "results" / "challenger_layers.json"
TABLE = "diamonds"
LAYERS = (2, 1)  # the challenger before, and now
KEPT = ("table", "seed", "validation", "test", "steps", "epochs", "batch_size", "learning_rate")


def settings(layers: int) -> Candidate:
    """The library's challenger of the defaults with `layers` attention layers, on one thread
    as a racer trains."""
    model, train = challenger(ModelConfig(), TrainConfig())
    train = {k: v for k, v in replace(train, threads=1).to_dict().items() if k != "seed"}
    return Candidate(replace(model, num_layers=layers).to_dict(), train)


def train_one(path: str, train_rows: int, seed: int, layers: int) -> dict:
    """One training of the challenger with `layers` layers on the table at `path` (of
    `train_rows` training rows in the split)."""
    frame = read_table(Path(path)).frame
    row = measure(TABLES[TABLE], frame, f"{layers} layers", seed, train_rows, settings(layers))
    return {"layers": layers, **{k: row[k] for k in KEPT}}


def summarise(rows: list[dict]) -> list[dict]:
    """Per number of layers: mean and SD of the validation and test R², and the mean steps."""
    out = []
    for layers in LAYERS:
        mine = [r for r in rows if r["layers"] == layers]
        entry = {"layers": layers, "seeds": len(mine)}
        for key in ("validation", "test", "steps"):
            values = np.array([r[key] for r in mine], dtype=float)
            entry[f"{key}_mean"] = float(values.mean())
            entry[f"{key}_sd"] = float(values.std(ddof=1)) if len(mine) > 1 else 0.0
        out.append(entry)
    return out


def markdown(summary: list[dict]) -> str:
    lines = [
        "| challenger's layers | validation R² (mean ± SD) | test R² (mean ± SD) | steps |",
        "|---:|---:|---:|---:|",
    ]
    for s in summary:
        lines.append(
            f"| {s['layers']} | {s['validation_mean']:.4f} ± {s['validation_sd']:.4f} | "
            f"{s['test_mean']:.4f} ± {s['test_sd']:.4f} | {s['steps_mean']:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=6, help="seeds 0 to N - 1 (default 6)")
    args = parser.parse_args()
    started, load_before = time.perf_counter(), os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = str(TABLES[TABLE].csv(Path(folder)))
        frame = read_table(Path(path)).frame
        train_rows = len(RunPlan.prepare(frame, TABLES[TABLE].target).train_rows)
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=len(LAYERS), mp_context=spawn) as pool:
            for seed in range(args.seeds):  # both settings at once, as in a race
                pair = [pool.submit(train_one, path, train_rows, seed, layers) for layers in LAYERS]
                for future in pair:
                    row = future.result()
                    rows.append(row)
                    print(
                        f"seed {seed}, layers {row['layers']}: validation {row['validation']:.4f}"
                        f", test {row['test']:.4f}, {row['steps']} steps",
                        flush=True,
                    )
    summary = summarise(rows)
    result = {
        "benchmark": "challenger_layers",
        "what": __doc__.split("\n\n")[0].replace("\n", " "),
        "runs": rows,
        "summary": summary,
        "total_seconds": round(time.perf_counter() - started, 1),
        "machine": machine(load_before),
    }
    RESULT.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(summary))
    print(f"{result['total_seconds']:.0f} s; wrote {RESULT}")


if __name__ == "__main__":
    main()
