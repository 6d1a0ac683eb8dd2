"""Starting a command on several worker processes of this machine through ``torchrun``.

``mrta train ... --nproc N`` (and ``mrta explain ... --nproc N``) start ``N`` workers through
:func:`launch`, which runs ``python -m mrta.pipelines.launch --standalone --nproc-per-node N -m
mrta train ...``: torchrun (:func:`torchrun`), with a one-line error in place of its traceback.
The same command line under ``torchrun`` (``torchrun --nnodes 2 ... -m mrta
train ...``) runs on several machines.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from mrta.config import default_threads
from mrta.errors import WorkerError, one_line, positive_int
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
    machine: torchrun, through :func:`torchrun` (``python -m mrta.pipelines.launch``)."""
    return [
        sys.executable,
        "-m",
        "mrta.pipelines.launch",
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


def torchrun(argv: Sequence[str]) -> int:
    """``torchrun ARGV`` in this process, with a one-line error instead of torchrun's traceback
    and failure table (the failing worker has printed its own message), and its log folder
    removed afterwards (torchrun leaves a ``/tmp/torchelastic_*`` folder per launch otherwise).
    Returns the exit code: 0, or 1 when a worker failed."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    logs = tempfile.mkdtemp(prefix="mrta-workers-")
    try:
        run(parse_args(["--log-dir", logs, *argv]))
    except ChildFailedError as error:
        rank, failure = error.get_first_failure()
        how = (
            f"killed by {failure.signal_name()}"
            if failure.exitcode < 0
            else f"exit code {failure.exitcode}"
        )
        message = failure.message  # the worker's recorded error: text, or {"message": ...}
        if isinstance(message, dict):
            message = message.get("message", "")
        message = message.removeprefix(f"{WorkerError.__name__}: ")
        informative = message and not message.startswith("To enable traceback")
        said = f": {one_line(message)}" if informative else ""
        print(f"mrta: error: worker {rank} failed ({how}){said}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(torchrun(sys.argv[1:]))
