"""Seeded streams of torch's CPU generator: a seed gives the same initial weights and dropout
masks while other threads build and train (the dashboard's background jobs)."""

import threading
from dataclasses import replace

import torch
from test_train import QUICK, TINY_MODEL, encoded, tiny_fit

from mrta.nn.model import build_model
from mrta.nn.random_stream import RandomStream


def test_a_stream_draws_what_its_seed_gives_and_leaves_the_global_generator_alone():
    torch.manual_seed(7)
    expected = torch.rand(5)
    torch.manual_seed(11)
    outside = torch.get_rng_state()
    stream = RandomStream(7)
    with stream:
        first = torch.rand(2)
    assert torch.equal(torch.get_rng_state(), outside)
    torch.rand(100)  # draws outside the stream do not move it
    with stream:
        rest = torch.rand(3)
    assert torch.equal(torch.cat([first, rest]), expected)


def busy(stop: threading.Event) -> None:
    """Another thread that keeps drawing through its own stream (another training's dropout)."""
    stream = RandomStream(123)
    while not stop.is_set():
        with stream:
            torch.rand(1000)


def test_building_and_training_beside_a_busy_thread_gives_the_quiet_weights():
    config = replace(QUICK, max_epochs=2, seed=3)
    spec = encoded()[0].model_spec(TINY_MODEL)
    quiet_built = build_model(spec, 4).state_dict()
    quiet_model, quiet = tiny_fit(config)
    stop = threading.Event()
    other = threading.Thread(target=busy, args=(stop,))
    other.start()
    try:
        busy_built = [build_model(spec, 4).state_dict() for _ in range(5)]
        busy_model, trained = tiny_fit(config)
    finally:
        stop.set()
        other.join()
    for built in busy_built:
        for name, value in quiet_built.items():
            assert torch.equal(value, built[name]), name
    for name, value in quiet_model.state_dict().items():
        assert torch.equal(value, busy_model.state_dict()[name]), name
    assert [e["train_loss"] for e in quiet.history] == [e["train_loss"] for e in trained.history]
