"""Brief training: AdamW on mini-batches, warm-up then cosine decay, early stopping, a budget.

:func:`fit` trains a :class:`~mrta.nn.model.TabularAttentionModel` on encoded training rows (or a
:class:`~mrta.nn.set_model.SetAttentionModel` on sets of rows) and stops early on the validation
rows. It is built to be driven from a background thread: a
callback receives a :class:`Progress` after every step and every epoch, and a cancel signal
(a ``threading.Event`` or a callable) is checked before every step.

The learning-rate schedule runs over the planned training: its progress is the larger of the
steps taken over ``max_epochs`` epochs of steps and, with a time budget, the time spent over the
budget. Under a budget this re-plans from the measured step time at every step, so a machine
that slows down mid-run still ends its schedule on time, and no step starts that the measured
step and validation times say would end past the budget. With a seed and no time budget, a CPU
run is reproducible to the bit; with one, the number of steps taken is recorded, and the thread
count may be chosen by timing (:class:`ThreadChoice`).

With ``steps=N`` :func:`fit` trains for exactly ``N`` optimisation steps, whatever the epochs,
the time budget and the validation loss say, and keeps the final weights: the effort of another
run, matched step for step. The control model trains so (on permuted labels the best
validation checkpoint would be chosen on noise). Its learning-rate schedule runs over the ``N``
steps up to ``schedule_end`` of the way: the other run's ``schedule_fraction``, so that a run
stopped early, whose learning rate never decayed, is matched by a control whose rate does not
decay either.

With ``distributed=True`` (in a worker of a torchrun launch, see :mod:`mrta.training.world`) the
model trains with :class:`~torch.nn.parallel.DistributedDataParallel`: each worker takes its part
of the same seeded permutation every epoch (:class:`~torch.utils.data.distributed.
DistributedSampler`), a batch of ``batch_size`` examples is split among the workers, rank 0
evaluates the validation rows and broadcasts the result, and before every step the workers agree
on the time spent and on whether to stop, so that they all take the same steps at the same
learning rates and stop together.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

from mrta.config import TrainConfig, default_threads
from mrta.data.preprocessing import Examples
from mrta.nn.random_stream import RandomStream
from mrta.training.evaluate import metrics
from mrta.training.inference import batch_limit, predict_logits, to_predictions
from mrta.training.losses import model_target, task_loss
from mrta.training.world import World

#: Why training ended.
MIN_STEPS_PER_EPOCH = 4  # a small table gets smaller batches rather than one step per epoch
#: ``TrainConfig(batch_size=None)``: the batch by the training rows. From LARGE_TABLE_ROWS on, a
#: 30 s budget gives few epochs, and smaller batches (more steps) scored higher on validation
#: (benchmarks/batch_scaling.py); the learning rate goes with the square root of the batch.
BATCH_SIZE = 256
LARGE_TABLE_ROWS = 5000
LARGE_TABLE_BATCH = 128
#: Query-key pairs per attention map and head in one training batch: 4 sets of 1,000 rows.
TRAIN_PAIRS = 2**22

Cancel = threading.Event | Callable[[], bool] | None


@dataclass(frozen=True)
class Progress:
    """What the callback receives after every optimiser step and every epoch."""

    event: str  # "step" or "epoch"
    step: int  # optimiser steps so far
    epoch: int  # the epoch under way (1-based); 0 for the untrained model's evaluation
    fraction: float  # of the planned training, in [0, 1]
    elapsed: float  # seconds since training started
    learning_rate: float
    train_loss: float | None  # step: the batch's loss; epoch: the epoch's mean
    validation_loss: float | None = None  # epoch events only
    validation: Mapping[str, Any] = field(default_factory=dict)  # epoch events: metrics


@dataclass(frozen=True)
class TrainResult:
    """What happened: one history entry per evaluation (epoch 0 is the untrained model).

    ``stop_reason`` is one of ``max_epochs``, ``early_stopping``, ``time_budget``, ``steps``
    (exactly the steps asked for), ``cancelled`` or ``nan_loss``; ``best_epoch`` and
    ``best_validation_loss`` are those of the weights kept (with ``fit(steps=...)``, the last
    epoch's).
    """

    history: list[dict[str, Any]]
    steps: int  # optimisation steps taken
    epochs: int  # epochs begun (the last may be partial)
    elapsed: float
    stop_reason: str
    message: str
    best_epoch: int
    best_validation_loss: float
    batch_size: int
    device: str
    threads: int | None
    world_size: int = 1  # workers that trained together (distributed data parallel)
    backend: str | None = None  # their torch.distributed backend
    #: How far through its learning-rate schedule (warm-up, then cosine decay) the last step
    #: was: 1 at the end of the plan; less after an early stop. None: not recorded (older runs).
    schedule_fraction: float | None = None
    #: The peak learning rate (``config.learning_rate``, scaled where the batch went by the
    #: rows: :func:`batch_for_rows`). None: not recorded (older runs).
    learning_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainResult:
        """Inverse of `to_dict`."""
        return cls(**data)


def resolve_device(name: str) -> torch.device:
    """``auto``: CUDA, then Apple MPS, then the CPU; an explicit device must be available.

    Raises ``ValueError`` naming the device when it is not.
    """
    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise ValueError(
            "device 'cuda' is not available: this PyTorch sees no CUDA GPU, so choose 'auto' "
            "or 'cpu'"
        )
    if name == "mps" and not mps:
        raise ValueError(
            "device 'mps' is not available: this PyTorch sees no Apple GPU, so choose 'auto' "
            "or 'cpu'"
        )
    if name not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'mps', got {name!r}")
    return torch.device(name)


def fit(
    model: nn.Module,
    train: Examples,
    validation: Examples,
    config: TrainConfig | None = None,
    *,
    target_mean: float | None = None,
    target_std: float | None = None,
    callback: Callable[[Progress], None] | None = None,
    cancel: Cancel = None,
    distributed: bool = False,
    steps: int | None = None,
    schedule_end: float = 1.0,
) -> TrainResult:
    """Train `model` in place and leave it with the weights of its best validation loss (with
    `steps`, its final weights).

    Args:
        model: the model to train (moved to the chosen device): a
            :class:`~mrta.nn.model.TabularAttentionModel` on rows, or a
            :class:`~mrta.nn.set_model.SetAttentionModel` on sets.
        train, validation: encoded rows (or sets) with their targets. A batch holds at most
            ``config.batch_size`` examples (``None``: :func:`batch_for_rows`) and at most
            :data:`TRAIN_PAIRS` query-key pairs per attention map and head.
        config: budget, optimiser, schedule, stopping, seed and device.
        target_mean, target_std: regression only: the model learns ``(y - mean) / std``
            (the preprocessor's values); validation metrics are in the target's units.
        callback: called with a :class:`Progress` after every step and every epoch.
        cancel: a ``threading.Event`` or a callable; once set or true, training stops
            before the next step and keeps the best weights so far.
        distributed: train as one worker of the initialised default process group (see the
            module docstring): every worker calls ``fit`` with the same model, rows and
            config; the device is the worker's own, ``threads`` (default: the cores shared
            among this machine's workers) is per worker, and training stops on every worker
            at the same step.
        steps: train exactly this many optimisation steps (0 leaves the initial weights) and
            keep the final weights: no early stopping, no time budget, no cap of
            ``config.max_epochs`` (the last epoch may be partial). The learning-rate schedule
            spans the `steps`; the validation rows are still scored after every epoch, for the
            history. Cancelling or a non-finite loss still stops it sooner (the result's
            ``steps`` says how many were taken). On the CPU with ``config.threads`` unset, the
            thread count is chosen by timing, as under a time budget (:class:`ThreadChoice`).
        schedule_end: with `steps`, how far through the learning-rate schedule the last step
            goes (in (0, 1]): step ``k`` of ``N`` trains at the rate of ``schedule_end * k / N``
            of the schedule.

    Raises ``ValueError`` for a table without targets, an unavailable device or a negative
    `steps`.
    """
    config = config or TrainConfig()
    # Timed training (a budget, or a step count to match another run's): choose the threads.
    timed = config.time_budget is not None or steps is not None
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a whole number of at least 0, got {steps!r}")
        config = replace(config, time_budget=None)  # the steps are the budget
        if not (isinstance(schedule_end, int | float) and 0 < schedule_end <= 1):
            raise ValueError(f"schedule_end must be in (0, 1], got {schedule_end!r}")
    for name, table in (("training", train), ("validation", validation)):
        if table.target is None or len(table) == 0:
            raise ValueError(f"the {name} rows need targets, and at least one row")
    world = None
    if distributed:
        world = World.current()
    device = resolve_device(config.device) if world is None else world.device
    threads = (config.threads or default_threads()) if device.type == "cpu" else None
    choice = None
    if world is not None:
        # no timing of thread counts: the workers' step times must not depend on it
        threads = (config.threads or world.cpu_threads()) if device.type == "cpu" else None
    elif threads is not None and threads > 1 and config.threads is None and timed:
        choice = ThreadChoice(threads)
        threads = 1  # where the choice starts
    # the workers share the shuffles (seeded apart) but not their dropout masks
    dropout_seed = config.seed + (world.rank if world is not None else 0)
    with _torch_threads(threads), _accelerator_seeded(device, dropout_seed):
        return _Trainer(
            model,
            train,
            validation,
            config,
            device,
            choice,
            target_mean,
            target_std,
            world,
            steps,
            schedule_end,
            dropout_stream=RandomStream(dropout_seed),
        ).run(callback, cancel)


class _Trainer:
    """One training run's state; :meth:`run` is the loop."""

    def __init__(
        self,
        model: nn.Module,
        train: Examples,
        validation: Examples,
        config: TrainConfig,
        device: torch.device,
        thread_choice: ThreadChoice | None,
        target_mean: float | None,
        target_std: float | None,
        world: World | None = None,
        steps: int | None = None,
        schedule_end: float = 1.0,
        *,
        dropout_stream: RandomStream,
    ) -> None:
        self.model = model.to(device)
        # the CPU's dropout masks, drawn apart from other threads (the dashboard's jobs)
        self.dropout_stream = dropout_stream
        self.fixed_steps = steps  # train exactly this many steps, keep the final weights
        self.schedule_end = schedule_end if steps is not None else 1.0
        self.schedule_reached = 0.0  # the schedule fraction of the last step taken
        self.world = world
        self.config = config
        self.device = device
        self.thread_choice = thread_choice
        self.validation = validation
        self.task = model.task
        self.target_mean = target_mean if target_mean is not None else 0.0
        self.target_std = target_std if target_std is not None else 1.0
        self.train = train.to(device)
        self.target = model_target(self.task, train.target, target_mean, target_std).to(device)
        self.validation_target = model_target(self.task, validation.target, target_mean, target_std)
        self.n_rows = len(train)
        wanted, self.peak_learning_rate = config.batch_size, config.learning_rate
        if wanted is None:
            wanted = batch_for_rows(self.n_rows)
            self.peak_learning_rate *= math.sqrt(wanted / BATCH_SIZE)
        self.batch_size = min(
            batch_limit(wanted, train, TRAIN_PAIRS),
            max(1, math.ceil(self.n_rows / MIN_STEPS_PER_EPOCH)),
        )
        self.local_batch = self.batch_size  # examples per step on this process
        self.sampler: DistributedSampler | None = None
        self.forward: nn.Module = self.model
        self.time_fraction = 0.0  # distributed: the largest time fraction, agreed at each step
        if world is None:
            self.steps_per_epoch = math.ceil(self.n_rows / self.batch_size)
        else:
            # A batch of `batch_size` examples split among the workers: the same steps per
            # epoch and the same gradient (DDP averages) as one process, up to rounding.
            self.local_batch = math.ceil(self.batch_size / world.size)
            self.batch_size = self.local_batch * world.size
            self.sampler = DistributedSampler(
                range(self.n_rows),
                num_replicas=world.size,
                rank=world.rank,
                shuffle=True,
                seed=config.seed,
            )
            self.steps_per_epoch = math.ceil(self.sampler.num_samples / self.local_batch)
            # static_graph: a table with one type of column leaves some blocks unused
            self.forward = DistributedDataParallel(
                self.model,
                device_ids=[device.index] if device.type == "cuda" else None,
                static_graph=True,
            )
        self.planned_steps = max(
            1, config.max_epochs * self.steps_per_epoch if steps is None else steps
        )
        self.optimizer = torch.optim.AdamW(
            parameter_groups(model, config.weight_decay),
            lr=self.peak_learning_rate,
            fused=device.type in ("cpu", "cuda") or None,  # one kernel, not a loop over tensors
        )
        self.shuffle = torch.Generator().manual_seed(config.seed)
        self.history: list[dict[str, Any]] = []
        self.step = 0
        self.step_seconds = 0.0  # spent in optimiser steps, in total
        self.evaluation_seconds = 0.0  # the last validation pass took
        self.start = 0.0
        self.learning_rate = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def fraction(self, steps_ahead: int = 0) -> float:
        """Progress through the planned training: steps, or time spent under a budget."""
        fraction = (self.step + steps_ahead) / self.planned_steps
        if self.config.time_budget is not None:
            if self.world is not None:  # the time fraction the workers agreed on at this step
                spent = self.time_fraction
            else:
                spent = self.elapsed() / self.config.time_budget
            fraction = max(fraction, spent)
        return min(fraction, 1.0)

    def next_step_seconds(self) -> float:
        """What the next step and a validation pass after it should take, as measured so far:
        a step that would end past the time budget is not started."""
        return self.step_seconds / max(self.step, 1) + self.evaluation_seconds

    def evaluate(self, epoch: int, train_loss: float | None) -> dict[str, Any]:
        """Validation loss and metrics; appended to the history.

        Distributed: rank 0 evaluates and every worker takes its entry, so that their
        decisions agree."""
        if self.world is not None:
            entry = self._evaluate(epoch, train_loss) if self.world.leader else None
            entry, self.evaluation_seconds = self.world.broadcast_json(
                [entry, self.evaluation_seconds]
            )
            self.history.append(entry)
            return entry
        entry = self._evaluate(epoch, train_loss)
        self.history.append(entry)
        return entry

    def _evaluate(self, epoch: int, train_loss: float | None) -> dict[str, Any]:
        start = time.perf_counter()
        logits = predict_logits(self.model, self.validation)  # (N, n_outputs)
        loss = float(task_loss(self.task, logits, self.validation_target))
        predictions = to_predictions(self.task, logits, self.target_mean, self.target_std)
        scores = metrics(self.task, self.validation.target.numpy(), predictions)
        scores = {k: v for k, v in scores.items() if k not in ("confusion_matrix", "rows")}
        entry = {
            "epoch": epoch,
            "steps": self.step,
            "elapsed": round(self.elapsed(), 4),
            "learning_rate": self.learning_rate,
            "train_loss": train_loss,
            "validation_loss": loss,
            "validation": scores,
        }
        self.evaluation_seconds = time.perf_counter() - start
        return entry

    def run(self, callback: Callable[[Progress], None] | None, cancel: Cancel) -> TrainResult:
        config = self.config
        fixed = self.fixed_steps
        self.start = time.perf_counter()
        best = self.evaluate(0, None)
        best_state = _copy_state(self.model) if fixed is None else None
        epochs_without_gain = 0
        epoch = 0
        stop: tuple[str, str] | None = None
        while stop is None:
            if fixed is not None and self.step >= fixed:
                stop = (
                    "steps",
                    (
                        f"Trained for exactly {fixed} steps ({epoch} epochs) with no early "
                        "stopping, and kept the final weights."
                    ),
                )
                break
            if fixed is None and epoch == config.max_epochs:
                stop = "max_epochs", f"Stopped after the maximum of {config.max_epochs} epochs."
                break
            losses, stop = self.train_epoch(epoch + 1, best["epoch"], callback, cancel)
            if not losses:
                break
            epoch += 1
            if stop is not None and stop[0] in ("cancelled", "nan_loss"):
                break
            entry = self.evaluate(epoch, float(np.mean(losses)))
            if callback is not None:
                callback(
                    Progress(
                        event="epoch",
                        step=self.step,
                        epoch=epoch,
                        fraction=self.fraction(),
                        elapsed=self.elapsed(),
                        learning_rate=self.learning_rate,
                        train_loss=entry["train_loss"],
                        validation_loss=entry["validation_loss"],
                        validation=entry["validation"],
                    )
                )
            if not math.isfinite(entry["validation_loss"]):
                stop = _nan_stop("validation", entry["validation_loss"], epoch, best["epoch"])
            elif fixed is not None:
                continue  # no early stopping and no best weights: the steps decide
            elif entry["validation_loss"] < best["validation_loss"]:
                best, best_state, epochs_without_gain = entry, _copy_state(self.model), 0
            else:
                epochs_without_gain += 1
                if epochs_without_gain >= config.patience and stop is None:
                    stop = (
                        "early_stopping",
                        (
                            f"Stopped early: the validation loss did not improve for "
                            f"{config.patience} epochs."
                        ),
                    )
        if best_state is not None:
            self.model.load_state_dict(best_state)
        else:  # exactly `fixed` steps (or fewer, cut short): the final weights
            best = self.history[-1]
            if stop[0] != "steps":
                reason = stop[1].split(": training stopped")[0].rstrip(".")
                stop = (
                    stop[0],
                    (
                        f"{reason}: it took {self.step} of the {fixed} steps and kept its final "
                        "weights."
                    ),
                )
        self.model.eval()
        return TrainResult(
            history=self.history,
            steps=self.step,
            epochs=epoch,
            elapsed=round(self.elapsed(), 4),
            stop_reason=stop[0],
            message=stop[1],
            best_epoch=best["epoch"],
            best_validation_loss=best["validation_loss"],
            batch_size=self.batch_size,
            device=str(self.device),
            threads=torch.get_num_threads() if self.device.type == "cpu" else None,
            world_size=1 if self.world is None else self.world.size,
            backend=None if self.world is None else self.world.backend,
            schedule_fraction=round(self.schedule_reached, 6),
            learning_rate=self.peak_learning_rate,
        )

    def train_epoch(
        self,
        epoch: int,
        best_epoch: int,
        callback: Callable[[Progress], None] | None,
        cancel: Cancel,
    ) -> tuple[list[float], tuple[str, str] | None]:
        """One pass over the shuffled training rows: the batch losses, and why it ended early
        (``None`` when it did not)."""
        self.model.train()
        budget = self.config.time_budget
        losses: list[float] = []
        if self.sampler is None:
            order = torch.randperm(self.n_rows, generator=self.shuffle)
        else:
            self.sampler.set_epoch(epoch)
            order = torch.tensor(list(self.sampler), dtype=torch.int64)  # this worker's part
        for rows in order.split(self.local_batch):
            if self.fixed_steps is not None and self.step >= self.fixed_steps:
                break  # every worker takes the same steps: no collective is skipped
            cancelled = is_cancelled(cancel)
            over = budget is not None and self.elapsed() + self.next_step_seconds() >= budget
            if self.world is not None:
                # Every worker stops at the same step, at the same learning rate.
                spent = self.elapsed() / budget if budget is not None else 0.0
                agreed = self.world.all_max([float(cancelled), float(over), spent])
                cancelled, over, self.time_fraction = bool(agreed[0]), bool(agreed[1]), agreed[2]
            if cancelled:
                return losses, ("cancelled", "Training was cancelled.")
            if over:
                return losses, ("time_budget", f"Stopped at the time budget of {budget:g} s.")
            loss = self.train_step(rows.to(self.device))
            if not math.isfinite(loss):
                return losses, _nan_stop("training", loss, epoch, best_epoch)
            losses.append(loss)
            if callback is not None:
                callback(
                    Progress(
                        event="step",
                        step=self.step,
                        epoch=epoch,
                        fraction=self.fraction(),
                        elapsed=self.elapsed(),
                        learning_rate=self.learning_rate,
                        train_loss=loss,
                    )
                )
        return losses, None

    def train_step(self, rows: Tensor) -> float:
        """One optimiser step on the training rows `rows`; returns the batch's loss."""
        if self.thread_choice is not None:
            threads = self.thread_choice.next()
            if threads != torch.get_num_threads():
                torch.set_num_threads(threads)
        start = time.perf_counter()
        self.schedule_reached = self.schedule_end * self.fraction(steps_ahead=1)
        self.learning_rate = learning_rate_at(
            self.schedule_reached, self.peak_learning_rate, self.config.warmup_fraction
        )
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate
        inputs = self.train.select(rows).model_inputs()
        with (
            self.dropout_stream,
            torch.autocast(self.device.type, torch.bfloat16, enabled=self.device.type == "cuda"),
        ):
            logits = self.forward(*inputs)  # (B, n_outputs)
        loss = task_loss(self.task, logits, self.target[rows])
        value = loss.item()
        if self.world is not None:  # the workers' mean: all step, or none does
            value = self.world.all_mean(value)
        self.step += 1
        if math.isfinite(value):
            penalty = self.model.regularisation()  # column gates' price, not in the history
            self.optimizer.zero_grad(set_to_none=True)
            (loss if penalty is None else loss + penalty).backward()
            self.optimizer.step()
        seconds = time.perf_counter() - start
        self.step_seconds += seconds
        if self.thread_choice is not None:
            self.thread_choice.record(torch.get_num_threads(), seconds)
        return value


class ThreadChoice:
    """Under a time budget on the CPU, picks one thread or all cores by timing steps at both.

    A model this small gains little from a second core (its matmuls are tiny), and on a busy
    machine every multi-threaded operation waits for a free core: steps were measured 50x
    slower on a 2-core machine shared with another process. So: a few steps on one thread,
    then a few on all cores (cut short once one is clearly slower), keep the faster, and fall
    back to one thread for good when multi-threaded steps turn slow later.

    Args:
        most: the thread count to try against one (the physical cores).
        steps_each: steps timed at each count; their median is compared.
        slowdown: how many times slower than expected counts as slow.
    """

    def __init__(self, most: int, steps_each: int = 3, slowdown: float = 3.0) -> None:
        self.most = most
        self.steps_each = steps_each
        self.slowdown = slowdown
        self.timings: dict[int, list[float]] = {1: [], most: []}
        self.chosen: int | None = None

    def expected(self, threads: int) -> float:
        return float(np.median(self.timings[threads]))

    def next(self) -> int:
        """The thread count for the next step."""
        if self.chosen is not None:
            return self.chosen
        if len(self.timings[1]) < self.steps_each:
            return 1
        if len(self.timings[self.most]) < self.steps_each:
            return self.most
        self.chosen = min((1, self.most), key=self.expected)
        return self.chosen

    def record(self, threads: int, seconds: float) -> None:
        """A step's duration at `threads`."""
        if self.chosen is None:
            self.timings[threads].append(seconds)
            if threads == self.most and seconds > self.slowdown * self.expected(1):
                self.chosen = 1
        elif threads > 1 and seconds > self.slowdown * self.expected(threads):
            self.chosen = 1


def learning_rate_at(progress: float, base: float, warmup_fraction: float) -> float:
    """Linear warm-up over the first `warmup_fraction` of training, then cosine decay to 0."""
    progress = min(max(progress, 0.0), 1.0)
    if progress < warmup_fraction:
        return base * progress / warmup_fraction
    decay = (progress - warmup_fraction) / (1.0 - warmup_fraction)
    return base * 0.5 * (1.0 + math.cos(math.pi * decay))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices only; the model's ``tokenizer`` (embeddings),
    norms and biases exempt."""
    tokenizer = {id(p) for p in model.tokenizer.parameters()}
    decay, exempt = [], []
    for parameter in model.parameters():
        if not parameter.requires_grad:
            continue
        if parameter.dim() < 2 or id(parameter) in tokenizer:
            exempt.append(parameter)
        else:
            decay.append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": exempt, "weight_decay": 0.0},
    ]


def _nan_stop(which: str, loss: float, epoch: int, best_epoch: int) -> tuple[str, str]:
    return "nan_loss", (
        f"The {which} loss became {loss} in epoch {epoch}: training stopped and kept the best "
        f"weights so far (epoch {best_epoch}); try a lower learning rate."
    )


def _copy_state(model: nn.Module) -> dict[str, Tensor]:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def is_cancelled(cancel: Cancel) -> bool:
    """Whether `cancel` (an event, a function, or ``None`` for never) asks to stop."""
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def batch_for_rows(rows: int) -> int:
    """The batch of ``TrainConfig(batch_size=None)`` for `rows` training rows (before the caps
    of a small table and of :data:`TRAIN_PAIRS`)."""
    return LARGE_TABLE_BATCH if rows >= LARGE_TABLE_ROWS else BATCH_SIZE


@contextmanager
def _accelerator_seeded(device: torch.device, seed: int) -> Iterator[None]:
    """On CUDA or MPS, the device's generator (its dropout masks) seeded with `seed` and
    restored afterwards; the CPU's draws go through a :class:`RandomStream` instead."""
    backend = {"cuda": torch.cuda, "mps": torch.mps}.get(device.type)
    if backend is None:
        yield
        return
    saved = backend.get_rng_state()
    backend.manual_seed(seed)
    try:
        yield
    finally:
        backend.set_rng_state(saved)


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Run with `threads` intra-op threads (``None``: as they are), restored afterwards."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
