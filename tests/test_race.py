"""A race of two settings (``train_run(race=True)``, ``mrta train --race``): the challenger, the
choice on validation, the record saved with the run, when a run may race, and the command
line's default."""

import json

import numpy as np
import pytest
import torch
from test_cli_flags import parse_train
from test_runs import _rehash
from test_train import QUICK, TINY_MODEL, tiny_frame

import mrta.pipelines.race as pipeline_race
import mrta.training.parallel as parallel
from mrta.cli import main
from mrta.cli.race import chosen_race
from mrta.config import ModelConfig, TrainConfig
from mrta.data.sets import SetOptions
from mrta.pipelines.train_run import train_run
from mrta.runs.run import Run
from mrta.task import Task
from mrta.training.evaluate import metrics
from mrta.training.race import (
    AS_ASKED,
    CHALLENGER,
    RACED_FLAGS,
    Race,
    Racer,
    challenger,
    choose,
)


def racer(name: str = AS_ASKED, validation: float | None = 0.8, loss: float = 0.5) -> Racer:
    return Racer(name, ModelConfig(), TrainConfig(), validation, loss, 10, 2, 1.5, "max_epochs")


def test_the_challenger_changes_layers_sigma_dropout_gates_and_rate_and_nothing_else():
    model = ModelConfig(
        d_model=32, num_heads=2, num_layers=3, dropout=0.3, plr_sigma=0.05, gate_penalty=0.01
    )
    train = TrainConfig(learning_rate=5e-4, batch_size=64, seed=7, time_budget=12.0)
    other_model, other_train = challenger(model, train)
    changed = ("num_layers", "plr_sigma", "dropout", "gate_penalty")
    assert [getattr(other_model, name) for name in changed] == [1, 1.0, 0, 0]
    assert other_train.learning_rate == pytest.approx(1e-3)
    assert {
        **other_model.to_dict(), **{name: getattr(model, name) for name in changed}
    } == model.to_dict()  # fmt: skip
    assert {**other_train.to_dict(), "learning_rate": 5e-4} == train.to_dict()


@pytest.mark.parametrize(
    "scores, losses, lead_low, expected",
    [
        ((0.80, 0.81), (0.5, 0.6), 0.001, 1),  # a lead beyond the noise: the challenger
        ((0.80, 0.81), (0.5, 0.6), -0.01, 0),  # higher, but within the noise
        ((0.80, 0.81), (0.5, 0.6), 0.0, 0),  # a bound of 0 is not above it
        ((0.80, 0.81), (0.6, 0.5), None, 0),  # no bound: the settings asked for
        ((0.81, 0.80), (0.6, 0.5), -0.02, 0),
        ((None, 0.90), (0.6, 0.5), None, 1),  # a score undefined: the lower loss, for both
        ((0.90, None), (0.6, 0.5), None, 1),
        ((None, None), (0.4, 0.5), None, 0),
        ((None, None), (0.5, 0.5), None, 0),  # a tie in loss keeps the settings asked for
    ],
)
def test_the_challenger_is_kept_only_where_validation_shows_its_lead(
    scores, losses, lead_low, expected
):
    racers = [
        racer(name, score, loss)
        for name, score, loss in zip((AS_ASKED, CHALLENGER), scores, losses, strict=True)
    ]
    assert choose(racers, lead_low) == expected


def test_a_race_round_trips_through_json_and_names_the_one_kept_and_the_rule():
    race = Race("r2", (racer(AS_ASKED, 0.7), racer(CHALLENGER, None)), kept=0)
    back = Race.from_dict(json.loads(json.dumps(race.to_dict())))
    assert back == race and back.winner.name == AS_ASKED
    assert f"against {CHALLENGER} (undefined in 10 steps)" in back.sentence()
    assert "roc_auc undefined, the lower validation loss was kept" in (
        Race("roc_auc", race.racers, kept=0).sentence()
    )
    led = Race("r2", (racer(AS_ASKED, 0.7), racer(CHALLENGER, 0.72)), kept=0, lead_low=-0.0123)
    assert Race.from_dict(json.loads(json.dumps(led.to_dict()))) == led
    sentence = led.sentence()
    assert (
        "the challenger is kept only where its validation r2 lead is above 0 at the 5% quantile "
        "of 1,000 paired bootstrap resamples of the validation rows (here -0.0123): the settings "
        "asked for (0.7000 in 10 steps)"
    ) in sentence
    assert f"against {CHALLENGER} (0.7200 in 10 steps)" in sentence
    earlier = led.to_dict()
    del earlier["lead_low"]  # a run saved before the bound
    before = Race.from_dict(earlier)
    assert before.lead_low is None
    assert "the higher validation r2 was kept" in before.sentence()
    with pytest.raises(ValueError, match="kept must index one of 2 racers, got 2"):
        Race("r2", race.racers, kept=2)


