"""What the subcommands share: their parser, the ``--chunk-rows`` and ``--nproc`` arguments, a
positive count, reading ``DATA.csv`` whole or streaming it, and plain-text tables."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from mrta.analysis.verdict import Verdict
from mrta.data.read import ReadingOptions, reading_limits
from mrta.data.stream import DEFAULT_CHUNK_ROWS
from mrta.errors import positive_int
from mrta.pipelines.streamed import read_or_stream
from mrta.training import world

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd


def subcommand(
    commands: argparse._SubParsersAction, name: str, **kwargs: Any
) -> argparse.ArgumentParser:
    """A subcommand's parser; it takes ``--debug`` too, so the flag may follow the command."""
    p = commands.add_parser(name, **kwargs)
    p.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    return p


def add_run_arguments(
    p: argparse.ArgumentParser, rows: str, out_metavar: str, out_help: str
) -> None:
    """``RUN_DIR DATA.csv --out ...``: a saved run, the rows to use it on, where to write."""
    p.add_argument("run", metavar="RUN_DIR", help="a run saved by 'mrta train'")
    p.add_argument("data", metavar="DATA.csv", help=rows)
    p.add_argument("--out", required=True, metavar=out_metavar, help=out_help)


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        return positive_int(int(text), "N")
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from error


def add_nproc(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help=f"{command} on N worker processes of this machine, launched by torchrun (CPU: "
        "gloo, the cores shared among them; CUDA: NCCL, one GPU each); for several machines "
        f"run 'torchrun ... -m mrta {command} ...' instead (default: %(default)s)",
    )


def add_chunk_rows(p: argparse.ArgumentParser) -> None:
    limits = ReadingOptions()
    p.add_argument(
        "--chunk-rows",
        type=positive,
        metavar="N",
        help="stream the table from its file N rows at a time instead of reading it whole "
        f"(default: a table over {limits.max_rows:,} rows or "
        f"{limits.max_bytes // 1024**2} MB streams in chunks of {DEFAULT_CHUNK_ROWS:,} rows)",
    )


def table_or_stream(
    args: argparse.Namespace, chunk_rows: int | None, options: ReadingOptions | None = None
) -> pd.DataFrame | None:
    """The table of ``args.data`` read whole, its reading notes on stderr (a guessed encoding,
    renamed duplicate columns, skipped rows); or None (and a note on stderr) when it streams:
    with ``--chunk-rows``, or when it is over the reading limits (`options`)."""
    result = None if chunk_rows is not None else read_or_stream(args.data, options)
    if result is not None and world.is_leader():
        for note in result.notes:
            print(f"Note: {note}", file=sys.stderr)
    frame = None if result is None else result.frame
    if frame is None and world.is_leader():
        limits = reading_limits()
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


def refuse_streamed(flag: str, data: str, why: str, instead: str) -> None:
    """Raise the one-line refusal of `flag` on a streamed table."""
    raise ValueError(f"{flag} needs the table in memory, but {data} is streamed ({why}): {instead}")


def verdict_text(verdict: Verdict | None, note: str | None = None) -> str:
    """The verdict as the command line prints it: a headline and its reasons, or why there is
    none."""
    if verdict is None:
        return note or "No verdict."
    head = "Worth reading" if verdict.worth_reading else "NOT worth reading"
    return "\n".join([f"Verdict: {head}.", *(f"  {reason}" for reason in verdict.reasons)])


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """`rows` of cells as lines of left-aligned columns, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
