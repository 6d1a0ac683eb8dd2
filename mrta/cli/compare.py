"""``mrta compare``: two saved runs recorded on the same rows, map by map, and their importances
and metrics side by side."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mrta.cli.common import positive, subcommand
from mrta.cli.progress import ProgressBar
from mrta.data.read import read_table
from mrta.pipelines.compare import DEFAULT_Q, check_comparable, compare_runs
from mrta.pipelines.explain import DEFAULT_MAX_ROWS
from mrta.report.compare_exports import check_comparison_out, write_comparison
from mrta.runs.run import Run


def q_value(text: str) -> float:
    """An argparse type: a false discovery rate in (0, 1)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, got {text!r}")
    return value


def add_compare(commands: argparse._SubParsersAction) -> None:
    p = subcommand(
        commands,
        "compare",
        help="compare two saved runs on the same rows: maps, importances, metrics",
        description="Record both runs' attention on the same rows of --data (rows with both "
        "targets, at most --max-rows, a seeded sample) in one pass, and per shared map "
        "(columns matched by name) test each cell's difference of the head means by the paired "
        "t on the rows, with the false discovery rate held at --q (Benjamini-Yekutieli), and "
        "measure the maps' Jensen-Shannon divergence; the column importances of both on the "
        "same rows with their Spearman rank correlation; the metrics side by side. Writes "
        "comparison.json, comparison.csv (tidy: one row per cell) and with --report "
        "comparison.html into DIR. A run with several seed members is compared by its member 0.",
    )
    p.add_argument("run_a", metavar="RUN_A", help="a run saved by 'mrta train'")
    p.add_argument("run_b", metavar="RUN_B", help="the run to compare it with")
    p.add_argument("--data", required=True, metavar="FILE", help="the rows to compare them on")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the comparison")
    p.add_argument("--report", action="store_true", help="also write the HTML report")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace comparison files already in DIR (refused otherwise)",
    )
    p.add_argument("--max-rows", type=positive, default=DEFAULT_MAX_ROWS, metavar="N")
    p.add_argument(
        "--q",
        type=q_value,
        default=DEFAULT_Q,
        metavar="Q",
        help="false discovery rate of each map's cells (default: %(default)s)",
    )
    p.set_defaults(handler=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    names = (Path(args.run_a).resolve().name, Path(args.run_b).resolve().name)
    check_comparison_out(args.out, report=args.report, overwrite=args.overwrite)
    run_a, run_b = Run.load(args.run_a), Run.load(args.run_b)
    check_comparable(run_a, run_b, names)
    table = read_table(args.data)
    for note in table.notes:
        print(f"Note: {note}", file=sys.stderr)
    bar = ProgressBar(sys.stderr)
    comparison = compare_runs(
        run_a,
        run_b,
        table.frame,
        names=names,
        max_rows=args.max_rows,
        q=args.q,
        progress=bar.phase,
    )
    written = write_comparison(comparison, args.out, report=args.report, table=args.data)
    for note in comparison.notes:
        print(f"Note: {note}", file=sys.stdout)
    for m in comparison.maps:
        print(
            f"layer {m.layer} {m.map_id}: divergence {m.divergence:.4g}, "
            f"{m.difference.passing} of {m.difference.cells_tested} cells differ "
            f"(q = {comparison.q:g}, by at least {m.difference.min_effect:.3g})",
            file=sys.stdout,
        )
    for method, result in comparison.rank_correlation.items():
        rho = result["spearman"]
        said = "undefined" if rho is None else f"{rho:.3f} (p = {result['p_value']:.2g})"
        print(f"importance {method}: Spearman rho {said}", file=sys.stdout)
    bar.finish(
        f"Compared {comparison.rows:,} rows; wrote "
        + ", ".join(path.name for path in written)
        + f" to {args.out}"
    )
    return 0
