"""What survives another seed? ``mrta train --seeds N`` on the synthetic binary table: one run of
N members trained on one split with different initial seeds, explained on the table's rows
and compared (:func:`mrta.pipelines.stability.seed_stability`).

The run: :func:`mrta.pipelines.train_run.train_run` with ``seeds=N`` and
``TrainConfig(time_budget=30)`` (N × 30 s of training in all: on 2 cores the members train at
once, a process each, as ``mrta train --seeds N`` does; the split's own seed fixed at 0; no
control). Then, timed apart:

- one member's analysis: :func:`mrta.pipelines.explain.explain` over every row of the table
  (10,000: member 0 and the untrained model recorded) and member 0's four column importances on
  the checks' ranking rows (:func:`mrta.pipelines.explain.column_importances`);
- the stability analysis: :func:`~mrta.pipelines.stability.seed_stability` given member 0's
  explanation: members 1 on recorded on the same rows, every member's importances, every map
  compared. Its goal: at most N times one member's analysis.

Reported: per importance method, Kendall's W of the members' column rankings with its
permutation p-value and the 1/N it is compared with; per layer and map, the mean standard
deviation of a cell across members and the unstable cells (members significantly on both sides
of the uniform weight, FDR 0.05); for the planted pair's cell (``plan`` and ``monthly_spend``),
its weight in each member, its rank in its row and whether it is unstable.

Run ``python -m benchmarks.stability [--seeds N]`` (default 3; 30 s per member and half a
minute of analysis on 2 cores); it writes ``benchmarks/results/stability.json`` and prints the
README's tables.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from mrta.analysis.importance import input_columns
from mrta.config import TrainConfig
from mrta.data.read import read_table
from mrta.data.samples import SAMPLE_DIR
from mrta.pipelines.explain import check_scores, column_importances, explain, importance_rows
from mrta.pipelines.stability import seed_stability
from mrta.pipelines.train_run import train_run

RESULT = Path(__file__).resolve().parent / "results" / "stability.json"
TABLE, TARGET = "synthetic_binary.csv", "churned"
PLANTED = (("cat_num", "plan", "monthly_spend"), ("num_cat", "monthly_spend", "plan"))
TIME_BUDGET = 30.0
ROWS = 10_000


def one_member_analysis(run, frame) -> tuple[Any, float]:
    """Member 0's explanation over the table and its importances, and the seconds they took."""
    started = time.perf_counter()
    explanation = explain(run, frame, max_rows=ROWS)
    ranked, _ = importance_rows(run)
    column_importances(
        run.model,
        run.preprocessor.transform(ranked),
        input_columns(run.schema),
        check_scores(run),
    )
    return explanation, time.perf_counter() - started


def planted_cells(maps, atlas) -> list[dict[str, Any]]:
    """The planted pair's cells in every member: weight, rank in its row, spread, stability."""
    out = []
    for found in maps:
        for map_id, query, key in PLANTED:
            if found.map_id != map_id:
                continue
            queries, keys = atlas.names(found.layer, map_id)
            q, k = queries.index(query), keys.index(key)
            rows = found.cells.member_means[:, q]  # (N, Tk): each member's row of the cell
            out.append(
                {
                    "layer": found.layer,
                    "map_id": map_id,
                    "query": query,
                    "key": key,
                    "uniform": 1 / len(keys),
                    "weights": rows[:, k].tolist(),
                    "row_ranks": [int(1 + (row > row[k]).sum()) for row in rows],
                    "keys": len(keys),
                    "sd": float(found.cells.sd[q, k]),
                    "unstable": bool(found.cells.unstable[q, k]),
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    frame = read_table(SAMPLE_DIR / TABLE).frame
    config = TrainConfig(time_budget=TIME_BUDGET)
    started = time.perf_counter()
    run = train_run(frame, TARGET, train_config=config, seeds=args.seeds)
    trained = time.perf_counter() - started
    explanation, one = one_member_analysis(run, frame)
    started = time.perf_counter()
    stability = seed_stability(run, explanation, frame)
    analysis = time.perf_counter() - started
    result = {
        "table": TABLE,
        "rows": stability.rows,
        "members": [
            {
                "seed": member.init_seed,
                "accuracy": member.metrics["model"]["accuracy"],
                "steps": member.training.steps,
            }
            for member in run.members
        ],
        "ensemble_accuracy": run.metrics["model"]["accuracy"],
        "training_seconds": trained,
        "summary": stability.summary(),
        "agreement": {
            method: {
                "w": c.w,
                "null": c.null,
                "p_value": c.p_value,
                "sentence": stability.sentence(method),
            }
            for method, c in stability.agreement.items()
        },
        "cells": [
            {
                "layer": m.layer,
                "map_id": m.map_id,
                "cells": int(m.cells.sd.size),
                "unstable": m.cells.unstable_cells,
                "mean_cell_sd": m.cells.mean_cell_sd,
            }
            for m in stability.maps
        ],
        "planted": planted_cells(stability.maps, explanation.atlas),
        "stability_seconds": analysis,
        "one_member_analysis_seconds": one,
        "ratio": analysis / one,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "load_average": list(__import__("os").getloadavg()),
        },
    }
    RESULT.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(result))


def markdown(result: dict[str, Any]) -> str:
    """The README's tables."""
    lines = [
        "| importance | Kendall's W | chance (1/N) | permutation p |",
        "|---|---:|---:|---:|",
    ]
    for method, a in result["agreement"].items():
        lines.append(f"| {method} | {a['w']:.2f} | {a['null']:.2f} | {a['p_value']:.3g} |")
    lines += [
        "",
        "| layer | map | cells | unstable | mean SD of a cell |",
        "|---|---|---:|---:|---:|",
    ]
    for c in result["cells"]:
        lines.append(
            f"| {c['layer']} | {c['map_id']} | {c['cells']} | {c['unstable']} | "
            f"{c['mean_cell_sd']:.4f} |"
        )
    lines += [
        "",
        "| layer | map | cell | uniform | weight per member | rank in its row | unstable |",
        "|---|---|---|---:|---|---|---|",
    ]
    for p in result["planted"]:
        weights = ", ".join(f"{w:.3f}" for w in p["weights"])
        ranks = ", ".join(f"{r}/{p['keys']}" for r in p["row_ranks"])
        lines.append(
            f"| {p['layer']} | {p['map_id']} | {p['query']} → {p['key']} | {p['uniform']:.3f} | "
            f"{weights} | {ranks} | {'yes' if p['unstable'] else 'no'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
