"""Where this process stands among the workers of a distributed run, and the collectives it
uses: the facts that training needs and that the distributed pipeline sets up.

A worker knows it is one from the environment torchrun gives it (:func:`in_worker`).
:func:`process_group` joins the default process group: gloo on the CPU; on CUDA, NCCL for the GPU
tensors (one GPU per worker, ``cuda:LOCAL_RANK``) and gloo for the small CPU-side collectives.
Collectives time out (:data:`DEFAULT_TIMEOUT`, or ``MRTA_DIST_TIMEOUT`` seconds) so that a lost
worker cannot hang the others for ever.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from mrta.config import default_threads
from mrta.jsonable import json_ready

#: Seconds a collective may wait for the other workers before it fails.
DEFAULT_TIMEOUT = 600.0
TIMEOUT_ENV = "MRTA_DIST_TIMEOUT"
#: What torchrun puts in every worker's environment.
WORKER_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def in_worker() -> bool:
    """Whether this process is one of several workers started by torchrun."""
    return all(name in os.environ for name in WORKER_ENV) and env_int("WORLD_SIZE", 1) > 1


def is_leader() -> bool:
    """Rank 0 of a distributed run, or a process on its own: the one that prints and writes."""
    return not in_worker() or env_int("RANK", 0) == 0


def env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def worker_device(name: str = "auto") -> torch.device:
    """The device of this worker: ``cuda:LOCAL_RANK`` on CUDA (``auto`` takes it when there
    is one), else the CPU. Raises ``ValueError`` for ``mps`` or CUDA without a GPU."""
    if name == "mps":
        raise ValueError(
            "distributed runs train on the CPU (gloo) or on CUDA GPUs (NCCL), not on 'mps': "
            "choose --device cpu or run in one process"
        )
    if name not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("device 'cuda' is not available: this PyTorch sees no CUDA GPU")
    local_rank = env_int("LOCAL_RANK", 0)
    if local_rank >= torch.cuda.device_count():
        raise ValueError(
            f"worker {local_rank} of this machine has no GPU of its own (it has "
            f"{torch.cuda.device_count()}): start at most one worker per GPU"
        )
    return torch.device("cuda", local_rank)


def backend_for(device: torch.device) -> str:
    """gloo on the CPU; on CUDA, NCCL for GPU tensors and gloo for CPU tensors."""
    return "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"


def collective_timeout() -> timedelta:
    """How long a collective waits for the others: ``MRTA_DIST_TIMEOUT`` seconds, or
    :data:`DEFAULT_TIMEOUT`."""
    try:
        seconds = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    except ValueError:
        seconds = DEFAULT_TIMEOUT
    return timedelta(seconds=max(seconds, 1.0))


@dataclass(frozen=True)
class World:
    """This worker's place in the default process group, and the collectives training uses.

    Attributes:
        rank, size: this worker's global rank and the number of workers.
        local_rank, local_size: the same on this machine.
        backend: as given to ``init_process_group``.
        device: where this worker computes.
    """

    rank: int
    size: int
    local_rank: int
    local_size: int
    backend: str
    device: torch.device

    @classmethod
    def current(cls) -> World:
        """The default process group, which must be initialised."""
        if not dist.is_initialized():
            raise RuntimeError("no torch.distributed process group: start it with process_group()")
        backend = str(dist.get_backend())
        device = torch.device("cuda", torch.cuda.current_device()) if "nccl" in backend else None
        return cls(
            rank=dist.get_rank(),
            size=dist.get_world_size(),
            local_rank=env_int("LOCAL_RANK", 0),
            local_size=env_int("LOCAL_WORLD_SIZE", 1),
            backend=backend,
            device=device or torch.device("cpu"),
        )

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def cpu_threads(self) -> int:
        """Threads per worker on the CPU: the physical cores shared among this machine's
        workers, at least one."""
        return max(1, default_threads() // max(self.local_size, 1))

    def all_max(self, values: Sequence[float]) -> list[float]:
        """The element-wise maximum of `values` over the workers (float64)."""
        tensor = torch.tensor(list(values), dtype=torch.float64)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor.tolist()

    def all_mean(self, value: float) -> float:
        """The mean of `value` over the workers (float64; NaN if any is NaN)."""
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return float(tensor) / self.size

    def broadcast_json(self, value: Any = None) -> Any:
        """Rank 0's `value` (plain JSON: dicts, lists, strings, numbers, None) on every worker.

        Sent as UTF-8 JSON (through :func:`mrta.jsonable.json_ready`, as a run's files are
        saved), so nothing is unpickled.
        """
        if self.leader:
            data = json.dumps(json_ready(value), allow_nan=False).encode()
            size = torch.tensor([len(data)], dtype=torch.int64)
        else:
            size = torch.zeros(1, dtype=torch.int64)
        dist.broadcast(size, src=0)
        if self.leader:
            buffer = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        else:
            buffer = torch.empty(int(size), dtype=torch.uint8)
        dist.broadcast(buffer, src=0)
        return value if self.leader else json.loads(buffer.numpy().tobytes())


@contextmanager
def process_group(device: str = "auto") -> Iterator[World]:
    """Join the workers torchrun started (its environment: ``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ...) for the block; leave the group after it, all workers at once when
    the block ends without an error.

    On CUDA, each worker takes the GPU ``LOCAL_RANK`` (``torch.cuda.set_device``).
    """
    where = worker_device(device)
    if where.type == "cuda":
        torch.cuda.set_device(where)
    dist.init_process_group(
        backend=backend_for(where),
        init_method="env://",
        timeout=collective_timeout(),
    )
    try:
        yield World.current()
        # Every worker leaves together: a worker done early (rank 0 works on after training)
        # must not tear down its end of the group while the others still use theirs.
        dist.barrier()
    finally:
        # Collect what still holds the group while the interpreter is alive: gloo threads
        # left to its shutdown abort the worker (SIGABRT) after its work is done.
        gc.collect()
        dist.destroy_process_group()
