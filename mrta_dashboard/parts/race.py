"""The Train page's race of two settings (``train_run(..., race=True)``, :mod:`mrta.training.race`):
the choice, with what it does, and under a raced run's results what was raced and kept."""

from __future__ import annotations

import streamlit as st

from mrta.config import TrainConfig
from mrta.pipelines.race import race_refusal
from mrta.training.race import AS_ASKED, CHALLENGER

RACE = "t_race"  # Train page: whether to race the settings against the challenger


def choice(members: int, sets: bool) -> bool:
    """The race choice (on by default where a run can race), with a caption that says what it
    does or why a run cannot race; whether it was chosen."""
    why = race_refusal(members, sets, TrainConfig())
    chosen = st.checkbox(
        "Race two settings, keep the challenger only where validation shows it better",
        value=True,
        key=RACE,
        disabled=why is not None,
        help="The settings below and a challenger train at once, a process and core each, for "
        "the time budget. The challenger is kept only where it scores higher on the validation "
        "rows beyond their noise (the 5 % quantile of its lead over 1,000 paired bootstrap "
        "resamples of those rows above 0); else the settings below. The kept settings become "
        "the run's. Test rows never choose.",
    )
    if why is not None:
        st.caption(f"One setting trains, no race: {why}.")
        return False
    st.caption(
        f"With the race on, a challenger ({CHALLENGER}) trains beside the settings below, at "
        "the same time. No one setting reached gradient boosting on every table of the quality "
        "benchmark; racing the two was not worse than it beyond the bootstrap interval on all 8, "
        "every regression R² within 0.01 (benchmarks/race.py: the defaults won on 7 tables, the "
        "challenger on diamonds). The price: each steps on one core."
    )
    return bool(chosen)


def runs(chosen: bool, members: int, sets: bool, config: TrainConfig) -> bool:
    """Whether a run with the race `chosen` races, on the device `config` picks: a message
    where the device rules it out (the choice above it cannot see the form's device)."""
    if not chosen:
        return False
    why = race_refusal(members, sets, config)
    if why is not None:
        st.info(f"One setting trains, no race: {why}.")
    return why is None


def summary(run) -> None:
    """Under a raced run's metrics: which setting was kept, on what validation scores."""
    if run.race is None:
        return
    kept = run.race.winner
    layers = kept.model_config.num_layers
    settings = (
        "its settings are the ones asked for"
        if kept.name == AS_ASKED
        else f"its settings are the challenger's: {layers} attention layer"
        f"{'' if layers == 1 else 's'}, plr σ {kept.model_config.plr_sigma:g}, dropout "
        f"{kept.model_config.dropout:g}, gate penalty {kept.model_config.gate_penalty:g} (0: no "
        f"column gates), learning rate {kept.train_config.learning_rate:g}"
    )
    st.caption(f"{run.race.sentence()} The maps are the kept model's; {settings}.")
