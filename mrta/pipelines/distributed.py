"""Training and explaining on the workers of a ``torchrun`` launch (PyTorch DDP).

Each worker joins the process group (:func:`mrta.training.world.process_group`); torchrun stops
every worker as soon as one exits with an error, and an error on any worker is raised as
:class:`~mrta.errors.WorkerError` naming the worker (:mod:`mrta.pipelines.launch` starts them).

:func:`train_run_on_workers` is :func:`mrta.runs.run.train_run` spread over the workers: every
worker derives the same schema and split, rank 0 fits the preprocessor and broadcasts it (as
JSON), every worker builds the same model from the same seed, :func:`mrta.training.loop.fit`
trains it with :class:`~torch.nn.parallel.DistributedDataParallel` on each worker's shard of the
training rows, and rank 0 alone evaluates, compares with the baselines and returns the run (the
others return ``None``). With ``control=True`` the workers then train the control model
(:mod:`mrta.runs.control`) the same way, on the same examples with their labels permuted alike
on every worker, for as many steps; rank 0 scores it on the test split.
:func:`explain_on_workers` records attention shard by shard (every row exactly once) and sums
the float64 statistics over the workers, so that its result equals a single process's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import torch.distributed as dist

from mrta.analysis.collect import ProgressFn, Shard
from mrta.analysis.explanation import Explanation
from mrta.config import ModelConfig, TrainConfig
from mrta.data.preprocessing import PreprocessingOptions, Preprocessor
from mrta.errors import WorkerError, one_line
from mrta.nn.model import build_model
from mrta.pipelines.explain import DEFAULT_MAX_ROWS
from mrta.pipelines.explain import explain as explain_rows
from mrta.pipelines.train_run import (
    RunPlan,
    check_target_transform,
    default_train_config,
    fit_control,
    train_model,
    with_control,
)
from mrta.runs.members import Member
from mrta.runs.run import Run
from mrta.training.inference import fit_smearing
from mrta.training.loop import Progress
from mrta.training.world import env_int, process_group


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
            failure = WorkerError(f"worker {rank} of {size}: {one_line(error)}")
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


# -- training ----------------------------------------------------------------------------------
def train_run_on_workers(
    frame: pd.DataFrame,
    target: str,
    *,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    preprocessing_options: PreprocessingOptions | None = None,
    callback: Callable[[Progress], None] | None = None,
    control: bool = False,
    control_callback: Callable[[Progress], None] | None = None,
    **plan_options: Any,
) -> Run | None:
    """:func:`mrta.pipelines.train_run.train_run` on the workers of a torchrun launch (call it
    on each); `plan_options` (``task``, ``roles``, ``test_frame``, ``split_options``, ``sets``)
    are those of :meth:`~mrta.pipelines.train_run.RunPlan.prepare`.

    Every worker reads the same table and derives the same schema and split; rank 0 fits the
    preprocessor and broadcasts it; every worker builds the same initial model from
    ``train_config.seed`` and trains it with DDP on its shard of the training examples (rows,
    or sets with `sets`); rank 0 evaluates against the baselines and returns the run, the
    other workers return ``None``. Each worker calls its own `callback` (the command line
    gives one to rank 0 only). With `control`, the workers then train the control model
    with DDP as they trained the model (progress to `control_callback`), and rank 0 scores it
    on the test split and sets it as the run's ``control``. An error on any worker is raised as
    :class:`~mrta.errors.WorkerError` naming the worker.
    """
    check_target_transform(plan_options.get("sets"), preprocessing_options)
    model_config = model_config or ModelConfig()
    train_config = train_config or default_train_config(plan_options.get("sets"))
    with _reported(env_int("RANK", 0), env_int("WORLD_SIZE", 1)):
        with process_group(train_config.device) as world:
            plan = RunPlan.prepare(frame, target, **plan_options)
            if world.leader:
                preprocessor = Preprocessor.fit(plan.train_rows, plan.schema, preprocessing_options)
                world.broadcast_json(preprocessor.to_dict())
            else:
                preprocessor = Preprocessor.from_dict(world.broadcast_json())
            model, train, validation = plan.build(preprocessor, model_config, train_config.seed)
            training = train_model(
                model,
                preprocessor,
                train,
                validation,
                train_config,
                callback=callback,
                distributed=True,
            )
            fit_smearing(preprocessor, model, validation)
            trained_control = None
            if control:
                started = time.perf_counter()
                test, targets = (
                    plan.test_examples(preprocessor, train_config.seed)
                    if world.leader
                    else (None, None)
                )
                trained_control = fit_control(
                    build_model(model.to_dict(), train_config.seed, type(model)),
                    preprocessor,
                    train,
                    validation,
                    train_config,
                    training,
                    test=test,
                    test_targets=targets,
                    callback=control_callback,
                    distributed=True,
                    started=started,
                )
            if not world.leader:
                return None
        # rank 0 alone, the others gone: the held-out metrics beside the baselines
        run = plan.complete(
            [Member(model, train_config.seed, {}, training)], preprocessor, train_config
        )
        if control:
            with_control(run, trained_control)
        return run


# -- explaining --------------------------------------------------------------------------------
def explain_on_workers(
    run: Run,
    frame: pd.DataFrame | None,
    cached: Explanation | None = None,
    *,
    max_rows: int | None = None,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> Explanation | None:
    """:func:`mrta.pipelines.explain.explain` on the workers of a torchrun launch (call it on each).

    Each worker records a contiguous shard of the analysed rows (every row exactly once) and
    the float64 sums are added over the workers: the result equals one process's. `cached` is
    rank 0's cached explanation, if it has one: then nothing is recorded. Rank 0 returns the
    explanation, the other workers ``None``; `progress` is called on rank 0 only.
    """
    # The model stays on the CPU, as in one process: gloo carries the sums.
    with _reported(env_int("RANK", 0), env_int("WORLD_SIZE", 1)), process_group("cpu") as world:
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
