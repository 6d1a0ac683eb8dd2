"""``mrta train``'s model and training flags, made from the fields of :class:`ModelConfig` and
:class:`TrainConfig`.

Every field of the two configs is a flag or is listed in :data:`NOT_FLAGS` with the reason it is
not one. A field in neither gets a flag made from its name (``--field-name``, or
``--no-field-name`` for a switch that is on by default) and its type, so a new field cannot be
forgotten; a type no flag can take stops the parser from being built until the field is
listed. :data:`FLAGS` holds what a field's flag says beyond its type and default: another name,
a metavar, choices, its own words. A flag's help is those words, the field's ``why`` and the
default. The flag's value lands in ``args.<field name>``, and :func:`config_from_args` turns
the parsed arguments back into a config.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from mrta.config import DEVICES, NUMERICAL_EMBEDDINGS, ModelConfig, TrainConfig
from mrta.data.sets import SET_BATCH_SIZE
from mrta.training.loop import BATCH_SIZE, LARGE_TABLE_BATCH, LARGE_TABLE_ROWS

#: The config classes whose fields are flags, in the order the flags are listed.
CONFIGS: tuple[type, ...] = (TrainConfig, ModelConfig)

#: What a flag's value turns into to keep the base config's value for its field.
KEEP = object()
#: A :class:`Flag`'s default that stands for its field's default.
FIELD_DEFAULT = object()

Config = TypeVar("Config")


def _zero_means_none(seconds: float) -> float | None:
    """``--time-budget 0``: no budget."""
    return seconds or None


def _unset_keeps_base(count: int | None) -> Any:
    """``--batch-size`` not given: the base config's, which differs for set runs."""
    return KEEP if count is None else count


@dataclass(frozen=True)
class Flag:
    """How one config field appears on the command line, beyond its type and default."""

    name: str | None = None  # None: --field-name (--no-field-name for a switch on by default)
    what: str = ""  # what the flag sets, in words, before the field's why
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    group: str | None = None  # the key of the argument group it is listed in; None: the command's
    default: Any = FIELD_DEFAULT  # the parser's default
    default_text: str | None = None  # the default as the help states it; None: the default
    value: Callable[[Any], Any] | None = None  # the parsed value -> the field's, or KEEP


FLAGS: Mapping[type, Mapping[str, Flag]] = {
    TrainConfig: {
        "time_budget": Flag(
            what="seconds of training; 0 for no limit", metavar="S", value=_zero_means_none
        ),
        "max_epochs": Flag("--epochs", what="maximum epochs", metavar="N"),
        "batch_size": Flag(
            what="examples per step",
            metavar="N",
            default=None,
            default_text=f"by the training rows ({BATCH_SIZE}, or {LARGE_TABLE_BATCH} from "
            f"{LARGE_TABLE_ROWS:,}), or {SET_BATCH_SIZE} sets with --group-by",
            value=_unset_keeps_base,
        ),
        "seed": Flag(what="seed of the split, the initial weights and training", metavar="N"),
        "device": Flag(what="where to train", choices=DEVICES),
        "threads": Flag(
            what="CPU threads for training", metavar="N", default_text="the physical cores"
        ),
    },
    ModelConfig: {
        "d_model": Flag(what="token width in the layers", metavar="D"),
        "num_layers": Flag("--layers", what="attention layers", metavar="L"),
        "num_heads": Flag(what="heads per attention block", metavar="H"),
        "dropout": Flag(what="dropout rate", metavar="P"),
        "numerical_embedding": Flag(
            what="how a numerical column becomes its token", choices=NUMERICAL_EMBEDDINGS
        ),
        "plr_frequencies": Flag(what="periodic frequencies per numerical column", metavar="K"),
        "plr_sigma": Flag(what="scale of the periodic frequencies at initialisation", metavar="S"),
        "gate_penalty": Flag(what="the training loss's price per open column gate", metavar="C"),
        "bind_rows": Flag(
            what="keep a row's categories out of its numerical token, the layer's plain stream "
            "split",
            group="sets",
        ),
    },
}

