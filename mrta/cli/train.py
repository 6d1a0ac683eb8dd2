"""``mrta train``: train on a CSV, evaluate against the baselines, train the control model, save
the run."""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from typing import Any

from mrta.cli.columns import column_usage, training_columns
from mrta.cli.common import (
    add_chunk_rows,
    add_nproc,
    aligned,
    positive,
    refuse_streamed,
    subcommand,
    table_or_stream,
    verdict_text,
)
from mrta.cli.config_flags import add_config_flags, config_from_args
from mrta.cli.progress import ProgressBar
from mrta.cli.race import add_race, chosen_race, race_table
from mrta.config import ModelConfig
from mrta.data.preprocessing import PreprocessingOptions
from mrta.data.read import read_table
from mrta.data.schema import Role
from mrta.data.sets import MAX_SET_SIZE, SetOptions
from mrta.data.stream import DEFAULT_CHUNK_ROWS, DEFAULT_MAX_FILE_ROWS, DEFAULT_SAMPLE_ROWS
from mrta.data.target_transform import TARGET_NOTE, TARGET_TRANSFORMS
from mrta.pipelines import launch
from mrta.pipelines.distributed import train_run_on_workers
from mrta.pipelines.explain import run_verdict
from mrta.pipelines.streamed import train_run_from_file
from mrta.pipelines.train_run import check_seeds, default_train_config, train_run
from mrta.runs.control import NOT_TRAINED
from mrta.runs.gates import gate_report
from mrta.runs.manifest import MAX_SEEDS
from mrta.runs.run import Run, check_save_target
from mrta.task import Task
from mrta.training import world
from mrta.training.evaluate import CLASSIFICATION_METRICS, REGRESSION_METRICS

CONTROL_TITLE = (
    "Control model: the same model on labels shuffled within the training split, for as many "
    "steps as the model took:"
)
SKIPPED = NOT_TRAINED.replace("was trained for this run", "was trained (mrta train --no-control)")

ROLE_FLAGS = (
    (Role.IGNORED, "ignore"),
    (Role.CATEGORICAL, "categorical"),
    (Role.NUMERICAL, "numerical"),
)


def add_train(commands: argparse._SubParsersAction) -> None:
    p = subcommand(
        commands,
        "train",
        help="train a model on a CSV, evaluate it against baselines, save the run",
        description="Train on DATA.csv, evaluate on a held-out split beside HistGradientBoosting "
        "and the trivial baseline, train the control model (the same model on labels shuffled "
        "within the training split, for as many steps), and save the run to RUN_DIR.",
    )
    p.add_argument("data", metavar="DATA.csv", help="the table (CSV, or gzipped CSV)")
    p.add_argument("--target", required=True, metavar="COL", help="the column to predict")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="where to save the run")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run already saved in RUN_DIR (without it, such a RUN_DIR is refused "
        "before training)",
    )
    sets = _add_set_arguments(p)
    add_config_flags(p, {"sets": sets})
    _add_table_arguments(p)
    add_chunk_rows(p)
    p.add_argument(
        "--target-transform",
        choices=TARGET_TRANSFORMS,
        default="none",
        help="regression: learn the log of a positive target ('log'), or let the training rows "
        "decide ('auto': log where the target is positive and skewed); predictions come back in "
        "the target's units with Duan's smearing factor (default: %(default)s)",
    )
    p.add_argument(
        "--max-file-rows",
        type=positive,
        default=DEFAULT_MAX_FILE_ROWS,
        metavar="N",
        help="a streamed table: refuse a file of more than N rows while it is first read (its "
        "encoded training rows are held in memory; default: %(default)s)",
    )
    p.add_argument(
        "--sample-rows",
        type=positive,
        metavar="N",
        help="a streamed table: infer the column types and fit the preprocessor on a seeded "
        f"sample of N rows (default: {DEFAULT_SAMPLE_ROWS:,})",
    )
    p.add_argument(
        "--seeds",
        type=positive,
        default=1,
        metavar="N",
        help="train N models on the same split from the initial seeds --seed, --seed + 1, ... "
        "for N times --time-budget in all (on a CPU of 2 cores or more at once, a process and "
        "thread each, which gave 1.2-1.5 times the steps of one after another; else one after "
        "another, each with the whole budget), saved as one run whose predictions are the "
        "members' mean and whose maps can be checked for stability across seeds (mrta "
        f"explain); at most {MAX_SEEDS} (default: %(default)s)",
    )
    add_race(p)
    add_nproc(p, "train")
    p.add_argument(
        "--no-control",
        action="store_true",
        help="skip the control model: by default, after the model, the same model (same "
        "configuration, split and initial weights) is trained on labels shuffled within the "
        "training split for as many steps as the model took, the null that its attention and "
        "its score are compared with; --time-budget bounds the model only, so the control "
        "takes about as long again",
    )
    p.set_defaults(handler=run_train)


