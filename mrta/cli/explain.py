"""``mrta explain``: record a saved run's attention over a CSV and write the exports."""

from __future__ import annotations

import argparse
import difflib
import sys

import pandas as pd

from mrta.analysis.atlas import AttentionAtlas
from mrta.analysis.cohorts import CohortKey
from mrta.analysis.stability import SeedStability
from mrta.cli.common import (
    add_chunk_rows,
    add_nproc,
    add_run_arguments,
    positive,
    subcommand,
    table_or_stream,
    verdict_text,
)
from mrta.cli.progress import ProgressBar
from mrta.data.read import read_table
from mrta.data.stream import DEFAULT_CHUNK_ROWS
from mrta.errors import RunError
from mrta.pipelines import launch
from mrta.pipelines.analysis_cache import load_explanation, save_explanation
from mrta.pipelines.distributed import explain_on_workers
from mrta.pipelines.explain import DEFAULT_MAX_ROWS, explain, run_checks
from mrta.pipelines.explain_sets import DEFAULT_MAX_SETS, explain_sets, set_maps
from mrta.pipelines.stability import seed_stability
from mrta.pipelines.streamed import explained_rows, file_digest
from mrta.report.run_exports import write_exports
from mrta.report.run_report import faithfulness_words
from mrta.report.set_exports import write_set_exports
from mrta.runs.run import Run
from mrta.training import world


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
    add_run_arguments(p, "the rows to explain the run on", "DIR", "folder for the exports")
    p.add_argument(
        "--cohort",
        action="append",
        default=[],
        metavar="LABEL",
        help="a cohort for the tidy CSV, by its label, which names its rows (e.g. 'predicted: "
        "Adelie, test rows', 'wrong predictions, whole table', 'income: decile 3 (...), whole "
        "table', 'test rows'); repeatable; 'every' for all of them; default: all rows",
    )
    p.add_argument("--report", action="store_true", help="also write the HTML report")
    p.add_argument(
        "--checks",
        action="store_true",
        help="also run head and map ablation on the validation split, and on the test split "
        "four column importances (permutation, rollout, value_norm, relevance) with their "
        "deletion curves against random orders; writes importance.csv and faithfulness.csv "
        "(needs the table the run was trained on)",
    )
    p.add_argument("--max-rows", type=positive, default=DEFAULT_MAX_ROWS, metavar="N")
    add_chunk_rows(p)
    _add_set_arguments(p)
    add_nproc(p, "explain")
    p.set_defaults(handler=run_explain)


def _add_set_arguments(p: argparse.ArgumentParser) -> None:
    sets = p.add_argument_group(
        "set runs",
        "a run trained with --group-by writes sets.csv (each set's prediction), rows.csv (each "
        "row's attention received per map and rollout share, 1 = an even share, beside its "
        "values) and summary.csv (the rollout share by each column's levels or quantiles)",
    )
    sets.add_argument(
        "--max-sets",
        type=positive,
        default=DEFAULT_MAX_SETS,
        metavar="N",
        help="analyse at most N groups, a seeded sample of them (default: %(default)s)",
    )
    sets.add_argument(
        "--set",
        metavar="KEY",
        help="also write this group's row x row maps (set_maps.npz, set_maps.csv)",
    )


