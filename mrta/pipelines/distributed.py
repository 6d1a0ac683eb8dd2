"""Training and explaining on several processes: PyTorch DDP, launched by ``torchrun``.

``mrta train ... --nproc N`` (and ``mrta explain ... --nproc N``) start ``N`` workers on this
machine through :func:`launch`, which runs ``python -m torch.distributed.run --standalone
--nproc-per-node N -m mrta train ...``. The same command line under ``torchrun`` (``torchrun
--nnodes 2 ... -m mrta train ...``) runs on several machines: a worker knows it is one from the
environment torchrun gives it (:func:`in_worker`).

Each worker joins the process group (:func:`process_group`): gloo on the CPU; on CUDA, NCCL for
the GPU tensors (one GPU per worker, ``cuda:LOCAL_RANK``) and gloo for the small CPU-side
collectives. Collectives time out (:data:`DEFAULT_TIMEOUT`, or ``MRTA_DIST_TIMEOUT`` seconds) so
that a lost worker cannot hang the others for ever; torchrun already stops every worker as soon
as one exits with an error.

:func:`train_run` is :func:`mrta.runs.run.train_run` spread over the workers: every worker derives
the same schema and split, rank 0 fits the preprocessor and broadcasts it (as JSON), every
worker builds the same model from the same seed, :func:`mrta.training.loop.fit` trains it with
:class:`~torch.nn.parallel.DistributedDataParallel` on each worker's shard of the training rows,
and rank 0 alone evaluates, compares with the baselines and returns the run (the others return
``None``). :func:`explain` records attention shard by shard (every row exactly once) and sums
the float64 statistics over the workers, so that its result equals a single process's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist

from mrta.config import default_threads

if TYPE_CHECKING:  # imported where used: mrta.training.loop imports this module
    import pandas as pd

    from mrta.analysis.atlas import Progress as AnalysisProgress
    from mrta.config import ModelConfig, TrainConfig
    from mrta.data.preprocessing import PreprocessingOptions
    from mrta.data.schema import Role, Task
    from mrta.data.sets import SetOptions
    from mrta.data.splits import SplitOptions
    from mrta.pipelines.explain import Explanation
    from mrta.runs.run import Run
    from mrta.training.loop import Progress

#: Seconds a collective may wait for the other workers before it fails.
DEFAULT_TIMEOUT = 600.0
TIMEOUT_ENV = "MRTA_DIST_TIMEOUT"
#: Tests only: the rank named here raises at its second training step.
FAIL_ENV = "MRTA_TEST_FAIL_RANK"
FAIL_AT_STEP = 2
#: What torchrun puts in every worker's environment.
WORKER_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class WorkerError(RuntimeError):
    """A worker of a distributed run failed; the message names the worker and the cause."""


# -- where we are ------------------------------------------------------------------------------
def in_worker() -> bool:
    """Whether this process is one of several workers started by torchrun."""
    return all(name in os.environ for name in WORKER_ENV) and _env_int("WORLD_SIZE", 1) > 1


def is_leader() -> bool:
    """Rank 0 of a distributed run, or a process on its own: the one that prints and writes."""
    return not in_worker() or _env_int("RANK", 0) == 0


def launches(nproc: int | None) -> bool:
    """Whether a command asked for `nproc` workers must start them (it is not one itself).

    Raises ``ValueError`` for a count below 1.
    """
    if nproc is None:
        return False
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"--nproc must be a positive number of worker processes, got {nproc!r}")
    return nproc > 1 and not in_worker()


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


# -- launching ---------------------------------------------------------------------------------
def worker_argv(argv: Sequence[str]) -> list[str]:
    """`argv` without ``--nproc N`` (or an abbreviation of it, or ``--nproc=N``): the workers
    do not launch again, and torchrun would take ``--nproc`` for its own ``--nproc-per-node``."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name, equals, _ = arg.partition("=")
        if len(name) >= 4 and "--nproc".startswith(name):
            skip = not equals
            continue
        kept.append(arg)
    return kept


def torchrun_command(argv: Sequence[str], nproc: int) -> list[str]:
    """The command that runs ``mrta ARGV`` (less ``--nproc``) on `nproc` workers of this
    machine."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc-per-node",
        str(nproc),
        "-m",
        "mrta",
        *worker_argv(argv),
    ]


def launch(argv: Sequence[str], nproc: int) -> int:
    """Run ``mrta ARGV`` on `nproc` workers through torchrun; returns torchrun's exit code.

    The workers inherit this process's standard streams: rank 0 shows the progress and the
    results, and a worker that fails prints its error (torchrun then stops the others and
    repeats the error in its summary).
    """
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
    # torchrun would otherwise set 1 and warn; each worker sets its own thread count anyway.
    env.setdefault("OMP_NUM_THREADS", str(max(1, default_threads() // nproc)))
    code = subprocess.run(torchrun_command(argv, nproc), env=env, check=False).returncode
    if code != 0:
        print(
            f"mrta: error: the run on {nproc} workers failed (torchrun exit code {code}); the "
            "failing worker's message is above",
            file=sys.stderr,
        )
    return code


# -- the process group -------------------------------------------------------------------------
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
    local_rank = _env_int("LOCAL_RANK", 0)
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
            local_rank=_env_int("LOCAL_RANK", 0),
            local_size=_env_int("LOCAL_WORLD_SIZE", 1),
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

        Sent as UTF-8 JSON, so nothing is unpickled; NaN and infinities survive.
        """
        if self.leader:
            data = json.dumps(value, default=_json_default).encode()
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


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")


