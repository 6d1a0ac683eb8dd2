"""Do the four column importances find the planted columns, and do their rankings beat random
deletion orders? On real labels, and on the same labels shuffled.

Tables: ``synthetic_binary.csv`` and ``synthetic_regression.csv`` (planted columns as in
:data:`benchmarks.planted.PLANTED`, rules in ``sample_data/README.md``), and ``interaction``,
generated here (:func:`interaction_table`, 6,000 rows, numpy seed :data:`INTERACTION_SEED`): a
pure interaction, ``yes`` when ``x * (+1 if flip == "up" else -1) + 0.3 * noise > 0``, with
``x`` ~ N(0, 1) and ``flip`` up/down equiprobable (the planted columns: alone, neither tells
anything), plus three numerical noise columns (N(0, 1), one 10 % missing) and three categorical
ones (3, 4 and 5 levels, uniform). Each table also as its shuffled twin
(:func:`benchmarks.verdict.shuffled_twin`: the target permuted by a fixed seed).

Per table, labels (real, shuffled) and seed 0..N-1, a run is trained with the default model and
training config (``TrainConfig(seed=s, threads=1)``: the 30 s time budget), racing its challenger
as ``mrta train`` does by default (``--no-race``: the defaults alone; :mod:`mrta.training.race`;
the setting kept is recorded), without the control model (the deletion check does not use it),
then :func:`mrta.pipelines.explain.explain` and :func:`mrta.pipelines.explain.run_checks`
(``seed=s``). Measured per run:

- the model's test metric (ROC AUC for the binary tables, R² for the regression table);
- per method (``permutation``, ``rollout``, ``value_norm``, ``relevance``, computed on the first
  half of at most 2,000 test rows): the rank (1 = most important, ties share the best rank,
  :func:`benchmarks.planted.rank`) of each planted column among all input columns, the best
  rank of a noise column, and whether the planted columns are the top k (k = how many are
  planted: every planted column scores strictly above every noise column);
- per method, on the second half: the deletion area against 20 random orders, its 95 %
  bootstrap interval (``low``, ``high``) and ``beats_random`` (``low > 0``), and the random
  orders' own spread (5th and 95th percentiles of their areas);
- the seconds the run took (training, explanation and checks).

Run ``python -m benchmarks.faithfulness [--seeds N] [--tables NAME ...] [--quick]`` (defaults:
3 seeds, all three tables; ``--quick``: 3 s time budget and 1 seed, a smoke run). About 80 s per
run on 2 cores, 18 runs, so about 25 minutes. It writes ``benchmarks/results/faithfulness.json``
and prints the README's table and a verdict per "done when" criterion.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from benchmarks.planted import PLANTED, rank
from benchmarks.verdict import shuffled_twin
from mrta.analysis.explanation import Explanation
from mrta.analysis.importance import METHODS
from mrta.config import ModelConfig, TrainConfig
from mrta.data.read import read_table
from mrta.data.samples import SAMPLE_TABLES
from mrta.pipelines.explain import CHECK_ROWS, explain, run_checks
from mrta.pipelines.train_run import train_run

RESULT = Path(__file__).resolve().parent / "results" / "faithfulness.json"
TABLES = ("synthetic_binary", "synthetic_regression", "interaction")
LABELS = ("real", "shuffled")
INTERACTION_ROWS = 6000
INTERACTION_SEED = 20240611
QUICK_BUDGET = 3.0


@dataclass(frozen=True)
class Table:
    """A benchmark table: its rows, target, planted columns and the metric reported."""

    name: str
    frame: pd.DataFrame
    target: str
    planted: tuple[str, ...]
    metric: str


def interaction_table(rows: int = INTERACTION_ROWS, seed: int = INTERACTION_SEED) -> pd.DataFrame:
    """The pure-interaction table of the module docstring: ``flip`` flips ``x``'s effect."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    flip = rng.choice(["up", "down"], size=rows)
    sign = np.where(flip == "up", 1.0, -1.0)
    target = np.where(x * sign + 0.3 * rng.normal(size=rows) > 0, "yes", "no")
    frame = pd.DataFrame({"x": x, "flip": flip})
    for i in range(1, 4):
        frame[f"noise_num_{i}"] = rng.normal(size=rows)
    frame.loc[rng.random(rows) < 0.1, "noise_num_3"] = np.nan
    for i, levels in enumerate((3, 4, 5), start=1):
        frame[f"noise_cat_{i}"] = rng.choice([f"level_{j}" for j in range(levels)], size=rows)
    frame["y"] = target
    return frame


