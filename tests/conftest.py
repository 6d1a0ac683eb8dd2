"""Shared fixtures: every test starts from the same seed."""

import os
import sys

import pytest
import torch

# The Keras reference layer (parity tests, README examples) runs on Keras' torch backend.
os.environ.setdefault("KERAS_BACKEND", "torch")
# One thread for the tests' own tensors: on a 2-core machine where another process is busy, the
# threads of a tiny model's matmuls spin-wait for a core and a pass takes 500 times as long.
# (Training chooses its own thread count and restores this one after it.)
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _no_job_outlives_its_test():
    """A dashboard test's background jobs (a control, a stability analysis) are cancelled when
    it ends: left running, they take the CPU from the next tests."""
    yield
    jobs = sys.modules.get("mrta_dashboard.jobs")
    if jobs is not None:
        jobs.stop_all()
