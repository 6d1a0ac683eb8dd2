"""How often the verdict says "worth reading": on real labels, and on the same labels shuffled.

For ``synthetic_binary.csv`` and ``synthetic_regression.csv`` (their planted rules are in
``sample_data/README.md``) and a "shuffled twin" of each (the same table with its target column
permuted by a fixed seed, so that nothing can be learned), and each seed, a run is trained as
``mrta train`` trains it (default model, the control model on, ``--time-budget`` as given, one
thread) and judged by :func:`mrta.pipelines.explain.run_verdict`: the model against chance and
against its control by a paired bootstrap of the test split (1,000 resamples; worth reading
when the 5th percentile of both differences is above zero).

Run ``python -m benchmarks.verdict [--seeds N] [--time-budget S]`` (defaults 3 and 10; about 20 s
per run on 2 cores, so about 4 minutes); it writes ``benchmarks/results/verdict.json`` and
prints the README's table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrta.config import TrainConfig
from mrta.data.read import read_table
from mrta.data.samples import SAMPLE_TABLES
from mrta.pipelines.explain import run_verdict
from mrta.pipelines.train_run import train_run

RESULT = Path(__file__).resolve().parent / "results" / "verdict.json"
TABLES = ("synthetic_binary.csv", "synthetic_regression.csv")
SHUFFLE_SEED = 12345  # the twin's permutation of the target column


def shuffled_twin(frame, target: str):
    """The table with its target column permuted: the same columns, no signal to learn."""
    twin = frame.copy()
    order = np.random.default_rng(SHUFFLE_SEED).permutation(len(frame))
    twin[target] = frame[target].to_numpy()[order]
    return twin


def one_run(frame, target: str, seed: int, budget: float) -> dict[str, Any]:
    start = time.perf_counter()
    config = replace(TrainConfig(), seed=seed, time_budget=budget, threads=1)
    run = train_run(frame, target, train_config=config, control=True)
    verdict, note = run_verdict(run)
    return {
        "seed": seed,
        "worth_reading": None if verdict is None else verdict.worth_reading,
        "verdict": None if verdict is None else verdict.to_dict(),
        "note": note,
        "model_steps": run.training.steps,
        "control_steps": None if run.control is None else run.control.steps,
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--time-budget", type=float, default=10.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    samples = {table.file: table for table in SAMPLE_TABLES}
    results: dict[str, Any] = {}
    for name in TABLES:
        sample = samples[name]
        frame = read_table(sample.path).frame
        for label, table in (("real", frame), ("shuffled", shuffled_twin(frame, sample.target))):
            runs = [
                one_run(table, sample.target, seed, args.time_budget) for seed in range(args.seeds)
            ]
            yes = sum(1 for r in runs if r["worth_reading"])
            results[f"{name} ({label} labels)"] = {
                "worth_reading": yes,
                "of": len(runs),
                "runs": runs,
            }
            print(f"{name} ({label} labels): worth reading in {yes} of {len(runs)}", flush=True)
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(
        json.dumps(
            {
                "command": f"python -m benchmarks.verdict --seeds {args.seeds} "
                f"--time-budget {args.time_budget:g}",
                "results": results,
                "machine": {"platform": platform.platform(), "torch": torch.__version__},
            },
            indent=1,
        )
        + "\n"
    )
    print("\n| table | labels | worth reading |\n|---|---|---|")
    for key, value in results.items():
        table, labels = key.split(" (")
        print(f"| `{table}` | {labels[:-1]} | {value['worth_reading']} of {value['of']} |")


if __name__ == "__main__":
    main()
