"""Seeded draws from torch's CPU generator that other threads cannot disturb."""

from __future__ import annotations

import threading
from typing import Self

import torch

_LOCK = threading.RLock()  # one stream draws at a time in the whole process


class RandomStream:
    """Torch's global CPU generator as if seeded with `seed` and drawn from by this stream alone.

    Inside ``with stream:`` the global CPU generator holds the stream's state, under a
    process-wide lock; on leaving, the stream keeps the state it reached and the generator gets
    back the state it had. Threads that each draw through their own stream (a model being built,
    a training step's dropout masks) never take each other's numbers, so a seed gives the same
    weights and masks whatever else the process is doing (the dashboard trains in background
    threads); their drawing blocks run one at a time. The CUDA and MPS generators are not
    covered.
    """

    def __init__(self, seed: int) -> None:
        self._state = torch.Generator().manual_seed(seed).get_state()
        self._outside: torch.Tensor | None = None

    def __enter__(self) -> Self:
        _LOCK.acquire()
        self._outside = torch.get_rng_state()
        torch.set_rng_state(self._state)
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._state = torch.get_rng_state()
            torch.set_rng_state(self._outside)
        finally:
            self._outside = None
            _LOCK.release()
