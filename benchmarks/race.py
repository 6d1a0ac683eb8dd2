"""The race of two settings, as ``mrta train`` runs it by default: what the kept models score
against gradient boosting (issue 20).

The quality benchmark (:mod:`benchmarks.quality`) found that no fixed default reaches gradient
boosting on every table: ``diamonds`` wants σ = 1, twice the rate and no dropout, which lose on
every other table. So a run races the two (:mod:`mrta.training.race`): on each table and seed
(0–2 by default; the README's table: ``--seeds 6``), ``train_run(race=True)`` trains the
defaults (``plr, batch by rows``, with column gates at ``--gate-penalty``, default the
library's) and the challenger (:func:`mrta.training.race.challenger`: one attention layer, σ =
1, no dropout, no gates, twice the rate) at the same time, each in a process of its own on one
core, for the default budget (30 s), and keeps the challenger only where its validation lead (in
the target's units) is beyond the validation rows' noise (:func:`mrta.training.race.choose`),
else the defaults. Test scores never choose. Reported per table: the kept model's test score
(mean ± SD over the seeds), which setting won each seed, the gap to HistGradientBoosting and its
90 % paired bootstrap interval, and each racer's steps and validation score.

Run ``python -m benchmarks.race [--seeds N] [--first-seed K] [--tables ...] [--gate-penalty C]
[--out FILE]`` (seeds K to K + N - 1, default 0–2; about 40 s per table and seed, the two
racers at once, fewer where a table stops early: about 11 minutes for 3 seeds); it writes
``benchmarks/results/race_gates_<C>_defaults_only.json`` (the library's default C = 0.003), or
``race.json`` with ``--gate-penalty 0`` (or ``--out``), and prints the README's table.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.machine import machine
from benchmarks.quality import CANDIDATES, RESAMPLES, TABLES, baseline, interval, measure
from mrta.config import ModelConfig
from mrta.data.read import read_table
from mrta.pipelines.train_run import RunPlan
from mrta.training.race import AS_ASKED, CHALLENGER

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULTS = "plr, batch by rows"  # the quality benchmark's name for the library's defaults
RACERS = (AS_ASKED, CHALLENGER)
GATE_PENALTY = ModelConfig().gate_penalty  # the library's default


def raced(name: str, frame, seed: int, train_rows: int, gate_penalty: float = GATE_PENALTY) -> dict:
    """One run of the defaults with ``race=True`` (column gates at `gate_penalty`, 0: none):
    the kept model's scores, test predictions and the race's record."""
    defaults = CANDIDATES[DEFAULTS]
    settings = replace(defaults, model={**defaults.model, "gate_penalty": gate_penalty})
    row = measure(TABLES[name], frame, "race", seed, train_rows, settings, race=True)
    record = row["race"]
    row["winner"] = record["racers"][record["kept"]]["name"]
    return row


def result_name(gate_penalty: float) -> str:
    """The result file of a race with the defaults gated at `gate_penalty` (0: no gates), as
    :mod:`benchmarks.gate_choice` names its choices."""
    return "race.json" if gate_penalty == 0 else f"race_gates_{gate_penalty:g}_defaults_only.json"


def summarise(name: str, kept: list[dict], hgb: dict) -> dict:
    """One table: the kept models' scores, the winners, the gap to HGB and its interval, and
    each racer's mean steps and validation score."""
    test = np.array([r["test"] for r in kept])
    metric = kept[0]["metric"]
    return {
        "table": name,
        "metric": metric,
        "seeds": len(kept),
        "winners": [r["winner"] for r in kept],
        "test_mean": float(test.mean()),
        "test_sd": float(test.std(ddof=1)) if len(kept) > 1 else 0.0,
        "hgb": hgb["test"],
        "gap_to_hgb": float(test.mean() - hgb["test"]),
        "interval_vs_hgb": interval(
            kept[0]["_targets"], [r["_predictions"] for r in kept], hgb["predictions"], metric
        ),
        "racers": {
            racer: {
                "validation_mean": float(np.mean([s["validation"] for s in mine])),
                "steps_mean": float(np.mean([s["steps"] for s in mine])),
            }
            for k, racer in enumerate(RACERS)
            for mine in [[r["race"]["racers"][k] for r in kept]]
        },
    }


def markdown(summary: list[dict]) -> str:
    lines = [
        "| table | metric | kept (mean ± SD) | HGB test | gap | 90 % interval of the gap | "
        "won by the challenger | steps: defaults / challenger |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for s in summary:
        low, high = s["interval_vs_hgb"]
        won = sum(w != AS_ASKED for w in s["winners"])  # a file's challenger may be named apart
        steps = " / ".join(f"{r['steps_mean']:,.0f}" for r in s["racers"].values())
        lines.append(
            f"| {s['table']} | {s['metric']} | {s['test_mean']:.4f} ± {s['test_sd']:.4f} | "
            f"{s['hgb']:.4f} | {s['gap_to_hgb']:+.4f} | [{low:+.4f}, {high:+.4f}] | "
            f"{won} of {s['seeds']} | {steps} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="the first seed (seeds K to K + N - 1)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="default: race.json without gates, else race_gates_<C>_defaults_only.json",
    )
    parser.add_argument(
        "--gate-penalty",
        type=float,
        default=GATE_PENALTY,
        help="the column gates' price per open gate (0: no gates; default: the library's)",
    )
    args = parser.parse_args()
    args.out = args.out or RESULTS / result_name(args.gate_penalty)
    started, load_before = time.perf_counter(), os.getloadavg()
    summary, runs = [], []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.tables:
            frame = read_table(TABLES[name].csv(Path(folder))).frame
            train_rows = len(RunPlan.prepare(frame, TABLES[name].target).train_rows)
            kept, hgb = [], None
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                row = raced(name, frame, seed, train_rows, args.gate_penalty)
                run = row.pop("_run")
                hgb = hgb or baseline(run, row["metric"])
                kept.append(row)
                scores = ", ".join(
                    f"{r['name']} {r['validation']:.4f} ({r['steps']} steps)"
                    for r in row["race"]["racers"]
                )
                print(f"{name} seed {seed}: {scores}; kept {row['winner']} "
                      f"(test {row['test']:.4f})", flush=True)  # fmt: skip
            summary.append(summarise(name, kept, hgb))
            runs += [{k: v for k, v in r.items() if not k.startswith("_")} for r in kept]
    seconds = round(time.perf_counter() - started, 1)
    result = {
        "benchmark": "race",
        "what": __doc__.split("\n\n")[0].replace("\n", " "),
        "racers": list(RACERS),
        "gate_penalty": args.gate_penalty,
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