def _add_table_arguments(p: argparse.ArgumentParser) -> None:
    """What to predict, the columns' roles, a separate test table, and saving the rows."""
    p.add_argument(
        "--task",
        choices=("auto", "binary", "multiclass", "regression"),
        default="auto",
        help="what to predict (default: inferred from the target)",
    )
    for role, flag in ROLE_FLAGS:
        p.add_argument(
            f"--{flag}",
            nargs="+",
            default=[],
            metavar="COL",
            help=f"treat these columns as {role.value}",
        )
    p.add_argument(
        "--test",
        metavar="DATA.csv",
        help="a separate test table (default: a held-out split of DATA.csv)",
    )
    p.add_argument(
        "--save-data",
        action="store_true",
        help="save the table's rows in the run too (needed to analyse it later without the CSV)",
    )


def _add_set_arguments(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The group of set resolution's arguments (``--no-bind-rows`` joins it from the config)."""
    sets = p.add_argument_group(
        "set resolution",
        "one prediction per group of rows (a portfolio's positions, a patient's visits): the "
        "rows of a group are the tokens and the target must be the same on all of them",
    )
    sets.add_argument("--group-by", metavar="COL", help="the group key: one example per value")
    sets.add_argument(
        "--order-by", metavar="COL", help="order a group's rows by this column (e.g. a date)"
    )
    sets.add_argument(
        "--max-set-size",
        type=int,
        default=MAX_SET_SIZE,
        metavar="N",
        help="larger groups keep a seeded random N of their rows (default: %(default)s)",
    )
    return sets


def run_train(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if args.chunk_rows is not None and args.nproc != 1:
        refuse_streamed("--nproc", args.data, "--chunk-rows was given", "train in one process")
    # a RUN_DIR that cannot take the run is refused before any work, not after training
    check_save_target(args.out, overwrite=args.overwrite)
    if args.seeds > 1 and args.nproc != 1:
        raise ValueError(
            "--seeds trains its members on this machine, at once or one after another, not on "
            "--nproc workers: drop --nproc, or drop --seeds and train each seed with --seed"
        )
    check_seeds(args.seeds, None)
    if args.race and args.nproc != 1:
        raise ValueError(
            "--race trains its two settings on this machine, a core each, not on --nproc "
            "workers: drop --race or --nproc"
        )
    if launch.launches(args.nproc):
        return launch.launch(args.argv, args.nproc)
    sets = _set_options(args)
    model_config = config_from_args(args, ModelConfig())
    train_config = config_from_args(args, default_train_config(sets))
    frame = table_or_stream(args, args.chunk_rows)
    if frame is None:
        _check_streamed_training(args)
    elif args.sample_rows is not None:
        raise ValueError(
            "--sample-rows applies to a streamed table, and this one is read whole: drop "
            "it, or add --chunk-rows N to stream the table"
        )
    test_frame = read_table(args.test).frame if frame is not None and args.test else None
    race, no_race = chosen_race(
        args, model_config, train_config, streamed=frame is None, sets=sets is not None
    )
    leader = world.is_leader()
    if frame is not None and leader:  # how each column is used, before training starts
        print(training_columns(frame, args, _roles(args), sets), file=sys.stderr)
    if no_race and leader:
        print(f"Note: {no_race}", file=sys.stderr)
    bar = ProgressBar(sys.stderr) if leader else None
    control_bar = (
        ProgressBar(sys.stderr, title=CONTROL_TITLE) if leader and not args.no_control else None
    )
    settings: dict[str, Any] = {
        "model_config": model_config,
        "train_config": train_config,
        "task": None if args.task == "auto" else args.task,
        "roles": _roles(args),
        "callback": bar,
        "control": not args.no_control,
        "control_callback": control_bar,
        "preprocessing_options": PreprocessingOptions(target_transform=args.target_transform),
    }
    if frame is None:
        run = train_run_from_file(
            args.data,
            args.target,
            chunk_rows=args.chunk_rows or DEFAULT_CHUNK_ROWS,
            sample_rows=args.sample_rows or DEFAULT_SAMPLE_ROWS,
            max_file_rows=args.max_file_rows,
            scan_callback=None
            if bar is None
            else partial(bar.count, message=f"reading {args.data}"),
            **settings,
        )
    else:
        if world.in_worker():
            run = train_run_on_workers(
                frame, args.target, test_frame=test_frame, sets=sets, **settings
            )
        else:
            phase = None if bar is None else bar.begin
            run = train_run(
                frame,
                args.target,
                test_frame=test_frame,
                sets=sets,
                phase=phase,
                seeds=args.seeds,
                race=race,
                **settings,
            )
    if run is None:  # a distributed worker other than rank 0, which reports and saves
        return 0
    if run.seeds == 1:
        bar.finish(f"Model: {run.training.message}")
    else:
        bar.finish(f"{run.seeds} seed members:")
        for k, member in enumerate(run.members):
            print(
                f"  member {k} (seed {member.init_seed}): {member.training.message}",
                file=sys.stderr,
            )
    if frame is None:  # a streamed table's roles are decided on a sample, within training
        print(column_usage(run.schema, sampled=True), file=sys.stderr)
    if args.no_control:
        run.no_control = SKIPPED
    print(f"{run.control_status()}", file=sys.stderr)
    # the whole command's wall clock, reading the table to saving the run, is kept in the run
    run.metrics["wall_seconds"] = round(time.perf_counter() - started, 2)
    out = run.save(args.out, include_data=args.save_data, overwrite=args.overwrite)
    # A streamed run's preprocessor says what was fitted on a sample.
    streamed = run.preprocessor.notes if frame is None else ()
    target = [n for n in run.preprocessor.notes if n.startswith(TARGET_NOTE) and n not in streamed]
    for note in (*run.schema.notes, *streamed, *target, *run.splits.notes):
        print(f"Note: {note}", file=sys.stderr)
    if run.preprocessor.target_transform == "log":
        print(
            "Note: predictions are exp(the model's log prediction) times Duan's smearing factor "
            f"{run.preprocessor.target_smearing:.4f} (from the validation rows' residuals); the "
            "metrics are on the target's own units.",
            file=sys.stderr,
        )
    print(metrics_table(run), file=sys.stdout)
    if run.race is not None:
        print(f"\n{race_table(run)}", file=sys.stdout)
    gates = gate_report(run)
    if gates is not None:
        print(f"\n{gates.sentence()}", file=sys.stdout)
    if run.seeds > 1:
        print(f"\n{members_table(run)}", file=sys.stdout)
    print(f"\n{control_report(run)}", file=sys.stdout)
    print(f"\n{verdict_text(*run_verdict(run))}", file=sys.stdout)
    print(
        f"\nSaved the run to {out} ({run.metrics['wall_seconds']:.1f} s from reading the table "
        "to saving the run)",
        file=sys.stdout,
    )
    return 0


def _check_streamed_training(args: argparse.Namespace) -> None:
    """Refuse what training on a streamed table cannot do, with a one-line message."""
    why = "--chunk-rows was given" if args.chunk_rows else "it is over the reading limits"
    for flag, given, instead in (
        ("--save-data", args.save_data, "keep the file beside the run instead"),
        ("--group-by", args.group_by is not None, "train sets on a smaller table"),
        ("--test", args.test is not None, "append the test rows to the table"),
        ("--nproc", world.in_worker(), "train in one process"),
        ("--seeds", args.seeds > 1, "train each seed with --seed on a smaller table"),
    ):
        if given:
            refuse_streamed(flag, args.data, why, instead)


def _set_options(args: argparse.Namespace) -> SetOptions | None:
    if args.group_by is None:
        for flag, given in (
            ("--order-by", args.order_by is not None),
            ("--max-set-size", args.max_set_size != MAX_SET_SIZE),
        ):
            if given:
                raise ValueError(f"{flag} applies to sets: give --group-by COL as well")
        return None
    return SetOptions(args.group_by, args.order_by, args.max_set_size)


def _roles(args: argparse.Namespace) -> dict[str, Role]:
    roles: dict[str, Role] = {}
    for role, flag in ROLE_FLAGS:
        for column in getattr(args, flag):
            if column in roles and roles[column] is not role:
                raise ValueError(
                    f"column {column!r} was given two roles, {roles[column].value} and "
                    f"{role.value}: give it one"
                )
            roles[column] = role
    return roles


def metrics_table(run: Run) -> str:
    """The held-out metrics of the model and the baselines, as a plain-text table."""
    scores = run.metrics
    regression = run.schema.task == Task.REGRESSION
    names = REGRESSION_METRICS if regression else CLASSIFICATION_METRICS
    columns = ("model", "hgb", "trivial")
    sets = run.sets is not None
    boosting = "gradient boosting on aggregates" if sets else "gradient boosting"
    model = "model" if run.seeds == 1 else f"model (mean of {run.seeds} seeds)"
    headers = ("metric", model, boosting, "trivial")
    rows = [[name, *(_number(scores[column].get(name)) for column in columns)] for name in names]
    examples = f"{scores['model']['rows']:,} {'groups' if sets else 'rows'}"
    return "\n".join(
        [f"Metrics on the {scores['split']} split ({examples}):", *aligned([headers, *rows])]
    )


def members_table(run: Run) -> str:
    """Each seed member's own test metrics (the run's "model" is their mean)."""
    regression = run.schema.task == Task.REGRESSION
    names = REGRESSION_METRICS if regression else CLASSIFICATION_METRICS
    headers = ("member", "seed", *names)
    rows = [
        (str(k), str(member.init_seed), *(_number(member.metrics["model"].get(n)) for n in names))
        for k, member in enumerate(run.members)
    ]
    title = (
        f"The model above is the mean of {run.seeds} seed members' predictions; each member "
        "alone, on the same rows:"
    )
    return "\n".join([title, *aligned([headers, *rows])])


def control_report(run: Run) -> str:
    """The control model's steps, epochs, test metric and seconds, beside the model's (the time
    budget bounds the model only); or the sentence that says why there is no control."""
    control = run.control
    if control is None:
        return run.no_control
    first = run.members[0]
    model = first.metrics["model"].get(control.metric)
    score = "undefined" if control.value is None else f"{control.value:.4f}"
    training = first.training
    rows = [
        ("", "steps", "epochs", control.metric, "seconds"),
        ("model" if run.seeds == 1 else "member 0", f"{training.steps:,}", f"{training.epochs:,}",
         _number(model), f"{training.elapsed:.1f}"),
        ("control", f"{control.steps:,}", f"{control.epochs:,}", score, f"{control.seconds:.1f}"),
    ]  # fmt: skip
    title = (
        "Control model (labels shuffled within the training split; the time budget bounds the "
        "model only):"
        if run.seeds == 1
        else "Control model (labels shuffled within the training split, trained as member 0 was: "
        "from its initial weights, for its steps):"
    )
    return "\n".join([title, *aligned(rows)])


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"
