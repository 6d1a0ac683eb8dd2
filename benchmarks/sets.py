"""Set resolution: the model against the per-group aggregate baseline, and its cost at scale.

Two parts (``--part quality``, ``--part scale``, or both, the default):

**Quality.** On ``sample_data/synthetic_set.csv`` (1,500 portfolios, target ``aggressive``, one
label per ``portfolio_id``; its planted rule sums a row's ``amount_k`` by the row's
``asset_class`` across the set's rows, ``sample_data/README.md``), for each seed ``s`` in 0–4 a
set run is trained with :func:`mrta.runs.run.train_run` (``sets=SetOptions("portfolio_id")``, its
own group split ``SplitOptions(seed=s)`` and the set runs' default training
(:func:`mrta.runs.run.default_train_config`: 32 sets a step) with ``time_budget=None,
max_epochs=EPOCHS, seed=s, threads=1``: a fixed number of epochs, no time budget, so the
result does not depend on the machine's load; the weights of the best validation epoch are
kept). It is scored on its test groups beside HistGradientBoosting on per-group aggregates
(``run.metrics["hgb"]``), the trivial baseline and the planted rule itself (``[logit > 0]``
and ``σ(logit)`` from ``make_synthetic.set_logit``: the noise-free ceiling), at the default
model config (``bind_rows=True``) and again with ``bind_rows=False`` (the reference layer's
plain split of the two streams). Reported: accuracy, ROC AUC and log loss per seed, their mean
and standard deviation over the seeds, and the model's paired difference from the baseline
(mean, standard error over the seeds, and how many standard errors).

**Scale.** The seed's first example's size: 100 sets of 1,000 rows (and 100 of 100), from a
seeded table with the sample's columns and planted rule (:func:`scale_table`). Each step runs
in a fresh subprocess, so that its peak resident memory (``VmHWM``) is its own:

- ``imports``: the interpreter with torch, pandas, scikit-learn and mrta imported, nothing else
  (``torch._dynamo`` too, which torch's first optimizer would import: about 65 MB);
- ``train``: one full epoch of :func:`mrta.training.loop.fit` over exactly the 100 sets (called
  directly, not through ``train_run``, so that the epoch covers all 100; the preprocessor is
  fitted on them and 10 more sets of the same size are the validation split, evaluated before
  and after the epoch); the run is saved for the next step;
- ``explain``: the saved run loaded and :func:`mrta.analysis.sets.explain_sets` over the 100
  sets (every map's received attention and the rollout share of every row).

Each step reports its seconds and its peak memory, and the memory after its imports (before
any work) so that the memory the step added is visible. All on one thread (``--threads``).

Run ``python -m benchmarks.sets`` (about 10 minutes for the quality part and 2.5 for the scale
part on 2 cores); it writes ``benchmarks/results/sets.json`` (a part run alone replaces only
its own section) and prints the README's tables.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch._dynamo  # torch.optim imports it on its first optimizer: ~2 s, ~65 MB
from sklearn.metrics import log_loss, roc_auc_score

from benchmarks.machine import machine
from benchmarks.memory import memory_mb
from mrta.config import ModelConfig, TrainConfig
from mrta.data.preprocessing import Preprocessor
from mrta.data.read import read_table
from mrta.data.schema import Role, infer_schema
from mrta.data.sets import SetOptions
from mrta.data.splits import SplitOptions, Splits
from mrta.nn.model import build_model
from mrta.nn.set_model import SetAttentionModel
from mrta.pipelines.explain_sets import explain_sets
from mrta.pipelines.train_run import default_train_config, train_run
from mrta.runs.run import Run
from mrta.training.loop import Progress, fit

ROOT = Path(__file__).resolve().parents[1]
RESULT = Path(__file__).resolve().parent / "results" / "sets.json"
TABLE = ROOT / "sample_data" / "synthetic_set.csv"
TARGET = "aggressive"
GROUP = "portfolio_id"
SEEDS = (0, 1, 2, 3, 4)
#: Epochs per quality run: the middle of the 7-12 that reached 0.73-0.83 test accuracy in the
#: set model's first measurements, and what lets 10 runs fit in about 12 minutes on one core.
EPOCHS = 8
METRICS = ("accuracy", "roc_auc", "log_loss")
HIGHER_IS_BETTER = {"accuracy": True, "roc_auc": True, "log_loss": False}
SCALE_SIZES = (100, 1000)  # rows per set
SCALE_SETS = 100  # sets trained on and explained
VALIDATION_SETS = 10
SCALE_SEED = 0


def make_synthetic() -> ModuleType:
    """``sample_data/make_synthetic.py`` (not a package): the planted rule and its constants."""
    spec = importlib.util.spec_from_file_location(
        "make_synthetic", TABLE.with_name("make_synthetic.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SYN = make_synthetic()


# -- quality ---------------------------------------------------------------------------------
def rule_scores(test_rows: pd.DataFrame) -> dict[str, float]:
    """The planted rule on the test groups: ``[logit > 0]``'s accuracy, ``σ(logit)``'s ROC AUC
    and log loss (the noise-free probability), and the expected accuracy ``E[σ(|logit|)]``."""
    logit = SYN.set_logit(SYN.portfolio_exposures(test_rows))  # (G,) groups sorted by key
    y = test_rows.groupby(SYN.SET_GROUP, sort=True)[SYN.SET_TARGET].first().to_numpy()
    probability = 1.0 / (1.0 + np.exp(-logit))
    return {
        "accuracy": float(np.mean((logit > 0) == (y == 1))),
        "roc_auc": float(roc_auc_score(y, logit)),
        "log_loss": float(log_loss(y, probability, labels=[0, 1])),
        "expected_accuracy": float(np.mean(1.0 / (1.0 + np.exp(-np.abs(logit))))),
        "groups": len(y),
    }


def quality_config(epochs: int, seed: int) -> TrainConfig:
    """The set runs' default training (32 sets a step), for a fixed number of epochs."""
    return replace(
        default_train_config(SetOptions(GROUP)),
        time_budget=None,
        max_epochs=epochs,
        seed=seed,
        threads=1,
    )


