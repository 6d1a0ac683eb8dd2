"""Shared fixtures: every test starts from the same seed."""

import os

import pytest
import torch

# The Keras reference layer (parity tests, README examples) runs on Keras' torch backend.
os.environ.setdefault("KERAS_BACKEND", "torch")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
