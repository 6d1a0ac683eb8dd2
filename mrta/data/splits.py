"""Seeded train / validation / test splits, stratified for classification, saved as JSON.

Indices are row positions in the table as read (0 is the first data row); rows without a
target value are in no split. With a separate test file, the test indices are positions in
that file. For sets (:func:`make_group_splits`) whole groups are drawn, so that a group's rows
are all in one split.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from mrta.data import values
from mrta.data.schema import TableSchema
from mrta.errors import TableError
from mrta.task import Task


@dataclass(frozen=True)
class SplitOptions:
    """Split sizes and seed; each field's `why` metadata is the reason for its default."""

    validation_fraction: float = field(
        default=0.15,
        metadata={"why": "enough rows for early stopping to see a real trend, most left to train"},
    )
    test_fraction: float = field(
        default=0.15,
        metadata={"why": "the same size as validation: a held-out score of comparable noise"},
    )
    seed: int = field(default=0, metadata={"why": "the same seed gives the same split"})
    min_rows: int = field(
        default=10,
        metadata={"why": "fewer rows cannot fill a training, a validation and a test split"},
    )


@dataclass(frozen=True)
class Splits:
    """Row indices of each split (sorted), and how they were drawn."""

    train: tuple[int, ...]
    validation: tuple[int, ...]
    test: tuple[int, ...]
    seed: int
    stratified: bool
    separate_test_file: bool = False
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "train": list(self.train),
            "validation": list(self.validation),
            "test": list(self.test),
            "seed": self.seed,
            "stratified": self.stratified,
            "separate_test_file": self.separate_test_file,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Splits:
        """Inverse of `to_dict`."""
        return cls(
            train=tuple(data["train"]),
            validation=tuple(data["validation"]),
            test=tuple(data["test"]),
            seed=data["seed"],
            stratified=data["stratified"],
            separate_test_file=data["separate_test_file"],
            notes=tuple(data["notes"]),
        )


def make_splits(
    frame: pd.DataFrame,
    schema: TableSchema,
    options: SplitOptions | None = None,
    test_frame: pd.DataFrame | None = None,
) -> Splits:
    """Split the rows of `frame` that have a target; with `test_frame`, it is the test split.

    Classification splits keep each class's share in every split (a class too small to reach
    every split stays in training). Raises `TableError` when too few rows have a target.
    """
    options = options or SplitOptions()
    if not (
        0 <= options.test_fraction < 1
        and 0 < options.validation_fraction < 1
        and options.test_fraction + options.validation_fraction < 1
    ):
        raise ValueError(
            "validation_fraction must be in (0, 1), test_fraction in [0, 1) and their sum "
            f"below 1, not {options.validation_fraction} and {options.test_fraction}"
        )
    classification = schema.task is not Task.REGRESSION
    rows, classes = _rows_with_target(frame, schema, classification)
    if len(rows) < options.min_rows:
        raise TableError(
            f"Only {len(rows):,} row(s) have a target value; at least {options.min_rows} are "
            "needed to train and evaluate: use a larger table."
        )
    notes = []
    test_fraction = 0.0 if test_frame is not None else options.test_fraction
    rng = np.random.default_rng(options.seed)
    groups = [rows[classes == c] for c in np.unique(classes)] if classification else [rows]
    sizes = np.array([len(group) for group in groups])
    n_test = _allocate(sizes, round(len(rows) * test_fraction), reserve=np.ones_like(sizes))
    n_validation = _allocate(
        sizes, round(len(rows) * options.validation_fraction), reserve=n_test + 1
    )
    train, validation, test = [], [], []
    for group, k_test, k_validation in zip(groups, n_test, n_validation, strict=True):
        shuffled = rng.permutation(group)
        test.append(shuffled[:k_test])
        validation.append(shuffled[k_test : k_test + k_validation])
        train.append(shuffled[k_test + k_validation :])
    if test_frame is not None:
        schema.require_columns(test_frame)
        test_rows, _ = _rows_with_target(test_frame, schema, classification)
        test = [test_rows]
        if len(test_rows) < len(test_frame):
            notes.append(
                f"{len(test_frame) - len(test_rows):,} row(s) of the test file have no target "
                "value and are left out."
            )
        if len(test_rows) == 0:
            raise TableError("No row of the test file has a target value: check the test file.")
    return Splits(
        train=_sorted(train),
        validation=_sorted(validation),
        test=_sorted(test),
        seed=options.seed,
        stratified=classification,
        separate_test_file=test_frame is not None,
        notes=tuple(notes),
    )


