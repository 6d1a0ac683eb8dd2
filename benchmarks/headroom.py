"""How much room the synthetic tables leave above gradient boosting: the score of their own
generating rule on the test split that every run of the quality and race benchmarks is scored on.

``synthetic_binary``'s rule gives each row its true probability of churning, σ(logit), and no
model ranks rows better in expectation than that probability: its ROC AUC is the table's
ceiling (on a finite test split, a model may pass it by chance). ``synthetic_regression``'s rule
gives the noise-free mean f(x); its R² is the ceiling of a model's expected R² (the noise
ε ~ N(0, 75²) cannot be predicted). Rules: ``sample_data/README.md``.

**Where the room goes.** Each table has columns that the rule reads (planted) and noise columns
it ignores. The race as ``mrta train`` runs it, without column gates (``benchmarks.race
--gate-penalty 0``, ``race.json``), and gradient boosting are trained again on the planted
columns and the target alone, on the same rows of the same split: what each reaches when no
noise column is there to be fitted. The difference to their scores with every column is what the
noise columns cost each learner on this split; it says nothing about other tables.

Run ``python -m benchmarks.headroom [--seeds N]`` (about 4 minutes: the planted-columns races);
it writes ``benchmarks/results/headroom.json`` and prints the README's tables beside the race's
and gradient boosting's test scores with every column from ``benchmarks/results/race.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import r2_score, roc_auc_score

from benchmarks.machine import machine
from benchmarks.quality import baseline, interval
from benchmarks.race import raced
from mrta.data.read import read_table
from mrta.pipelines.train_run import RunPlan

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
RESULTS = Path(__file__).resolve().parent / "results"
RESULT = RESULTS / "headroom.json"


def churn_probability(rows: pd.DataFrame) -> np.ndarray:
    """``synthetic_binary``'s rule: σ(s(plan) · (monthly_spend − 60) / 5 − (tenure − 36) / 8)."""
    s = rows["plan"].map({"basic": 1.0, "standard": 0.5, "premium": -1.0})
    logit = s * (rows["monthly_spend"] - 60) / 5 - (rows["tenure_months"] - 36) / 8
    return (1 / (1 + np.exp(-logit))).to_numpy()


def revenue_mean(rows: pd.DataFrame) -> np.ndarray:
    """``synthetic_regression``'s rule without its noise: f(x)."""
    t = rows["customer_segment"].map({"bargain_hunter": 10.0, "regular": 2.0, "premium": -6.0})
    f = 100 + rows["items_in_cart"] * rows["avg_item_price"] + t * (rows["discount_pct"] - 20)
    return f.to_numpy()


TABLES = {  # name -> (file, target, metric, the rule's score on rows and targets, planted)
    "synthetic_binary": (
        "synthetic_binary.csv",
        "churned",
        "roc_auc",
        lambda rows, y: roc_auc_score(y, churn_probability(rows)),
        ("plan", "monthly_spend", "tenure_months"),
    ),
    "synthetic_regression": (
        "synthetic_regression.csv",
        "net_revenue",
        "r2",
        lambda rows, y: r2_score(y, revenue_mean(rows)),
        ("customer_segment", "discount_pct", "items_in_cart", "avg_item_price"),
    ),
}


def headroom(seeds: int) -> list[dict]:
    """Per table: the rule's test score, the race's and gradient boosting's with every column
    (race.json) and the room between, and both again on the planted columns alone (`seeds`
    races; none with 0)."""
    race = {s["table"]: s for s in json.loads((RESULTS / "race.json").read_text())["summary"]}
    out = []
    for name, (file, target, metric, score, planted) in TABLES.items():
        frame = read_table(SAMPLES / file).frame
        plan = RunPlan.prepare(frame, target)
        rule = float(score(plan.test_rows, plan.schema.encode_target(plan.test_rows)))
        every = race[name]
        row = {
            "table": name,
            "metric": metric,
            "test_rows": len(plan.test_rows),
            "rule": rule,
            "hgb": every["hgb"],
            "room": rule - every["hgb"],
            "race": every["test_mean"],
            "race_sd": every["test_sd"],
            "planted": list(planted),
        }
        if seeds:
            row["planted_only"] = planted_only(name, frame[[*planted, target]], seeds)
        out.append(row)
    return out


def planted_only(name: str, frame: pd.DataFrame, seeds: int) -> dict:
    """The race (seeds 0 to `seeds` − 1) and gradient boosting on `frame`, a table's planted
    columns and its target: test scores, and the 90 % paired bootstrap interval of the race's
    mean score minus gradient boosting's."""
    train_rows = len(RunPlan.prepare(frame, TABLES[name][1]).train_rows)
    kept = [raced(name, frame, seed, train_rows, gate_penalty=0.0) for seed in range(seeds)]
    metric = kept[0]["metric"]
    hgb = baseline(kept[0]["_run"], metric)
    test = np.array([r["test"] for r in kept])
    return {
        "race": [r["test"] for r in kept],
        "race_mean": float(test.mean()),
        "race_sd": float(test.std(ddof=1)) if seeds > 1 else 0.0,
        "winners": [r["winner"] for r in kept],
        "steps": [r["steps"] for r in kept],
        "hgb": hgb["test"],
        "interval_vs_hgb": interval(
            kept[0]["_targets"], [r["_predictions"] for r in kept], hgb["predictions"], metric
        ),
    }


def markdown(rows: list[dict]) -> str:
    """The room above gradient boosting, per table."""
    lines = [
        "| table | metric | test rows | the rule's score | HGB test | room above HGB |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['table']} | {r['metric']} | {r['test_rows']:,} | {r['rule']:.4f} | "
            f"{r['hgb']:.4f} | {r['room']:+.4f} |"
        )
    return "\n".join(lines)


def where_the_room_goes(rows: list[dict]) -> str:
    """The race and gradient boosting with every column and with the planted columns alone,
    beside the rule, per table."""
    lines = [
        "| table | the rule's score | race, every column | HGB, every column | "
        "race, planted columns only | HGB, planted columns only | 90 % interval, planted only |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        p = r["planted_only"]
        low, high = p["interval_vs_hgb"]
        lines.append(
            f"| {r['table']} | {r['rule']:.4f} | {r['race']:.4f} ± {r['race_sd']:.4f} | "
            f"{r['hgb']:.4f} | {p['race_mean']:.4f} ± {p['race_sd']:.4f} | {p['hgb']:.4f} | "
            f"[{low:+.4f}, {high:+.4f}] |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="races on the planted columns")
    args = parser.parse_args()
    started, load_before = time.perf_counter(), os.getloadavg()
    rows = headroom(args.seeds)
    result = {
        "benchmark": "headroom",
        "tables": rows,
        "total_seconds": round(time.perf_counter() - started, 1),
        "machine": machine(load_before),
    }
    RESULT.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(rows))
    if args.seeds:
        print()
        print(where_the_room_goes(rows))


if __name__ == "__main__":
    main()