def quality_run(frame: pd.DataFrame, seed: int, bind_rows: bool, epochs: int) -> dict[str, Any]:
    """One set run at `seed` (its split, initial weights, shuffles): its test metrics, the
    baselines' and the planted rule's on the same test groups, and how training went."""
    start = time.perf_counter()
    run = train_run(
        frame,
        TARGET,
        model_config=ModelConfig(bind_rows=bind_rows),
        train_config=quality_config(epochs, seed),
        split_options=SplitOptions(seed=seed),
        sets=SetOptions(GROUP),
    )
    wall = time.perf_counter() - start
    groups = {
        split: int(frame[GROUP].iloc[list(getattr(run.splits, split))].nunique())
        for split in ("train", "validation", "test")
    }
    training = run.training
    return {
        "seed": seed,
        "bind_rows": bind_rows,
        **{
            name: {metric: run.metrics[name][metric] for metric in METRICS}
            for name in ("model", "hgb", "trivial")
        },
        "rule": rule_scores(frame.iloc[list(run.splits.test)]),
        "groups": groups,
        "epochs": training.epochs,
        "best_epoch": training.best_epoch,
        "stop_reason": training.stop_reason,
        "steps": training.steps,
        "validation_curve": [  # per epoch (0 = untrained): validation loss and accuracy
            [h["epoch"], round(h["validation_loss"], 4), round(h["validation"]["accuracy"], 4)]
            for h in training.history
        ],
        "training_seconds": training.elapsed,
        "wall_seconds": round(wall, 1),
    }