def make_group_splits(
    frame: pd.DataFrame,
    schema: TableSchema,
    group_by: str,
    options: SplitOptions | None = None,
    test_frame: pd.DataFrame | None = None,
) -> Splits:
    """Split whole groups of `group_by`: every row of a group goes to the group's split.

    Groups are drawn as :func:`make_splits` draws rows (seeded, stratified by the group's class
    for classification), each represented by its first row with a target; `options.min_rows`
    counts groups. Rows without a group key, and groups without a target, are in no split.
    With `test_frame`, the test split is its rows that have a group key.
    Raises `TableError` when too few groups have a target.
    """
    options = options or SplitOptions()
    codes = _group_codes(frame, group_by)  # (N,) -1 without a key
    classification = schema.task is not Task.REGRESSION
    rows, _ = _rows_with_target(frame, schema, classification)
    rows = rows[codes[rows] >= 0]
    first = rows[np.unique(codes[rows], return_index=True)[1]]  # (G,) a row per group
    if len(first) < options.min_rows:
        raise TableError(
            f"Only {len(first):,} group(s) of {group_by!r} have a target value; at least "
            f"{options.min_rows} are needed to train and evaluate: use a table with more groups."
        )
    if test_frame is not None:
        options = replace(options, test_fraction=0.0)
    drawn = make_splits(frame.iloc[first], schema, options)
    parts = []
    for split in (drawn.train, drawn.validation, drawn.test):
        groups = codes[first[list(split)]]
        parts.append(_sorted([np.flatnonzero(np.isin(codes, groups))]) if len(groups) else ())
    notes = [
        f"Split by {group_by!r}: {len(drawn.train):,} groups to train, "
        f"{len(drawn.validation):,} to validate and "
        + (
            "the test file's groups to test."
            if test_frame is not None
            else f"{len(drawn.test):,} to test; a group's rows stay together."
        )
    ]
    if test_frame is not None:
        schema.require_columns(test_frame)
        if group_by not in test_frame.columns:
            raise TableError(f"The test file has no column {group_by!r} to group its rows by.")
        test_codes = _group_codes(test_frame, group_by)
        if not (test_codes >= 0).any():
            raise TableError(f"No row of the test file has a value in {group_by!r}.")
        parts[2] = tuple(int(i) for i in np.flatnonzero(test_codes >= 0))
    return Splits(
        train=parts[0],
        validation=parts[1],
        test=parts[2],
        seed=options.seed,
        stratified=classification,
        separate_test_file=test_frame is not None,
        notes=tuple(notes),
    )


def _group_codes(frame: pd.DataFrame, group_by: str) -> np.ndarray:
    """Each row's group as a code (-1 for a row without a key). Shape: ``(N,)`` int64."""
    labels = pd.Series(values.to_labels(frame[group_by]), dtype=object)
    return pd.factorize(labels, sort=False)[0].astype(np.int64)


def _rows_with_target(
    frame: pd.DataFrame, schema: TableSchema, classification: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the rows that have a target value, and their class (0 for regression)."""
    y = schema.encode_target(frame)
    has_target = y >= 0 if classification else ~np.isnan(y)
    rows = np.flatnonzero(has_target)
    classes = y[rows] if classification else np.zeros(len(rows), dtype=np.int64)
    return rows, classes


def _allocate(sizes: np.ndarray, total: int, reserve: np.ndarray) -> np.ndarray:
    """Split `total` over groups in proportion to `sizes` (largest remainders first), leaving
    each group at least `reserve` members for the other splits."""
    room = np.maximum(sizes - reserve, 0)
    exact = sizes * total / max(sizes.sum(), 1)
    counts = np.minimum(np.floor(exact).astype(np.int64), room)
    order = np.argsort(-(exact - np.floor(exact)), kind="stable")
    while counts.sum() < total and (counts < room).any():
        for g in order:
            if counts.sum() < total and counts[g] < room[g]:
                counts[g] += 1
    return counts


def _sorted(parts: list[np.ndarray]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.sort(np.concatenate(parts)))