@pytest.mark.parametrize("task", [Task.REGRESSION, Task.BINARY, Task.MULTICLASS])
def test_the_challengers_lead_is_bounded_by_a_paired_bootstrap_of_the_validation_rows(task):
    rng = np.random.default_rng(0)
    n = 400
    if task is Task.REGRESSION:
        y = rng.normal(size=n)
        good, noisy = y + 0.3 * rng.normal(size=n), y + rng.normal(size=n)
    else:
        classes = 2 if task is Task.BINARY else 3
        y = rng.integers(0, classes, size=n)
        signal = np.eye(classes)[y]
        good = softmax(3 * signal + rng.normal(size=(n, classes)))
        noisy = softmax(0.5 * signal + rng.normal(size=(n, classes)))
    assert pipeline_race.challenger_lead_low(task, y, [noisy, good], seed=0) > 0  # clear lead
    assert pipeline_race.challenger_lead_low(task, y, [good, noisy], seed=0) < 0
    same = pipeline_race.challenger_lead_low(task, y, [good, good.copy()], seed=0)
    assert same == 0.0  # no lead: the settings asked for stay
    assert pipeline_race.challenger_lead_low(task, y, [noisy, good], seed=0) == (
        pipeline_race.challenger_lead_low(task, y, [noisy, good], seed=0)
    )


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_a_run_races_only_one_model_of_rows_on_a_cpu_of_two_cores(monkeypatch):
    monkeypatch.setattr(pipeline_race, "default_threads", lambda: 2)
    monkeypatch.setattr(parallel, "available_devices", lambda: ["auto", "cpu"])
    cpu = TrainConfig()
    assert pipeline_race.race_refusal(1, False, cpu) is None
    assert "a run on sets trains one setting" in pipeline_race.race_refusal(1, True, cpu)
    assert "seed members already train at once" in pipeline_race.race_refusal(2, False, cpu)
    assert "this run trains on a GPU" in pipeline_race.race_refusal(
        1, False, TrainConfig(device="cuda")
    )
    monkeypatch.setattr(parallel, "available_devices", lambda: ["auto", "cpu", "cuda"])
    assert "this run trains on a GPU" in pipeline_race.race_refusal(1, False, cpu)
    assert pipeline_race.race_refusal(1, False, TrainConfig(device="cpu")) is None
    monkeypatch.setattr(pipeline_race, "default_threads", lambda: 1)
    assert "this CPU has one core" in pipeline_race.race_refusal(
        1, False, TrainConfig(device="cpu")
    )


def test_train_run_refuses_a_race_it_cannot_run_before_any_work():
    frame = tiny_frame("binary")
    with pytest.raises(ValueError, match="cannot race two settings: seed members already"):
        train_run(frame, "y", seeds=2, race=True)
    frame["group"] = range(len(frame))
    with pytest.raises(ValueError, match="cannot race two settings: a run on sets"):
        train_run(frame, "y", sets=SetOptions("group"), race=True)


@pytest.mark.parametrize(
    "flags, expected, note",
    [
        ((), True, None),
        (("--no-race",), False, None),
        (("--race",), True, None),
        (("--dropout", "0.2"), False, "--dropout set on the command line"),
        (("--plr-sigma", "3", "--dropout", "0.2"), False, "--plr-sigma and --dropout set"),
        (("--plr-sigma", "3", "--race"), True, None),
        (("--gate-penalty", "0"), False, "--gate-penalty set on the command line"),
        (("--gate-penalty", "0.01"), False, "--gate-penalty set on the command line"),
        (("--gate-penalty", "0.003"), True, None),  # the default
        (("--layers", "1"), False, "--layers set on the command line"),
        (("--layers", "2"), True, None),  # the default
        (("--seeds", "2"), False, "no race: seed members already train at once"),
    ],
)
def test_the_command_line_races_by_default_unless_the_raced_settings_were_chosen(
    monkeypatch, flags, expected, note
):
    monkeypatch.setattr(pipeline_race, "default_threads", lambda: 2)
    monkeypatch.setattr(parallel, "available_devices", lambda: ["auto", "cpu"])
    args = parse_train(*flags)
    model = ModelConfig(
        dropout=args.dropout,
        plr_sigma=args.plr_sigma,
        gate_penalty=args.gate_penalty,
        num_layers=args.num_layers,
    )
    race, why = chosen_race(args, model, TrainConfig(), streamed=False, sets=False)
    assert race is expected
    assert (why is None) if note is None else (note in why)
    assert RACED_FLAGS == ("--plr-sigma", "--dropout", "--gate-penalty", "--layers")