def mean_std(values: list[float]) -> dict[str, Any]:
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric: mean ± std over the seeds of the model, baselines and rule; the model's
    paired difference from the aggregate baseline (a positive ``advantage`` is better for the
    model, whichever way the metric goes), its standard error and its ratio to it."""
    out: dict[str, Any] = {"seeds": [r["seed"] for r in runs]}
    for metric in METRICS:
        entry = {
            name: mean_std([r[name][metric] for r in runs])
            for name in ("model", "hgb", "trivial", "rule")
        }
        sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
        advantage = np.array([sign * (r["model"][metric] - r["hgb"][metric]) for r in runs])
        n = len(advantage)
        se = float(advantage.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        entry["advantage_over_hgb"] = {
            "mean": float(advantage.mean()),
            "paired_se": se,
            "standard_errors": float(advantage.mean() / se) if se > 0 else float("nan"),
            "seeds_better": int((advantage > 0).sum()),
        }
        entry["model_beats_hgb"] = bool(advantage.mean() > 0)
        out[metric] = entry
    return out


def quality(
    frame: pd.DataFrame, seeds: tuple[int, ...], epochs: int, configs: tuple[bool, ...]
) -> dict[str, Any]:
    """:func:`quality_run` for each seed and each ``bind_rows`` in `configs`; the summaries."""
    torch.set_num_threads(1)  # evaluation too runs on one thread
    start = time.perf_counter()
    load_before = os.getloadavg()
    runs = []
    for bind_rows in configs:
        for seed in seeds:
            runs.append(quality_run(frame, seed, bind_rows, epochs))
            r = runs[-1]
            print(
                f"bind_rows={bind_rows} seed {seed}: accuracy model {r['model']['accuracy']:.3f}, "
                f"HGB {r['hgb']['accuracy']:.3f}, rule {r['rule']['accuracy']:.3f}; "
                f"epochs {r['epochs']} (best {r['best_epoch']}), {r['wall_seconds']:.0f} s",
                flush=True,
            )
    return {
        "command": command("quality"),
        "table": TABLE.name,
        "target": TARGET,
        "group_by": GROUP,
        "epochs": epochs,
        "train_config": quality_config(epochs, 0).to_dict(),
        "split_options": asdict(SplitOptions()),
        "per_seed": "TrainConfig.seed and SplitOptions.seed are both the seed",
        "model_configs": {str(b): ModelConfig(bind_rows=b).to_dict() for b in configs},
        "runs": runs,
        "summary": {
            f"bind_rows={b}": summarize([r for r in runs if r["bind_rows"] == b]) for b in configs
        },
        "seconds": round(time.perf_counter() - start, 1),
        "machine": machine(load_before),
    }


# -- scale -----------------------------------------------------------------------------------
def scale_table(groups: int, rows: int, seed: int = SCALE_SEED) -> pd.DataFrame:
    """`groups` portfolios of exactly `rows` positions each: the sample table's columns and
    distributions (``make_synthetic.make_set``) and its planted rule, at a fixed set size."""
    rng = np.random.default_rng(seed)
    n = groups * rows
    ids = np.array([f"PF{i:05d}" for i in range(1, groups + 1)])
    frame = pd.DataFrame(
        {
            SYN.SET_GROUP: np.repeat(ids, rows),
            "asset_class": rng.choice(SYN.ASSET_CLASSES, size=n, p=SYN.ASSET_PROBS),
            "amount_k": np.round(np.exp(rng.normal(np.log(10.0), 1.0, n)), 2),
            "volatility": np.round(rng.uniform(0.02, 0.60, n), 2),
            "holding_days": rng.integers(1, 1500, n),
            "currency": rng.choice(("USD", "EUR", "GBP", "JPY"), size=n),
        }
    )
    logit = SYN.set_logit(SYN.portfolio_exposures(frame))  # (groups,) sorted = table order
    label = (rng.random(groups) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    frame[SYN.SET_TARGET] = np.repeat(label, rows)
    return frame


def scale_frames(rows: int, sets: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The `sets` groups to train on and explain, and :data:`VALIDATION_SETS` more."""
    frame = scale_table(sets + VALIDATION_SETS, rows)
    return frame.iloc[: sets * rows], frame.iloc[sets * rows :]


def step_train(rows: int, sets: int, run_dir: Path) -> dict[str, Any]:
    """One full epoch of `fit` over `sets` sets of `rows` rows; the run saved in `run_dir`."""
    train_rows, validation_rows = scale_frames(rows, sets)
    options = SetOptions(GROUP)
    start = time.perf_counter()
    schema = infer_schema(train_rows, TARGET, roles={GROUP: Role.IGNORED})
    preprocessor = Preprocessor.fit(train_rows, schema)
    train, validation = (options.make(f, preprocessor) for f in (train_rows, validation_rows))
    prepare = time.perf_counter() - start
    config = replace(
        default_train_config(options),
        time_budget=None,
        max_epochs=1,
        threads=torch.get_num_threads(),
    )
    model = build_model(preprocessor.model_spec(ModelConfig()), config.seed, SetAttentionModel)
    steps: list[float] = []

    def on_progress(progress: Progress) -> None:
        if progress.event == "step":
            steps.append(progress.elapsed)

    start = time.perf_counter()
    result = fit(model, train, validation, config, callback=on_progress)
    fit_seconds = time.perf_counter() - start
    peak = memory_mb("VmHWM")
    n_train, n_validation = len(train_rows), len(validation_rows)
    splits = Splits(
        train=tuple(range(n_train)),
        validation=tuple(range(n_train, n_train + n_validation)),
        test=(),
        seed=0,
        stratified=True,
    )
    Run(
        model,
        preprocessor,
        splits,
        train_config=config,
        init_seed=config.seed,
        metrics={},
        training=result,
        frame=None,
        sets=options,
    ).save(run_dir)
    return {
        "sets": len(train),
        "rows_per_set": int(train.set_sizes.max()),
        "validation_sets": len(validation),
        "steps": result.steps,
        "batch_size": result.batch_size,
        "prepare_seconds": round(prepare, 2),
        "fit_seconds": round(fit_seconds, 2),
        # the epoch's optimiser steps alone: from the untrained model's evaluation to the last step
        "epoch_seconds": round(steps[-1] - result.history[0]["elapsed"], 2),
        "validation_loss": result.history[-1]["validation_loss"],
        "peak_mb": round(peak, 1),
    }


