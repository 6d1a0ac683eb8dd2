"""Where the planted columns and pairs of the synthetic tables rank in the model's explanations.

For ``synthetic_binary.csv`` and ``synthetic_regression.csv`` (rules in ``sample_data/README.md``)
and each seed, a model is trained at the default model config (``TrainConfig(seed=s,
time_budget=30, threads=1)``) racing its challenger as ``mrta train`` does by default
(``--no-race``: the defaults alone; :mod:`mrta.training.race`), explained over the whole table
(:func:`mrta.pipelines.explain.explain`, 10,000 rows) and checked
(:func:`mrta.pipelines.explain.run_checks`: permutation importance on the first half of at most
2,000 test rows). Measured per seed:

- the model's test metric and HistGradientBoosting's on the same split (accuracy for the binary
  table, R² for the regression table);
- the rank (1 = most important; ties share the best rank) of each planted column among all
  feature columns and among the columns of its own stream (numerical or categorical), in
  rollout importance (``atlas.importance()``) and in permutation importance (loss increase),
  and the best rank of any noise column;
- in each layer's head-averaged, all-rows mean map (``cat_num``, ``num_cat``, and ``num_num``
  where a numerical pair is planted), the rank of the planted pair's cell (query = one planted
  column, key = its partner) among all cells of the map, among the keys of its query row (a
  softmax row sums to 1, so cells compare best within a row), and among the queries of its key
  column (does this query attend to the key more than the other queries do, or is the key one
  that every query attends to?);
- the Spearman correlation of rollout and permutation importance (``explanation.sanity``).

Streams are as the schema infers them (``num_devices``, integers 1 to 6, comes out categorical).
Ranks within a stream are reported because the rollout gives each stream exactly half of the
importance whatever the maps (every row of a layer's flow puts 0.5 on each stream), so a column
of the smaller stream outranks those of the larger one on stream size alone.

Run ``python -m benchmarks.planted [--seeds N]`` (seeds 0 to N-1, default 5; about 40 s per
table and seed on 2 cores, so about 7 minutes for 5 seeds); it writes
``benchmarks/results/planted.json`` (per seed and aggregated) and prints the README's tables.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrta.analysis.cohorts import ALL_ROWS
from mrta.analysis.explanation import Explanation
from mrta.config import ModelConfig, TrainConfig
from mrta.data.read import read_table
from mrta.data.samples import SAMPLE_TABLES
from mrta.pipelines.explain import CHECK_ROWS, explain, run_checks
from mrta.pipelines.train_run import train_run

RESULT = Path(__file__).resolve().parent / "results" / "planted.json"
TIME_BUDGET = 30.0


@dataclass(frozen=True)
class Planted:
    """A table's planted columns (with how each acts) and planted pairs (map, query, key)."""

    file: str
    metric: str
    columns: dict[str, str]
    pairs: tuple[tuple[str, str, str], ...]


PLANTED = {
    "synthetic_binary": Planted(
        "synthetic_binary.csv",
        "accuracy",
        {"plan": "× monthly_spend", "monthly_spend": "× plan", "tenure_months": "alone"},
        (("cat_num", "plan", "monthly_spend"), ("num_cat", "monthly_spend", "plan")),
    ),
    "synthetic_regression": Planted(
        "synthetic_regression.csv",
        "r2",
        {
            "customer_segment": "× discount_pct",
            "discount_pct": "× customer_segment",
            "items_in_cart": "× avg_item_price",
            "avg_item_price": "× items_in_cart",
        },
        (
            ("cat_num", "customer_segment", "discount_pct"),
            ("num_cat", "discount_pct", "customer_segment"),
            ("num_num", "items_in_cart", "avg_item_price"),
            ("num_num", "avg_item_price", "items_in_cart"),
        ),
    ),
}


def rank(values: dict[str, float], name: str, among: list[str]) -> int:
    """1 + how many of `among` score strictly higher than `name`."""
    return 1 + sum(values[other] > values[name] for other in among)


def importance_ranks(
    values: dict[str, float], streams: dict[str, list[str]], planted: Planted
) -> dict[str, Any]:
    """Ranks of every column overall and within its stream, and the best noise ranks."""
    features = [name for names in streams.values() for name in names]
    stream_of = {name: stream for stream, names in streams.items() for name in names}
    ranks = {name: rank(values, name, features) for name in features}
    in_stream = {name: rank(values, name, streams[stream_of[name]]) for name in features}
    best_noise = {"any": min(r for name, r in ranks.items() if name not in planted.columns)}
    for stream, names in streams.items():
        noise = [in_stream[name] for name in names if name not in planted.columns]
        if noise:
            best_noise[stream] = min(noise)
    return {"values": values, "rank": ranks, "stream_rank": in_stream, "best_noise": best_noise}


