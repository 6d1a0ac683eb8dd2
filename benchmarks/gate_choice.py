"""The column gates' price (``ModelConfig.gate_penalty``) and which racers have them, chosen on
validation scores: the race benchmark (:mod:`benchmarks.race`, as ``mrta train`` runs by
default) for each choice, on the same tables, split and seeds.

Each choice's runs are a file ``race_gates_<choice>.json`` in a folder of results, written by
``python -m benchmarks.race --gate-penalty <price> --out <file>`` (about 20 minutes for 6
seeds), beside ``race.json`` (``0``: no gates, the race at the library's defaults):

- ``benchmarks/results/``: the race as it chooses now (the challenger, with one attention
  layer, only where its validation lead is beyond the noise, :func:`mrta.training.race.choose`),
  6 seeds: ``0`` and ``0.003_defaults_only`` (the defaults gated at 0.003, the challenger
  without);
- ``benchmarks/results/two_layer_challenger/``: the same, when the challenger had the two
  layers of the settings asked for, 6 seeds: ``0`` and ``0.003_defaults_only`` (the choice that
  made the gates the default);
- ``benchmarks/results/higher_score_rule/``: the race when the higher validation score alone
  chose, seeds 0–2: ``0``, ``0.001`` and ``0.003`` (both racers gated at that price) and
  ``0.003_defaults_only``; and seeds 3–5 of ``0`` and ``0.003_defaults_only``.

Further seeds of a choice may go in files with the suffix ``_seeds_<first>-<last>``
(``python -m benchmarks.race --first-seed 3 ...``), e.g. ``race_seeds_3-5.json`` for ``0``; a
choice's runs are those of all its files.

Per table, the choices are ranked by the kept models' mean validation score (ROC AUC, or R² in
the target's units) over the seeds that every compared choice has on that table; the chosen one
has the best mean rank over the tables (ties: the higher mean validation score). Test scores
never choose: they are printed beside, from the same runs.

Run ``python -m benchmarks.gate_choice [--folder DIR] [--choices ...]`` (seconds): it prints
the README's table for the choices named (default: all in ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

RESULTS = Path(__file__).resolve().parent / "results"
PREFIX = "race_gates_"


def choice_of(path: Path) -> str:
    """The choice a result file holds: ``race.json`` -> ``0``, ``race_gates_0.003_seeds_3-5.json``
    -> ``0.003``."""
    stem = re.sub(r"_seeds_\d+-\d+$", "", path.stem)
    return "0" if stem == "race" else stem.removeprefix(PREFIX)


def load(folder: Path = RESULTS) -> dict[str, dict]:
    """Each choice's race runs in `folder`, from all its files (``0``: ``race.json`` and its
    further seeds)."""
    paths = [
        folder / "race.json",
        *folder.glob("race_seeds_*.json"),
        *folder.glob(f"{PREFIX}*.json"),
    ]
    found: dict[str, dict] = {}
    for path in sorted(paths, key=lambda p: (choice_of(p) != "0", len(choice_of(p)), p.stem)):
        runs = json.loads(path.read_text())["runs"]
        found.setdefault(choice_of(path), {"runs": []})["runs"] += runs
    return found


def per_table(
    result: dict, seeds: dict[str, set[int]] | None = None
) -> dict[str, dict[str, float]]:
    """Per table: the kept models' mean validation and test scores over the seeds (only those in
    ``seeds[table]`` where given)."""
    tables: dict[str, dict[str, list[float]]] = {}
    for run in result["runs"]:
        if seeds is not None and run["seed"] not in seeds.get(run["table"], ()):
            continue
        entry = tables.setdefault(run["table"], {"validation": [], "test": []})
        entry["validation"].append(run["validation"])
        entry["test"].append(run["test"])
    return {t: {k: float(np.mean(v)) for k, v in e.items()} for t, e in tables.items()}


def common_seeds(results: dict[str, dict]) -> dict[str, set[int]]:
    """Per table, the seeds that every choice has."""
    by_choice = []
    for result in results.values():
        seeds: dict[str, set[int]] = {}
        for run in result["runs"]:
            seeds.setdefault(run["table"], set()).add(run["seed"])
        by_choice.append(seeds)
    tables = set.intersection(*(set(s) for s in by_choice))
    return {t: set.intersection(*(s[t] for s in by_choice)) for t in tables}


def choose(results: dict[str, dict]) -> tuple[str, dict[str, float], dict]:
    """The chosen choice, each one's mean validation rank, and the per-table scores."""
    prices = list(results)
    seeds = common_seeds(results)
    scores = {p: per_table(results[p], seeds) for p in prices}
    tables = [t for t in scores[prices[0]] if seeds.get(t)]
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--choices", nargs="+", help="the choices to compare (default: all)")
    parser.add_argument(
        "--folder",
        type=Path,
        default=RESULTS,
        help=f"where the result files are (default {RESULTS})",
    )
    args = parser.parse_args()
    results = load(args.folder)
    unknown = sorted(set(args.choices or ()) - set(results))
    if unknown:
        parser.error(f"no results for {unknown}; there are {sorted(results)}")
    results = {c: results[c] for c in args.choices} if args.choices else results
    seeds = common_seeds(results)
    chosen, mean_rank, table_scores = choose(results)
    print(markdown(mean_rank, table_scores))
    counts = sorted({len(s) for s in seeds.values()})
    print(f"\nseeds per table: {counts}; chosen on validation: {chosen}")


if __name__ == "__main__":
    main()
