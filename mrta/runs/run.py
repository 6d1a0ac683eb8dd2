"""Saved runs: a trained model with everything needed to use it, check it and rebuild it.

A run directory holds, besides ``manifest.json`` (format, version and each file's SHA-256,
see :mod:`mrta.runs.manifest`):

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
the manifest, are missing or malformed, or that a newer version saved, raises
:class:`~mrta.errors.RunError`. :func:`mrta.pipelines.train_run.train_run` makes one.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import safetensors.torch

from mrta.config import ModelConfig, TrainConfig
from mrta.data.preprocessing import Preprocessor
from mrta.data.read import read_table
from mrta.data.schema import TableSchema
from mrta.data.sets import SetOptions
from mrta.data.splits import Splits
from mrta.errors import RunError
from mrta.jsonable import json_bytes
from mrta.nn.model import TabularAttentionModel, build_model
from mrta.nn.set_model import SetAttentionModel
from mrta.runs.manifest import (
    DATA_FILES,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    WEIGHTS,
    package_version,
    parse_json,
    verified_files,
)
from mrta.task import Task
from mrta.training.inference import predict_logits, to_predictions
from mrta.training.loop import TrainResult


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
            "mrta_version": package_version(),
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
        files = verified_files(path)
        try:
            config = parse_json(files, "config.json")
            init_seed = int(config["init_seed"])
            sets = SetOptions.from_dict(config["sets"]) if config.get("sets") else None
            model_class = TabularAttentionModel if sets is None else SetAttentionModel
            model = build_model(config["model"], init_seed, model_class)
            train_config = TrainConfig.from_dict(config["train"])
            preprocessor = Preprocessor.from_dict(parse_json(files, "preprocessor.json"))
            schema = TableSchema.from_dict(parse_json(files, "schema.json"))
            splits = Splits.from_dict(parse_json(files, "splits.json"))
            metrics = parse_json(files, "metrics.json")
            training = TrainResult.from_dict(parse_json(files, "history.json"))
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