#: The fields that are deliberately not flags, each with its reason.
NOT_FLAGS: Mapping[type, Mapping[str, str]] = {
    TrainConfig: {
        "learning_rate": "tuned on the validation tables with the other defaults; an experiment "
        "sets it from Python (TrainConfig)",
        "weight_decay": "an optimiser detail kept off the command line; set it from Python "
        "(TrainConfig)",
        "warmup_fraction": "a schedule detail kept off the command line; set it from Python "
        "(TrainConfig)",
        "patience": "early stopping's patience is not a choice a run's user needs; set it from "
        "Python (TrainConfig)",
    },
    ModelConfig: {
        "d_token": "the token width follows from d_model's tuning; set it from Python "
        "(ModelConfig)",
    },
}


def flag_fields(cls: type) -> Iterator[tuple[dataclasses.Field, Flag]]:
    """The fields of `cls` that are flags, each with its :class:`Flag` (generated when the
    field is in neither :data:`FLAGS` nor :data:`NOT_FLAGS`)."""
    not_flags = NOT_FLAGS.get(cls, {})
    flags = FLAGS.get(cls, {})
    for field in dataclasses.fields(cls):
        if field.name not in not_flags:
            yield field, flags.get(field.name, Flag())


def flag_name(field: dataclasses.Field, flag: Flag) -> str:
    """The option string of `field`'s flag."""
    if flag.name is not None:
        return flag.name
    switch_off = field.default is True  # a switch that is on by default
    return f"--{'no-' if switch_off else ''}{field.name.replace('_', '-')}"


def add_config_flags(
    parser: argparse.ArgumentParser,
    groups: Mapping[str, argparse._ActionsContainer],
    configs: tuple[type, ...] = CONFIGS,
) -> None:
    """A flag on `parser` (or on the group its :class:`Flag` names) for every field of
    `configs` that is not in :data:`NOT_FLAGS`."""
    for cls in configs:
        hints = typing.get_type_hints(cls)
        for field, flag in flag_fields(cls):
            kind = _kind(cls, field, hints[field.name], flag)
            target = groups[flag.group] if flag.group is not None else parser
            target.add_argument(
                flag_name(field, flag), dest=field.name, help=_help(field, flag, kind), **kind
            )


def _help(field: dataclasses.Field, flag: Flag, kind: Mapping[str, Any]) -> str:
    """The flag's words, the field's why and the default (a switch's: the field's value)."""
    shown = flag.default_text
    if shown is None:
        shown = f"{field.name}={field.default}" if "action" in kind else str(kind["default"])
    why = field.metadata.get("why", "")
    words = f"{flag.what} ({why}; default: {shown})" if flag.what else f"{why} (default: {shown})"
    return words.replace("%", "%%")  # argparse formats help with %


def _kind(cls: type, field: dataclasses.Field, hint: Any, flag: Flag) -> dict[str, Any]:
    """The argparse keywords that make `field` a flag of its type: a switch for a bool, else
    one value of its type (``None`` allowed by an optional field means: not given)."""
    if hint is bool:
        return {"action": "store_false" if field.default else "store_true"}
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        kinds = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        hint = kinds[0] if len(kinds) == 1 else hint
    if hint not in (int, float, str):
        raise TypeError(
            f"{cls.__name__}.{field.name} ({hint}) cannot be a flag: list it in "
            "mrta.cli.config_flags.NOT_FLAGS with the reason, or give its type a flag here"
        )
    default = flag.default
    if default is FIELD_DEFAULT:
        has_default = field.default is not dataclasses.MISSING
        default = field.default if has_default else field.default_factory()
    kind = {"type": hint, "default": default, "metavar": flag.metavar}
    if flag.choices is not None:
        kind["choices"] = flag.choices
    return kind


def config_from_args(args: argparse.Namespace, base: Config) -> Config:
    """`base` with the values of its fields' flags in `args` (a flag's ``value`` may keep the
    base's value, e.g. the set runs' batch size when ``--batch-size`` is not given)."""
    changes, flags = {}, {}
    for field, flag in flag_fields(type(base)):
        value = getattr(args, field.name)
        if flag.value is not None:
            value = flag.value(value)
        if value is not KEEP:
            changes[field.name] = value
            flags[field.name] = flag_name(field, flag)
    try:
        return dataclasses.replace(base, **changes)
    except ValueError as error:  # the config names its field: say the flag the user typed
        message = str(error)
        for name, flag in flags.items():
            if message.startswith(f"{name} "):
                raise ValueError(f"{flag}{message[len(name) :]}") from None
        raise
