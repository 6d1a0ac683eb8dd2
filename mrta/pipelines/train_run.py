"""Training a run: schema, splits, preprocessor, training, evaluation and baselines.

:func:`train_run` is the whole pipeline, shared by the command line and the dashboard.
:class:`RunPlan` holds its steps around fitting the preprocessor and training, so that the
distributed and the streamed pipelines, which do those two their own way, share the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import pandas as pd

from mrta.config import ModelConfig, TrainConfig
from mrta.data.preprocessing import Examples, PreprocessingOptions, Preprocessor
from mrta.data.schema import Role, TableSchema, infer_schema
from mrta.data.sets import SET_BATCH_SIZE, SetOptions, group_targets
from mrta.data.splits import SplitOptions, Splits, make_group_splits, make_splits
from mrta.errors import TableError
from mrta.nn.model import TabularAttentionModel, build_model
from mrta.nn.set_model import SetAttentionModel
from mrta.runs.run import Run
from mrta.task import Task
from mrta.training.evaluate import compare_with_baselines
from mrta.training.loop import Cancel, Progress, TrainResult, fit


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
) -> Run:
    """Schema, splits, preprocessor, training, evaluation and baselines: a complete run.

    The initial weights come from ``train_config.seed`` (the run's `init_seed`); the held-out
    metrics are on the test split (the test file's rows, when `test_frame` is given).
    With `sets`, one example is a group of rows (set resolution): the group key is ignored as
    a feature unless `roles` says otherwise, whole groups are split, the baseline learns
    from per-group aggregates, and the default `train_config` takes
    :data:`~mrta.data.sets.SET_BATCH_SIZE` sets a step.
    Raises ``TableError`` for a table that cannot be used, ``ValueError`` for bad settings.
    """
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
    train_config = train_config or default_train_config(sets)
    model, train, validation = plan.build(preprocessor, model_config, train_config.seed)
    training = train_model(
        model, preprocessor, train, validation, train_config, callback=callback, cancel=cancel
    )
    return plan.complete(model, preprocessor, train_config, training)


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
) -> TrainResult:
    """:func:`mrta.training.loop.fit` of a run's model on its encoded examples, on the target
    scale of `preprocessor`: the one training call of every pipeline."""
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
    )


def default_train_config(sets: SetOptions | None = None) -> TrainConfig:
    """The default training: :class:`TrainConfig`'s, with
    :data:`~mrta.data.sets.SET_BATCH_SIZE` sets a step for set runs."""
    return TrainConfig() if sets is None else TrainConfig(batch_size=SET_BATCH_SIZE)


@dataclass
class RunPlan:
    """The steps of :func:`train_run` around fitting the preprocessor and training, for the
    pipelines that do those two their own way (:func:`mrta.pipelines.distributed.train_run_on_workers`,
    :func:`mrta.pipelines.streamed.train_run_from_file`)."""

    frame: pd.DataFrame | None  # None: the rows stay in their file (the run holds none)
    test_frame: pd.DataFrame | None
    schema: TableSchema
    splits: Splits  # :meth:`build` adds the notes of making sets
    sets: SetOptions | None
    train_rows: pd.DataFrame
    validation_rows: pd.DataFrame
    test_rows: pd.DataFrame

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
        """The schema and the split (of rows, or of whole groups with `sets`) of a table."""
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
        return cls(frame, test_frame, schema, splits, sets, train_rows, validation_rows, test_rows)

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

    def complete(
        self,
        model: TabularAttentionModel | SetAttentionModel,
        preprocessor: Preprocessor,
        train_config: TrainConfig,
        training: TrainResult,
    ) -> Run:
        """The trained model scored on the test split beside the baselines, as a :class:`Run`."""
        rows = (self.train_rows, self.validation_rows, self.test_rows)
        compare = {"seed": train_config.seed, "threads": training.threads}
        scores = compare_with_baselines(model, preprocessor, *rows, sets=self.sets, **compare)
        return Run(
            model,
            preprocessor,
            self.splits,
            train_config=train_config,
            init_seed=train_config.seed,
            metrics={"split": "test", **scores},
            training=training,
            frame=self.frame,
            test_frame=self.test_frame,
            sets=self.sets,
        )