def pair_ranks(explanation: Explanation, planted: Planted, layers: int) -> list[dict[str, Any]]:
    """Per layer and planted pair: the cell's weight and its rank in the map and in its row."""
    atlas = explanation.atlas
    out = []
    for layer in range(layers):
        for map_id, query, key in planted.pairs:
            mean = atlas.cohort_map(layer, map_id, ALL_ROWS, head="mean").mean
            queries, keys = atlas.names(layer, map_id)
            q, k = queries.index(query), keys.index(key)
            weight = mean[q, k]
            out.append(
                {
                    "layer": layer,
                    "map_id": map_id,
                    "query": query,
                    "key": key,
                    "weight": float(weight),
                    "cell_rank": int(1 + (mean > weight).sum()),
                    "cells": int(mean.size),
                    "row_rank": int(1 + (mean[q] > weight).sum()),
                    "keys": len(keys),
                    "column_rank": int(1 + (mean[:, k] > weight).sum()),
                    "queries": len(queries),
                }
            )
    return out


def measure(name: str, seed: int, race: bool = True) -> dict[str, Any]:
    """Train (with `race`, as ``mrta train`` does by default: the setting kept is recorded),
    explain and check one table at one seed; every rank of the module docstring."""
    planted = PLANTED[name]
    table = next(t for t in SAMPLE_TABLES if t.file == planted.file)
    frame = read_table(table.path).frame
    start = time.perf_counter()
    run = train_run(
        frame,
        table.target,
        train_config=TrainConfig(seed=seed, time_budget=TIME_BUDGET, threads=1),
        race=race,
    )
    explanation = run_checks(run, explain(run))
    assert explanation.permutation is not None
    streams = {
        "numerical": list(run.schema.numerical_tokens),
        "categorical": list(run.schema.categorical_tokens),
    }
    return {
        "seed": seed,
        "model": run.metrics["model"][planted.metric],
        "hgb": run.metrics["hgb"][planted.metric],
        "epochs": run.training.epochs,
        "stop_reason": run.training.stop_reason,
        "kept": None if run.race is None else run.race.winner.name,
        "rollout": importance_ranks(explanation.atlas.importance(), streams, planted),
        "permutation": importance_ranks(explanation.permutation.loss_increases(), streams, planted),
        "spearman": explanation.sanity["rollout_vs_permutation"]["spearman"],
        "pairs": pair_ranks(explanation, planted, run.model_config.num_layers),
        "streams": streams,
        "seconds": round(time.perf_counter() - start, 1),
    }


def spread(values: list[float]) -> dict[str, float]:
    """Mean, min and max."""
    return {"mean": float(np.mean(values)), "min": float(min(values)), "max": float(max(values))}


def planted_on_top(seed: dict[str, Any], source: str, planted: Planted, group: str) -> bool:
    """Whether every planted column of `group` (a stream, or "any") outranks its noise columns."""
    ranks = seed[source]["rank" if group == "any" else "stream_rank"]
    names = [c for c in planted.columns if group == "any" or c in seed["streams"][group]]
    noise = seed[source]["best_noise"].get(group)
    return noise is None or all(ranks[c] < noise for c in names)