def run_explain(args: argparse.Namespace) -> int:
    run = Run.load(args.run)
    if run.sets is not None:
        return _explain_sets(run, args)
    if launch.launches(args.nproc):
        return launch.launch(args.argv, args.nproc)
    frame = table_or_stream(args, args.chunk_rows)
    if frame is not None and run.frame is None:
        _use_as_training_table(run, frame, args)
    elif args.checks and run.frame is None:
        raise RunError(
            f"--checks needs the table the run was trained on in memory, and {args.data} is "
            "over the reading limits: explain without --checks, or use a run saved with "
            "--save-data."
        )
    sampled_from = None
    if frame is None:  # only the rows analysed are read: a seeded sample, as from the whole
        chunk_rows = args.chunk_rows or DEFAULT_CHUNK_ROWS
        frame, sampled_from = explained_rows(run, args.data, args.max_rows, chunk_rows=chunk_rows)
    bar = ProgressBar(sys.stderr)
    # results are cached in the run, keyed by the rows they were computed on
    source = f"sha256:{file_digest(args.data)}:max_rows={args.max_rows}"
    explanation, cache_note = load_explanation(args.run, source)
    if cache_note:
        print(f"Note: {cache_note}", file=sys.stderr)
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
    if run.seeds > 1:
        explanation.stability = seed_stability(run, explanation, frame, progress=bar.phase)
    atlas = explanation.atlas
    cohorts = _cohorts(atlas, args.cohort)
    written = write_exports(
        run, explanation, args.out, cohorts=cohorts, report=args.report, table=args.data
    )
    print(verdict_text(explanation.verdict, explanation.verdict_note), file=sys.stdout)
    print(run.control_status(), file=sys.stdout)
    if explanation.faithfulness is not None:
        print(f"Faithfulness: {faithfulness_words(explanation.faithfulness)}", file=sys.stdout)
    if explanation.stability is not None:
        print(stability_text(explanation.stability), file=sys.stdout)
    bar.finish(
        f"{'Read from the run' if cached else 'Recorded'} {explanation.rows:,} rows "
        f"({len(atlas.cohorts)} cohorts); wrote "
        + ", ".join(path.name for path in written)
        + f" to {args.out}"
    )
    return 0


def stability_text(stability: SeedStability) -> str:
    """What survives another seed, as the command line prints it: the importances' agreement
    and each map's unstable cells (all of it, per cell, in stability.csv)."""
    lines = [
        f"Stability across {stability.members} seed members (recorded on the same "
        f"{stability.rows:,} rows; member 0's maps are the ones exported):"
    ]
    lines += [f"  {stability.sentence(method)}" for method in stability.agreement]
    if stability.note:
        lines.append(f"  {stability.note}")
    for found in stability.maps:
        cells = found.cells
        lines.append(
            f"  layer {found.layer} {found.map_id}: {cells.unstable_cells} of {cells.sd.size} "
            f"cells unstable (members significantly on both sides of the uniform weight); mean "
            f"SD of a cell across members {cells.mean_cell_sd:.4f}"
        )
    return "\n".join(lines)


def _use_as_training_table(run: Run, frame: pd.DataFrame, args: argparse.Namespace) -> None:
    """Give a run saved without its rows the table DATA when it is the table the run was trained
    on (checked against the run's fingerprint), so that its splits, the checks and the verdict
    work; refuse --checks on another table."""
    check = run.check_table(frame)
    if check.matches:
        run.frame = frame
        for note in check.notes:
            print(f"Note: {note}", file=sys.stderr)
    elif args.checks:
        raise RunError(
            f"{args.data} is not the table the run {args.run} was trained on, and --checks "
            f"rebuilds the run's validation split from it. {check.summary()} Give the training "
            "file, or leave out --checks to explain the run on these rows."
        )


def _cohorts(atlas: AttentionAtlas, asked: list[str]) -> list[CohortKey]:
    """The cohorts of `atlas` that ``--cohort`` asked for by label (all rows when none)."""
    labels = dict(zip(atlas.cohort_labels, atlas.cohorts, strict=True))
    if "every" in asked:
        return list(atlas.cohorts)
    unknown = [label for label in asked if label not in labels]
    if unknown:
        # a label names its rows ("wrong predictions, test rows"): offer the ones it begins
        near = [label for label in atlas.cohort_labels if label.startswith(f"{unknown[0]}, ")]
        near = near or difflib.get_close_matches(unknown[0], atlas.cohort_labels, n=3)
        shown = near or atlas.cohort_labels[:6]
        known = ", ".join(repr(label) for label in shown)
        raise ValueError(
            f"--cohort: no cohort labelled {unknown[0]!r}; "
            + (f"did you mean {known}? " if near else f"cohorts include {known}, ... ")
            + "(--cohort every writes them all)"
        )
    return [labels[label] for label in asked] or [atlas.cohorts[0]]


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
