"""``mrta predict``: one prediction per row (or per group, for a set run) of a CSV."""

from __future__ import annotations

import argparse
import sys

from mrta.cli.common import add_chunk_rows, add_run_arguments, subcommand, table_or_stream
from mrta.csvfile import write_csv
from mrta.data.read import reading_limits
from mrta.data.stream import DEFAULT_CHUNK_ROWS
from mrta.pipelines.predictions import PROBABILITY_DIGITS, checked_keep, prediction_table
from mrta.pipelines.streamed import predict_file
from mrta.runs.run import Run


def add_predict(commands: argparse._SubParsersAction) -> None:
    p = subcommand(
        commands,
        "predict",
        help="predict every row (or every group, for a set run) of a CSV with a saved run",
        description="Write one prediction per row of DATA.csv, in order: the columns given "
        "with --keep first, as they are, then for classification one probability column per "
        f"class (named by the class, to {PROBABILITY_DIGITS} significant digits) and "
        "'prediction'; for regression 'prediction'. A run trained with --group-by predicts one "
        "row per group, in order of first appearance, led by the group key and n_rows (the rows "
        "its set was made of).",
    )
    add_run_arguments(p, "the rows to predict", "PREDICTIONS.csv", "where to write")
    p.add_argument(
        "--keep",
        action="append",
        default=[],
        metavar="COL",
        help="copy this column of DATA.csv (an identifier, say) into the predictions, before "
        "them; repeatable",
    )
    add_chunk_rows(p)
    p.set_defaults(handler=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    run = Run.load(args.run)
    frame = table_or_stream(args, args.chunk_rows, reading_limits(min_rows=1))
    if frame is None:  # chunk by chunk, in bounded memory
        written = predict_file(
            run,
            args.data,
            args.out,
            chunk_rows=args.chunk_rows or DEFAULT_CHUNK_ROWS,
            keep=args.keep,
        )
    else:
        keep = checked_keep(run, args.keep, frame.columns, args.data)
        predictions = prediction_table(run, frame, keep)
        write_csv(predictions, args.out, index=False)
        written = len(predictions)
    per = "group" if run.sets is not None else "row"
    print(f"Wrote {written:,} predictions (one per {per}) to {args.out}", file=sys.stderr)
    return 0
