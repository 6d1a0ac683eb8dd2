"""What survives another seed? The synthetic binary table, trained N times on one split with
different initial seeds, each member explained on the same rows and checked, then compared
(:mod:`mrta.analysis.stability`).

Per member ``s`` (``TrainConfig(seed=s, time_budget=30, threads=1)``, the split's own seed fixed
at 0, no control): the test accuracy, the atlas of :func:`mrta.pipelines.explain.explain` over
every row of the table (10,000) and the four column importances of
:func:`mrta.pipelines.explain.run_checks` (on the first half of at most 2,000 test rows). Then:

- per importance method, Kendall's W of the members' column rankings with its permutation
  p-value and the 1/N it is compared with;
- per layer and map, the mean standard deviation of a cell across members, the unstable cells
  (members significantly on both sides of the uniform weight, FDR 0.05) and, for the planted
  pair's cell (``plan`` and ``monthly_spend``), its weight in each member, its rank in its row
  and whether it is unstable;
- the time of the stability analysis against one member's explanation.

Run ``python -m benchmarks.stability [--seeds N]`` (default 3; about a minute per member on
2 cores); it writes ``benchmarks/results/stability.json`` and prints the README's tables.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrta.analysis.cohorts import ALL_ROWS
from mrta.analysis.stability import importance_agreement, map_stabilities, stability_summary
from mrta.config import TrainConfig
from mrta.data.read import read_table
from mrta.data.samples import SAMPLE_DIR
from mrta.pipelines.explain import explain, run_checks
from mrta.pipelines.train_run import train_run

RESULT = Path(__file__).resolve().parent / "results" / "stability.json"
TABLE, TARGET = "synthetic_binary.csv", "churned"
PLANTED = (("cat_num", "plan", "monthly_spend"), ("num_cat", "monthly_spend", "plan"))
TIME_BUDGET = 30.0
ROWS = 10_000


def member(frame, seed: int) -> dict[str, Any]:
    """One member: trained, explained on every row, checked."""
    config = TrainConfig(seed=seed, time_budget=TIME_BUDGET, threads=1)
    run = train_run(frame, TARGET, train_config=config)
    started = time.perf_counter()
    explanation = explain(run, frame, max_rows=ROWS)
    explained = time.perf_counter() - started
    run_checks(run, explanation)
    return {
        "seed": seed,
        "accuracy": run.metrics["model"]["accuracy"],
        "explain_seconds": explained,
        "explanation": explanation,
    }


def planted_cells(maps, atlases) -> list[dict[str, Any]]:
    out = []
    for found in maps:
        for map_id, query, key in PLANTED:
            if found.map_id != map_id:
                continue
            queries, keys = atlases[0].names(found.layer, map_id)
            q, k = queries.index(query), keys.index(key)
            weights = [
                float(a.cohort_map(found.layer, map_id, ALL_ROWS, head="mean").mean[q, k])
                for a in atlases
            ]
            ranks = [
                int(
                    1 + (a.cohort_map(found.layer, map_id, ALL_ROWS, head="mean").mean[q] > w).sum()
                )
                for a, w in zip(atlases, weights, strict=True)
            ]
            out.append(
                {
                    "layer": found.layer,
                    "map_id": map_id,
                    "query": query,
                    "key": key,
                    "uniform": 1 / len(keys),
                    "weights": weights,
                    "row_ranks": ranks,
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
    members = [member(frame, seed) for seed in range(args.seeds)]
    atlases = [m["explanation"].atlas for m in members]
    started = time.perf_counter()
    maps = map_stabilities(atlases)
    agreement = {
        method: importance_agreement(
            [m["explanation"].importance.methods[method].mean for m in members]
        )
        for method in members[0]["explanation"].importance.methods
    }
    analysis = time.perf_counter() - started
    result = {
        "table": TABLE,
        "members": [{k: v for k, v in m.items() if k != "explanation"} for m in members],
        "summary": stability_summary(maps, agreement),
        "agreement": {
            method: {"w": c.w, "null": c.null, "p_value": c.p_value, "sentence": c.sentence(method)}
            for method, c in agreement.items()
        },
        "cells": [
            {
                "layer": m.layer,
                "map_id": m.map_id,
                "cells": int(m.cells.sd.size),
                "unstable": m.cells.unstable_cells,
                "mean_cell_sd": m.cells.mean_cell_sd,
            }
            for m in maps
        ],
        "planted": planted_cells(maps, atlases),
        "stability_seconds": analysis,
        "one_explanation_seconds": float(np.mean([m["explain_seconds"] for m in members])),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
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