def test_the_command_line_refuses_a_race_it_cannot_run(tmp_path, capsys):
    data = tmp_path / "t.csv"
    tiny_frame("binary").to_csv(data, index=False)
    common = ["train", str(data), "--target", "y", "--race"]
    for extra, message in (
        (["--nproc", "2"], "--race trains its two settings on this machine"),
        (["--chunk-rows", "50"], "--race cannot run here: a streamed table trains one model"),
        (["--seeds", "2"], "--race cannot run here: seed members already train at once"),
        (["--group-by", "x2"], "--race cannot run here: a run on sets trains one setting"),
    ):
        out = tmp_path / extra[0].strip("-")
        assert main([*common, "--out", str(out), *extra]) != 0
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
        assert not out.exists()


@pytest.fixture(scope="module")
def raced() -> Run:
    return train_run(
        tiny_frame("regression"), "y", model_config=TINY_MODEL, train_config=QUICK, race=True
    )


@pytest.mark.slow
def test_the_racers_train_as_each_setting_alone_and_validation_chooses(raced):
    race = raced.race
    assert [r.name for r in race.racers] == [AS_ASKED, CHALLENGER]
    assert race.metric == "r2"
    settings = [(TINY_MODEL, QUICK), challenger(TINY_MODEL, QUICK)]
    alone = [
        train_run(tiny_frame("regression"), "y", model_config=m, train_config=t)
        for m, t in settings
    ]
    for racer, run in zip(race.racers, alone, strict=True):
        targets, predictions, _ = run.split_predictions("validation")
        assert racer.validation == pytest.approx(metrics("regression", targets, predictions)["r2"])
        assert (racer.steps, racer.epochs) == (run.training.steps, run.training.epochs)
    validation = [run.split_predictions("validation") for run in alone]
    targets = validation[0][0]
    lead_low = pipeline_race.challenger_lead_low(
        Task.REGRESSION, targets, [v[1] for v in validation], seed=QUICK.seed
    )
    assert race.lead_low == pytest.approx(lead_low)
    assert race.kept == int(lead_low > 0)
    winner = alone[race.kept]
    assert raced.train_config == race.winner.train_config
    assert raced.model.to_dict() == winner.model.to_dict()
    for (name, a), b in zip(
        raced.model.state_dict().items(), winner.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)
    assert raced.metrics["model"]["r2"] == pytest.approx(winner.metrics["model"]["r2"])


@pytest.mark.slow
def test_a_raced_run_round_trips_and_an_earlier_run_loads_without_a_race(raced, tmp_path):
    saved = raced.save(tmp_path / "raced")
    back = Run.load(saved)
    assert back.race == raced.race
    config = json.loads((saved / "config.json").read_text())
    del config["race"]  # as a run saved before races
    data = json.dumps(config).encode()
    (saved / "config.json").write_bytes(data)
    _rehash(saved, "config.json", data)
    assert Run.load(saved).race is None


@pytest.mark.slow
def test_mrta_train_races_by_default_and_says_which_setting_it_kept(tmp_path, capsys):
    data = tmp_path / "t.csv"
    tiny_frame("binary").to_csv(data, index=False)
    out = tmp_path / "run"
    args = ["train", str(data), "--target", "y", "--out", str(out), "--time-budget", "3"]
    assert main([*args, "--d-model", "16", "--num-heads", "2"]) == 0
    printed = capsys.readouterr()
    assert "Race of two settings" in printed.out
    assert "the challenger is kept only where its validation roc_auc lead is above 0" in (
        " ".join(printed.out.split())
    )
    assert AS_ASKED in printed.out and CHALLENGER in printed.out
    run = Run.load(out)
    assert run.race is not None and run.race.lead_low is not None
    assert run.race.kept == int(run.race.lead_low > 0)
    assert run.train_config == run.race.winner.train_config
    assert run.control is not None and run.control.steps == run.training.steps
    kept = run.race.winner.model_config
    assert run.model.to_dict()["config"]["dropout"] == kept.dropout
    assert run.untrained_model().to_dict() == run.model.to_dict()
    explained = tmp_path / "explained"
    assert main(["explain", str(out), str(data), "--out", str(explained), "--report"]) == 0
    summary = json.loads((explained / "summary.json").read_text())
    assert summary["race"] == json.loads(json.dumps(run.race.to_dict()))
    report = (explained / "report.html").read_text(encoding="utf-8")
    assert "race of two settings" in report and "Two settings raced for the time budget" in report
