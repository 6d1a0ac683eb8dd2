"""Training a run: schema, splits, preprocessor, training, evaluation and baselines, and the
control model.

:func:`train_run` is the whole pipeline, shared by the command line and the dashboard.
:class:`RunPlan` holds its steps around fitting the preprocessor and training, so that the
distributed and the streamed pipelines, which do those two their own way, share the rest.

:func:`train_control` trains a run's control model (see :mod:`mrta.runs.control`) after the
run's model, as a step of its own: the dashboard runs it in the background once the first
heatmap is shown, ``train_run(..., control=True)`` right after the model.
:func:`fit_control` is its core, for the pipelines that hold their encoded examples themselves
(streamed, distributed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from mrta.config import ModelConfig, TrainConfig
from mrta.data.fingerprint import TableFingerprint, fingerprint
from mrta.data.preprocessing import Examples, PreprocessingOptions, Preprocessor
from mrta.data.schema import Role, TableSchema, infer_schema
from mrta.data.sets import SET_BATCH_SIZE, SetOptions, group_targets
from mrta.data.splits import SplitOptions, Splits, make_group_splits, make_splits
from mrta.errors import TableError
from mrta.nn.ensemble import SeedEnsemble
from mrta.nn.model import TabularAttentionModel, build_model
from mrta.nn.set_model import SetAttentionModel
from mrta.pipelines.race import RACING, race_refusal
from mrta.pipelines.race import race as race_settings
from mrta.runs.control import METRIC_OF_TASK, Control, permutation_seed
from mrta.runs.manifest import MAX_SEEDS
from mrta.runs.members import ENSEMBLE_PREDICTION, Member
from mrta.runs.run import Run
from mrta.task import Task
from mrta.training.evaluate import compare_with_baselines, metrics
from mrta.training.inference import fit_smearing, predict_logits, predictions_in_units
from mrta.training.loop import Cancel, Progress, TrainResult, fit
from mrta.training.parallel import fit_in_processes, in_processes

#: Why a run has no control, where its pipeline made none.
CANCELLED = "The control model's training was cancelled, so this run has no control."
#: The phases :func:`train_run` names to its `phase` callback, in order (the last one only with
#: `control`): the table's schema, split and encoding; the model's training; gradient boosting
#: fitted and every model scored on the test split; the control model's training.
PREPARING, TRAINING, BASELINES, CONTROL = (
    "preparing the table",
    "training",
    "fitting gradient boosting, scoring the test split",
    "training the control model",
)


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
    cancel: Cancel = None,
    split_options: SplitOptions | None = None,
    preprocessing_options: PreprocessingOptions | None = None,
    sets: SetOptions | None = None,
    control: bool = False,
    control_callback: Callable[[Progress], None] | None = None,
    phase: Callable[[str], None] | None = None,
    seeds: int = 1,
    parallel: bool | None = None,
    race: bool = False,
) -> Run:
    """Schema, splits, preprocessor, training, evaluation and baselines: a complete run.

    With `seeds` above 1, that many models are trained on the same split, from the initial
    seeds ``train_config.seed + k``, as the run's seed members (:mod:`mrta.runs.members`): at
    once, one process and thread each, for `seeds` times the time budget, where `parallel` says
    so (default: :func:`mrta.training.parallel.in_processes`, on a CPU of 2 cores or more, where
    that was measured better at equal wall time), else one after another with the whole time
    budget each. The run predicts with their mean, and its metrics, smearing factor and verdict
    are for that mean (the control trains from member 0's initial weights, for member 0's
    steps). Runs on sets refuse seeds.

    With `race`, the settings asked for and a challenger (one attention layer, the periodic
    embeddings' σ = 1, no dropout or gates, twice the learning rate: :mod:`mrta.training.race`)
    train at once, a process and core each, within the time budget, and the challenger is kept only
    where it scores higher on the validation rows beyond their noise
    (:func:`~mrta.training.race.choose`), else the settings asked for: the kept settings are the
    run's, and the run's ``race`` records both (`callback` follows the settings asked for). Only for
    one model of one prediction per row on a CPU of 2 cores or more
    (:func:`~mrta.pipelines.race.race_refusal` says why not; a ``ValueError`` then). Like seed
    members, a race starts processes: a script must run it under ``if __name__ == '__main__':``.

    `phase` is called with the name of each phase as it begins (:data:`PREPARING`,
    :data:`TRAINING`, :data:`BASELINES`, :data:`CONTROL`), so that a progress display can name
    the steps that `callback` (training steps and epochs) does not cover.

    With `control`, the control model is trained after the model (:func:`train_control`, its
    progress to `control_callback`; `cancel` stops it too) and set as the run's ``control``;
    without, the run's ``no_control`` says that none was trained.

    The initial weights come from ``train_config.seed`` (the run's `init_seed`); the held-out
    metrics are on the test split (the test file's rows, when `test_frame` is given).
    With `sets`, one example is a group of rows (set resolution): the group key is ignored as
    a feature unless `roles` says otherwise, whole groups are split, the baseline learns
    from per-group aggregates, and the default `train_config` takes
    :data:`~mrta.data.sets.SET_BATCH_SIZE` sets a step.
    Raises ``TableError`` for a table that cannot be used, ``ValueError`` for bad settings.
    """
    check_target_transform(sets, preprocessing_options)
    check_seeds(seeds, sets)
    train_config = train_config or default_train_config(sets)
    if race and (why := race_refusal(seeds, sets is not None, train_config)):
        raise ValueError(f"this run cannot race two settings: {why}; train it with race=False")
    begin = phase or (lambda _name: None)
    begin(PREPARING)
    plan = RunPlan.prepare(
        frame,
        target,
        task=task,
        roles=roles,
        test_frame=test_frame,
        split_options=split_options,
        sets=sets,
    )
    preprocessor = Preprocessor.fit(plan.train_rows, plan.schema, preprocessing_options)
    model_config = model_config or ModelConfig()
    model, train, validation = plan.build(preprocessor, model_config, train_config.seed)
    configs = [replace(train_config, seed=train_config.seed + k) for k in range(seeds)]
    spec = preprocessor.model_spec(model_config)
    at_once = in_processes(seeds, train_config) if parallel is None else parallel and seeds > 1
    record = None
    if race:
        begin(RACING)
        targets = plan.schema.encode_target(plan.validation_rows)
        model, training, record = race_settings(
            preprocessor, model_config, train_config, train, validation, targets,
            callback=callback, cancel=cancel,
        )  # fmt: skip
        train_config = record.winner.train_config
        trained, configs = [(model, training)], [train_config]
    elif at_once:
        begin(training_phases(seeds, parallel=True)[0])
        scale = {"target_mean": preprocessor.target_mean, "target_std": preprocessor.target_std}
        stretched = [(spec, stretch(config, seeds)) for config in configs]
        trained = fit_in_processes(
            stretched, type(model), train, validation, callback=callback, cancel=cancel, **scale
        )
    else:
        trained = []
        for k, config in enumerate(configs):
            begin(training_phase(k, seeds))
            if k:
                model = build_model(spec, config.seed)
            training = train_model(
                model, preprocessor, train, validation, config, callback=callback, cancel=cancel
            )
            trained.append((model, training))
            if training.stop_reason == "cancelled":
                break
    members = [
        Member(member, config.seed, {}, training)
        for k, ((member, training), config) in enumerate(zip(trained, configs, strict=False))
        if k == 0 or training.stop_reason != "cancelled"  # the members trained in full
    ]
    predictor = members[0].model if len(members) == 1 else ensemble_of(members, plan.schema)
    fit_smearing(preprocessor, predictor, validation)
    begin(BASELINES)
    with threads_of(members[0].training):
        run = plan.complete(members, preprocessor, train_config)
    run.race = record
    if control:
        begin(CONTROL)
        with_control(run, train_control(run, callback=control_callback, cancel=cancel))
    return run


def stretch(config: TrainConfig, seeds: int) -> TrainConfig:
    """`config` for one of `seeds` members trained at once: `seeds` times its time budget, the
    wall time of the members trained one after another."""
    budget = None if config.time_budget is None else config.time_budget * seeds
    return replace(config, time_budget=budget)


def training_phase(member: int, seeds: int) -> str:
    """The name of the phase that trains seed member `member` of `seeds`, one after another."""
    return TRAINING if seeds == 1 else f"training member {member + 1} of {seeds}"


def training_phases(seeds: int, *, parallel: bool) -> tuple[str, ...]:
    """The training phases of a run of `seeds` members, in order: the members at once in
    processes of their own (`parallel`, :func:`mrta.training.parallel.in_processes`), or one
    after another."""
    if parallel and seeds > 1:
        return (f"training {seeds} members at once, a process each (the first one's progress)",)
    return tuple(training_phase(k, seeds) for k in range(seeds))


def check_seeds(seeds: int, sets: SetOptions | None) -> None:
    """Refuse a number of seed members outside 1 to :data:`MAX_SEEDS`, or above 1 for sets."""
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise ValueError(f"seeds must be a whole number from 1 to {MAX_SEEDS}, got {seeds!r}")
    if seeds > 1 and sets is not None:
        raise ValueError(
            "seed members apply to runs of one prediction per row; a run on sets trains one "
            "model: drop --seeds (or train the set run several times with --seed)"
        )


def ensemble_of(members: Sequence[Member], schema: TableSchema) -> SeedEnsemble:
    """The mean of `members`' predictions, as the run predicts with it."""
    return SeedEnsemble([member.model for member in members], schema.task)


def check_target_transform(sets: SetOptions | None, options: PreprocessingOptions | None) -> None:
    """Refuse a target transform for a run on sets, whose targets are made per group."""
    if sets is not None and options is not None and options.target_transform != "none":
        raise ValueError(
            "a target transform applies to runs of one prediction per row; a run on sets "
            "learns its target as it is: drop --target-transform"
        )


def warm_up() -> None:
    """Import what a first training needs beyond ``import torch``: torch's optimisers import
    ``torch._dynamo`` when the first one is made (1 to 2.5 s on 2 cores, once per process).
    Call it ahead, e.g. from a background thread, so that the first training does not wait."""
    import torch._dynamo  # noqa: F401


@contextmanager
def threads_of(training: TrainResult) -> Iterator[None]:
    """torch's intra-op threads set to those `training` ended on, restored afterwards: on the
    CPU under a time budget, the count its step timing found faster (one, where another process
    keeps a core busy, as on a shared machine, where a pass at two threads was measured 7 times
    slower). Unchanged where the training recorded none (another device)."""
    previous = torch.get_num_threads()
    if training.threads:
        torch.set_num_threads(training.threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def with_control(run: Run, control: Control | None) -> Run:
    """`run` with the control that was asked for, or the sentence that says it was cancelled."""
    run.control = control
    if control is None:
        run.no_control = CANCELLED
    return run


def train_control(
    run: Run,
    *,
    callback: Callable[[Progress], None] | None = None,
    cancel: Cancel = None,
) -> Control | None:
    """The control model of `run` (it needs the run's rows: its ``frame``, and ``test_frame``
    for a separate test file); ``None`` when `cancel` stopped it (a control cut short is no
    fair null). Set it as the run's ``control`` to keep it; `run` itself is not changed.

    The control has the run's model configuration and initial weights (``init_seed``), and
    trains with the run's training config on its training examples (rows, or sets: a set run
    permutes the group labels) whose labels are permuted within the training split, scored
    after every epoch on the validation examples with labels permuted within the validation
    split, for exactly ``run.training.steps`` steps (:func:`fit_control`), its learning rate
    following the schedule as far as the model's went (``run.training.schedule_fraction``:
    short of its end after an early stop). It is scored on the test split's true labels. Its
    ``seconds`` cover all of this.
    """
    start = time.perf_counter()
    train, validation, test = (run.examples(split) for split in ("train", "validation", "test"))
    return fit_control(
        run.untrained_model(),
        run.preprocessor,
        train,
        validation,
        run.train_config,
        run.training,
        test=test,
        test_targets=run.targets("test", test),
        callback=callback,
        cancel=cancel,
        started=start,
    )


def fit_control(
    model: TabularAttentionModel | SetAttentionModel,
    preprocessor: Preprocessor,
    train: Examples,
    validation: Examples,
    train_config: TrainConfig,
    model_training: TrainResult,
    *,
    test: Examples | None,
    test_targets: np.ndarray | None,
    callback: Callable[[Progress], None] | None = None,
    cancel: Cancel = None,
    distributed: bool = False,
    started: float | None = None,
) -> Control | None:
    """Train `model` (the run's untrained model) as a control: :func:`mrta.training.loop.fit`
    for exactly the steps of `model_training` (the run's model's), as far through the
    learning-rate schedule as it went, on `train` and `validation` with their labels permuted
    (:func:`permute_labels`, seeded by :func:`~mrta.runs.control.permutation_seed` of
    ``train_config.seed``), then scored on `test` against `test_targets` (its true labels, as
    the run's metrics take them). ``None`` when `cancel` stopped it.

    Distributed (a worker of a torchrun launch, every worker calling it alike), only rank 0
    needs `test`; the others pass ``None`` and get a control without a test score.
    `started`: when the control step began (``time.perf_counter()``), for its ``seconds``.
    """
    start = time.perf_counter() if started is None else started
    seed = permutation_seed(train_config.seed)
    train, validation = permute_labels((train, validation), seed)
    training = train_model(
        model,
        preprocessor,
        train,
        validation,
        train_config,
        callback=callback,
        cancel=cancel,
        distributed=distributed,
        steps=model_training.steps,
        schedule_end=model_training.schedule_fraction or 1.0,
    )
    if training.stop_reason == "cancelled":
        return None
    task = preprocessor.schema.task
    metric, value, predictions = METRIC_OF_TASK[task.value], None, None
    if test is not None and test_targets is not None:
        predictions = predictions_in_units(preprocessor, predict_logits(model, test))
        value = metrics(task, test_targets, predictions, preprocessor.schema.class_labels)[metric]
    return Control(
        model=model,
        permutation_seed=seed,
        training=training,
        metric=metric,
        value=value,
        seconds=round(time.perf_counter() - start, 3),
        test_rows=0 if test is None else len(test),
        test_predictions=predictions,
    )


def permute_labels(parts: tuple[Examples, ...], seed: int) -> tuple[Examples, ...]:
    """Each part of `parts` with its targets permuted within it, by one numpy generator seeded
    with `seed` (the first part's permutation first): the same labels, in another order."""
    rng = np.random.default_rng(seed)
    permuted = []
    for part in parts:
        order = torch.from_numpy(rng.permutation(len(part)))
        permuted.append(replace(part, target=part.target[order]))
    return tuple(permuted)


def train_model(
    model: TabularAttentionModel | SetAttentionModel,
    preprocessor: Preprocessor,
    train: Examples,
    validation: Examples,
    train_config: TrainConfig,
    *,
    callback: Callable[[Progress], None] | None = None,
    cancel: Cancel = None,
    distributed: bool = False,
    steps: int | None = None,
    schedule_end: float = 1.0,
) -> TrainResult:
    """:func:`mrta.training.loop.fit` of a run's model on its encoded examples, on the target
    scale of `preprocessor`: the one training call of every pipeline (`steps`, `schedule_end`:
    exactly that many, that far through the learning-rate schedule, as a control trains)."""
    return fit(
        model,
        train,
        validation,
        train_config,
        target_mean=preprocessor.target_mean,
        target_std=preprocessor.target_std,
        callback=callback,
        cancel=cancel,
        distributed=distributed,
        steps=steps,
        schedule_end=schedule_end,
    )


def default_train_config(sets: SetOptions | None = None) -> TrainConfig:
    """The default training: :class:`TrainConfig`'s, with
    :data:`~mrta.data.sets.SET_BATCH_SIZE` sets a step for set runs."""
    return TrainConfig() if sets is None else TrainConfig(batch_size=SET_BATCH_SIZE)


@dataclass
class RunPlan:
    """The steps of :func:`train_run` around fitting the preprocessor and training, for the
    pipelines that do those two their own way
    (:func:`mrta.pipelines.distributed.train_run_on_workers`,
    :func:`mrta.pipelines.streamed.train_run_from_file`)."""

    frame: pd.DataFrame | None  # None: the rows stay in their file (the run holds none)
    test_frame: pd.DataFrame | None
    schema: TableSchema
    splits: Splits  # :meth:`build` adds the notes of making sets
    sets: SetOptions | None
    train_rows: pd.DataFrame
    validation_rows: pd.DataFrame
    test_rows: pd.DataFrame
    table: TableFingerprint | None = None  # the table's fingerprint (mrta.data.fingerprint)
    test_table: TableFingerprint | None = None  # a separate test file's

    @classmethod
    def prepare(
        cls,
        frame: pd.DataFrame,
        target: str,
        *,
        task: Task | str | None = None,
        roles: Mapping[str, Role | str] | None = None,
        test_frame: pd.DataFrame | None = None,
        split_options: SplitOptions | None = None,
        sets: SetOptions | None = None,
    ) -> RunPlan:
        """The schema and the split (of rows, or of whole groups with `sets`) of a table, and
        the fingerprints of the table (and of a separate test file)."""
        if sets is not None:
            roles = {sets.group_by: Role.IGNORED, **(roles or {})}
        schema = infer_schema(frame, target, task=task, roles=roles)
        if sets is None:
            splits = make_splits(frame, schema, split_options, test_frame)
        else:
            group_targets(frame, schema, sets.group_by)  # refuses groups whose target varies
            splits = make_group_splits(frame, schema, sets.group_by, split_options, test_frame)
        train_rows, validation_rows = (
            frame.iloc[list(indices)] for indices in (splits.train, splits.validation)
        )
        test_rows = (test_frame if test_frame is not None else frame).iloc[list(splits.test)]
        if len(test_rows) == 0:
            raise TableError("The test split is empty: keep a test fraction or give a test file.")
        return cls(
            frame,
            test_frame,
            schema,
            splits,
            sets,
            train_rows,
            validation_rows,
            test_rows,
            table=fingerprint(frame),
            test_table=None if test_frame is None else fingerprint(test_frame),
        )

    def build(
        self, preprocessor: Preprocessor, model_config: ModelConfig, seed: int
    ) -> tuple[TabularAttentionModel | SetAttentionModel, Examples, Examples]:
        """The model with the initial weights of `seed`, and the encoded training and
        validation examples: rows, or sets (a group's rows subsampled with `seed`)."""
        spec = preprocessor.model_spec(model_config)
        rows = (self.train_rows, self.validation_rows)
        if self.sets is None:
            train, validation = (preprocessor.transform(part) for part in rows)
            return build_model(spec, seed), train, validation
        train, validation = (self.sets.make(part, preprocessor, seed=seed) for part in rows)
        notes = [
            f"{split} sets: {note}"
            for split, made in (("Training", train), ("Validation", validation))
            for note in made.notes
        ]
        self.splits = replace(self.splits, notes=(*self.splits.notes, *notes))
        return build_model(spec, seed, SetAttentionModel), train, validation

    def test_examples(self, preprocessor: Preprocessor, seed: int) -> tuple[Examples, np.ndarray]:
        """The encoded test examples (rows, or sets made with `seed`) and their true targets,
        as the run's metrics take them (class indices, or values in the target's units)."""
        if self.sets is None:
            test = preprocessor.transform(self.test_rows)
            return test, self.schema.encode_target(self.test_rows)
        test = self.sets.make(self.test_rows, preprocessor, seed=seed)
        return test, test.target.numpy()

    def complete(
        self,
        members: Sequence[Member],
        preprocessor: Preprocessor,
        train_config: TrainConfig,
    ) -> Run:
        """The trained model (or the mean of its seed `members`, each also scored alone) scored
        on the test split beside the baselines, as a :class:`Run`."""
        rows = (self.train_rows, self.validation_rows, self.test_rows)
        first = members[0]
        compare = {"seed": train_config.seed, "threads": first.training.threads}
        predictor = first.model if len(members) == 1 else ensemble_of(members, self.schema)
        scores = compare_with_baselines(predictor, preprocessor, *rows, sets=self.sets, **compare)
        run_metrics = {"split": "test", **scores}
        if len(members) > 1:
            test, targets = self.test_examples(preprocessor, train_config.seed)
            labels = self.schema.class_labels
            for member in members:
                predicted = predictions_in_units(preprocessor, predict_logits(member.model, test))
                model_metrics = metrics(self.schema.task, targets, predicted, labels)
                member.metrics = {"split": "test", "model": model_metrics}
            run_metrics["ensemble"] = {"members": len(members), "prediction": ENSEMBLE_PREDICTION}
        return Run(
            first.model,
            preprocessor,
            self.splits,
            train_config=train_config,
            init_seed=first.init_seed,
            metrics=run_metrics,
            training=first.training,
            members=members if len(members) > 1 else None,
            frame=self.frame,
            test_frame=self.test_frame,
            sets=self.sets,
            table=self.table,
            test_table=self.test_table,
        )
