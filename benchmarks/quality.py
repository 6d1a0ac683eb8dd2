"""Quality of the model against HistGradientBoosting on every sample table, at the defaults.

Each table is trained with :func:`mrta.runs.run.train_run` at the default model and training
configs (the default time budget, seed 0) and scored on its test split beside
HistGradientBoosting and the trivial baseline, both fitted on the same split. The goals
(the project's quality yardstick): the model's mean test ROC AUC over the classification
tables at least the baseline's, and its R² within 0.02 of the baseline's on each regression table.
``synthetic_set.csv`` is set resolution and is left out here.

Run ``python -m benchmarks.quality`` (about four minutes on 2 cores); it writes
``benchmarks/results/quality.json`` and prints the README's table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import sklearn
import torch

from mrta.config import ModelConfig, TrainConfig
from mrta.data.read import read_table
from mrta.data.samples import row_tables
from mrta.pipelines.train_run import train_run

RESULT = Path(__file__).resolve().parent / "results" / "quality.json"
# name -> (file, target), as sample_data/README.md documents them; classification first
TABLES = {
    t.file.split(".")[0]: (t.path, t.target)
    for t in sorted(row_tables(), key=lambda t: t.task == "regression")
}
R2_TOLERANCE = 0.02


def measure(name: str) -> dict:
    """Train at the defaults on one table; its test metrics and how training went."""
    file, target = TABLES[name]
    frame = read_table(file).frame
    start = time.perf_counter()
    run = train_run(frame, target, model_config=ModelConfig(), train_config=TrainConfig())
    wall = time.perf_counter() - start
    task = run.schema.task.value
    metric = "r2" if task == "regression" else "roc_auc"
    training = run.training
    return {
        "table": name,
        "file": file.name,
        "target": target,
        "task": task,
        "metric": metric,
        "model": run.metrics["model"][metric],
        "hgb": run.metrics["hgb"][metric],
        "trivial": run.metrics["trivial"][metric],
        "test_rows": run.metrics["model"]["rows"],
        "all_metrics": {k: run.metrics[k] for k in ("model", "hgb", "trivial")},
        "steps": training.steps,
        "epochs": training.epochs,
        "best_epoch": training.best_epoch,
        "stop_reason": training.stop_reason,
        "training_seconds": training.elapsed,
        "wall_seconds": round(wall, 2),
        "threads": training.threads,
    }


def goals(rows: list[dict]) -> dict:
    """Whether each quality goal is met."""
    classification = [r for r in rows if r["metric"] == "roc_auc"]
    out: dict = {}
    if classification:
        model = float(np.mean([r["model"] for r in classification]))
        hgb = float(np.mean([r["hgb"] for r in classification]))
        out["mean_roc_auc"] = {"model": model, "hgb": hgb, "met": model >= hgb}
    for r in rows:
        if r["metric"] == "r2":
            gap = r["hgb"] - r["model"]
            out[f"r2_{r['table']}"] = {"gap": gap, "met": gap <= R2_TOLERANCE}
    return out


def markdown(rows: list[dict], summary: dict) -> str:
    lines = [
        "| table | task | metric | model | HGB | trivial | steps | seconds |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['table']} | {r['task']} | {r['metric']} | {r['model']:.4f} | {r['hgb']:.4f} | "
            f"{r['trivial']:.4f} | {r['steps']:,} | {r['training_seconds']:.1f} |"
        )
    if "mean_roc_auc" in summary:
        auc = summary["mean_roc_auc"]
        lines.append(
            f"| mean over classification | | roc_auc | {auc['model']:.4f} | {auc['hgb']:.4f} "
            "| | | |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    start = time.perf_counter()
    load_before = os.getloadavg()
    rows = []
    for name in args.tables:
        rows.append(measure(name))
        print(f"{name}: {rows[-1]['metric']} model {rows[-1]['model']:.4f}, "
              f"HGB {rows[-1]['hgb']:.4f}", flush=True)  # fmt: skip
    summary = goals(rows)
    result = {
        "benchmark": "quality",
        "what": "test metrics at the default configs (seed 0) against HistGradientBoosting and "
        "the trivial baseline on the same split",
        "model_config": ModelConfig().to_dict(),
        "train_config": TrainConfig().to_dict(),
        "tables": rows,
        "goals": summary,
        "total_seconds": round(time.perf_counter() - start, 1),
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "scikit_learn": sklearn.__version__,
            "numpy": np.__version__,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    print(markdown(rows, summary))
    for goal, value in summary.items():
        print(f"{goal}: {'met' if value['met'] else 'NOT met'} {value}")
    print(f"\n{result['total_seconds']:.0f} s in all; wrote {args.out}")


if __name__ == "__main__":
    main()
