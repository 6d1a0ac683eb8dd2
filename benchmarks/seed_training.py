"""Seed members one after another, or in parallel processes? At equal wall time on this machine.

``mrta train --seeds N`` trains its members one after another, each with the whole time
budget B (``N × B`` of training in all; torch's threads chosen by the loop's step timing). The
alternative: N processes at once, each training one member for the same ``N × B`` (one thread
each, the cores shared). Both on the same split of the same table, from the same initial seeds.

Reported per way: each member's optimisation steps and test ROC AUC, the test ROC AUC of the
members' mean (their probabilities averaged), and the wall time of the training (the processes'
imports, table reading and baselines are left out of theirs, as they would be shared work).

Each way runs ``--repeats`` times (default 3), from the seeds 0, 10, 20, ... Run ``python -m
benchmarks.seed_training [--seeds N] [--budget B] [--repeats R]`` (default 3 members, 10 s, 3
repeats: about six minutes on 2 cores); it writes ``benchmarks/results/seed_training.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from mrta.config import TrainConfig
from mrta.data.read import read_table
from mrta.data.samples import SAMPLE_DIR
from mrta.pipelines.train_run import train_run

RESULT = Path(__file__).resolve().parent / "results" / "seed_training.json"
TABLE, TARGET = "synthetic_binary.csv", "churned"


def _frame():
    return read_table(SAMPLE_DIR / TABLE).frame


def one_after_another(seeds: int, budget: float, first: int = 0) -> dict[str, Any]:
    """The way ``--seeds`` trains: one run of `seeds` members from seed `first`, `budget`
    seconds each."""
    config = TrainConfig(seed=first, time_budget=budget)
    run = train_run(_frame(), TARGET, train_config=config, seeds=seeds)
    targets, _, _ = run.split_predictions("test")
    members = [run.member(k).split_predictions("test")[1][:, 1] for k in range(seeds)]
    return {
        "wall_seconds": sum(m.training.elapsed for m in run.members),
        "members": [
            {
                "seed": m.init_seed,
                "steps": m.training.steps,
                "threads": m.training.threads,
                "roc_auc": float(roc_auc_score(targets, p)),
            }
            for m, p in zip(run.members, members, strict=True)
        ],
        "ensemble_roc_auc": float(roc_auc_score(targets, np.mean(members, axis=0))),
    }


def _member(seed: int, budget: float) -> dict[str, Any]:
    """One member in a process of its own, on one thread."""
    config = TrainConfig(seed=seed, time_budget=budget, threads=1)
    run = train_run(_frame(), TARGET, train_config=config)
    targets, predicted, _ = run.split_predictions("test")
    return {
        "seed": seed,
        "steps": run.training.steps,
        "threads": 1,
        "elapsed": run.training.elapsed,
        "targets": targets.tolist(),
        "positive": predicted[:, 1].tolist(),
    }


def in_parallel(seeds: int, budget: float, first: int = 0) -> dict[str, Any]:
    """`seeds` processes at once from seed `first`, each training one member for
    ``seeds × budget``."""
    members = range(first, first + seeds)
    with ProcessPoolExecutor(seeds, mp_context=get_context("spawn")) as pool:
        found = list(pool.map(_member, members, [seeds * budget] * seeds))
    targets = np.asarray(found[0]["targets"])
    positives = [np.asarray(f["positive"]) for f in found]
    return {
        "wall_seconds": max(f["elapsed"] for f in found),
        "members": [
            {
                "seed": f["seed"],
                "steps": f["steps"],
                "threads": 1,
                "roc_auc": float(roc_auc_score(targets, p)),
            }
            for f, p in zip(found, positives, strict=True)
        ],
        "ensemble_roc_auc": float(roc_auc_score(targets, np.mean(positives, axis=0))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each way, other seeds")
    args = parser.parse_args()
    started = time.perf_counter()
    repeats = []
    for r in range(args.repeats):
        first = 10 * r  # the members' seeds: first, first + 1, ...
        repeats.append(
            {
                "first_seed": first,
                "one_after_another": one_after_another(args.seeds, args.budget, first),
                "in_parallel": in_parallel(args.seeds, args.budget, first),
            }
        )
    gains = [r["in_parallel"]["ensemble_roc_auc"] - r["one_after_another"]["ensemble_roc_auc"]
             for r in repeats]  # fmt: skip
    steps = [
        np.mean([m["steps"] for m in r["in_parallel"]["members"]])
        / np.mean([m["steps"] for m in r["one_after_another"]["members"]])
        for r in repeats
    ]
    result = {
        "table": TABLE,
        "seeds": args.seeds,
        "budget_per_member": args.budget,
        "repeats": repeats,
        "parallel_minus_sequential_roc_auc": gains,
        "parallel_over_sequential_steps": steps,
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "load_average_after": list(os.getloadavg()),
        },
        "seconds": time.perf_counter() - started,
    }
    RESULT.write_text(json.dumps(result, indent=1) + "\n")
    for r in repeats:
        for way in ("one_after_another", "in_parallel"):
            found = r[way]
            steps_of = ", ".join(str(m["steps"]) for m in found["members"])
            aucs = ", ".join(f"{m['roc_auc']:.4f}" for m in found["members"])
            print(
                f"seeds from {r['first_seed']}, {way}: training {found['wall_seconds']:.1f} s; "
                f"steps {steps_of}; member ROC AUC {aucs}; their mean's "
                f"{found['ensemble_roc_auc']:.4f}"
            )
    print(
        "parallel minus one after another, ROC AUC of the mean: "
        + ", ".join(f"{g:+.4f}" for g in gains)
        + "; steps per member, parallel over one after another: "
        + ", ".join(f"{x:.2f}" for x in steps)
    )


if __name__ == "__main__":
    main()
