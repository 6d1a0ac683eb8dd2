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
- ``table.json``: the fingerprint of the table trained on (and of a separate test file): row
  count, column names and a SHA-256 of the parsed content (:mod:`mrta.data.fingerprint`), so
  that the split can be applied to the same file given again (:meth:`Run.check_table`);
- ``control.json`` and ``control.safetensors``: the control model trained on shuffled labels
  (:mod:`mrta.runs.control`); without one, ``control.json`` says why;
- ``data.csv`` (and ``test.csv`` for a separate test file): the rows, only when asked for.

Run format 2 added ``table.json`` and the control files. A run of format 1 still loads: it has
no control (``control`` is ``None`` and ``no_control`` says why) and no fingerprint (its table
is checked by row count and column names only).

A run that raced two settings (:mod:`mrta.training.race`) records the race in ``config.json``
too (``race``: both racers' settings, validation scores and steps, and the one kept); a run
saved before races has none and loads with ``race`` ``None``.

A run of set resolution (``sets``: one example per group of rows) also records its
:class:`~mrta.data.sets.SetOptions` in ``config.json``; its model is a
:class:`~mrta.nn.set_model.SetAttentionModel` and it predicts one row per group.

Loading reads JSON and safetensors only: nothing is unpickled. A run whose files do not match
the manifest, are missing, malformed or links, that declares sizes beyond the bounds of
:mod:`mrta.runs.bounds` (``MRTA_MAX_RUN_BYTES``, ``MRTA_MAX_JSON_BYTES``) or weights that do not
fit the model it declares, or that a newer version saved, raises :class:`~mrta.errors.RunError`,
whatever Python raised on the way, and before anything of the size it declares is allocated.
:func:`mrta.pipelines.train_run.train_run` makes one.
"""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import safetensors.torch
from torch import Tensor, nn

from mrta.config import ModelConfig, TrainConfig
from mrta.csvfile import write_csv
from mrta.data.fingerprint import TableCheck, TableFingerprint, check_table, shape_only
from mrta.data.preprocessing import Examples, Preprocessor
from mrta.data.read import read_table
from mrta.data.schema import TableSchema
from mrta.data.sets import SetOptions
from mrta.data.splits import Splits
from mrta.errors import RunError, one_line
from mrta.jsonable import json_bytes
from mrta.nn.ensemble import SeedEnsemble
from mrta.nn.model import TabularAttentionModel, build_meta_model, build_model
from mrta.nn.set_model import SetAttentionModel
from mrta.runs.atomic import is_staging_name, recover_folder, staged_folder, write_file
from mrta.runs.bounds import SafetensorsReader, check_model_spec, check_parameter_bytes
from mrta.runs.control import CONTROL_FILE, CONTROL_WEIGHTS, NOT_TRAINED, OLD_FORMAT, Control
from mrta.runs.manifest import (
    DATA_FILES,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    MAX_SEEDS,
    MEMBERS_FILE,
    ONE_MODEL_FORMAT_VERSION,
    RUN_NAMES,
    TABLE_FILE,
    WEIGHTS,
    RunFiles,
    file_digest,
    member_weights,
    open_regular,
    package_version,
    parse_json,
    verified_files,
)
from mrta.runs.members import Member, members_facts, parse_members
from mrta.task import Task
from mrta.training.inference import predict_logits, predictions_in_units
from mrta.training.loop import TrainResult
from mrta.training.race import Race


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
        control: Control | None = None,
        no_control: str = NOT_TRAINED,
        table: TableFingerprint | None = None,
        test_table: TableFingerprint | None = None,
        members: Sequence[Member] | None = None,
        race: Race | None = None,
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
        self.control = control  # the model trained on shuffled labels; None: see no_control
        self.no_control = no_control  # why there is no control, when there is none
        self.table = table  # the fingerprint of the table trained on; None before format 2
        self.test_table = test_table  # and of a separate test file
        # the seed members, member 0 (this model) first; one member: this model alone
        self.members = tuple(members or (Member(model, init_seed, self.metrics, training),))
        if self.members[0].model is not model:
            raise ValueError("members[0] must hold the run's model")
        # the race of two settings this model won (its settings are the run's); None: no race
        self.race = race
        self._predictor: nn.Module | None = None
        self._views: dict[int, Run] = {}
        # unique for the life of the process, unlike id(): caches of derived views key on it
        self.uid = uuid.uuid4().hex

    @property
    def seeds(self) -> int:
        """How many seed members the run holds (1 for a run of one model)."""
        return len(self.members)

    @property
    def predictor(self) -> nn.Module:
        """What the run predicts with: its model, or the mean of its seed members
        (:class:`~mrta.nn.ensemble.SeedEnsemble`)."""
        if self.seeds == 1:
            return self.model
        if self._predictor is None:
            models = [member.model for member in self.members]
            self._predictor = SeedEnsemble(models, self.schema.task)
        return self._predictor

    def member(self, k: int) -> Run:
        """Seed member `k` as a run of its own (its model, seed, metrics and training; the
        run's table, split, preprocessor and control, and its class: a run explored on other
        rows keeps refusing the split's rows), for recording its attention. The same object for
        the same `k` while the run's rows and control stay the same; member 0 of a one-member
        run is the run itself."""
        if not 0 <= k < self.seeds:
            raise ValueError(f"member must be between 0 and {self.seeds - 1}, got {k}")
        if self.seeds == 1:
            return self
        view = self._views.get(k)
        if view is None or not self._shares_rows_with(view):
            chosen = self.members[k]
            view = copy.copy(self)
            view.model, view.init_seed = chosen.model, chosen.init_seed
            view.metrics, view.training = chosen.metrics, chosen.training
            view.train_config = replace(self.train_config, seed=chosen.init_seed)
            view.members = (chosen,)
            view.uid = uuid.uuid4().hex
            self._views[k] = view
        return view

    def _shares_rows_with(self, view: Run) -> bool:
        """Whether a member's `view` still has this run's class, rows and control."""
        shared = ("frame", "test_frame", "control")
        return (
            type(view) is type(self)
            and all(getattr(view, name) is getattr(self, name) for name in shared)
            and view.no_control == self.no_control
        )

    def __copy__(self) -> Run:
        """A shallow copy with caches of its own (its members' views, its predictor)."""
        clone = self.__class__.__new__(self.__class__)
        clone.__dict__.update(self.__dict__)
        clone._views, clone._predictor = {}, None
        return clone

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
                "This run holds no data rows: give it the table it was trained on (mrta "
                "explain RUN DATA, or run.frame from Python), or train it with --save-data "
                "(include_data=True when saving from Python)."
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
        predicted = self.predict_examples(examples)
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

    def control_status(self) -> str:
        """One sentence about the control: how it was trained and scored, or why there is none."""
        return self.control.describe() if self.control is not None else self.no_control

    def examples(self, split: str, *, with_target: bool = True) -> Examples:
        """The encoded examples of a split (rows, or sets for a set run), as training and
        scoring see them (needs the table, as :meth:`rows`)."""
        rows = self.rows(split)
        if self.sets is not None:
            return self.sets.make(
                rows, self.preprocessor, seed=self.train_config.seed, with_target=with_target
            )
        return self.preprocessor.transform(rows, with_target=with_target)

    def split_predictions(
        self, split: str = "test"
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """What a verdict compares: the split's targets (class indices, or values in the
        target's units), the model's predictions and the control's (``None`` without a control),
        as :func:`mrta.training.inference.to_predictions` gives them, example by example (rows,
        or groups for a set run). Needs the table, as :meth:`rows`.

        Shape: targets ``(N,)``; predictions ``(N, C)`` probabilities or ``(N,)`` values.
        """
        examples = self.examples(split)
        targets = self.targets(split, examples)
        model, control = (
            None if model is None else self.predict_examples(examples, model)
            for model in (self.predictor, None if self.control is None else self.control.model)
        )
        return targets, model, control

    def targets(self, split: str, examples: Examples | None = None) -> np.ndarray:
        """The split's targets as its metrics take them: class indices (or values in the
        target's units) per row, or per group for a set run (`examples`: the split's, if made).

        Shape: ``(N,)``.
        """
        if self.sets is None:
            return self.schema.encode_target(self.rows(split))
        return (self.examples(split) if examples is None else examples).target.numpy()

    def predict_examples(
        self, examples: Examples, model: TabularAttentionModel | SetAttentionModel | None = None
    ) -> np.ndarray:
        """Predictions of `model` (default: the run's :attr:`predictor`, the mean of its seed
        members where it has several) for encoded examples, in the target's units (see
        :func:`mrta.training.inference.to_predictions`)."""
        return predictions_in_units(
            self.preprocessor, predict_logits(self.predictor if model is None else model, examples)
        )

    def check_table(
        self, table: pd.DataFrame | TableFingerprint, *, test_file: bool = False
    ) -> TableCheck:
        """Whether `table` (read by :func:`mrta.data.read.read_table`, or the fingerprint of a
        file read in chunks, :func:`mrta.data.fingerprint.fingerprint_chunks`) is the table this
        run was trained on (with `test_file`, its separate test file), so that its saved split
        can be applied to it: row count, column names and content against the saved fingerprint.

        A run saved before fingerprints (format 1) is checked by its column names and by the
        rows its split needs (the largest saved row index), not by its content; the result's
        ``checked`` and ``notes`` say so.
        """
        if test_file and not self.splits.separate_test_file:
            raise ValueError("this run's test split is part of its table: it has no test file")
        expected = self.test_table if test_file else self.table
        if expected is not None:
            return check_table(table, expected)
        if isinstance(table, pd.DataFrame):
            table = shape_only(len(table), table.columns)
        return self._check_without_fingerprint(table, test_file)

    def _check_without_fingerprint(self, found: TableFingerprint, test_file: bool) -> TableCheck:
        splits = self.splits
        if test_file:
            indices = splits.test
            wanted = [*self.schema.feature_columns, self.schema.target]
        else:
            parts = (
                splits.train,
                splits.validation,
                () if splits.separate_test_file else splits.test,
            )
            indices = tuple(index for part in parts for index in part)
            wanted = [spec.name for spec in self.schema.columns]
        least = max(indices, default=-1) + 1
        differences = []
        if found.rows < least:
            differences.append(
                f"It has {found.rows:,} rows, and the run's split needs at least {least:,} (its "
                f"largest row index is {least - 1:,})."
            )
        names = list(found.columns)
        missing = [name for name in wanted if name not in names]
        if missing:
            differences.append(
                f"It lacks the column(s) {', '.join(map(repr, missing))} of the run's table."
            )
        extra = [name for name in names if name not in wanted]
        if extra and not test_file:
            differences.append(
                f"It has column(s) the run's table did not: {', '.join(map(repr, extra))}."
            )
        if not test_file and not missing and not extra and names != wanted:
            differences.append("Its columns are in another order than the run's table's.")
        note = (
            "This run holds no fingerprint of its table (runs saved in run format 1 have none): "
            f"the table was checked by its column names and by having at least the {least:,} "
            "rows its split needs, not by its row count or content."
        )
        return TableCheck(("row count", "column names"), tuple(differences), (note,))

    # -- saving and loading ----------------------------------------------------------------
    def save(
        self,
        path: str | os.PathLike[str],
        *,
        include_data: bool = False,
        overwrite: bool = False,
    ) -> Path:
        """Write the run to the directory `path`, all at once (:mod:`mrta.runs.atomic`): a kill
        at any moment leaves the run that was there, or this one, complete.

        With `include_data`, the table (and a separate test file) are saved as CSV too. A run
        already at `path` is replaced only with `overwrite` (its cached analysis goes with it).
        Raises :class:`RunError`, before anything is written, for a `path` that is a file, a
        link, a folder of other files, a run without `overwrite`, or not writable.
        """
        path = Path(path)
        check_save_target(path, overwrite=overwrite)
        files = self._files(include_data)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION if self.seeds > 1 else ONE_MODEL_FORMAT_VERSION,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "mrta_version": package_version(),
            "files": {name: file_digest(data) for name, data in files.items()},
        }
        with staged_folder(path) as folder:
            for name, data in files.items():
                write_file(folder / name, data)
            write_file(folder / MANIFEST, json_bytes(manifest))
        return path

    def _files(self, include_data: bool) -> dict[str, bytes]:
        files: dict[str, Any] = {
            WEIGHTS: _weights(self.model),
            "config.json": {
                "model": self.model.to_dict(),
                "train": self.train_config.to_dict(),
                "init_seed": self.init_seed,
                "sets": None if self.sets is None else self.sets.to_dict(),
                "race": None if self.race is None else self.race.to_dict(),
            },
            "schema.json": self.schema.to_dict(),
            "preprocessor.json": self.preprocessor.to_dict(),
            "splits.json": self.splits.to_dict(),
            "metrics.json": self.metrics,
            "history.json": self.training.to_dict(),
            TABLE_FILE: {
                "table": None if self.table is None else self.table.to_dict(),
                "test_table": None if self.test_table is None else self.test_table.to_dict(),
            },
            CONTROL_FILE: {"trained": False, "reason": self.no_control},
        }
        if self.control is not None:
            files[CONTROL_FILE] = self.control.to_dict()
            files[CONTROL_WEIGHTS] = _weights(self.control.model)
        if self.seeds > 1:
            files[MEMBERS_FILE] = members_facts(self.members)
            for k, member in enumerate(self.members[1:], start=1):
                files[member_weights(k)] = _weights(member.model)
        files = {k: v if isinstance(v, bytes) else json_bytes(v) for k, v in files.items()}
        if include_data:
            if self.frame is None:
                raise RunError("This run holds no data rows to save: save it without its data.")
            files["data.csv"] = write_csv(self.frame, escape=False, index=False).encode()
            if self.test_frame is not None:
                files["test.csv"] = write_csv(self.test_frame, escape=False, index=False).encode()
        return files

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Run:
        """Read a run directory; raises :class:`RunError` for anything but an intact run of a
        format this version reads, whatever Python raises on the way.

        Every size the run declares is checked before anything of that size is built
        (:mod:`mrta.runs.bounds`); the model is built on the ``meta`` device and given the
        tensors read from the checked bytes, so that its weights are in memory once.
        """
        where = str(path)
        try:
            return cls._load(Path(path))
        except RunError:
            raise
        except MemoryError as error:
            raise RunError(
                f"The run at {where!r} needs more memory than this process has: close other "
                "programs, or load it on a machine with more memory."
            ) from error
        except Exception as error:  # whatever a damaged or crafted run makes Python raise
            raise RunError(
                f"The run at {where!r} cannot be read ({type(error).__name__}: "
                f"{one_line(error)}): it was damaged or not saved by MRTA Explorer, so train the "
                "model again."
            ) from error

    @classmethod
    def _load(cls, path: Path) -> Run:
        where = str(path)
        recover_folder(path)  # a save killed between its two renames left the old run aside
        files = verified_files(path)
        try:
            config = parse_json(files.json["config.json"], "config.json", where)
            spec = config["model"]
            check_model_spec(spec, where)
            init_seed = int(config["init_seed"])
            sets = SetOptions.from_dict(config["sets"]) if config.get("sets") else None
            race = Race.from_dict(config["race"]) if config.get("race") else None
            model_class = TabularAttentionModel if sets is None else SetAttentionModel
            train_config = TrainConfig.from_dict(config["train"])
            preprocessor = Preprocessor.from_dict(_json(files, "preprocessor.json"))
            schema = TableSchema.from_dict(_json(files, "schema.json"))
            splits = Splits.from_dict(_json(files, "splits.json"))
            metrics = dict(_json(files, "metrics.json"))
            training = TrainResult.from_dict(_json(files, "history.json"))
            table = test_table = None
            if TABLE_FILE in files:
                tables = _json(files, TABLE_FILE)
                table, test_table = (
                    None if tables[key] is None else TableFingerprint.from_dict(tables[key])
                    for key in ("table", "test_table")
                )
            _check_model_matches(spec, preprocessor, where)
            model = build_meta_model(spec, model_class)
            facts = _json(files, CONTROL_FILE) if CONTROL_FILE in files else None
            control, no_control = _control(files, facts, spec, model_class, where)
            others = []
            if MEMBERS_FILE in files:
                entries = parse_members(_json(files, MEMBERS_FILE), MAX_SEEDS)
                if entries[0]["seed"] != init_seed:
                    raise RunError(
                        f"The run at {where!r} names another seed for member 0 than its own: "
                        "it was altered or damaged, so train the model again."
                    )
                for k, entry in enumerate(entries[1:], start=1):
                    if member_weights(k) not in files:
                        raise RunError(
                            f"The run at {where!r} lacks the weights of its seed member {k} "
                            f"({member_weights(k)}): copy the whole run directory."
                        )
                    entry["model"] = build_meta_model(spec, model_class)
                others = entries
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
        weighted = {WEIGHTS: model}
        if control is not None:
            weighted[CONTROL_WEIGHTS] = control.model
        for k, entry in enumerate(others[1:], start=1):
            weighted[member_weights(k)] = entry["model"]
        check_parameter_bytes(weighted.values(), where)
        with ExitStack() as stack:
            readers = {
                name: SafetensorsReader(stack.enter_context(open_regular(path, name)), name, where)
                for name in weighted
            }
            for name, weighted_model in weighted.items():
                readers[name].check_fits(weighted_model.state_dict())
            # Everything is checked: the rows, then the weights, are all that is left to read.
            frame, test_frame = (
                read_table(files.read(name)).frame if name in files else None for name in DATA_FILES
            )
            for name, weighted_model in weighted.items():
                _assign(weighted_model, readers[name].read_tensors(files.digests[name]))
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
            control=control,
            no_control=no_control,
            table=table,
            test_table=test_table,
            members=[
                Member(
                    model if k == 0 else entry["model"],
                    entry["seed"],
                    entry["metrics"],
                    training if k == 0 else entry["training"],
                )
                for k, entry in enumerate(others)
            ]
            or None,
            race=race,
        )


def check_save_target(path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
    """Raise :class:`RunError` unless a run can be saved at `path`: a new or empty directory,
    or (with `overwrite`) a saved run, in a folder this process can write. Checks only; run it
    before the work whose result is saved, so that a bad path loses nothing."""
    path = Path(path)
    where = str(path)
    recover_folder(path)
    if path.is_symlink():
        raise RunError(
            f"{where!r} is a link: save the run to a real directory (nothing was written)."
        )
    if path.exists() and not path.is_dir():
        raise RunError(f"{where!r} is a file, not a directory: choose a directory path.")
    if path.is_dir() and any(path.iterdir()):
        if not (path / MANIFEST).is_file():
            raise RunError(
                f"{where!r} already holds files that are not a saved run: choose a new or "
                "empty directory (nothing was overwritten)."
            )
        if not overwrite:
            raise RunError(
                f"{where!r} already holds a saved run: choose a new directory, or replace it "
                "with --overwrite (overwrite=True from Python). Nothing was changed."
            )
        others = sorted(
            name for name in os.listdir(path) if name not in RUN_NAMES and not is_staging_name(name)
        )
        if others:
            raise RunError(
                f"{where!r} holds files besides the run ({', '.join(others[:5])}), which "
                "replacing it would delete: move them out first. Nothing was changed."
            )
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise RunError(f"{str(existing)!r} is a file, so {where!r} cannot be created in it.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunError(
            f"{where!r} cannot be written: this process may not write in {str(existing)!r}. "
            "Choose a folder you can write to."
        )


def _weights(model: TabularAttentionModel | SetAttentionModel) -> bytes:
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return safetensors.torch.save(state, metadata={"format": FORMAT})


def _json(files: RunFiles, name: str) -> Any:
    """A JSON file of the run, parsed (with a depth limit)."""
    return parse_json(files.json[name], name, str(files.path))


def _check_model_matches(spec: Mapping[str, Any], preprocessor: Preprocessor, where: str) -> None:
    """The model `spec` declares has the tokens, vocabulary sizes, task and classes of the
    preprocessor that encodes its inputs."""
    expected = preprocessor.model_spec(ModelConfig.from_dict(spec["config"]))
    differing = [key for key, value in expected.items() if key != "config" and spec[key] != value]
    if differing:
        raise RunError(
            f"The model of the run at {where!r} does not match its preprocessor (their "
            f"{', '.join(differing)} differ): the run was altered or damaged, so train the model "
            "again."
        )


def _control(
    files: RunFiles,
    facts: Any,
    spec: Mapping[str, Any],
    model_class: type[TabularAttentionModel] | type[SetAttentionModel],
    where: str,
) -> tuple[Control | None, str]:
    """The saved control, its model built on the ``meta`` device (its weights are read once
    everything is checked), or why there is none."""
    if facts is None:
        return None, OLD_FORMAT
    if not facts.get("trained"):
        return None, str(facts.get("reason") or NOT_TRAINED)
    if CONTROL_WEIGHTS not in files:
        raise RunError(
            f"The run at {where!r} describes a control model but lacks its weights "
            f"({CONTROL_WEIGHTS}): copy the whole run directory."
        )
    return Control.from_dict(facts, build_meta_model(spec, model_class)), ""


def _assign(model: nn.Module, tensors: dict[str, Tensor]) -> None:
    """Make `tensors` (checked against its names, dtypes and shapes) `model`'s weights, without a
    copy; then put it in eval mode."""
    model.load_state_dict(tensors, strict=True, assign=True)
    model.eval()