def summarize(name: str, seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, min and max over the seeds of every reported number."""
    planted = PLANTED[name]
    summary: dict[str, Any] = {
        "model": spread([s["model"] for s in seeds]),
        "hgb": spread([s["hgb"] for s in seeds]),
        "spearman": spread([s["spearman"] for s in seeds]),
    }
    for source in ("rollout", "permutation"):
        ranks = {
            column: {
                "rank": spread([s[source]["rank"][column] for s in seeds]),
                "stream_rank": spread([s[source]["stream_rank"][column] for s in seeds]),
            }
            for column in planted.columns
        }
        noise = {
            group: spread([s[source]["best_noise"][group] for s in seeds])
            for group in seeds[0][source]["best_noise"]
        }
        summary[source] = {
            "planted": ranks,
            "best_noise": noise,
            "seeds_planted_on_top": sum(planted_on_top(s, source, planted, "any") for s in seeds),
            "seeds_planted_on_top_in_stream": sum(
                all(planted_on_top(s, source, planted, stream) for stream in s["streams"])
                for s in seeds
            ),
        }
    summary["pairs"] = [
        {
            **{
                k: first[k] for k in ("layer", "map_id", "query", "key", "cells", "keys", "queries")
            },
            **{
                key: spread([s["pairs"][i][key] for s in seeds])
                for key in ("weight", "cell_rank", "row_rank", "column_rank")
            },
        }
        for i, first in enumerate(seeds[0]["pairs"])
    ]
    return summary


def fmt_rank(value: dict[str, float]) -> str:
    """``2.4 (1–4)``: a rank's mean and its whole-number min and max."""
    return f"{value['mean']:.1f} ({value['min']:.0f}–{value['max']:.0f})"


def fmt_number(value: dict[str, float], digits: int) -> str:
    """``0.871 (0.865–0.876)``."""
    return f"{value['mean']:.{digits}f} ({value['min']:.{digits}f}–{value['max']:.{digits}f})"


def markdown(results: dict[str, Any]) -> str:
    """The README's three tables (model quality, column ranks, pair ranks) and a count."""
    n = len(next(iter(results.values()))["seeds"])
    lines = [
        f"Mean (min–max) over {n} seeds.",
        "",
        "| table | metric | model | HGB | Spearman rollout vs permutation |",
        "|---|---|---|---|---|",
    ]
    for name, result in results.items():
        s = result["summary"]
        numbers = [fmt_number(s["model"], 3), fmt_number(s["hgb"], 3)]
        numbers.append(fmt_number(s["spearman"], 2))
        lines.append(f"| {name} | {PLANTED[name].metric} | {' | '.join(numbers)} |")
    lines += [
        "",
        "| table | column | rollout rank (all) | rollout rank (own stream) "
        "| permutation rank (all) | permutation rank (own stream) |",
        "|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        lines += column_rows(name, result)
    lines += [
        "",
        "| table | layer | map | query → key | mean weight | uniform | cell rank "
        "| rank in query row | rank in key column |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        for p in result["summary"]["pairs"]:
            weight = f"{fmt_number(p['weight'], 3)} | {1 / p['keys']:.3f}"
            cell = f"{fmt_rank(p['cell_rank'])} of {p['cells']}"
            row = f"{fmt_rank(p['row_rank'])} of {p['keys']}"
            column = f"{fmt_rank(p['column_rank'])} of {p['queries']}"
            pair = f"{p['query']} → {p['key']}"
            lines.append(
                f"| {name} | {p['layer']} | {p['map_id']} | {pair} | {weight} | {cell} | {row} "
                f"| {column} |"
            )
    lines.append("")
    for name, result in results.items():
        s = result["summary"]
        rollout, permutation = s["rollout"], s["permutation"]
        lines.append(
            f"{name}: every planted column ranked above every noise column in "
            f"{rollout['seeds_planted_on_top']}/{n} seeds by rollout, "
            f"{permutation['seeds_planted_on_top']}/{n} by permutation; above every noise "
            f"column of its own stream in {rollout['seeds_planted_on_top_in_stream']}/{n} by "
            f"rollout, {permutation['seeds_planted_on_top_in_stream']}/{n} by permutation."
        )
    return "\n".join(lines)


def column_rows(name: str, result: dict[str, Any]) -> list[str]:
    """One table's rows of the column table: planted columns, then the best noise ranks."""
    s, streams = result["summary"], result["seeds"][0]["streams"]
    total = sum(map(len, streams.values()))
    sources = ("rollout", "permutation")
    rows = []
    for column, role in PLANTED[name].columns.items():
        own = len(next(names for names in streams.values() if column in names))
        cells = [
            f"{fmt_rank(s[src]['planted'][column][key])} of {size}"
            for src in sources
            for key, size in (("rank", total), ("stream_rank", own))
        ]
        rows.append(f"| {name} | {column} (planted, {role}) | {' | '.join(cells)} |")
    for group in s["rollout"]["best_noise"]:
        size = total if group == "any" else len(streams[group])
        ranks = [f"{fmt_rank(s[src]['best_noise'][group])} of {size}" for src in sources]
        if group == "any":
            label, cells = "best noise column", [ranks[0], "—", ranks[1], "—"]
        else:
            label, cells = f"best {group} noise column", ["—", ranks[0], "—", ranks[1]]
        rows.append(f"| {name} | {label} | {' | '.join(cells)} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 to N-1 (default 5)")
    parser.add_argument(
        "--no-race", dest="race", action="store_false", help="train the defaults alone"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    results = {}
    for name, planted in PLANTED.items():
        seeds = []
        for seed in range(args.seeds):
            seeds.append(measure(name, seed, args.race))
            last = seeds[-1]
            print(
                f"{name} seed {seed}: {planted.metric} {last['model']:.3f} "
                f"(HGB {last['hgb']:.3f}), kept {last['kept']}, {last['seconds']:.0f} s",
                flush=True,
            )
        results[name] = {"seeds": seeds, "summary": summarize(name, seeds)}
    out = {
        "benchmark": "planted",
        "what": "ranks of the planted columns and pairs of the synthetic tables in rollout "
        "importance, permutation importance and the head-averaged all-rows mean maps",
        "model_config": ModelConfig().to_dict(),
        "train_config": TrainConfig(time_budget=TIME_BUDGET, threads=1).to_dict(),
        "race": args.race,
        "permutation_rows": CHECK_ROWS // 2,
        "tables": results,
        "total_seconds": round(time.perf_counter() - start, 1),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(out, indent=2) + "\n")
    print()
    print(markdown(results))
    print(f"\n{out['total_seconds']:.0f} s in all; wrote {RESULT}")


if __name__ == "__main__":
    main()
