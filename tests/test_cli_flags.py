"""`mrta train`'s model and training flags are made from the config fields: every field is a flag
or is listed as not one with a reason, and the flags are the ones the command always had."""

import argparse
import dataclasses
from dataclasses import dataclass, field

import pytest

from mrta.cli import build_parser, main
from mrta.cli.config_flags import (
    CONFIGS,
    FLAGS,
    NOT_FLAGS,
    add_config_flags,
    config_from_args,
)
from mrta.config import DEVICES, NUMERICAL_EMBEDDINGS, ModelConfig, TrainConfig
from mrta.data.sets import MAX_SET_SIZE, SET_BATCH_SIZE, SetOptions
from mrta.pipelines.train_run import default_train_config

TRAIN, MODEL = TrainConfig(), ModelConfig()
# option: (field, type, default, metavar, choices) of the flags `mrta train` has always had
TODAY = {
    "--time-budget": ("time_budget", float, TRAIN.time_budget, "S", None),
    "--epochs": ("max_epochs", int, TRAIN.max_epochs, "N", None),
    "--batch-size": ("batch_size", int, None, "N", None),  # None: by rows or sets
    "--device": ("device", str, TRAIN.device, None, DEVICES),
    "--threads": ("threads", int, TRAIN.threads, "N", None),
    "--seed": ("seed", int, TRAIN.seed, "N", None),
    "--layers": ("num_layers", int, MODEL.num_layers, "L", None),
    "--num-heads": ("num_heads", int, MODEL.num_heads, "H", None),
    "--d-model": ("d_model", int, MODEL.d_model, "D", None),
    "--dropout": ("dropout", float, MODEL.dropout, "P", None),
    "--numerical-embedding": (
        "numerical_embedding",
        str,
        MODEL.numerical_embedding,
        None,
        NUMERICAL_EMBEDDINGS,
    ),
    "--plr-frequencies": ("plr_frequencies", int, MODEL.plr_frequencies, "K", None),
    "--plr-sigma": ("plr_sigma", float, MODEL.plr_sigma, "S", None),
    "--gate-penalty": ("gate_penalty", float, MODEL.gate_penalty, "C", None),
}
OTHER_TRAIN_OPTIONS = {
    "-h", "--help", "--debug", "--target", "--out", "--task", "--ignore", "--categorical",
    "--numerical", "--test", "--save-data", "--group-by", "--order-by", "--max-set-size",
    "--chunk-rows", "--sample-rows", "--nproc", "--no-control", "--overwrite", "--max-file-rows",
    "--target-transform", "--seeds", "--race", "--no-race",
}  # fmt: skip


def train_parser() -> argparse.ArgumentParser:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices["train"]


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {option: action for action in parser._actions for option in action.option_strings}


def parse_train(*flags: str) -> argparse.Namespace:
    return train_parser().parse_args(["data.csv", "--target", "y", "--out", "run", *flags])


def test_every_config_field_is_a_flag_or_listed_as_not_one_with_a_reason():
    dests = {action.dest for action in train_parser()._actions}
    for cls in CONFIGS:
        names = {f.name for f in dataclasses.fields(cls)}
        assert set(FLAGS.get(cls, {})) <= names, "a Flag for a field that is gone"
        assert set(NOT_FLAGS.get(cls, {})) <= names, "a reason for a field that is gone"
        assert not set(FLAGS.get(cls, {})) & set(NOT_FLAGS.get(cls, {}))
        for name in names:
            reason = NOT_FLAGS.get(cls, {}).get(name)
            if reason is None:
                assert name in dests, f"{cls.__name__}.{name} has no flag"
            else:
                assert reason.strip(), f"{cls.__name__}.{name} is not a flag without a reason"
                assert name not in dests


def test_the_flags_are_the_ones_mrta_train_always_had():
    found = options(train_parser())
    assert set(found) == {*TODAY, "--no-bind-rows", *OTHER_TRAIN_OPTIONS}
    for option, (name, kind, default, metavar, choices) in TODAY.items():
        action = found[option]
        assert (action.dest, action.type, action.default) == (name, kind, default), option
        assert (action.metavar, action.choices, action.nargs) == (metavar, choices, None), option
    switch = found["--no-bind-rows"]
    assert (switch.dest, switch.default, switch.const, switch.nargs) == (
        "bind_rows",
        True,
        False,
        0,
    )
    assert switch.container.title == "set resolution"