def step_explain(rows: int, sets: int, run_dir: Path) -> dict[str, Any]:
    """`explain_sets` of the saved run over the same `sets` sets."""
    frame, _ = scale_frames(rows, sets)
    start = time.perf_counter()
    run = Run.load(run_dir)
    explanation = explain_sets(run, frame)
    seconds = time.perf_counter() - start
    return {
        "sets": len(explanation.sets),
        "rows": len(explanation.rows),
        "maps": len(explanation.map_keys),
        "seconds": round(seconds, 2),
        "explain_seconds": explanation.seconds,
        "peak_mb": round(memory_mb("VmHWM"), 1),
    }


def child(step: str, rows: int, sets: int, run_dir: Path, threads: int) -> dict[str, Any]:
    """A step's body in its own process: its figures and the memory its imports took."""
    before = memory_mb("VmHWM")  # the interpreter with every import above, before any work
    torch.set_num_threads(threads)
    if step == "imports":
        out: dict[str, Any] = {"peak_mb": round(memory_mb("VmHWM"), 1)}
    elif step == "train":
        out = step_train(rows, sets, run_dir)
    else:
        out = step_explain(rows, sets, run_dir)
    # The kernel updates VmHWM lazily (a reading takes the larger of it and the RSS at that
    # moment), so a later reading can come out a little below an earlier one: keep the larger.
    out["peak_mb"] = max(out["peak_mb"], round(before, 1))
    out["imports_peak_mb"] = round(before, 1)
    out["added_mb"] = round(out["peak_mb"] - before, 1)
    return out


