"""Models trained at once, one process each, on the CPU: a run's seed members, or the two
settings of a race (:mod:`mrta.training.race`).

On a CPU a small model keeps one core busy far better than two: N members trained in N
processes at once, one thread each, for N times the time budget (the wall time of N trainings
one after another) took 1.2 to 1.5 times the optimisation steps per member and gave a better
ROC AUC of the members' mean in every repeat of ``benchmarks/seed_training.py`` on 2 cores.
:func:`in_processes` says when to; :func:`fit_in_processes` does it.

Each process is started with ``spawn`` (no forked locks or threads), builds its model from its
model spec and seed, trains it with :func:`mrta.training.loop.fit` and sends back its weights
and :class:`~mrta.training.loop.TrainResult`; member 0's progress reaches `callback`. A cancel
ends every process; a process that fails raises :class:`~mrta.errors.WorkerError` naming it.
"""

from __future__ import annotations

import queue
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from multiprocessing import get_context
from typing import Any

import numpy as np
import torch

from mrta.config import TrainConfig, default_threads
from mrta.data.preprocessing import Examples
from mrta.errors import WorkerError, one_line
from mrta.nn.model import build_model
from mrta.training.devices import available_devices
from mrta.training.loop import Cancel, Progress, TrainResult, fit, is_cancelled

POLL_SECONDS = 0.2  # how often the parent looks for a message, a cancel or a dead process
LAST_WORD_SECONDS = 2.0  # how long a process that ended may still have a message on its way


def in_processes(seeds: int, config: TrainConfig) -> bool:
    """Whether `seeds` members of `config` train at once in processes of their own: on the CPU
    (``device`` ``cpu``, or ``auto`` without CUDA or MPS) of at least 2 cores."""
    return seeds > 1 and on_cpu(config) and default_threads() >= 2


def on_cpu(config: TrainConfig) -> bool:
    """Whether `config` trains on the CPU: ``device`` ``cpu``, or ``auto`` without CUDA or MPS."""
    accelerated = {"cuda", "mps"} & set(available_devices())
    return config.device == "cpu" or (config.device == "auto" and not accelerated)


def fit_in_processes(
    models: Sequence[tuple[Mapping[str, Any], TrainConfig]],
    model_class: type,
    train: Examples,
    validation: Examples,
    *,
    target_mean: float | None,
    target_std: float | None,
    callback: Callable[[Progress], None] | None = None,
    cancel: Cancel = None,
    names: Sequence[str] | None = None,
) -> list[tuple[torch.nn.Module, TrainResult]]:
    """One model per (model spec, training config) of `models` (the config's seed the initial
    weights' and the training's), each trained in a process of its own on one thread, within
    its config's time budget (seed members are given N times the budget by their caller).
    Model 0's progress goes to `callback`; `cancel` stops every training at its next step, as
    it stops one (its result says ``cancelled``).

    Raises :class:`~mrta.errors.WorkerError` naming the model (`names`: default
    ``seed member K``) when a process fails or dies.
    """
    names = names or [f"seed member {k}" for k in range(len(models))]
    context = get_context("spawn")
    messages, stop = context.Queue(), context.Event()
    processes = []
    for k, (spec, config) in enumerate(models):
        reports = k == 0 and callback is not None
        one_thread = replace(config, threads=1)
        args = (k, dict(spec), model_class, one_thread, train, validation, target_mean,
                target_std, messages, stop, reports)  # fmt: skip
        process = context.Process(target=_member, args=args, daemon=True)
        try:
            process.start()
        except RuntimeError as error:  # a script that runs its training when it is imported
            if "bootstrapping phase" not in str(error):
                raise
            raise RuntimeError(
                "train_run(seeds=N) and train_run(race=True) train their models at once, a "
                "process each, and a process "
                "imports the script that started it: put the script's work under "
                "`if __name__ == '__main__':`, or pass parallel=False"
            ) from None
        processes.append(process)
    found: dict[int, tuple[dict[str, np.ndarray], TrainResult]] = {}
    try:
        while len(found) < len(models):
            if is_cancelled(cancel):
                stop.set()  # each member ends at its next step and sends what it has
            try:
                kind, k, payload = messages.get(timeout=POLL_SECONDS)
            except queue.Empty:
                dead = [k for k, p in enumerate(processes) if k not in found and not p.is_alive()]
                if not dead:
                    continue
                try:  # its result may have been sent just before it ended
                    kind, k, payload = messages.get(timeout=LAST_WORD_SECONDS)
                except queue.Empty:
                    raise WorkerError(
                        f"the process training {names[dead[0]]} ended without its result "
                        f"(exit code {processes[dead[0]].exitcode})"
                    ) from None
            if kind == "progress" and callback is not None:
                callback(payload)
            elif kind == "error":
                raise WorkerError(f"the process training {names[k]} failed: {payload}")
            elif kind == "done":
                found[k] = payload
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join(timeout=5)
        messages.close()
    trained = []
    for k, (spec, config) in enumerate(models):
        state, training = found[k]
        model = build_model(spec, config.seed, model_class)
        model.load_state_dict({name: torch.from_numpy(array) for name, array in state.items()})
        trained.append((model, training))
    return trained


def _member(
    k: int,
    spec: dict[str, Any],
    model_class: type,
    config: TrainConfig,
    train: Examples,
    validation: Examples,
    target_mean: float | None,
    target_std: float | None,
    messages: Any,
    stop: Any,
    reports: bool,
) -> None:
    """A process's work: model `k` trained, its weights and training sent back."""
    try:
        torch.set_num_threads(1)
        model = build_model(spec, config.seed, model_class)

        def report(progress: Progress) -> None:
            messages.put(("progress", k, progress))

        training = fit(
            model,
            train,
            validation,
            config,
            target_mean=target_mean,
            target_std=target_std,
            callback=report if reports else None,
            cancel=stop.is_set,
        )
        # numpy arrays pickle by value: a tensor would be shared through this process's memory,
        # which ends with it
        state = {name: t.detach().cpu().numpy() for name, t in model.state_dict().items()}
        messages.put(("done", k, (state, training)))
    except BaseException as error:  # sent to the parent, which raises it as a WorkerError
        last = traceback.extract_tb(error.__traceback__)[-1:]
        where = f" ({last[0].filename}:{last[0].lineno})" if last else ""
        messages.put(("error", k, f"{type(error).__name__}: {one_line(error)}{where}"))
