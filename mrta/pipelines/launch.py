"""Starting a command on several worker processes of this machine through ``torchrun``.

``mrta train ... --nproc N`` (and ``mrta explain ... --nproc N``) start ``N`` workers through
:func:`launch`, which runs ``python -m torch.distributed.run --standalone --nproc-per-node N -m
mrta train ...``. The same command line under ``torchrun`` (``torchrun --nnodes 2 ... -m mrta
train ...``) runs on several machines.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from mrta.config import default_threads
from mrta.errors import positive_int
from mrta.training.world import in_worker


def launches(nproc: int | None) -> bool:
    """Whether a command asked for `nproc` workers must start them (it is not one itself).

    Raises ``ValueError`` for a count below 1.
    """
    if nproc is None:
        return False
    positive_int(nproc, "--nproc")
    return nproc > 1 and not in_worker()


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