def load(name: str) -> Table:
    """A table of :data:`TABLES` with its target, planted columns and metric."""
    if name == "interaction":
        return Table(name, interaction_table(), "y", ("x", "flip"), "roc_auc")
    planted = PLANTED[name]
    sample = next(t for t in SAMPLE_TABLES if t.file == planted.file)
    metric = "r2" if sample.task == "regression" else "roc_auc"
    frame = read_table(sample.path).frame
    return Table(name, frame, sample.target, tuple(planted.columns), metric)


def method_record(explanation: Explanation, method: str, planted: tuple[str, ...]) -> dict:
    """One method's planted ranks, best noise rank, top-k flag and deletion area."""
    assert explanation.importance is not None and explanation.faithfulness is not None
    values = explanation.importance.methods[method].mean
    columns = list(values)
    ranks = {column: rank(values, column, columns) for column in planted}
    best_noise = min(rank(values, c, columns) for c in columns if c not in planted)
    deletion = explanation.faithfulness.methods[method]
    return {
        "ranks": ranks,
        "best_noise_rank": best_noise,
        "top_k": best_noise > len(planted),
        "area": deletion.area,
        "low": deletion.low,
        "high": deletion.high,
        "beats_random": deletion.beats_random,
    }


def measure(
    table: Table, frame: pd.DataFrame, seed: int, budget: float | None, race: bool = True
) -> dict:
    """Train (defaults, one thread, no control; with `race`, racing the challenger as ``mrta
    train`` does by default), explain and check one run; its record."""
    start = time.perf_counter()
    config = replace(TrainConfig(), seed=seed, threads=1)
    if budget is not None:
        config = replace(config, time_budget=budget)
    run = train_run(frame, table.target, train_config=config, control=False, race=race)
    explanation = run_checks(run, explain(run), seed=seed)
    assert explanation.faithfulness is not None
    return {
        "seed": seed,
        "metric": run.metrics["model"][table.metric],
        "epochs": run.training.epochs,
        "stop_reason": run.training.stop_reason,
        "kept": None if run.race is None else run.race.winner.name,
        "columns": len(explanation.importance.methods["permutation"].mean),
        "methods": {m: method_record(explanation, m, table.planted) for m in METHODS},
        "random": {
            "low": explanation.faithfulness.random.low,
            "high": explanation.faithfulness.random.high,
        },
        "curve_rows": explanation.faithfulness.rows,
        "seconds": round(time.perf_counter() - start, 1),
    }


def measure_table(
    table: Table, seeds: int, budget: float | None, race: bool = True
) -> dict[str, list[dict]]:
    """Every seed's record on the real and on the shuffled labels."""
    frames = {"real": table.frame, "shuffled": shuffled_twin(table.frame, table.target)}
    out: dict[str, list[dict]] = {}
    for label in LABELS:
        out[label] = []
        for seed in range(seeds):
            record = measure(table, frames[label], seed, budget, race)
            out[label].append(record)
            beats = [m for m, r in record["methods"].items() if r["beats_random"]]
            print(
                f"{table.name} ({label}) seed {seed}: {table.metric} {record['metric']:.3f}, "
                f"permutation top-k {record['methods']['permutation']['top_k']}, "
                f"beats random: {', '.join(beats) or 'none'}, kept {record['kept']}, "
                f"{record['seconds']:.0f} s",
                flush=True,
            )
    return out


def count(runs: list[dict], method: str, key: str) -> int:
    """How many runs have ``key`` true for ``method``."""
    return sum(bool(r["methods"][method][key]) for r in runs)


