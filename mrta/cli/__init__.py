"""The command line: ``mrta train``, ``mrta predict``, ``mrta explain``, ``mrta compare``,
``mrta dashboard``.

Each subcommand is a module with one ``add_*`` function that makes its parser with
:func:`mrta.cli.common.subcommand`, declares its arguments and sets ``handler``;
:func:`build_parser` lists them, so a new subcommand is one module and one line. ``mrta
train``'s model and training flags are made from the config fields
(:mod:`mrta.cli.config_flags`). Errors reach stderr as one message with exit code 1 (2 for
usage errors, 130 when interrupted), with a traceback only under ``--debug``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mrta.cli.compare import add_compare
from mrta.cli.dashboard import add_dashboard
from mrta.cli.explain import add_explain
from mrta.cli.predict import add_predict
from mrta.cli.train import add_train
from mrta.errors import one_line

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``mrta`` parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="mrta",
        description="MultiResolutionTabularAttention: train on a CSV, predict, explore attention.",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    parser.set_defaults(passes_on_arguments=False)  # a subcommand that takes unknown ones says so
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (add_train, add_predict, add_explain, add_compare, add_dashboard):
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
