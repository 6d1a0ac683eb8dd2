"""The command line: ``mrta train``, ``mrta predict``, ``mrta explain``, ``mrta dashboard``.

Each subcommand is one ``add_*`` function that makes its parser with :func:`subcommand`,
declares its arguments and sets ``handler``; :func:`build_parser` lists them, so a new
subcommand is one function and one line. Errors
reach stderr as one message with exit code 1 (2 for usage errors, 130 when interrupted),
with a traceback only under ``--debug``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from mrta.config import DEVICES, ModelConfig, TrainConfig
from mrta.data.read import ReadingOptions, read_table
from mrta.data.schema import Role
from mrta.data.sets import MAX_SET_SIZE, SET_BATCH_SIZE, SetOptions
from mrta.data.stream import DEFAULT_CHUNK_ROWS, DEFAULT_SAMPLE_ROWS
from mrta.errors import one_line
from mrta.pipelines import launch
from mrta.pipelines.archive import RUNS_DIR_ENV
from mrta.pipelines.distributed import explain_on_workers, train_run_on_workers
from mrta.pipelines.explain import (
    DEFAULT_MAX_ROWS,
    explain,
    load_explanation,
    run_checks,
    save_explanation,
    write_exports,
)
from mrta.pipelines.explain_sets import DEFAULT_MAX_SETS, explain_sets, set_maps
from mrta.pipelines.streamed import (
    explained_rows,
    file_digest,
    predict_file,
    read_or_stream,
    train_run_from_file,
)
from mrta.report.set_exports import write_set_exports
from mrta.runs.run import Run, default_train_config, train_run
from mrta.task import Task
from mrta.training import world
from mrta.training.evaluate import CLASSIFICATION_METRICS, REGRESSION_METRICS
from mrta.training.loop import Progress

if TYPE_CHECKING:
    import pandas as pd

DASHBOARD_APP = Path(__file__).resolve().parent.parent / "dashboard" / "app.py"
BAR_WIDTH = 30


def build_parser() -> argparse.ArgumentParser:
    """The ``mrta`` parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="mrta",
        description="MultiResolutionTabularAttention: train on a CSV, predict, explore attention.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    parser.set_defaults(passes_on_arguments=False)  # a subcommand that takes unknown ones says so
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (add_train, add_predict, add_explain, add_dashboard):
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not args.passes_on_arguments:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    args.argv = list(sys.argv[1:] if argv is None else argv)  # what --nproc passes to workers
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt:
        print("mrta: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.debug:
            raise
        print(f"mrta: error: {one_line(error)}", file=sys.stderr)
        return 1


def subcommand(commands: argparse._SubParsersAction, name: str, **kwargs: Any):
    """A subcommand's parser; it takes ``--debug`` too, so the flag may follow the command."""
    p = commands.add_parser(name, **kwargs)
    p.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    return p


# -- train ---------------------------------------------------------------------------------------
def add_train(commands: argparse._SubParsersAction) -> None:
    model, train = ModelConfig(), TrainConfig()
    p = subcommand(
        commands,
        "train",
        help="train a model on a CSV, evaluate it against baselines, save the run",
        description="Train on DATA.csv, evaluate on a held-out split beside HistGradientBoosting "
        "and the trivial baseline, and save the run to RUN_DIR.",
    )
    p.add_argument("data", metavar="DATA.csv", help="the table (CSV, or gzipped CSV)")
    p.add_argument("--target", required=True, metavar="COL", help="the column to predict")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="where to save the run")
    p.add_argument(
        "--time-budget",
        type=float,
        default=train.time_budget,
        metavar="S",
        help="seconds of training; 0 for no limit (default: %(default)s)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=train.max_epochs,
        metavar="N",
        help="maximum epochs (default: %(default)s)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help=f"examples per step (default: {train.batch_size} rows, or {SET_BATCH_SIZE} sets "
        "with --group-by)",
    )
    p.add_argument(
        "--device",
        choices=DEVICES,
        default=train.device,
        help="where to train (default: %(default)s)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=train.threads,
        metavar="N",
        help="CPU threads for training (default: the physical cores)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=train.seed,
        metavar="N",
        help="seed of the split, the initial weights and training (default: %(default)s)",
    )
    p.add_argument(
        "--layers",
        type=int,
        default=model.num_layers,
        metavar="L",
        help="attention layers (default: %(default)s)",
    )
    p.add_argument(
        "--num-heads",
        type=int,
        default=model.num_heads,
        metavar="H",
        help="heads per attention block (default: %(default)s)",
    )
    p.add_argument(
        "--d-model",
        type=int,
        default=model.d_model,
        metavar="D",
        help="token width in the layers (default: %(default)s)",
    )
    p.add_argument(
        "--dropout",
        type=float,
        default=model.dropout,
        metavar="P",
        help="dropout rate (default: %(default)s)",
    )
    p.add_argument(
        "--task",
        choices=("auto", "binary", "multiclass", "regression"),
        default="auto",
        help="what to predict (default: inferred from the target)",
    )
    for role in (Role.IGNORED, Role.CATEGORICAL, Role.NUMERICAL):
        flag = "ignore" if role is Role.IGNORED else role.value
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
    sets.add_argument(
        "--no-bind-rows",
        action="store_true",
        help="keep a row's categories out of its numerical token (the layer's plain stream "
        "split; it cannot tie a row's numbers to its own categories)",
    )
    _add_chunk_rows(p)
    p.add_argument(
        "--sample-rows",
        type=_positive,
        metavar="N",
        help="a streamed table: infer the column types and fit the preprocessor on a seeded "
        f"sample of N rows (default: {DEFAULT_SAMPLE_ROWS:,})",
    )
    _add_nproc(p, "train")
    p.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    if args.chunk_rows is not None and args.nproc != 1:
        _refuse_streamed("--nproc", args.data, "--chunk-rows was given", "train in one process")
    if launch.launches(args.nproc):
        return launch.launch(args.argv, args.nproc)
    roles = _roles(args)
    model_config = replace(
        ModelConfig(),
        d_model=args.d_model,
        num_layers=args.layers,
        num_heads=args.num_heads,
        dropout=args.dropout,
        bind_rows=not args.no_bind_rows,
    )
    sets = _set_options(args)
    defaults = default_train_config(sets)
    train_config = replace(
        defaults,
        batch_size=args.batch_size or defaults.batch_size,
        time_budget=args.time_budget or None,
        max_epochs=args.epochs,
        device=args.device,
        threads=args.threads,
        seed=args.seed,
    )
    frame = _table_or_stream(args, args.chunk_rows)
    bar = ProgressBar(sys.stderr) if world.is_leader() else None
    task = None if args.task == "auto" else args.task
    if frame is None:
        _check_streamed_training(args)
        run = train_run_from_file(
            args.data,
            args.target,
            model_config=model_config,
            train_config=train_config,
            task=task,
            roles=roles,
            chunk_rows=args.chunk_rows or DEFAULT_CHUNK_ROWS,
            sample_rows=args.sample_rows or DEFAULT_SAMPLE_ROWS,
            callback=bar,
        )
    else:
        if args.sample_rows is not None:
            raise ValueError(
                "--sample-rows applies to a streamed table, and this one is read whole: drop "
                "it, or add --chunk-rows N to stream the table"
            )
        test_frame = read_table(args.test).frame if args.test else None
        run = (train_run_on_workers if world.in_worker() else train_run)(
            frame,
            args.target,
            model_config=model_config,
            train_config=train_config,
            task=task,
            roles=roles,
            test_frame=test_frame,
            callback=bar,
            sets=sets,
        )
    if run is None:  # a distributed worker other than rank 0, which reports and saves
        return 0
    bar.finish(run.training.message)
    out = run.save(args.out, include_data=args.save_data)
    # A streamed run's schema and preprocessor say what was fitted on a sample.
    streamed = (*run.schema.notes, *run.preprocessor.notes) if frame is None else ()
    for note in (*streamed, *run.splits.notes):
        print(f"Note: {note}", file=sys.stderr)
    print(metrics_table(run), file=sys.stdout)
    print(f"\nSaved the run to {out}", file=sys.stdout)
    return 0


def _add_nproc(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help=f"{command} on N worker processes of this machine, launched by torchrun (CPU: "
        "gloo, the cores shared among them; CUDA: NCCL, one GPU each); for several machines "
        f"run 'torchrun ... -m mrta {command} ...' instead (default: %(default)s)",
    )


def _add_chunk_rows(p: argparse.ArgumentParser) -> None:
    limits = ReadingOptions()
    p.add_argument(
        "--chunk-rows",
        type=_positive,
        metavar="N",
        help="stream the table from its file N rows at a time instead of reading it whole "
        f"(default: a table over {limits.max_rows:,} rows or "
        f"{limits.max_bytes // 1024**2} MB streams in chunks of {DEFAULT_CHUNK_ROWS:,} rows)",
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _table_or_stream(args: argparse.Namespace, chunk_rows: int | None) -> pd.DataFrame | None:
    """The table of ``args.data`` read whole, or None (and a note on stderr) when it streams:
    with ``--chunk-rows``, or when it is over the reading limits."""
    frame = None if chunk_rows is not None else read_or_stream(args.data)
    if frame is None and world.is_leader():
        limits = ReadingOptions()
        why = (
            "--chunk-rows was given"
            if chunk_rows is not None
            else f"it is over the reading limits of {limits.max_rows:,} rows or "
            f"{limits.max_bytes // 1024**2} MB"
        )
        print(
            f"Note: streaming {args.data} in chunks of {chunk_rows or DEFAULT_CHUNK_ROWS:,} "
            f"rows ({why}).",
            file=sys.stderr,
        )
    return frame


def _check_streamed_training(args: argparse.Namespace) -> None:
    """Refuse what training on a streamed table cannot do, with a one-line message."""
    why = "--chunk-rows was given" if args.chunk_rows else "it is over the reading limits"
    for flag, given, instead in (
        ("--save-data", args.save_data, "keep the file beside the run instead"),
        ("--group-by", args.group_by is not None, "train sets on a smaller table"),
        ("--test", args.test is not None, "append the test rows to the table"),
        ("--nproc", world.in_worker(), "train in one process"),
    ):
        if given:
            _refuse_streamed(flag, args.data, why, instead)


def _refuse_streamed(flag: str, data: str, why: str, instead: str) -> None:
    raise ValueError(f"{flag} needs the table in memory, but {data} is streamed ({why}): {instead}")


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
    for role, columns in (
        (Role.IGNORED, args.ignore),
        (Role.CATEGORICAL, args.categorical),
        (Role.NUMERICAL, args.numerical),
    ):
        for column in columns:
            if column in roles and roles[column] is not role:
                raise ValueError(
                    f"column {column!r} was given two roles, {roles[column].value} and "
                    f"{role.value}: give it one"
                )
            roles[column] = role
    return roles


class ProgressBar:
    """A plain-text progress bar on a stream: redrawn in place on a terminal, else one line
    per tenth of the way."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.interactive = stream.isatty()
        self.last_draw = 0.0
        self.last_tenth = -1
        self.validation = ""

    def __call__(self, progress: Progress) -> None:
        """The training callback."""
        if progress.event == "epoch" and progress.validation_loss is not None:
            self.validation = f"  val loss {progress.validation_loss:.4f}"
        self.draw(
            progress.fraction,
            f"epoch {progress.epoch}  step {progress.step}  {progress.elapsed:5.1f}s"
            f"{self.validation}",
            progress.event == "step",
        )

    def phase(self, done: int, total: int, message: str, unit: str = "rows") -> None:
        """The analysis callback: ``(rows done, rows, what is being done)``."""
        self.draw(done / max(total, 1), f"{message}  {done:,}/{total:,} {unit}", True)

    def phase_of(self, unit: str) -> Callable[[int, int, str], None]:
        """:meth:`phase` counting `unit` (e.g. ``"sets"``) instead of rows."""
        return lambda done, total, message: self.phase(done, total, message, unit)

    def draw(self, fraction: float, text: str, throttle: bool) -> None:
        now = time.monotonic()
        tenth = int(fraction * 10)
        if self.interactive and throttle and now - self.last_draw < 0.1:
            return
        if not self.interactive and tenth == self.last_tenth:
            return
        self.last_draw, self.last_tenth = now, tenth
        filled = round(fraction * BAR_WIDTH)
        line = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {fraction:4.0%}  {text}"
        if self.interactive:
            self.stream.write("\r" + line.ljust(100))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self, message: str) -> None:
        if self.interactive:
            self.stream.write("\n")
        self.stream.write(message + "\n")
        self.stream.flush()


def metrics_table(run: Run) -> str:
    """The held-out metrics of the model and the baselines, as a plain-text table."""
    scores = run.metrics
    regression = run.schema.task == Task.REGRESSION
    names = REGRESSION_METRICS if regression else CLASSIFICATION_METRICS
    columns = ("model", "hgb", "trivial")
    sets = run.sets is not None
    boosting = "gradient boosting on aggregates" if sets else "gradient boosting"
    headers = ("metric", "model", boosting, "trivial")
    rows = [[name, *(_number(scores[column].get(name)) for column in columns)] for name in names]
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    examples = f"{scores['model']['rows']:,} {'groups' if sets else 'rows'}"
    lines = [f"Metrics on the {scores['split']} split ({examples}):"]
    for row in [headers, *rows]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


# -- predict -------------------------------------------------------------------------------------
def add_predict(commands: argparse._SubParsersAction) -> None:
    p = subcommand(
        commands,
        "predict",
        help="predict every row (or every group, for a set run) of a CSV with a saved run",
        description="Write one prediction per row of DATA.csv, in order: for classification "
        "one probability column per class (named by the class) and 'prediction'; for "
        "regression 'prediction'. A run trained with --group-by predicts one row per group, "
        "in order of first appearance, led by the group key and n_rows (the rows its set "
        "was made of).",
    )
    p.add_argument("run", metavar="RUN_DIR", help="a run saved by 'mrta train'")
    p.add_argument("data", metavar="DATA.csv", help="the rows to predict")
    p.add_argument("--out", required=True, metavar="PREDICTIONS.csv", help="where to write")
    _add_chunk_rows(p)
    p.set_defaults(handler=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    run = Run.load(args.run)
    frame = _table_or_stream(args, args.chunk_rows)
    if frame is None:  # chunk by chunk, in bounded memory
        written = predict_file(
            run, args.data, args.out, chunk_rows=args.chunk_rows or DEFAULT_CHUNK_ROWS
        )
    else:
        predictions = run.predict_frame(frame)
        predictions.to_csv(args.out, index=False)
        written = len(predictions)
    per = "group" if run.sets is not None else "row"
    print(f"Wrote {written:,} predictions (one per {per}) to {args.out}", file=sys.stderr)
    return 0


# -- explain -------------------------------------------------------------------------------------
def add_explain(commands: argparse._SubParsersAction) -> None:
    p = subcommand(
        commands,
        "explain",
        help="record a saved run's attention over a CSV and write the exports",
        description="Record the attention of a saved run over DATA.csv (rows with a target, at "
        "most --max-rows of them) with every cohort in one pass, and write maps.npz + "
        "maps.json (all maps with labels), maps.csv (tidy: layer, map, head, cohort, query, "
        "key, weight), summary.json (head table, importances, sanity checks) and, with "
        "--report, report.html into DIR. The analysis is cached in RUN_DIR/analysis and "
        "reused when the same DATA.csv is explained again.",
    )
    p.add_argument("run", metavar="RUN_DIR", help="a run saved by 'mrta train'")
    p.add_argument("data", metavar="DATA.csv", help="the rows to explain the run on")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the exports")
    p.add_argument(
        "--cohort",
        action="append",
        default=[],
        metavar="LABEL",
        help="a cohort for the tidy CSV, by its label (e.g. 'predicted: Adelie', 'wrong "
        "predictions', 'income: decile 3 (...)'); repeatable; 'every' for all of them; "
        "default: all rows",
    )
    p.add_argument("--report", action="store_true", help="also write the HTML report")
    p.add_argument(
        "--checks",
        action="store_true",
        help="also run head ablation and permutation importance on the validation split "
        "(needs a run saved with its data)",
    )
    p.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS, metavar="N")
    _add_chunk_rows(p)
    sets = p.add_argument_group(
        "set runs",
        "a run trained with --group-by writes sets.csv (each set's prediction), rows.csv (each "
        "row's attention received per map and rollout share, 1 = an even share, beside its "
        "values) and summary.csv (the rollout share by each column's levels or quantiles)",
    )
    sets.add_argument(
        "--max-sets",
        type=int,
        default=DEFAULT_MAX_SETS,
        metavar="N",
        help="analyse at most N groups, a seeded sample of them (default: %(default)s)",
    )
    sets.add_argument(
        "--set",
        metavar="KEY",
        help="also write this group's row x row maps (set_maps.npz, set_maps.csv)",
    )
    _add_nproc(p, "explain")
    p.set_defaults(handler=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    run = Run.load(args.run)
    if run.sets is not None:
        return _explain_sets(run, args)
    if launch.launches(args.nproc):
        return launch.launch(args.argv, args.nproc)
    frame = _table_or_stream(args, args.chunk_rows)
    sampled_from = None
    if frame is None:  # only the rows analysed are read: a seeded sample, as from the whole
        chunk_rows = args.chunk_rows or DEFAULT_CHUNK_ROWS
        frame, sampled_from = explained_rows(run, args.data, args.max_rows, chunk_rows=chunk_rows)
    bar = ProgressBar(sys.stderr)
    # results are cached in the run, keyed by the rows they were computed on
    source = f"sha256:{file_digest(args.data)}:max_rows={args.max_rows}"
    explanation = load_explanation(args.run, source)
    cached = explanation is not None and (explanation.ablation is not None or not args.checks)
    if world.in_worker():  # the workers record a shard each; rank 0 carries on alone
        explanation = explain_on_workers(
            run, frame, explanation, max_rows=args.max_rows, progress=bar.phase
        )
        if explanation is None:
            return 0
    if explanation is None:
        explanation = explain(run, frame, max_rows=args.max_rows, progress=bar.phase)
    if sampled_from is not None and explanation.rows < sampled_from:
        explanation.sampled_from = sampled_from  # the file's rows, not the sample's
    if args.checks and explanation.ablation is None:
        run_checks(run, explanation, progress=bar.phase)
    if not cached:
        try:
            save_explanation(explanation, args.run, source)
        except OSError as error:
            print(f"mrta: the analysis could not be cached in the run: {error}", file=sys.stderr)
    atlas = explanation.atlas
    labels = dict(zip(atlas.cohort_labels, atlas.cohorts, strict=True))
    if "every" in args.cohort:
        cohorts = list(atlas.cohorts)
    else:
        unknown = [label for label in args.cohort if label not in labels]
        if unknown:
            known = ", ".join(repr(label) for label in atlas.cohort_labels[:6])
            raise ValueError(f"no cohort labelled {unknown[0]!r}; cohorts include {known}, ...")
        cohorts = [labels[label] for label in args.cohort] or [atlas.cohorts[0]]
    written = write_exports(run, explanation, args.out, cohorts=cohorts, report=args.report)
    bar.finish(
        f"{'Read from the run' if cached else 'Recorded'} {explanation.rows:,} rows "
        f"({len(atlas.cohorts)} cohorts); wrote "
        + ", ".join(path.name for path in written)
        + f" to {args.out}"
    )
    return 0


def _explain_sets(run: Run, args: argparse.Namespace) -> int:
    """`mrta explain` for a run trained with --group-by: per-set and per-row exports."""
    for flag, given in (
        ("--cohort", args.cohort),
        ("--report", args.report),
        ("--checks", args.checks),
        ("--nproc", args.nproc != 1 or world.in_worker()),
    ):
        if given:
            raise ValueError(f"{flag} applies to runs of one row per example, not to a set run")
    frame = read_table(args.data).frame
    bar = ProgressBar(sys.stderr)
    explanation = explain_sets(run, frame, max_sets=args.max_sets, progress=bar.phase_of("sets"))
    maps = set_maps(run, frame, args.set) if args.set is not None else None
    written = write_set_exports(explanation, args.out, maps)
    sampled = (
        f" (a seeded sample of {explanation.sampled_from:,})" if explanation.sampled_from else ""
    )
    bar.finish(
        f"Recorded {len(explanation.sets):,} sets{sampled}, {len(explanation.rows):,} rows; "
        f"wrote {', '.join(path.name for path in written)} to {args.out}"
    )
    return 0


# -- dashboard -----------------------------------------------------------------------------------
def add_dashboard(commands: argparse._SubParsersAction) -> None:
    p = subcommand(
        commands,
        "dashboard",
        help="start the Streamlit dashboard",
        description="Start the dashboard (streamlit run dashboard/app.py); other arguments "
        "go to streamlit, e.g. --server.port 8502.",
    )
    p.add_argument(
        "--runs-dir",
        metavar="DIR",
        help="the folder whose saved runs the Open run page lists (every session sees them); "
        f"default: ${RUNS_DIR_ENV} when set, else ./runs when it exists",
    )
    p.set_defaults(handler=run_dashboard, passes_on_arguments=True)


def run_dashboard(args: argparse.Namespace) -> int:
    if not DASHBOARD_APP.is_file():
        raise FileNotFoundError(
            f"the dashboard app is not at {DASHBOARD_APP}: run from a checkout of the repository"
        )
    if importlib.util.find_spec("streamlit") is None:
        raise ModuleNotFoundError("streamlit is not installed: pip install -r requirements.txt")
    if args.runs_dir is not None:
        folder = Path(args.runs_dir).expanduser()
        if not folder.is_dir():
            raise NotADirectoryError(f"the runs folder {args.runs_dir} is not a folder")
        os.environ[RUNS_DIR_ENV] = str(folder.resolve())  # streamlit inherits it
    command = [sys.executable, "-m", "streamlit", "run", str(DASHBOARD_APP), *args.extra]
    return subprocess.run(command, check=False).returncode


