"""Seeded train / validation / test splits, stratified for classification, saved as JSON.

Indices are row positions in the table as read (0 is the first data row); rows without a
target value are in no split. With a separate test file, the test indices are positions in
that file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mrta.errors import TableError
from mrta.schema import TableSchema, Task


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
