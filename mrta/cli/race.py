"""``mrta train --race / --no-race``: whether a run races two settings (:mod:`mrta.training.race`),
and the race's table once it has.

By default a run races where it can (one model of rows, read whole, in one process, on a CPU of
2 cores or more) unless the settings the challenger changes were set on the command line:
``--race`` races anyway (and refuses where a race cannot run), ``--no-race`` trains the
settings asked for alone.
"""

from __future__ import annotations

import argparse

from mrta.cli.common import aligned
from mrta.config import ModelConfig, TrainConfig
from mrta.pipelines.race import race_refusal
from mrta.runs.run import Run
from mrta.training.race import CHALLENGER, CHALLENGER_MODEL, RACED_FLAGS


def add_race(p: argparse.ArgumentParser) -> None:
    """``--race`` / ``--no-race`` (default: race where the run can)."""
    p.add_argument(
        "--race",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"train the settings asked for and a challenger ({CHALLENGER}) at once, a process "
        "and core each, within --time-budget, and keep the challenger only where it scores "
        "higher on the validation rows beyond their noise (its lead above 0 at the 5%% quantile "
        "of 1,000 paired bootstrap resamples), else the settings asked for "
        "(benchmarks/race.py). Default: race where the run can (one model of rows read whole, "
        "in one process, on a CPU of 2 cores or more) unless "
        f"{' or '.join(RACED_FLAGS)} was set; --race races then too (and is refused where a "
        "race cannot run), --no-race never races",
    )


def chosen_race(
    args: argparse.Namespace,
    model_config: ModelConfig,
    train_config: TrainConfig,
    *,
    streamed: bool,
    sets: bool,
) -> tuple[bool, str | None]:
    """Whether the run races, and the note that says why it does not where the default decided
    (None: nothing to say).

    Raises ``ValueError`` for ``--race`` where a race cannot run, saying why.
    """
    if args.race is False:
        return False, None
    why = _cannot(args, train_config, streamed=streamed, sets=sets)
    if args.race:
        if why:
            raise ValueError(f"--race cannot run here: {why}; drop --race")
        return True, None
    if why:
        return False, f"One setting trained, no race: {why}."
    chosen = _chosen(model_config)
    if chosen:
        return False, (
            f"One setting trained, no race: {' and '.join(chosen)} set on the command line "
            f"(a race would also train {CHALLENGER}; add --race for it)."
        )
    return True, None


def _cannot(
    args: argparse.Namespace, train_config: TrainConfig, *, streamed: bool, sets: bool
) -> str | None:
    if streamed:
        return "a streamed table trains one model"
    if args.nproc != 1:
        return "--nproc workers train one model together"
    return race_refusal(args.seeds, sets, train_config)


def _chosen(model_config: ModelConfig) -> list[str]:
    """The flags of the settings the challenger changes (:data:`RACED_FLAGS`) that were set to
    another value than the default."""
    default = ModelConfig()
    return [
        flag
        for flag, name in zip(RACED_FLAGS, CHALLENGER_MODEL, strict=True)
        if getattr(model_config, name) != getattr(default, name)
    ]


def race_table(run: Run) -> str:
    """Both racers' steps, epochs, validation score and seconds, the kept one marked."""
    race = run.race
    assert race is not None
    rows = [("", "racer", "steps", "epochs", f"validation {race.metric}", "seconds")]
    for k, racer in enumerate(race.racers):
        score = "undefined" if racer.validation is None else f"{racer.validation:.4f}"
        rows.append(
            (
                "kept" if k == race.kept else "",
                racer.name,
                f"{racer.steps:,}",
                f"{racer.epochs:,}",
                score,
                f"{racer.seconds:.1f}",
            )
        )
    title = (
        f"Race of two settings (at once, a core each, for the time budget; {race.rule()}; the "
        "kept settings are the run's):"
    )
    return "\n".join([title, *aligned(rows)])