def span(values: list[float], digits: int = 4) -> str:
    """``0.0310 (0.0120 to 0.0450)``: mean, min and max; one value alone."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    mean, low, high = np.mean(values), min(values), max(values)
    return f"{mean:.{digits}f} ({low:.{digits}f} to {high:.{digits}f})"


def markdown(results: dict[str, Any], planted: dict[str, tuple[str, ...]]) -> str:
    """The README's table: per table, labels and method, ranks, top k, area and wins."""
    lines = [
        "| table | labels | test metric | method | planted ranks per seed "
        "| planted = top k | deletion area | random orders' areas, 5–95 % | beats random |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, by_label in results.items():
        for label, runs in by_label.items():
            n = len(runs)
            metric = span([r["metric"] for r in runs], 3)
            spread = (
                f"{min(r['random']['low'] for r in runs):.4f} to "
                f"{max(r['random']['high'] for r in runs):.4f}"
            )
            for method in METHODS:
                ranks = " / ".join(
                    ", ".join(str(r["methods"][method]["ranks"][c]) for c in planted[name])
                    for r in runs
                )
                area = span([r["methods"][method]["area"] for r in runs])
                lines.append(
                    f"| `{name}` | {label} | {metric} | {method} | {ranks} "
                    f"| {count(runs, method, 'top_k')} of {n} | {area} | {spread} "
                    f"| {count(runs, method, 'beats_random')} of {n} |"
                )
    columns = "; ".join(f"`{name}`: {', '.join(cols)}" for name, cols in planted.items())
    return "\n".join([*lines, "", f"Planted columns, in the order of the ranks: {columns}."])


def criteria(results: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """The issue's "done when", per criterion: (criterion, holds, the numbers)."""
    first, second, third = [], [], []
    for name, by_label in results.items():
        real, shuffled = by_label["real"], by_label["shuffled"]
        n = len(real)
        top = count(real, "permutation", "top_k")
        first.append((top == n, f"{name} {top} of {n}"))
        wins = sum(
            r["methods"]["value_norm"]["beats_random"] or r["methods"]["relevance"]["beats_random"]
            for r in real
        )
        second.append((wins == n, f"{name} {wins} of {n}"))
        for method in METHODS:
            k = count(shuffled, method, "beats_random")
            third.append((k <= 1, f"{name} {method} {k} of {len(shuffled)}"))
    return [
        (
            "permutation ranks the planted columns first on every seed of each real table",
            all(ok for ok, _ in first),
            "; ".join(text for _, text in first),
        ),
        (
            "value_norm or relevance beats random deletion on every seed of each real table",
            all(ok for ok, _ in second),
            "; ".join(text for _, text in second),
        ),
        (
            "on the shuffled copies no method beats random in more than one seed",
            all(ok for ok, _ in third),
            "; ".join(text for ok, text in third if not ok) or "every method in at most 1",
        ),
    ]


def main() -> str:
    """Run, write the result, print the README table and the verdicts; return the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0 to N-1 (default 3)")
    parser.add_argument("--tables", nargs="+", choices=TABLES, default=list(TABLES))
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 s budget, 1 seed")
    parser.add_argument(
        "--no-race", dest="race", action="store_false", help="train the defaults alone"
    )
    args = parser.parse_args()
    seeds = args.seeds if args.seeds is not None else (1 if args.quick else 3)
    budget = QUICK_BUDGET if args.quick else None
    torch.set_num_threads(1)
    start = time.perf_counter()
    results, planted, metrics = {}, {}, {}
    for name in args.tables:
        table = load(name)
        planted[name], metrics[name] = table.planted, table.metric
        results[name] = measure_table(table, seeds, budget, args.race)
    table_md = markdown(results, planted)
    verdicts = criteria(results)
    command = f"python -m benchmarks.faithfulness --seeds {seeds}" + (
        " --quick" if args.quick else ""
    )
    if args.tables != list(TABLES):
        command += " --tables " + " ".join(args.tables)
    out = {
        "benchmark": "faithfulness",
        "command": command,
        "what": "ranks of the planted columns under each importance method and each method's "
        "deletion area against random orders, on real and on shuffled labels",
        "model_config": ModelConfig().to_dict(),
        "train_config": replace(TrainConfig(), threads=1, time_budget=budget or 30.0).to_dict(),
        "race": args.race,
        "check_rows": CHECK_ROWS,
        "planted": planted,
        "metric": metrics,
        "tables": results,
        "criteria": [{"criterion": c, "holds": ok, "numbers": text} for c, ok, text in verdicts],
        "total_seconds": round(time.perf_counter() - start, 1),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(out, indent=1) + "\n")
    print()
    print(table_md)
    print()
    for criterion, ok, text in verdicts:
        print(f"- {'holds' if ok else 'does not hold'}: {criterion} ({text})")
    print(f"\n{out['total_seconds']:.0f} s in all; wrote {RESULT}")
    return table_md


if __name__ == "__main__":
    main()