def in_child(step: str, rows: int, sets: int, run_dir: Path, threads: int) -> dict[str, Any]:
    """:func:`child` in a fresh interpreter; its JSON."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.sets", "--child", step, "--rows", str(rows),
         "--sets", str(sets), "--run-dir", str(run_dir), "--threads", str(threads)],
        cwd=Path(__file__).resolve().parents[1],
        check=True,
        capture_output=True,
        text=True,
    )  # fmt: skip
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["process_seconds"] = round(time.perf_counter() - start, 1)
    return out


def scale(sizes: tuple[int, ...], sets: int, threads: int) -> dict[str, Any]:
    start = time.perf_counter()
    load_before = os.getloadavg()
    imports = in_child("imports", 0, 0, Path(), threads)
    print(f"imports alone: peak {imports['peak_mb']:.0f} MB", flush=True)
    results = []
    for rows in sizes:
        with tempfile.TemporaryDirectory() as folder:
            train = in_child("train", rows, sets, Path(folder), threads)
            print(
                f"{sets} sets of {rows} rows: epoch {train['fit_seconds']:.1f} s, "
                f"peak {train['peak_mb']:.0f} MB",
                flush=True,
            )
            explained = in_child("explain", rows, sets, Path(folder), threads)
            print(
                f"{sets} sets of {rows} rows: explain {explained['seconds']:.1f} s, "
                f"peak {explained['peak_mb']:.0f} MB",
                flush=True,
            )
        results.append({"rows_per_set": rows, "sets": sets, "train": train, "explain": explained})
    return {
        "command": command("scale"),
        "table": "scale_table(): sample_data's set columns and rule, fixed set size, seed 0",
        "threads": threads,
        "model_config": ModelConfig().to_dict(),
        "train_config": replace(
            default_train_config(SetOptions(GROUP)), time_budget=None, max_epochs=1, threads=threads
        ).to_dict(),
        "imports": imports,
        "sizes": results,
        "seconds": round(time.perf_counter() - start, 1),
        "machine": machine(load_before),
    }


# -- report ----------------------------------------------------------------------------------
def command(part: str) -> str:
    """The command line that ran `part` (its arguments as given, the part named)."""
    given = [a for a in sys.argv[1:] if a not in ("--part", "quality", "scale", "all")]
    return " ".join(["python", "-m", "benchmarks.sets", "--part", part, *given])


def quality_markdown(part: dict[str, Any]) -> str:
    lines = []
    for key, summary in part["summary"].items():
        runs = [r for r in part["runs"] if f"bind_rows={r['bind_rows']}" == key]
        lines += [
            f"{key}, {part['epochs']} epochs, test groups per seed: "
            f"{', '.join(str(r['groups']['test']) for r in runs)}",
            "",
            "| seed | model acc. | HGB acc. | rule acc. | model AUC | HGB AUC | rule AUC "
            "| model log loss | HGB log loss | best epoch |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in runs:
            lines.append(
                f"| {r['seed']} | {r['model']['accuracy']:.3f} | {r['hgb']['accuracy']:.3f} "
                f"| {r['rule']['accuracy']:.3f} | {r['model']['roc_auc']:.3f} "
                f"| {r['hgb']['roc_auc']:.3f} | {r['rule']['roc_auc']:.3f} "
                f"| {r['model']['log_loss']:.3f} | {r['hgb']['log_loss']:.3f} "
                f"| {r['best_epoch']} of {r['epochs']} |"
            )
        lines += [
            "",
            "| metric | model | HGB on aggregates | trivial | planted rule | model − HGB "
            "(paired SE) | in SEs | seeds model better |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for metric in METRICS:
            m = summary[metric]
            adv = m["advantage_over_hgb"]
            diff = adv["mean"] * (1 if HIGHER_IS_BETTER[metric] else -1)
            ses = adv["standard_errors"] * (1 if HIGHER_IS_BETTER[metric] else -1)
            lines.append(
                f"| {metric} | {fmt(m['model'])} | {fmt(m['hgb'])} | {fmt(m['trivial'])} "
                f"| {fmt(m['rule'])} | {diff:+.3f} ({adv['paired_se']:.3f}) "
                f"| {ses:+.1f} | {adv['seeds_better']}/{len(runs)} |"
            )
        lines.append("")
    return "\n".join(lines)


def fmt(value: dict[str, float]) -> str:
    return f"{value['mean']:.3f} ± {value['std']:.3f}"


def scale_markdown(part: dict[str, Any]) -> str:
    base = part["imports"]["peak_mb"]
    lines = [
        f"Interpreter with torch, pandas, scikit-learn and mrta imported: {base:.0f} MB; "
        f"{part['threads']} thread(s).",
        "",
        "| step | sets × rows | seconds | peak memory | added by the step |",
        "|---|---|---:|---:|---:|",
    ]
    for size in part["sizes"]:
        shape = f"{size['sets']} × {size['rows_per_set']:,}"
        train, explained = size["train"], size["explain"]
        lines.append(
            f"| one epoch ({train['steps']} steps of {train['batch_size']} sets; "
            f"epoch alone {train['epoch_seconds']:.1f} s) | {shape} | {train['fit_seconds']:.1f} "
            f"| {train['peak_mb']:.0f} MB | {train['added_mb']:.0f} MB |"
        )
        lines.append(
            f"| explain_sets ({explained['rows']:,} rows, {explained['maps']} maps) | {shape} "
            f"| {explained['seconds']:.1f} | {explained['peak_mb']:.0f} MB "
            f"| {explained['added_mb']:.0f} MB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("quality", "scale", "all"), default="all")
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="seeds 0 to N-1")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SCALE_SIZES))
    parser.add_argument("--sets", type=int, default=SCALE_SETS)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the scale part")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--child", choices=("imports", "train", "explain"), help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rows, args.sets, args.run_dir, args.threads)))
        return

    result = json.loads(args.out.read_text()) if args.out.is_file() else {}
    result.update(
        benchmark="sets",
        what="set resolution on the set sample table against per-group aggregates (quality), "
        "and one epoch and explain_sets at 100 sets of 100 and 1,000 rows (scale)",
    )
    if args.part in ("quality", "all"):
        frame = read_table(TABLE).frame
        result["quality"] = quality(frame, tuple(range(args.seeds)), args.epochs, (True, False))
    if args.part in ("scale", "all"):
        result["scale"] = scale(tuple(args.sizes), args.sets, args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print()
    if args.part in ("quality", "all"):
        print(quality_markdown(result["quality"]))
        print(f"quality part: {result['quality']['seconds']:.0f} s")
    if args.part in ("scale", "all"):
        print(scale_markdown(result["scale"]))
        print(f"scale part: {result['scale']['seconds']:.0f} s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