def test_the_help_of_a_flag_is_its_fields_why_and_default():
    text = " ".join(train_parser().format_help().split())
    for cls in CONFIGS:
        for f in dataclasses.fields(cls):
            if f.name not in NOT_FLAGS[cls]:
                assert " ".join(f.metadata["why"].split()) in text, f.name
    assert (
        f"default: by the training rows (256, or 128 from 5,000), or {SET_BATCH_SIZE} sets with "
        "--group-by" in text
    )
    assert "0 for no limit" in text and "default: the physical cores" in text


def test_no_flags_give_todays_defaults_and_each_flag_sets_its_field():
    args = parse_train()
    assert config_from_args(args, ModelConfig()) == ModelConfig()
    assert config_from_args(args, default_train_config(None)) == TrainConfig()
    sets = default_train_config(SetOptions("group", None, MAX_SET_SIZE))
    assert config_from_args(args, sets).batch_size == SET_BATCH_SIZE
    args = parse_train(
        "--time-budget", "0", "--epochs", "7", "--batch-size", "16", "--device", "cpu",
        "--threads", "2", "--seed", "5", "--layers", "3", "--num-heads", "2", "--d-model", "16",
        "--dropout", "0", "--no-bind-rows",
    )  # fmt: skip
    assert config_from_args(args, ModelConfig()) == ModelConfig(
        d_model=16, num_layers=3, num_heads=2, dropout=0.0, bind_rows=False
    )
    assert config_from_args(args, default_train_config(None)) == replace_train(
        time_budget=None, max_epochs=7, batch_size=16, device="cpu", threads=2, seed=5
    )
    assert config_from_args(parse_train("--time-budget", "12.5"), TRAIN).time_budget == 12.5
    # a bad value is refused by the flag the user typed, before any work
    for flags, message in (
        (("--batch-size", "0"), "--batch-size must be a positive integer, got 0"),
        (("--seed", "-1"), "--seed must be a whole number from 0 to 4294967295"),
        (("--seed", str(2**70)), "--seed must be a whole number from 0 to 4294967295"),
    ):
        with pytest.raises(ValueError, match=message):
            config_from_args(parse_train(*flags), sets)


def replace_train(**changes) -> TrainConfig:
    return dataclasses.replace(TrainConfig(), **changes)


def test_bad_flag_values_are_usage_errors(capsys):
    for flags, message in (
        (["--device", "tpu"], "invalid choice: 'tpu'"),
        (["--epochs", "many"], "invalid int value: 'many'"),
        (["--chunk-rows", "0"], "must be a positive integer, got '0'"),
        (["--sample-rows", "x"], "must be a positive integer, got 'x'"),
    ):
        with pytest.raises(SystemExit) as caught:
            main(["train", "data.csv", "--target", "y", "--out", "run", *flags])
        assert caught.value.code == 2
        assert message in capsys.readouterr().err


@dataclass(frozen=True)
class Extra:
    rate: float = field(default=0.5, metadata={"why": "a 5% guess"})
    fast: bool = field(default=False, metadata={"why": "off until measured"})
    slow_path: bool = field(default=True, metadata={"why": "on: the safe path"})
    label: str | None = field(default=None, metadata={"why": "no label"})
    sizes: list[int] = field(default_factory=list, metadata={"why": "none"})


@dataclass(frozen=True)
class Plain:
    rate: float = field(default=0.5, metadata={"why": "a 5% guess"})
    fast: bool = field(default=False, metadata={"why": "off until measured"})
    slow_path: bool = field(default=True, metadata={"why": "on: the safe path"})
    label: str | None = field(default=None, metadata={"why": "no label"})


def test_a_new_field_gets_a_flag_of_its_type_and_one_no_flag_can_take_must_be_listed():
    parser = argparse.ArgumentParser()
    add_config_flags(parser, {}, configs=(Plain,))
    assert set(options(parser)) == {"-h", "--help", "--rate", "--fast", "--no-slow-path", "--label"}
    assert "a 5% guess" in parser.format_help()
    args = parser.parse_args(["--rate", "0.25", "--fast", "--no-slow-path", "--label", "x"])
    assert config_from_args(args, Plain()) == Plain(0.25, True, False, "x")
    assert config_from_args(parser.parse_args([]), Plain()) == Plain()
    with pytest.raises(TypeError, match=r"Extra\.sizes .* cannot be a flag: .*NOT_FLAGS"):
        add_config_flags(argparse.ArgumentParser(), {}, configs=(Extra,))
