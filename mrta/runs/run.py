"""Saved runs: a trained model with everything needed to use it, check it and rebuild it.

A run directory holds, besides ``manifest.json`` (format, version and each file's SHA-256):

- ``weights.safetensors``: the trained weights;
- ``config.json``: the model (config and table-specific sizes), the training config and the
  seed of the initial weights;
- ``schema.json``, ``preprocessor.json``, ``splits.json``: the table's schema, the fitted
  preprocessor and the split (its seed and row indices);
- ``metrics.json``: held-out metrics of the model and the baselines;
- ``history.json``: the training result and its per-epoch history;
- ``data.csv`` (and ``test.csv`` for a separate test file): the rows, only when asked for.

A run of set resolution (``sets``: one example per group of rows) also records its
:class:`~mrta.data.sets.SetOptions` in ``config.json``; its model is a
:class:`~mrta.nn.set_model.SetAttentionModel` and it predicts one row per group.

Loading reads JSON and safetensors only: nothing is unpickled. A run whose files do not match
the manifest, are missing or malformed, or that a newer version saved, raises :class:`RunError`.
:func:`train_run` is the whole pipeline (schema, splits, preprocessor, training, evaluation,
baselines), shared by the command line and the dashboard.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import safetensors.torch

from mrta.config import ModelConfig, TrainConfig
from mrta.data.preprocessing import Examples, PreprocessingOptions, Preprocessor
from mrta.data.read import read_table
from mrta.data.schema import Role, TableSchema, infer_schema
from mrta.data.sets import SET_BATCH_SIZE, SetOptions, group_targets
from mrta.data.splits import SplitOptions, Splits, make_group_splits, make_splits
from mrta.errors import RunError, TableError
from mrta.jsonable import json_bytes
from mrta.nn.model import TabularAttentionModel, build_model
from mrta.nn.set_model import SetAttentionModel
from mrta.task import Task
from mrta.training.evaluate import compare_sets_with_baselines, compare_with_baselines
from mrta.training.inference import predict_logits, to_predictions
from mrta.training.loop import Cancel, Progress, TrainResult, fit

FORMAT = "mrta-run"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
JSON_FILES = (
    "config.json",
    "schema.json",
    "preprocessor.json",
    "splits.json",
    "metrics.json",
    "history.json",
)
DATA_FILES = ("data.csv", "test.csv")  # only when the rows are saved with the run


class Run:
    """A trained model with its table's schema, preprocessor, split, metrics and history.

    Build one with :func:`train_run` or :meth:`Run.load`.
    """

    def __init__(
        self,
        model: TabularAttentionModel | SetAttentionModel,
        preprocessor: Preprocessor,
        splits: Splits,
        *,
        train_config: TrainConfig,
        init_seed: int,
        metrics: Mapping[str, Any],
        training: TrainResult,
        frame: pd.DataFrame | None = None,
        test_frame: pd.DataFrame | None = None,
        sets: SetOptions | None = None,
    ) -> None:
        self.model = model
        self.preprocessor = preprocessor
        self.splits = splits
        self.train_config = train_config
        self.init_seed = init_seed
        self.metrics = dict(metrics)
        self.training = training
        self.frame = frame  # the table trained on, when known
        self.test_frame = test_frame  # a separate test file, when one was used
        self.sets = sets  # set resolution: how rows were grouped; None for one row, one example
        # unique for the life of the process, unlike id(): caches of derived views key on it
        self.uid = uuid.uuid4().hex

    @property
    def schema(self) -> TableSchema:
        return self.preprocessor.schema

    @property
    def model_config(self) -> ModelConfig:
        return self.model.config

    @property
    def history(self) -> list[dict[str, Any]]:
        """One entry per evaluation on the validation split; epoch 0 is the untrained model."""
        return self.training.history

    @property
    def class_labels(self) -> tuple[str, ...]:
        return self.schema.class_labels

    def rows(self, split: str) -> pd.DataFrame:
        """The rows of ``"train"``, ``"validation"`` or ``"test"`` (needs the table)."""
        if split not in ("train", "validation", "test"):
            raise ValueError(f"split must be 'train', 'validation' or 'test', got {split!r}")
        separate = split == "test" and self.splits.separate_test_file
        source = self.test_frame if separate else self.frame
        if source is None:
            raise RunError(
                "This run holds no data rows: set its frame (and test_frame) to the tables it "
                "was trained on, or save runs with include_data=True."
            )
        return source.iloc[list(getattr(self.splits, split))]

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Predictions for every row of `frame`, in order, with its index; for a set run, for
        every group of `frame`, in order of first appearance, with the group key as the first
        column and the number of rows its set was made of, ``n_rows``.

        Classification: one probability column per class, named by its label, and
        ``prediction``, the most probable label. Regression: ``prediction`` in the target's
        units. Extra columns are ignored; a missing feature column raises ``TableError``.
        """
        if self.sets is not None:
            examples = self.sets.make(
                frame, self.preprocessor, seed=self.train_config.seed, with_target=False
            )
            index = pd.RangeIndex(len(examples))
        else:
            examples = self.preprocessor.transform(frame, with_target=False)
            index = frame.index
        task = self.schema.task.value
        predicted = to_predictions(
            task,
            predict_logits(self.model, examples),
            self.preprocessor.target_mean,
            self.preprocessor.target_std,
        )
        if task == Task.REGRESSION:
            out = pd.DataFrame({"prediction": predicted}, index=index)
        else:
            out = pd.DataFrame(predicted, columns=list(self.class_labels), index=index)
            labels = np.asarray(self.class_labels, dtype=object)
            out["prediction"] = labels[predicted.argmax(axis=1)]
        if self.sets is not None:
            out.insert(0, "n_rows", examples.set_sizes.numpy())
            out.insert(0, self.sets.group_by, list(examples.keys))
        return out

    def untrained_model(self) -> TabularAttentionModel | SetAttentionModel:
        """The model as it was before training: same config, initial weights of `init_seed`."""
        return build_model(self.model.to_dict(), self.init_seed, type(self.model))

    # -- saving and loading ----------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, include_data: bool = False) -> Path:
        """Write the run to the directory `path` (created if needed; a run there is replaced).

        With `include_data`, the table (and a separate test file) are saved as CSV too.
        Raises :class:`RunError` when `path` holds something other than a run.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunError(f"{str(path)!r} is a file, not a directory: choose a directory path.")
        if path.is_dir() and any(path.iterdir()) and not (path / MANIFEST).is_file():
            raise RunError(
                f"{str(path)!r} already holds files that are not a saved run: choose a new or "
                "empty directory (nothing was overwritten)."
            )
        files = self._files(include_data)
        path.mkdir(parents=True, exist_ok=True)
        # The manifest goes last, so that a save cut short leaves a run that refuses to load.
        (path / MANIFEST).unlink(missing_ok=True)
        for name in DATA_FILES:
            if name not in files:
                (path / name).unlink(missing_ok=True)
        for name, data in files.items():
            (path / name).write_bytes(data)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "mrta_version": _package_version(),
            "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
        }
        (path / MANIFEST).write_bytes(json_bytes(manifest))
        return path

    def _files(self, include_data: bool) -> dict[str, bytes]:
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        files = {
            WEIGHTS: safetensors.torch.save(state, metadata={"format": FORMAT}),
            "config.json": {
                "model": self.model.to_dict(),
                "train": self.train_config.to_dict(),
                "init_seed": self.init_seed,
                "sets": None if self.sets is None else self.sets.to_dict(),
            },
            "schema.json": self.schema.to_dict(),
            "preprocessor.json": self.preprocessor.to_dict(),
            "splits.json": self.splits.to_dict(),
            "metrics.json": self.metrics,
            "history.json": self.training.to_dict(),
        }
        files = {k: v if isinstance(v, bytes) else json_bytes(v) for k, v in files.items()}
        if include_data:
            if self.frame is None:
                raise RunError("This run holds no data rows to save: save it without its data.")
            files["data.csv"] = self.frame.to_csv(index=False).encode()
            if self.test_frame is not None:
                files["test.csv"] = self.test_frame.to_csv(index=False).encode()
        return files

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Run:
        """Read a run directory; raises :class:`RunError` for anything but an intact run of a
        format this version reads."""
        path = Path(path)
        where = str(path)
        if not path.is_dir():
            raise RunError(f"There is no run directory at {where!r}: check the path.")
        files = _verified_files(path)
        try:
            config = _parse_json(files, "config.json")
            init_seed = int(config["init_seed"])
            sets = SetOptions.from_dict(config["sets"]) if config.get("sets") else None
            model_class = TabularAttentionModel if sets is None else SetAttentionModel
            model = build_model(config["model"], init_seed, model_class)
            train_config = TrainConfig.from_dict(config["train"])
            preprocessor = Preprocessor.from_dict(_parse_json(files, "preprocessor.json"))
            schema = TableSchema.from_dict(_parse_json(files, "schema.json"))
            splits = Splits.from_dict(_parse_json(files, "splits.json"))
            metrics = _parse_json(files, "metrics.json")
            training = TrainResult.from_dict(_parse_json(files, "history.json"))
        except RunError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise RunError(
                f"The run at {where!r} holds settings this version cannot read ({error}): "
                "train the model again."
            ) from error
        if schema != preprocessor.schema:
            raise RunError(
                f"The run at {where!r} has a schema that differs from its preprocessor's: "
                "train the model again."
            )
        try:
            state = safetensors.torch.load(files[WEIGHTS])
            model.load_state_dict(state, strict=True)
        except (RuntimeError, ValueError, safetensors.SafetensorError) as error:
            raise RunError(
                f"The weights of the run at {where!r} do not fit its model: train the model again."
            ) from error
        model.eval()
        frame, test_frame = (
            read_table(files[name]).frame if name in files else None for name in DATA_FILES
        )
        return cls(
            model,
            preprocessor,
            splits,
            train_config=train_config,
            init_seed=init_seed,
            metrics=metrics,
            training=training,
            frame=frame,
            test_frame=test_frame,
            sets=sets,
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
    training = fit(
        model,
        train,
        validation,
        train_config,
        target_mean=preprocessor.target_mean,
        target_std=preprocessor.target_std,
        callback=callback,
        cancel=cancel,
    )
    return plan.complete(model, preprocessor, train_config, training)


def default_train_config(sets: SetOptions | None = None) -> TrainConfig:
    """The default training: :class:`TrainConfig`'s, with
    :data:`~mrta.data.sets.SET_BATCH_SIZE` sets a step for set runs."""
    return TrainConfig() if sets is None else TrainConfig(batch_size=SET_BATCH_SIZE)


@dataclass
class RunPlan:
    """The steps of :func:`train_run` around fitting the preprocessor and training, for the
    pipelines that do those two their own way (:func:`mrta.pipelines.distributed.train_run`,
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
        if self.sets is None:
            scores = compare_with_baselines(model, preprocessor, *rows, **compare)
        else:
            scores = compare_sets_with_baselines(model, preprocessor, self.sets, *rows, **compare)
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


def _verified_files(path: Path) -> dict[str, bytes]:
    """Every file the manifest lists, read and checked against its SHA-256."""
    where = str(path)
    if not (path / MANIFEST).is_file():
        raise RunError(
            f"The directory {where!r} is not a saved run (it has no {MANIFEST}): check the path."
        )
    manifest = _parse_json({MANIFEST: _read(path, MANIFEST)}, MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RunError(f"The directory {where!r} is not a saved MRTA run: check the path.")
    found = manifest.get("format_version")
    if not isinstance(found, int) or isinstance(found, bool) or found < 1:
        raise RunError(f"The run at {where!r} has an unknown format version {found!r}.")
    if found > FORMAT_VERSION:
        raise RunError(
            f"The run at {where!r} was saved in run format {found}, newer than the format "
            f"{FORMAT_VERSION} this version reads: upgrade mrta-explorer to load it."
        )
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        raise RunError(f"The manifest of the run at {where!r} lists no files: save the run again.")
    for name in (WEIGHTS, *JSON_FILES):
        if name not in listed:
            raise RunError(
                f"The manifest of the run at {where!r} does not list {name}: save the run again."
            )
    files = {}
    for name, digest in listed.items():
        if name not in (WEIGHTS, *JSON_FILES, *DATA_FILES):
            raise RunError(f"The manifest of the run at {where!r} lists an unknown file {name!r}.")
        data = _read(path, name)
        if hashlib.sha256(data).hexdigest() != digest:
            raise RunError(
                f"The file {name} of the run at {where!r} does not match its checksum: it was "
                "changed or damaged after saving, so train the model again."
            )
        files[name] = data
    return files


def _read(path: Path, name: str) -> bytes:
    try:
        return (path / name).read_bytes()
    except FileNotFoundError:
        raise RunError(
            f"The run at {str(path)!r} lacks its file {name}: copy the whole run directory."
        ) from None
    except OSError as error:
        raise RunError(
            f"The file {name} of the run at {str(path)!r} cannot be read ({error})."
        ) from error


def _parse_json(files: Mapping[str, bytes], name: str) -> Any:
    try:
        return json.load(io.BytesIO(files[name]))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunError(f"The file {name} of a saved run is not valid JSON ({error}).") from None


def _package_version() -> str | None:
    try:
        return version("mrta-explorer")
    except PackageNotFoundError:
        return None
