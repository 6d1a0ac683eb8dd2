"""Which devices this machine can train on: the choices a user is offered.

``auto`` (CUDA, then Apple MPS, then the CPU) and ``cpu`` always; ``cuda`` and ``mps`` only when
this PyTorch sees them. :func:`mrta.training.loop.resolve_device` turns a choice into a device.
"""

from __future__ import annotations

import torch

#: Every device name a training configuration accepts, in the order they are offered.
DEVICES = ("auto", "cpu", "cuda", "mps")


def available_devices() -> list[str]:
    """The device names this machine can train on, in the order of :data:`DEVICES`."""
    present = {
        "auto": True,
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
    }
    return [name for name in DEVICES if present[name]]
