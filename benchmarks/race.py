"""A race of two settings within the budget: what a run that chooses its own settings on its
validation rows would score (issue 20; measured here, not yet a setting of the library).

The quality benchmark (:mod:`benchmarks.quality`) found that no fixed default reaches gradient
boosting on every table: ``diamonds`` wants σ = 1, twice the rate and no dropout, which lose on
every other table. Here the two settings race: on each table and seed 0–2, ``plr, batch by
rows`` (the defaults) and ``plr σ=1, rate 2e-3, no dropout`` train at the same time, each in a
process of its own on one thread, for the default budget (30 s), so that the race costs the time
of one run on 2 cores; the one with the higher validation score (the quality benchmark's, in the
target's units) is kept. Test scores never choose. Reported per table: the kept model's test
score (mean ± SD over the seeds), which setting won each seed, the gap to HistGradientBoosting
and its 90 % paired bootstrap interval, and each racer's own scores on one thread.

Run ``python -m benchmarks.race [--seeds N] [--tables ...]`` (about 35 s per table and seed, the
two racers at once, fewer where a table stops early: about 9 minutes); it writes
``benchmarks/results/race.json`` and prints the README's table.
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
from benchmarks.quality import CANDIDATES, RESAMPLES, TABLES, baseline, interval, measure
from mrta.data.read import read_table
from mrta.pipelines.train_run import RunPlan

RESULT = Path(__file__).resolve().parent / "results" / "race.json"
RACERS = ("plr, batch by rows", "plr σ=1, rate 2e-3, no dropout")


def racer(name: str, csv: Path, candidate: str, seed: int, with_baseline: bool) -> dict:
    """One racer's training on one thread (in a worker process): its scores and test
    predictions, and gradient boosting's when `with_baseline`."""
    table = TABLES[name]
    frame = read_table(csv).frame
    train_rows = len(RunPlan.prepare(frame, table.target).train_rows)
    settings = CANDIDATES[candidate]
    one_thread = replace(settings, train={**settings.train, "threads": 1})
    row = measure(table, frame, candidate, seed, train_rows, settings=one_thread)
    run = row.pop("_run")
    if with_baseline:
        row["_hgb"] = baseline(run, row["metric"])
    return row


def race(rows: list[dict]) -> dict:
    """The racer with the higher validation score (the first on a tie)."""
    return max(rows, key=lambda row: row["validation"])


def summarise(name: str, kept: list[dict], racers: list[dict], hgb: dict) -> dict:
    """One table: the kept models' scores, the winners, the gap to HGB and its interval."""
    test = np.array([r["test"] for r in kept])
    metric = kept[0]["metric"]
    return {
        "table": name,
        "metric": metric,
        "seeds": len(kept),
        "winners": [r["candidate"] for r in kept],
        "test_mean": float(test.mean()),
        "test_sd": float(test.std(ddof=1)) if len(kept) > 1 else 0.0,
        "hgb": hgb["test"],
        "gap_to_hgb": float(test.mean() - hgb["test"]),
        "interval_vs_hgb": interval(
            kept[0]["_targets"], [r["_predictions"] for r in kept], hgb["predictions"], metric
        ),
        "racers": {
            candidate: {
                "validation_mean": float(np.mean([r["validation"] for r in mine])),
                "test_mean": float(np.mean([r["test"] for r in mine])),
                "steps_mean": float(np.mean([r["steps"] for r in mine])),
            }
            for candidate in RACERS
            for mine in [[r for r in racers if r["candidate"] == candidate]]
        },
    }


def markdown(summary: list[dict]) -> str:
    lines = [
        "| table | metric | kept (mean ± SD) | HGB test | gap | 90 % interval of the gap | "
        "won by σ=1, no dropout | the defaults alone, on one thread |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for s in summary:
        low, high = s["interval_vs_hgb"]
        won = sum(w == RACERS[1] for w in s["winners"])
        alone = s["racers"][RACERS[0]]["test_mean"]
        lines.append(
            f"| {s['table']} | {s['metric']} | {s['test_mean']:.4f} ± {s['test_sd']:.4f} | "
            f"{s['hgb']:.4f} | {s['gap_to_hgb']:+.4f} | [{low:+.4f}, {high:+.4f}] | "
            f"{won} of {s['seeds']} | {alone:.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    started, load_before = time.perf_counter(), os.getloadavg()
    summary, runs = [], []
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as folder, ProcessPoolExecutor(2, spawn) as pool:
        for name in args.tables:
            csv = TABLES[name].csv(Path(folder))
            kept, racers, hgb = [], [], None
            for seed in range(args.seeds):
                both = list(
                    pool.map(
                        racer,
                        [name] * 2,
                        [csv] * 2,
                        RACERS,
                        [seed] * 2,
                        [seed == 0, False],
                    )
                )
                hgb = hgb or both[0].pop("_hgb")
                racers += both
                kept.append(race(both))
                print(
                    f"{name} seed {seed}: "
                    + ", ".join(f"{r['candidate']} {r['validation']:.4f}" for r in both)
                    + f"; kept {kept[-1]['candidate']} (test {kept[-1]['test']:.4f})",
                    flush=True,
                )
            summary.append(summarise(name, kept, racers, hgb))
            runs += [{k: v for k, v in r.items() if not k.startswith("_")} for r in racers]
    seconds = round(time.perf_counter() - started, 1)
    result = {
        "benchmark": "race",
        "what": __doc__.split("\n\n")[0].replace("\n", " "),
        "racers": list(RACERS),
        "bootstrap_resamples": RESAMPLES,
        "runs": runs,
        "summary": summary,
        "total_seconds": seconds,
        "machine": machine(load_before),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(summary))
    print(f"\n{seconds:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
