"""Cohorts: the groups of rows whose attention is summarised.

Cohort keys are tuples: ``("all",)``, ``("true", "Adelie")``, ``("pred", "Gentoo")``,
``("correct", True)``, ``("decile", "income", 3)`` (deciles 1 to 10), ``("decile", "income",
None)`` (missing), ``("level", "region", "north")``, ``("level", "region", "other")``,
``("level", "region", None)`` (missing), ``("filter", name)``. A :class:`CohortFamily` is one
way of cutting the rows (by true class, by the deciles of a column, ...) into cohorts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from torch import Tensor

from mrta.analysis.inputs import predicted_class
from mrta.analysis.labels import format_value
from mrta.data import values
from mrta.task import Task

CohortKey = tuple[str | int | bool | None, ...]


ALL_ROWS: CohortKey = ("all",)


DEFAULT_TOP_LEVELS = 8  # levels of a categorical column with a cohort each; the rest is "other"


DECILES = 10


OTHER = "other"


# -- cohorts ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CohortSpec:
    """Which cohorts :func:`collect_attention` fills.

    Attributes:
        classes: true class, predicted class, correct vs wrong (classification only).
        class_labels: class names in index order; ``"0"``, ``"1"``, ... when empty.
        deciles: columns of the frame cut into deciles of their raw values.
        levels: columns of the frame cut into levels (the ``top_levels`` most frequent each).
        top_levels: levels per column with a cohort of their own; the rest are "other".
        filters: custom cohorts by name, each a bool row mask of the data's length.
    """

    classes: bool = True
    class_labels: tuple[str, ...] = ()
    deciles: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    top_levels: int = DEFAULT_TOP_LEVELS
    filters: Mapping[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def for_frame(
        cls, frame: pd.DataFrame, class_labels: Sequence[str] = (), **options: object
    ) -> CohortSpec:
        """Deciles for the numeric columns of ``frame``, levels for the others."""
        numeric = [
            str(name)
            for name in frame.columns
            if pd.api.types.is_numeric_dtype(frame[name])
            and not pd.api.types.is_bool_dtype(frame[name])
        ]
        others = [str(name) for name in frame.columns if str(name) not in numeric]
        return cls(
            class_labels=tuple(class_labels),
            deciles=tuple(numeric),
            levels=tuple(others),
            **options,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class CohortFamily:
    """Cohorts that each row belongs to at most one of: keys, labels and per-row codes."""

    keys: list[CohortKey]
    labels: list[str]
    codes: Callable[[slice, Tensor], np.ndarray]  # (rows, logits) -> (B,) index, -1 = none


def _decile_family(name: str, raw: pd.Series) -> CohortFamily:
    x = raw.to_numpy(dtype="float64", na_value=np.nan)
    present = ~np.isnan(x)
    codes = np.full(len(x), -1, dtype=np.int64)
    keys: list[CohortKey] = []
    labels: list[str] = []
    if present.any():
        edges = np.quantile(x[present], np.arange(1, DECILES) / DECILES)
        bins = np.searchsorted(edges, x[present], side="right")  # 0..9; ties may empty some
        for b in np.unique(bins):
            inside = x[present][bins == b]
            lo, hi = format_value(inside.min()), format_value(inside.max())
            keys.append(("decile", name, int(b) + 1))
            labels.append(f"{name}: decile {int(b) + 1} ({lo} to {hi})")
        codes[present] = np.searchsorted(np.unique(bins), bins)
    if not present.all():
        codes[~present] = len(keys)
        keys.append(("decile", name, None))
        labels.append(f"{name}: missing")
    return CohortFamily(keys, labels, lambda rows, _logits: codes[rows])


def _level_family(name: str, raw: pd.Series, top: int) -> CohortFamily:
    labels_ = pd.Series(values.to_labels(raw))
    counts = labels_.value_counts()
    order = sorted(counts.index, key=lambda level: (-counts[level], level))
    levels = order[:top]
    rest = order[top:]
    keys: list[CohortKey] = [("level", name, level) for level in levels]
    labels = [f"{name} = {level}" for level in levels]
    lookup = {level: i for i, level in enumerate(levels)}
    if rest:
        other = OTHER
        while other in lookup:  # a real level called "other" keeps its name
            other = f"({other})"
        lookup.update(dict.fromkeys(rest, len(keys)))
        keys.append(("level", name, other))
        labels.append(f"{name}: {len(rest)} other levels")
    missing = labels_.isna().to_numpy()
    codes = labels_.map(lookup).fillna(len(keys)).to_numpy(dtype=np.int64)
    if missing.any():
        keys.append(("level", name, None))
        labels.append(f"{name}: missing")
    return CohortFamily(keys, labels, lambda rows, _logits: codes[rows])


def _filter_family(name: str, mask: np.ndarray, n_rows: int) -> CohortFamily:
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.shape != (n_rows,):
        raise ValueError(
            f"filter {name!r} must be a bool row mask of shape ({n_rows},), got {mask.dtype} "
            f"of shape {mask.shape}"
        )
    codes = np.where(mask, 0, -1)
    return CohortFamily([("filter", name)], [name], lambda rows, _logits: codes[rows])


def class_families(
    spec: CohortSpec, task: str, n_outputs: int, target: Tensor | None
) -> list[CohortFamily]:
    if not spec.classes or not Task(task).is_classification:
        return []
    n_classes = 2 if task == Task.BINARY and n_outputs == 1 else n_outputs
    names = list(spec.class_labels) or [str(i) for i in range(n_classes)]
    if len(names) != n_classes:
        raise ValueError(f"{len(names)} class labels given for a model of {n_classes} classes")

    def pred(rows: slice, logits: Tensor) -> np.ndarray:
        return predicted_class(logits, task).numpy()

    families = [
        CohortFamily([("pred", c) for c in names], [f"predicted: {c}" for c in names], pred),
    ]
    if target is not None:
        true = target.long().numpy()
        families.insert(
            0,
            CohortFamily(
                [("true", c) for c in names],
                [f"true class: {c}" for c in names],
                lambda rows, _logits: true[rows],
            ),
        )
        families.append(
            CohortFamily(
                [("correct", True), ("correct", False)],
                ["correct predictions", "wrong predictions"],
                lambda rows, logits: (pred(rows, logits) != true[rows]).astype(np.int64),
            )
        )
    return families


def frame_families(spec: CohortSpec, frame: pd.DataFrame | None, n_rows: int) -> list[CohortFamily]:
    families = [_filter_family(name, mask, n_rows) for name, mask in spec.filters.items()]
    if not spec.deciles and not spec.levels:
        return families
    if frame is None:
        raise ValueError("decile and level cohorts need the raw rows: pass frame")
    absent = [name for name in (*spec.deciles, *spec.levels) if name not in frame.columns]
    if absent:
        raise ValueError(f"the frame lacks the cohort column(s) {absent}")
    families += [_decile_family(name, frame[name]) for name in spec.deciles]
    families += [_level_family(name, frame[name], spec.top_levels) for name in spec.levels]
    return families


def cohort_keys(families: Sequence[CohortFamily]) -> list[CohortKey]:
    return [key for family in families for key in family.keys]


def cohort_membership(families: Sequence[CohortFamily], rows: slice, logits: Tensor) -> np.ndarray:
    """Which cohorts each row of the batch is in. Shape: ``(1 + K, B)`` bool, row 0 all rows."""
    parts = [np.ones((1, rows.stop - rows.start), dtype=bool)]
    for family in families:
        codes = family.codes(rows, logits)
        parts.append(codes[None, :] == np.arange(len(family.keys))[:, None])
    return np.concatenate(parts)
