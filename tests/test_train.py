"""Training: each task learns, seeds reproduce bits, budgets, cancel, NaN guard, devices."""

import math
import os
import threading
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from mrta.config import ModelConfig, TrainConfig, default_threads
from mrta.data.preprocessing import Preprocessor
from mrta.data.schema import infer_schema
from mrta.nn.model import build_model
from mrta.pipelines.train_run import train_run
from mrta.training.loop import ThreadChoice, fit, learning_rate_at, parameter_groups, resolve_device

TINY_MODEL = ModelConfig(d_token=8, d_model=16, num_layers=1, num_heads=2, dropout=0.1)
# One thread: tiny models run faster on one, and a busy shared machine cannot stall them.
QUICK = TrainConfig(time_budget=None, max_epochs=15, learning_rate=3e-3, patience=15, threads=1)


def tiny_frame(task: str = "binary", rows: int = 240, seed: int = 0) -> pd.DataFrame:
    """A small mixed table whose target depends clearly on `x1` and `color`."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    x2 = rng.normal(size=rows)
    x2[rng.random(rows) < 0.1] = np.nan
    color = rng.choice(["red", "green", "blue"], rows)
    size = rng.choice(["S", "M", "L"], rows)
    signal = 2 * x1 + 1.5 * (color == "red") - 0.75
    if task == "regression":
        y = signal + 0.3 * rng.normal(size=rows)
    elif task == "binary":
        y = np.where(signal + 0.3 * rng.normal(size=rows) > 0, "yes", "no")
    else:
        y = np.select([signal < -1, signal < 1], ["low", "mid"], "high")
    return pd.DataFrame({"x1": x1, "x2": x2, "color": color, "size": size, "y": y})


def encoded(task: str = "binary", **roles):
    frame = tiny_frame(task)
    schema = infer_schema(frame, "y", roles=roles or None)
    preprocessor = Preprocessor.fit(frame.iloc[:180], schema)
    return (
        preprocessor,
        preprocessor.transform(frame.iloc[:180]),
        preprocessor.transform(frame.iloc[180:]),
    )


def tiny_fit(config: TrainConfig = QUICK, task: str = "binary", **kwargs):
    preprocessor, train, validation = encoded(task)
    model = build_model(preprocessor.model_spec(TINY_MODEL), 0)
    result = fit(
        model,
        train,
        validation,
        config,
        target_mean=preprocessor.target_mean,
        target_std=preprocessor.target_std,
        **kwargs,
    )
    return model, result


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.slow
def test_each_task_trains_and_beats_the_trivial_baseline(task):
    run = train_run(tiny_frame(task), "y", model_config=TINY_MODEL, train_config=QUICK)
    assert run.model.task == task
    model, trivial = run.metrics["model"], run.metrics["trivial"]
    if task == "regression":
        assert model["r2"] > 0.5 > trivial["r2"]
        assert model["rmse"] < trivial["rmse"]
    else:
        assert model["log_loss"] < trivial["log_loss"]
        assert model["accuracy"] > trivial["accuracy"]
    assert run.training.steps > 0 and run.training.history[0]["epoch"] == 0


@pytest.mark.parametrize("role", ["numerical", "categorical"])
@pytest.mark.slow
def test_a_table_with_one_type_of_column_trains(role):
    frame = tiny_frame()
    if role == "numerical":
        frame = frame.drop(columns=["color", "size"])
    else:
        frame["x1"] = np.where(frame["x1"] > 0, "up", "down")
        frame = frame.drop(columns=["x2"])
    run = train_run(frame, "y", model_config=TINY_MODEL, train_config=QUICK)
    assert run.model.map_ids == (["num_num"] if role == "numerical" else ["cat_cat"])
    assert run.metrics["model"]["log_loss"] < run.metrics["trivial"]["log_loss"]


@pytest.mark.slow
def test_a_seed_and_an_epoch_limit_reproduce_the_weights_to_the_bit():
    config = replace(QUICK, max_epochs=3, seed=5)
    first_model, first = tiny_fit(config)
    second_model, second = tiny_fit(config)
    for (name, a), b in zip(
        first_model.state_dict().items(), second_model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name

    def without_time(history):
        return [{k: v for k, v in entry.items() if k != "elapsed"} for entry in history]

    assert without_time(first.history) == without_time(second.history)
    assert first.stop_reason == "max_epochs" and first.epochs == 3
    _, other_seed = tiny_fit(replace(QUICK, max_epochs=3, seed=6))
    assert without_time(other_seed.history) != without_time(first.history)


@pytest.mark.slow
def test_the_callback_sees_steps_and_epochs_with_growing_progress():
    seen = []
    _, result = tiny_fit(replace(QUICK, max_epochs=3), callback=seen.append)
    steps = [p for p in seen if p.event == "step"]
    epochs = [p for p in seen if p.event == "epoch"]
    assert len(steps) == result.steps and len(epochs) == 3
    fractions = [p.fraction for p in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    assert all(p.validation_loss is not None and "accuracy" in p.validation for p in epochs)


@pytest.mark.parametrize("kind", ["event", "callable"])
@pytest.mark.slow
def test_cancel_stops_before_the_next_step_and_keeps_the_best_weights(kind):
    event = threading.Event()
    cancel = event if kind == "event" else event.is_set

    def callback(progress):
        if progress.step == 3:
            event.set()

    _, result = tiny_fit(replace(QUICK, max_epochs=50), callback=callback, cancel=cancel)
    assert result.stop_reason == "cancelled" and result.steps == 3
    assert "cancelled" in result.message


@pytest.mark.slow
def test_no_step_starts_that_would_end_past_the_time_budget(monkeypatch):
    # A fake clock: a training forward pass takes 1/8 s, nothing else takes any time.
    now = [100.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    preprocessor, train, validation = encoded()
    model = build_model(preprocessor.model_spec(TINY_MODEL), 0)

    def an_eighth_of_a_second(module, args):
        if module.training:
            now[0] += 0.125

    model.register_forward_pre_hook(an_eighth_of_a_second)
    config = replace(QUICK, time_budget=2.0, max_epochs=100_000, patience=100_000)
    result = fit(model, train, validation, config)
    assert result.stop_reason == "time_budget"
    assert result.message == "Stopped at the time budget of 2 s."
    # 15 steps end at 1.875 s; a 16th would end at 2 s, not before the budget: not started
    assert result.steps == 15 and result.elapsed == 1.875
    assert result.history[-1]["steps"] == result.steps


@pytest.mark.slow
def test_a_nan_loss_stops_training_and_keeps_the_best_weights():
    preprocessor, train, validation = encoded()
    model = build_model(preprocessor.model_spec(TINY_MODEL), 0)
    calls = {"n": 0}

    def poison(module, args, output):
        calls["n"] += 1
        return output * float("nan") if module.training and calls["n"] > 12 else output

    model.head.register_forward_hook(poison)
    result = fit(model, train, validation, replace(QUICK, max_epochs=50))
    assert result.stop_reason == "nan_loss"
    assert "nan" in result.message.lower() and "best weights" in result.message
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert math.isfinite(result.best_validation_loss)


@pytest.mark.slow
def test_exactly_n_steps_ignores_epochs_budget_and_stopping_and_keeps_the_final_weights():
    preprocessor, train, validation = encoded()
    model = build_model(preprocessor.model_spec(TINY_MODEL), 0)
    after_step = {}

    def callback(progress):
        if progress.event == "step":
            after_step[progress.step] = {k: v.clone() for k, v in model.state_dict().items()}

    # A cap of one epoch, patience 1 and a budget of a nanosecond: none of them applies.
    config = replace(QUICK, max_epochs=1, patience=1, time_budget=1e-9)
    result = fit(model, train, validation, config, steps=10, callback=callback)
    # 180 training rows: 4 batches of 45 an epoch, so 10 steps are 2 epochs and a half
    assert (result.steps, result.epochs, result.stop_reason) == (10, 3, "steps")
    assert "exactly 10 steps (3 epochs)" in result.message and "final weights" in result.message
    assert [entry["epoch"] for entry in result.history] == [0, 1, 2, 3]
    assert (
        result.best_epoch == 3
        and result.best_validation_loss == result.history[-1]["validation_loss"]
    )
    assert sorted(after_step) == list(range(1, 11))
    for name, value in model.state_dict().items():
        assert torch.equal(value, after_step[10][name]), name


@pytest.mark.slow
def test_n_steps_follow_the_schedule_as_far_as_asked():
    rates = {}
    _, full = tiny_fit(QUICK, steps=8, callback=lambda p: rates.setdefault(p.step, p.learning_rate))
    assert full.schedule_fraction == 1.0 and rates[8] == 0.0  # decayed to 0 at its end
    rates.clear()
    _, half = tiny_fit(
        QUICK,
        steps=8,
        schedule_end=0.5,
        callback=lambda p: rates.setdefault(p.step, p.learning_rate),
    )
    assert half.schedule_fraction == 0.5
    for step in (1, 4, 8):
        expected = learning_rate_at(0.5 * step / 8, QUICK.learning_rate, QUICK.warmup_fraction)
        assert rates[step] == pytest.approx(expected), step
    with pytest.raises(ValueError, match="schedule_end must be in"):
        tiny_fit(QUICK, steps=8, schedule_end=0.0)


@pytest.mark.slow
def test_the_schedule_fraction_reached_is_recorded():
    _, planned = tiny_fit(replace(QUICK, max_epochs=3))
    assert planned.stop_reason == "max_epochs" and planned.schedule_fraction == 1.0
    _, early = tiny_fit(replace(QUICK, max_epochs=200, patience=1))
    assert early.stop_reason == "early_stopping"
    assert early.schedule_fraction == pytest.approx(early.steps / (200 * 4))


def test_zero_steps_keeps_the_initial_weights_and_a_negative_count_is_refused():
    preprocessor, train, validation = encoded()
    model = build_model(preprocessor.model_spec(TINY_MODEL), 0)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    result = fit(model, train, validation, QUICK, steps=0)
    assert (result.steps, result.epochs, result.stop_reason) == (0, 0, "steps")
    assert all(torch.equal(v, initial[k]) for k, v in model.state_dict().items())
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="steps must be"):
            fit(model, train, validation, QUICK, steps=bad)


@pytest.mark.slow
def test_n_steps_reproduce_to_the_bit_and_cancel_still_stops_them():
    config = replace(QUICK, seed=3)
    first_model, _ = tiny_fit(config, steps=7)
    second_model, _ = tiny_fit(config, steps=7)
    for (name, a), b in zip(
        first_model.state_dict().items(), second_model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    event = threading.Event()
    _, cut = tiny_fit(config, steps=7, cancel=event, callback=lambda p: p.step == 2 and event.set())
    assert cut.stop_reason == "cancelled" and cut.steps == 2
    assert "2 of the 7 steps" in cut.message and "final weights" in cut.message


def test_an_unavailable_device_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device 'cuda' is not available"):
        tiny_fit(replace(QUICK, device="cuda"))
    with pytest.raises(ValueError, match="device 'mps' is not available"):
        resolve_device("mps")


@pytest.mark.parametrize(
    "cuda, mps, expected",
    [(True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu")],
)
def test_auto_takes_cuda_then_mps_then_the_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert resolve_device("auto") == torch.device(expected)
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.slow
def test_threads_are_set_for_training_and_restored_after():
    before = torch.get_num_threads()
    seen = []
    tiny_fit(
        replace(QUICK, max_epochs=1),
        callback=lambda p: seen.append(torch.get_num_threads()),
    )
    assert set(seen) == {1}
    assert torch.get_num_threads() == before
    assert 1 <= default_threads() <= os.cpu_count()


def test_warmup_then_cosine_decay():
    assert learning_rate_at(0.0, 1.0, 0.1) == 0.0
    assert learning_rate_at(0.05, 1.0, 0.1) == pytest.approx(0.5)
    assert learning_rate_at(0.1, 1.0, 0.1) == pytest.approx(1.0)
    assert learning_rate_at(0.55, 1.0, 0.1) == pytest.approx(0.5)
    assert learning_rate_at(1.0, 1.0, 0.1) == pytest.approx(0.0)


def test_no_weight_decay_on_embeddings_norms_and_biases():
    preprocessor, _, _ = encoded()
    model = build_model(preprocessor.model_spec(TINY_MODEL), 0)
    decay, exempt = parameter_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert exempt["weight_decay"] == 0.0
    assert "layers.0.ffn1.weight" in decayed and "layers.0.num_num.in_proj_weight" in decayed
    assert not any(n.startswith("tokenizer") or n.endswith("bias") or ".norm" in n for n in decayed)


def test_thread_choice_keeps_the_faster_count_and_falls_back_to_one_thread():
    choice = ThreadChoice(4, steps_each=3)
    for seconds in (0.5, 0.1, 0.1):  # one thread; the first step warms up
        assert choice.next() == 1
        choice.record(1, seconds)
    for seconds in (0.06, 0.05, 0.05):
        assert choice.next() == 4
        choice.record(4, seconds)
    assert choice.next() == 4
    choice.record(4, 0.06)
    assert choice.next() == 4
    choice.record(4, 2.0)  # the machine got busy
    assert choice.next() == 1

    busy = ThreadChoice(2, steps_each=3)
    for _ in range(3):
        busy.record(busy.next(), 0.1)
    assert busy.next() == 2
    busy.record(2, 3.0)  # far slower than one thread: no more tries
    assert busy.next() == 1


@pytest.mark.slow
def test_a_time_budget_on_the_cpu_chooses_its_threads():
    before = torch.get_num_threads()
    _, result = tiny_fit(replace(QUICK, time_budget=0.5, threads=None, max_epochs=100_000))
    assert result.threads in (1, default_threads())
    assert torch.get_num_threads() == before


@pytest.mark.slow
def test_a_step_count_on_the_cpu_chooses_its_threads_too(monkeypatch):
    chosen = []
    real = ThreadChoice.__init__

    def spy(self, most, *args, **kwargs):
        chosen.append(most)
        real(self, most, *args, **kwargs)

    monkeypatch.setattr(ThreadChoice, "__init__", spy)
    monkeypatch.setattr("mrta.training.loop.default_threads", lambda: 2)
    _, result = tiny_fit(replace(QUICK, threads=None), steps=8)
    assert chosen == [2] and result.threads in (1, 2) and result.steps == 8
    tiny_fit(QUICK, steps=8)  # a thread count given: no choice
    assert chosen == [2]
