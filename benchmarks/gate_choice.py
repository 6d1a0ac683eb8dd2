"""The column gates' price (``ModelConfig.gate_penalty``) and which racers have them, chosen on
validation scores: the race benchmark (:mod:`benchmarks.race`, as ``mrta train`` runs by
default) for each choice, on the same tables, split and seeds.

Each choice's runs are a file ``benchmarks/results/race_gates_<choice>.json`` written by
``python -m benchmarks.race --gate-penalty <price> --out <file>`` (about 10 minutes each):

- ``0``: no gates: ``benchmarks/results/race.json``, the race at the library's defaults;
- ``0.001``, ``0.003``: both racers gated at that price (the challenger then had gates too);
- ``0.003_defaults_only``: the defaults gated, the challenger without (the library's race now).

Per table, the choices are ranked by the kept models' mean validation score over the seeds
(ROC AUC, or R² in the target's units); the chosen one has the best mean rank over the tables
(ties: the higher mean validation score). Test scores never choose: they are printed beside,
from the same files.

Run ``python -m benchmarks.gate_choice`` (seconds): it prints the README's table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

RESULTS = Path(__file__).resolve().parent / "results"
PREFIX = "race_gates_"


def load() -> dict[str, dict]:
    """Each choice's race results, by its name in the file's name (``0``: ``race.json``)."""
    paths = sorted(RESULTS.glob(f"{PREFIX}*.json"), key=lambda p: (len(p.stem), p.stem))
    found = {"0": json.loads((RESULTS / "race.json").read_text())}
    return found | {path.stem.removeprefix(PREFIX): json.loads(path.read_text()) for path in paths}


def per_table(result: dict) -> dict[str, dict[str, float]]:
    """Per table: the kept models' mean validation and test scores over the seeds."""
    tables: dict[str, dict[str, list[float]]] = {}
    for run in result["runs"]:
        entry = tables.setdefault(run["table"], {"validation": [], "test": []})
        entry["validation"].append(run["validation"])
        entry["test"].append(run["test"])
    return {t: {k: float(np.mean(v)) for k, v in e.items()} for t, e in tables.items()}


def choose(results: dict[str, dict]) -> tuple[str, dict[str, float], dict]:
    """The chosen choice, each one's mean validation rank, and the per-table scores."""
    prices = list(results)
    scores = {p: per_table(results[p]) for p in prices}
    tables = [t for t in scores[prices[0]] if all(t in scores[p] for p in prices)]
    ranks = {p: [] for p in prices}
    for table in tables:
        order = rankdata([-scores[p][table]["validation"] for p in prices])  # 1: the best
        for p, rank in zip(prices, order, strict=True):
            ranks[p].append(float(rank))
    mean_rank = {p: float(np.mean(ranks[p])) for p in prices}
    mean_validation = {p: np.mean([scores[p][t]["validation"] for t in tables]) for p in prices}
    chosen = min(prices, key=lambda p: (mean_rank[p], -mean_validation[p]))
    return chosen, mean_rank, {t: {p: scores[p][t] for p in prices} for t in tables}


def markdown(mean_rank: dict[str, float], table_scores: dict) -> str:
    """Validation (test) means per table and choice, and each choice's mean rank."""
    prices = list(mean_rank)
    head = " | ".join(f"`{p}`" for p in prices)
    lines = [f"| table | {head} |", "|---|" + "---:|" * len(prices)]
    for table, by_price in table_scores.items():
        cells = " | ".join(
            f"{by_price[p]['validation']:.4f} ({by_price[p]['test']:.4f})" for p in prices
        )
        lines.append(f"| {table} | {cells} |")
    ranks = " | ".join(f"{mean_rank[p]:.3f}" for p in prices)
    lines.append(f"| mean validation rank | {ranks} |")
    return "\n".join(lines)


def main() -> None:
    chosen, mean_rank, table_scores = choose(load())
    print(markdown(mean_rank, table_scores))
    print(f"\nchosen on validation: {chosen}")


if __name__ == "__main__":
    main()
