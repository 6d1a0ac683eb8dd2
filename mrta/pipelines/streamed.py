"""Runs on tables too large for memory: trained, predicted and explained from the file itself.

:func:`train_run_from_file` is :func:`mrta.runs.run.train_run` for a CSV (plain or gzipped) or
Parquet file read in chunks by :mod:`mrta.data.stream`: one pass scans the file (types, rows, a
seeded sample), the schema is inferred and the preprocessor fitted on the sample, the split is
made from the target column alone, and the training rows are encoded chunk by chunk: the model
trains on all of them. Seeded samples bound the rest: the model is scored after every epoch on
at most :data:`STOPPING_ROWS` validation rows, the baselines learn from at most
:data:`BASELINE_ROWS` training and validation rows, and the test metrics are on at most
:data:`TEST_ROWS` test rows (:class:`~mrta.runs.run.RunPlan` does the rest, as for a table in
memory); notes in the run's ``splits.notes`` say what was sampled. The run holds no data rows;
it holds the file's fingerprint (row count, column names and the SHA-256 of every value, from
one more pass over the file: :mod:`mrta.data.fingerprint`, the same digest as of the table read
whole). With ``control=True`` the control model (:mod:`mrta.runs.control`) trains after the
model on the same encoded training rows, their labels permuted, for as many steps, and is
scored on the same test rows.

With a sample as large as the file and splits within those limits, the run is the run
:func:`~mrta.runs.run.train_run` makes of the whole table. Set resolution and a separate test file
need the table in memory: :func:`~mrta.runs.run.train_run` does them.

:func:`predict_file` writes a run's predictions chunk by chunk, and :func:`explained_rows` reads
the rows ``mrta explain`` analyses (a seeded sample) from the file. :func:`read_or_stream`
reads a table whole when `read_table` takes it, and says when it is over its limits.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from mrta.config import ModelConfig, TrainConfig
from mrta.csvfile import write_csv
from mrta.data import values
from mrta.data.fingerprint import fingerprint_chunks
from mrta.data.preprocessing import PreprocessingOptions
from mrta.data.read import ReadingOptions, ReadResult, read_table, reading_limits
from mrta.data.schema import Role, TableSchema
from mrta.data.splits import SplitOptions, Splits, make_splits
from mrta.data.stream import (
    DEFAULT_CHUNK_ROWS,
    DEFAULT_MAX_FILE_ROWS,
    DEFAULT_SAMPLE_ROWS,
    TableLayout,
    as_layout,
    encode_file,
    iter_chunks,
    read_rows,
    scan_table,
)
from mrta.errors import TableError
from mrta.nn.model import build_model
from mrta.pipelines.explain import analysed_rows
from mrta.pipelines.predictions import checked_keep, prediction_table
from mrta.pipelines.train_run import (
    RunPlan,
    default_train_config,
    fit_control,
    train_model,
    with_control,
)
from mrta.runs.members import Member
from mrta.runs.run import Run
from mrta.task import Task
from mrta.training.inference import fit_smearing
from mrta.training.loop import Cancel, Progress

#: Training (and validation) rows the baselines learn from, held in memory as DataFrames: a
#: bound on memory and on HistGradientBoosting's time (42 iterations on 200,000 rows: 5 s).
BASELINE_ROWS = 200_000
#: Test rows the model and the baselines are scored on, held in memory as a DataFrame: the
#: standard error of an accuracy on them is below 0.001.
TEST_ROWS = 500_000
#: Validation rows the model is scored on after every epoch (early stopping, best weights):
#: a pass over them takes seconds on one CPU thread (over 300,000 rows it took 87 s, more than
#: the default time budget, and the model took no step), and the standard error of a
#: validation loss on 20,000 rows is about 0.005.
STOPPING_ROWS = 20_000
# What `read_table`'s refusal of a file too large once decompressed begins with.
_TOO_LARGE = "The file is larger than the limit"


def train_run_from_file(
    source: str | os.PathLike[str],
    target: str,
    *,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    task: Task | str | None = None,
    roles: Mapping[str, Role | str] | None = None,
    split_options: SplitOptions | None = None,
    preprocessing_options: PreprocessingOptions | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    max_file_rows: int | None = DEFAULT_MAX_FILE_ROWS,
    baseline_rows: int = BASELINE_ROWS,
    test_rows: int = TEST_ROWS,
    stopping_rows: int = STOPPING_ROWS,
    callback: Callable[[Progress], None] | None = None,
    cancel: Cancel = None,
    control: bool = False,
    control_callback: Callable[[Progress], None] | None = None,
    scan_callback: Callable[[int], None] | None = None,
) -> Run:
    """A complete run (as :func:`~mrta.runs.run.train_run`) of the table in the file `source`,
    read `chunk_rows` rows at a time; the schema and the preprocessor are fitted on a seeded
    sample of `sample_rows` rows. The model trains on every training row and is scored after
    every epoch on at most `stopping_rows` validation rows; the baselines learn from at most
    `baseline_rows` training and validation rows; both are scored on at most `test_rows` test
    rows. The first pass over the file (`scan_callback` gets the rows read so far) refuses a
    file of more than `max_file_rows` rows as soon as it has read them: the encoded training
    rows are held in memory. The samples are seeded with ``train_config.seed``. With
    `control`, the control model trains after the model (on the same training rows and
    validation sample, labels permuted, progress to `control_callback`) and is scored on the
    same test rows.

    Memory: the scan's sample, the encoded training rows and the DataFrames of the baselines'
    and the test rows, besides the chunk.
    Raises ``TableError`` for a file or table that cannot be used (a target label missing from
    the sample included), ``ValueError`` for bad settings.
    """
    model_config = model_config or ModelConfig()
    train_config = train_config or default_train_config()
    seed = train_config.seed
    limits = {"baseline": baseline_rows, "test": test_rows, "stopping": stopping_rows}
    for name, value in limits.items():
        if value < 1:
            raise ValueError(f"{name}_rows must be at least 1, not {value}")
    scan = scan_table(
        source,
        sample_rows=sample_rows,
        seed=seed,
        chunk_rows=chunk_rows,
        max_rows=max_file_rows,
        progress=scan_callback,
    )
    layout = scan.layout
    schema = scan.infer_schema(target, task=task, roles=roles)
    column = pd.concat(iter_chunks(layout, chunk_rows, columns=[target]))
    unseen = _unseen_labels(column[target], schema)
    if unseen:
        raise TableError(
            f"The target {target!r} holds label(s) that the seeded sample of "
            f"{len(scan.sample):,} of the {scan.rows:,} rows lacks ({unseen}), so the model "
            "would have no class for them: give a larger sample (sample_rows, or mrta train "
            "--sample-rows N) or merge the rare classes."
        )
    splits = make_splits(column, schema, split_options)
    del column
    if not splits.test:
        raise TableError("The test split is empty: keep a test fraction or give a test file.")
    rng = np.random.default_rng(seed)
    picked = {
        name: _sample(rows, limit, rng)
        for name, rows, limit in (
            ("stopping", splits.validation, stopping_rows),  # the model's, after every epoch
            ("train", splits.train, baseline_rows),  # the baselines'
            ("validation", splits.validation, baseline_rows),
            ("test", splits.test, test_rows),
        )
    }
    preprocessor = scan.fit_preprocessor(schema, preprocessing_options, rows=splits.train)
    del scan  # the sample is no longer needed
    train, validation = (
        encode_file(layout, preprocessor, rows=rows, chunk_rows=chunk_rows)
        for rows in (splits.train, picked["stopping"])
    )
    model = build_model(preprocessor.model_spec(model_config), seed)
    training = train_model(
        model, preprocessor, train, validation, train_config, callback=callback, cancel=cancel
    )
    fit_smearing(preprocessor, model, validation)
    scored = read_rows(layout, picked["test"], chunk_rows=chunk_rows)  # the test rows
    trained_control = None
    if control:
        started = time.perf_counter()
        trained_control = fit_control(
            build_model(preprocessor.model_spec(model_config), seed),
            preprocessor,
            train,
            validation,
            train_config,
            training,
            test=preprocessor.transform(scored),
            test_targets=schema.encode_target(scored),
            callback=control_callback,
            cancel=cancel,
            started=started,
        )
    del train, validation
    table = fingerprint_chunks(layout.columns, iter_chunks(layout, chunk_rows))
    plan = RunPlan(
        frame=None,  # the run holds no data rows
        test_frame=None,
        schema=schema,
        splits=replace(splits, notes=(*splits.notes, *_sample_notes(splits, picked, seed))),
        sets=None,
        train_rows=read_rows(layout, picked["train"], chunk_rows=chunk_rows),
        validation_rows=read_rows(layout, picked["validation"], chunk_rows=chunk_rows),
        test_rows=scored,
        table=table,
    )
    run = plan.complete(
        [Member(model, train_config.seed, {}, training)], preprocessor, train_config
    )
    if control:
        with_control(run, trained_control)
    return run


def _unseen_labels(column: pd.Series, schema: TableSchema) -> str:
    """The target labels of `column` that the schema's classes lack (at most five, quoted),
    or ""; always "" for regression."""
    if schema.task is Task.REGRESSION:
        return ""
    labels = values.to_labels(column)
    unseen = sorted(set(labels[pd.notna(labels)]) - set(schema.class_labels))
    return ", ".join(repr(label) for label in unseen[:5])


def _sample(rows: tuple[int, ...], limit: int, rng: np.random.Generator) -> np.ndarray:
    """`rows` (sorted positions), or a seeded sample of `limit` of them, sorted."""
    positions = np.asarray(rows, dtype=np.int64)
    if len(positions) <= limit:
        return positions
    return np.sort(rng.choice(positions, size=limit, replace=False))


def _sample_notes(splits: Splits, picked: Mapping[str, np.ndarray], seed: int) -> list[str]:
    """What the model and the baselines learnt from and were scored on, where it is a sample."""
    train, validation, test = (len(getattr(splits, name)) for name in ("train", "validation",
                                                                        "test"))  # fmt: skip
    n_train, n_validation, n_test, n_stopping = (
        len(picked[name]) for name in ("train", "validation", "test", "stopping")
    )
    notes = []
    if n_stopping < validation:
        notes.append(
            f"After every epoch the model was scored (for early stopping and its best weights) "
            f"on a seeded sample of {n_stopping:,} of the {validation:,} validation rows "
            f"(seed {seed})."
        )
    if n_train < train or n_validation < validation:
        notes.append(
            f"The baselines learnt from a seeded sample of {n_train:,} of the {train:,} training "
            f"rows and stopped early on {n_validation:,} of the {validation:,} validation rows "
            f"(seed {seed}); the model trained on all the training rows."
        )
    if n_test < test:
        notes.append(
            f"The model and the baselines were scored on a seeded sample of {n_test:,} of the "
            f"{test:,} test rows (seed {seed})."
        )
    return notes


def read_or_stream(
    path: str | os.PathLike[str], options: ReadingOptions | None = None
) -> ReadResult | None:
    """The table in the file at `path`, read whole by `read_table` (with its reading notes);
    ``None`` when it is over `options`' limits (bytes on disk or once decompressed, or rows), to
    be streamed instead.

    A file larger than the byte limit on disk is not opened. Other refusals raise
    ``TableError`` as `read_table` does.
    """
    options = options or reading_limits()
    if os.path.isfile(path) and os.path.getsize(path) > options.max_bytes:
        return None
    try:
        result = read_table(path, replace(options, sample_over_max_rows=True))
    except TableError as error:
        if str(error).startswith(_TOO_LARGE):
            return None
        raise
    return None if result.rows_in_file > options.max_rows else result


def predict_file(
    run: Run,
    source: str | os.PathLike[str] | TableLayout,
    out: str | os.PathLike[str],
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    keep: Sequence[str] = (),
) -> int:
    """Write the predictions of `run` for every row of a file to the CSV `out`, chunk by chunk
    (:func:`~mrta.pipelines.predictions.prediction_table`, led by the columns `keep`); returns
    the rows written.

    Memory is bounded by the chunk size. A set run predicts whole groups, whose rows may lie
    anywhere in the file: it raises ``ValueError``.
    """
    if run.sets is not None:
        raise ValueError(
            "a set run predicts whole groups, which need the table in memory: predict a file "
            "within the reading limits"
        )
    layout = as_layout(source, chunk_rows)
    run.schema.require_columns(pd.DataFrame(columns=list(layout.columns)))
    keep = checked_keep(run, keep, layout.columns, str(source))
    wanted = {*run.schema.feature_columns, *keep}
    features = [name for name in layout.columns if name in wanted]
    written = 0
    with open(out, "w", newline="", encoding="utf-8") as handle:
        for chunk in iter_chunks(layout, chunk_rows, columns=features):
            table = prediction_table(run, chunk, keep)
            write_csv(table, handle, index=False, header=written == 0)
            written += len(chunk)
    return written


def explained_rows(
    run: Run,
    source: str | os.PathLike[str] | TableLayout,
    max_rows: int,
    *,
    seed: int = 0,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> tuple[pd.DataFrame, int]:
    """The rows :func:`mrta.pipelines.explain.explain` analyses of a file (its rows with a
    target, a seeded sample of `max_rows` of them, as
    :func:`~mrta.pipelines.explain.analysed_rows` draws it from the whole table), read from the
    file; and the file's row count.

    Reads the target column, then the chosen rows: memory is bounded by the chunk size, the
    target column and the rows returned.
    """
    layout = as_layout(source, chunk_rows)
    target = run.schema.target
    if target not in layout.columns:
        raise TableError(
            f"The table lacks the target column {target!r}: upload a table that has it."
        )
    column = pd.concat(iter_chunks(layout, chunk_rows, columns=[target]))
    positions = analysed_rows(run, column, max_rows, seed).index.to_numpy()
    del column
    return read_rows(layout, positions, chunk_rows=chunk_rows), layout.rows


def file_digest(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes, read in blocks (the cache key of ``mrta explain``)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
