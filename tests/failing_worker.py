"""Started by ``test_distributed`` under torchrun: a two-worker training in which worker
:data:`FAIL_RANK` raises at its training step :data:`FAIL_AT_STEP`, through the callback that
:func:`~mrta.pipelines.distributed.train_run_on_workers` calls on every worker.

Usage: ``torchrun --nproc-per-node 2 tests/failing_worker.py TABLE.csv OUT_DIR``
"""

import sys

import pandas as pd

from mrta.config import ModelConfig, TrainConfig
from mrta.pipelines.distributed import train_run_on_workers
from mrta.training.loop import Progress
from mrta.training.world import env_int

FAIL_RANK = 1
FAIL_AT_STEP = 2


def fail_at_step(progress: Progress) -> None:
    failing = env_int("RANK", 0) == FAIL_RANK and progress.event == "step"
    if failing and progress.step >= FAIL_AT_STEP:
        raise RuntimeError(f"injected failure at step {progress.step}")


if __name__ == "__main__":
    table, out = sys.argv[1:3]
    run = train_run_on_workers(
        pd.read_csv(table),
        "y",
        model_config=ModelConfig(num_layers=1, d_model=16, num_heads=2),
        train_config=TrainConfig(time_budget=None, max_epochs=15, threads=1, device="cpu"),
        callback=fail_at_step,
    )
    if run is not None:
        run.save(out)