@contextmanager
def process_group(device: str = "auto") -> Iterator[World]:
    """Join the workers torchrun started (its environment: ``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ...) for the block; leave the group after it.

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
    finally:
        dist.destroy_process_group()


@contextmanager
def _reported(rank: int, size: int) -> Iterator[None]:
    """Turn an error into a :class:`WorkerError` that names the worker, and hand it to
    torchrun's error file, so that torchrun's summary shows it too."""
    try:
        yield
    except Exception as error:
        if _lost_peer(error):
            failure = WorkerError(
                f"worker {rank} of {size} lost contact with another worker, which probably "
                "failed: see that worker's error"
            )
        else:
            failure = WorkerError(f"worker {rank} of {size}: {_one_line(error)}")
        try:
            from torch.distributed.elastic.multiprocessing.errors.error_handler import (
                ErrorHandler,
            )

            ErrorHandler().record_exception(failure)
        except Exception:  # the summary is a courtesy; the error itself still propagates
            pass
        raise failure from error


def _lost_peer(error: BaseException) -> bool:
    """Whether a collective failed because another worker went away."""
    text = str(error)
    return isinstance(error, dist.DistError) or any(
        sign in text for sign in ("Connection closed by peer", "Connection reset by peer")
    )


def _one_line(error: BaseException) -> str:
    message = str(error).strip()
    return message.splitlines()[0] if message else type(error).__name__


# -- training ----------------------------------------------------------------------------------
def train_run(
    frame: pd.DataFrame,
    target: str,
    *,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    task: Task | str | None = None,
    roles: Mapping[str, Role | str] | None = None,
    test_frame: pd.DataFrame | None = None,
    callback: Callable[[Progress], None] | None = None,
    split_options: SplitOptions | None = None,
    preprocessing_options: PreprocessingOptions | None = None,
    sets: SetOptions | None = None,
) -> Run | None:
    """:func:`mrta.runs.run.train_run` on the workers of a torchrun launch (call it on each).

    Every worker reads the same table and derives the same schema and split; rank 0 fits the
    preprocessor and broadcasts it; every worker builds the same initial model from
    ``train_config.seed`` and trains it with DDP on its shard of the training examples (rows,
    or sets with `sets`); rank 0 evaluates against the baselines and returns the run, the
    other workers return ``None``. `callback` is called on rank 0 only. An error on any worker
    is raised as :class:`WorkerError` naming the worker.
    """
    from mrta.config import ModelConfig
    from mrta.data.preprocessing import Preprocessor
    from mrta.runs.run import RunPlan, default_train_config
    from mrta.training.loop import fit

    model_config = model_config or ModelConfig()
    train_config = train_config or default_train_config(sets)
    with _reported(_env_int("RANK", 0), _env_int("WORLD_SIZE", 1)):
        with process_group(train_config.device) as world:
            plan = RunPlan.prepare(
                frame,
                target,
                task=task,
                roles=roles,
                test_frame=test_frame,
                split_options=split_options,
                sets=sets,
            )
            if world.leader:
                preprocessor = Preprocessor.fit(plan.train_rows, plan.schema, preprocessing_options)
                world.broadcast_json(preprocessor.to_dict())
            else:
                preprocessor = Preprocessor.from_dict(world.broadcast_json())
            model, train, validation = plan.build(preprocessor, model_config, train_config.seed)
            training = fit(
                model,
                train,
                validation,
                train_config,
                target_mean=preprocessor.target_mean,
                target_std=preprocessor.target_std,
                callback=_failing(world.rank, callback if world.leader else None),
                distributed=True,
            )
            if not world.leader:
                return None
        # rank 0 alone, the others gone: the held-out metrics beside the baselines
        return plan.complete(model, preprocessor, train_config, training)


def _failing(rank: int, callback: Callable[[Progress], None] | None):
    """`callback`, or, on the rank that ``MRTA_TEST_FAIL_RANK`` names (tests only), one that
    raises at step :data:`FAIL_AT_STEP`."""
    if os.environ.get(FAIL_ENV) != str(rank):
        return callback

    def fail(progress: Progress) -> None:
        if progress.event == "step" and progress.step >= FAIL_AT_STEP:
            raise RuntimeError(f"injected failure at step {progress.step} ({FAIL_ENV}={rank})")
        if callback is not None:
            callback(progress)

    return fail


# -- explaining --------------------------------------------------------------------------------
def explain(
    run: Run,
    frame: pd.DataFrame | None,
    cached: Explanation | None = None,
    *,
    max_rows: int | None = None,
    seed: int = 0,
    progress: AnalysisProgress | None = None,
) -> Explanation | None:
    """:func:`mrta.pipelines.explain.explain` on the workers of a torchrun launch (call it on each).

    Each worker records a contiguous shard of the analysed rows (every row exactly once) and
    the float64 sums are added over the workers: the result equals one process's. `cached` is
    rank 0's cached explanation, if it has one: then nothing is recorded. Rank 0 returns the
    explanation, the other workers ``None``; `progress` is called on rank 0 only.
    """
    from mrta.analysis.atlas import Shard
    from mrta.pipelines.explain import DEFAULT_MAX_ROWS
    from mrta.pipelines.explain import explain as explain_rows

    # The model stays on the CPU, as in one process: gloo carries the sums.
    with _reported(_env_int("RANK", 0), _env_int("WORLD_SIZE", 1)), process_group("cpu") as world:
        if not world.broadcast_json(cached is None):
            return cached if world.leader else None
        explanation = explain_rows(
            run,
            frame,
            max_rows=DEFAULT_MAX_ROWS if max_rows is None else max_rows,
            seed=seed,
            progress=progress if world.leader else None,
            shard=Shard(world.rank, world.size),
        )
    return explanation if world.leader else None
