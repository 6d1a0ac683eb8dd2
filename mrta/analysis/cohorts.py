"""Cohorts: the groups of rows whose attention is summarised, each saying which rows it is of.

Cohort keys are tuples. Of every row analysed (the *whole table*): ``("all",)``; the run's
split of its own table, ``("split", "train")``, ``("split", "validation")``, ``("split",
"test")`` (rows of another table, and test rows held in a separate test file, are in none);
``("decile", "income", 3)`` (deciles 1 to 10), ``("decile", "income", None)`` (missing);
``("level", "region", "north")``, ``("level", "region", "other")``, ``("level", "region",
None)`` (missing); ``("filter", name)``.

The prediction-based cohorts: for classification ``("true", "Adelie")``, ``("pred",
"Gentoo")``, ``("correct", True)``; for regression the quintiles 1 to 5 of the target, of the
prediction and of the residual (target − prediction), in the target's units: ``("target", 1)``,
``("prediction", 2)``, ``("residual", 5)``. These and the filters are cut from the whole table
and, when the rows have a split, from the rows of each split of :attr:`CohortSpec.scopes`
(training and test by default), the split a trailing element: ``("pred", "Gentoo", "test")``,
``("correct", False, "train")``, ``("prediction", 2, "test")``, ``("filter", name, "test")``.
A split's quintiles are cut from that split's rows. Every label ends with its rows:
"predicted: Gentoo, test rows", "prediction: quintile 2 (12.3 to 15.1), training rows",
"island = north, whole table"; the split cohorts are labelled "training rows", ...

``("rest", *key)`` (:func:`complement`) is the rest of the cohort that contains ``key``
(:func:`containing`): ``("rest", "correct", False, "test")`` is the test rows not predicted
wrongly.

A :class:`CohortFamily` is one way of cutting rows into cohorts that share no row (by true class
among the test rows, by the deciles of a column, ...): :func:`cohort_family` names it,
:func:`disjoint` says when two cohorts share no row, :func:`containing` and :func:`rows_scope`
say which rows a cohort is a part of, :func:`with_split` switches a cohort to other rows,
:func:`default_cohort` picks the cohort a view opens on and :func:`rows_note` says what a view
must say when the rows have no split.
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

#: ``(rows, logits) -> (B,)`` index of each row's cohort in its family, -1 for none.
Codes = Callable[[slice, Tensor], np.ndarray]


ALL_ROWS: CohortKey = ("all",)


DEFAULT_TOP_LEVELS = 8  # levels of a categorical column with a cohort each; the rest is "other"


DECILES = 10


QUINTILES = 5  # bins of the regression target, prediction and residual: each ~20 % of its rows


OTHER = "other"


#: The run's splits, in order, and how a label names their rows.
SPLITS = ("train", "validation", "test")
SPLIT_ROWS = {"train": "training rows", "validation": "validation rows", "test": "test rows"}
WHOLE_TABLE = "whole table"


#: The splits whose rows get prediction-based cohorts (and filters) of their own by default:
#: the rows the model learned from and the held-out rows it is judged on.
SCOPES = ("train", "test")


CLASS_KINDS = ("true", "pred", "correct")
REGRESSION_KINDS = ("target", "prediction", "residual")
PREDICTION_KINDS = (*CLASS_KINDS, *REGRESSION_KINDS)


REST = "rest"


_SCOPED_KINDS = (*PREDICTION_KINDS, "filter")  # the kinds whose keys may end with a split


#: The key lengths of each kind.
_LENGTHS = {
    "all": (1,),
    "split": (2,),
    "decile": (3,),
    "level": (3,),
    **dict.fromkeys(_SCOPED_KINDS, (2, 3)),
}


# -- cohorts ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CohortSpec:
    """Which cohorts :func:`collect_attention` fills.

    Attributes:
        classes: the prediction-based cohorts: true class, predicted class, correct vs wrong
            (classification); the quintiles of ``targets``, ``predictions`` and the residual
            (regression, when they are given).
        class_labels: class names in index order; ``"0"``, ``"1"``, ... when empty.
        deciles: columns of the frame cut into deciles of their raw values.
        levels: columns of the frame cut into levels (the ``top_levels`` most frequent each).
        top_levels: levels per column with a cohort of their own; the rest are "other".
        filters: custom cohorts by name, each a bool row mask of the data's length.
        splits: each row's split, ``"train"``, ``"validation"``, ``"test"`` or ``""`` (none),
            ``(N,)``; ``None``: the rows have no split (another table than the run's): no split
            cohorts and no cohorts of a split's rows.
        scopes: the splits whose rows get the prediction-based cohorts and the filters of their
            own, besides the whole table's (needs ``splits``).
        split_cohorts: whether the splits themselves are cohorts ("training rows", ...).
        targets, predictions: regression: each row's target and prediction in the target's
            units, ``(N,)``, for the quintiles (fixed before recording, since the predictions
            come batch by batch).
    """

    classes: bool = True
    class_labels: tuple[str, ...] = ()
    deciles: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    top_levels: int = DEFAULT_TOP_LEVELS
    filters: Mapping[str, np.ndarray] = field(default_factory=dict)
    splits: np.ndarray | None = None
    scopes: tuple[str, ...] = SCOPES
    split_cohorts: bool = True
    targets: np.ndarray | None = None
    predictions: np.ndarray | None = None

    def __post_init__(self) -> None:
        unknown = [split for split in self.scopes if split not in SPLITS]
        if unknown:
            raise ValueError(f"scopes must be among {SPLITS}, got {unknown}")
        if self.splits is not None:
            found = set(np.unique(np.asarray(self.splits, dtype=str))) - {*SPLITS, ""}
            if found:
                raise ValueError(f"splits must hold {SPLITS} or '' (none), got {sorted(found)}")
        if (self.targets is None) != (self.predictions is None):
            raise ValueError("targets and predictions go together: give both or neither")

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
    codes: Codes  # (rows, logits) -> (B,) index, -1 = none


def _fixed(codes: np.ndarray) -> Codes:
    """Codes known before recording, one per row of the data."""
    return lambda rows, _logits: codes[rows]


def _of_rows(
    keys: Sequence[CohortKey],
    labels: Sequence[str],
    codes: Codes,
    split: str | None = None,
    inside: np.ndarray | None = None,
) -> CohortFamily:
    """The family over the whole table (``split`` None) or over a split's rows: its keys end
    with the split, its labels with the rows; ``inside`` (the split's rows, ``(N,)`` bool)
    leaves every other row out (-1)."""
    suffix = () if split is None else (split,)
    rows_label = WHOLE_TABLE if split is None else SPLIT_ROWS[split]
    return CohortFamily(
        [(*key, *suffix) for key in keys],
        [f"{label}, {rows_label}" for label in labels],
        codes if inside is None else _restricted(codes, inside),
    )


def _restricted(codes: Codes, inside: np.ndarray) -> Codes:
    """``codes`` for the rows ``inside`` (``(N,)`` bool), -1 for every other row."""
    return lambda rows, logits: np.where(inside[rows], codes(rows, logits), -1)


def _quantile_bins(x: np.ndarray, n: int) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """``x`` cut at its ``n``-quantiles (a bin holds the values from its lower edge up to, not
    including, its upper one; ties may leave bins empty): per value the position of its bin
    among the non-empty ones (-1 where NaN), and those bins' numbers (1 to ``n``) and ranges
    ("lo to hi", the values inside)."""
    present = ~np.isnan(x)
    codes = np.full(len(x), -1, dtype=np.int64)
    bins: list[tuple[int, str]] = []
    if present.any():
        edges = np.quantile(x[present], np.arange(1, n) / n)
        found = np.searchsorted(edges, x[present], side="right")  # 0 .. n - 1
        numbers = np.unique(found)
        for b in numbers:
            inside = x[present][found == b]
            span = f"{format_value(inside.min())} to {format_value(inside.max())}"
            bins.append((int(b) + 1, span))
        codes[present] = np.searchsorted(numbers, found)
    return codes, bins


def _decile_family(name: str, raw: pd.Series) -> CohortFamily:
    x = raw.to_numpy(dtype="float64", na_value=np.nan)
    codes, bins = _quantile_bins(x, DECILES)
    keys: list[CohortKey] = [("decile", name, b) for b, _ in bins]
    labels = [f"{name}: decile {b} ({span})" for b, span in bins]
    missing = np.isnan(x)
    if missing.any():
        codes[missing] = len(keys)
        keys.append(("decile", name, None))
        labels.append(f"{name}: missing")
    return _of_rows(keys, labels, _fixed(codes))


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
    return _of_rows(keys, labels, _fixed(codes))


def _filter_families(
    name: str, mask: np.ndarray, n_rows: int, scopes: Sequence[tuple[str, np.ndarray]]
) -> list[CohortFamily]:
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.shape != (n_rows,):
        raise ValueError(
            f"filter {name!r} must be a bool row mask of shape ({n_rows},), got {mask.dtype} "
            f"of shape {mask.shape}"
        )
    codes = _fixed(np.where(mask, 0, -1))
    return [
        _of_rows([("filter", name)], [name], codes, split, inside)
        for split, inside in [(None, None), *scopes]
    ]


def _split_family(splits: np.ndarray) -> CohortFamily:
    codes = np.full(len(splits), -1, dtype=np.int64)
    for i, split in enumerate(SPLITS):
        codes[splits == split] = i
    return CohortFamily(
        [("split", split) for split in SPLITS], [SPLIT_ROWS[s] for s in SPLITS], _fixed(codes)
    )


def _scopes(spec: CohortSpec) -> list[tuple[str, np.ndarray]]:
    """The splits of ``spec.scopes`` that hold rows, each with its rows ``(N,)`` bool."""
    if spec.splits is None:
        return []
    splits = np.asarray(spec.splits, dtype=str)
    scopes = [(split, splits == split) for split in spec.scopes]
    return [(split, inside) for split, inside in scopes if inside.any()]


def class_families(
    spec: CohortSpec, task: str, n_outputs: int, target: Tensor | None
) -> list[CohortFamily]:
    """The prediction-based families, over the whole table and then over each split's rows:
    true class (with ``target``), predicted class and correct vs wrong for classification; the
    quintiles of ``spec.targets``, ``spec.predictions`` and the residual for regression."""
    if not spec.classes:
        return []
    if not Task(task).is_classification:
        return _regression_families(spec)
    if spec.targets is not None:
        raise ValueError("targets and predictions are for the cohorts of a regression model")
    n_classes = 2 if task == Task.BINARY and n_outputs == 1 else n_outputs
    names = list(spec.class_labels) or [str(i) for i in range(n_classes)]
    if len(names) != n_classes:
        raise ValueError(f"{len(names)} class labels given for a model of {n_classes} classes")

    def pred(rows: slice, logits: Tensor) -> np.ndarray:
        return predicted_class(logits, task).numpy()

    kinds: list[tuple[list[CohortKey], list[str], Codes]] = [
        ([("pred", c) for c in names], [f"predicted: {c}" for c in names], pred)
    ]
    if target is not None:
        true = target.long().numpy()
        kinds.insert(
            0, ([("true", c) for c in names], [f"true class: {c}" for c in names], _fixed(true))
        )
        kinds.append(
            (
                [("correct", True), ("correct", False)],
                ["correct predictions", "wrong predictions"],
                lambda rows, logits: (pred(rows, logits) != true[rows]).astype(np.int64),
            )
        )
    return [
        _of_rows(keys, labels, codes, split, inside)
        for split, inside in [(None, None), *_scopes(spec)]
        for keys, labels, codes in kinds
    ]


def _regression_families(spec: CohortSpec) -> list[CohortFamily]:
    if spec.targets is None or spec.predictions is None:
        return []
    targets = np.asarray(spec.targets, dtype=np.float64)
    predictions = np.asarray(spec.predictions, dtype=np.float64)
    kinds = {"target": targets, "prediction": predictions, "residual": targets - predictions}
    families = []
    for split, inside in [(None, None), *_scopes(spec)]:
        for kind, x in kinds.items():
            codes = np.full(len(x), -1, dtype=np.int64)
            part, bins = _quantile_bins(x if inside is None else x[inside], QUINTILES)
            codes[slice(None) if inside is None else inside] = part
            keys: list[CohortKey] = [(kind, b) for b, _ in bins]
            labels = [f"{kind}: quintile {b} ({span})" for b, span in bins]
            families.append(_of_rows(keys, labels, _fixed(codes), split))
    return families


def frame_families(spec: CohortSpec, frame: pd.DataFrame | None, n_rows: int) -> list[CohortFamily]:
    """The families known before recording: the splits, the filters (over the whole table and
    each split's rows), the deciles and the levels of the frame's columns."""
    for name in ("splits", "targets", "predictions"):
        given = getattr(spec, name)
        if given is not None and np.shape(given) != (n_rows,):
            raise ValueError(
                f"{name} must hold one value per row, shape ({n_rows},), got {np.shape(given)}"
            )
    families = []
    if spec.splits is not None and spec.split_cohorts:
        families.append(_split_family(np.asarray(spec.splits, dtype=str)))
    scopes = _scopes(spec)
    for name, mask in spec.filters.items():
        families += _filter_families(name, mask, n_rows, scopes)
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


# -- what a cohort is a part of --------------------------------------------------------------
def _checked(key: Sequence[str | int | bool | None]) -> CohortKey:
    """``key`` as a tuple; ``ValueError`` naming it when it is no cohort key of this module."""
    key = tuple(key)
    if key[:1] == (REST,) and key[1:] != ALL_ROWS:
        _checked(key[1:])
        return key
    kind = key[0] if key else None
    if (
        not isinstance(kind, str)
        or len(key) not in _LENGTHS.get(kind, ())
        or (kind == "split" and key[1] not in SPLITS)
        or (kind in _SCOPED_KINDS and len(key) == 3 and key[2] not in SPLITS)
    ):
        raise ValueError(f"key must be a cohort key (see mrta.analysis.cohorts), got {key!r}")
    return key


def split_of(key: CohortKey) -> str | None:
    """The split whose rows ``key`` is of (``"train"``, ``"validation"``, ``"test"``), or
    ``None`` for a cohort of the whole table."""
    key = _checked(key)
    if key[0] == REST:
        return split_of(key[1:])
    if key[0] == "split" or (key[0] in _SCOPED_KINDS and len(key) == 3):
        return str(key[-1])
    return None


def rows_scope(key: CohortKey) -> str:
    """Which rows a cohort is of, in words: ``"whole table"``, ``"training rows"``,
    ``"validation rows"`` or ``"test rows"``."""
    split = split_of(key)
    return WHOLE_TABLE if split is None else SPLIT_ROWS[split]


def containing(key: CohortKey) -> CohortKey:
    """The cohort that ``key`` is a part of: ``("split", s)`` for a cohort of split ``s``'s rows,
    :data:`ALL_ROWS` for the split cohorts and the whole table's. The rest of a cohort
    (:func:`complement`) is a part of what the cohort is. ``ValueError`` for all rows, which is
    a part of nothing else."""
    key = _checked(key)
    if key == ALL_ROWS:
        raise ValueError("key: all rows are a part of no other cohort")
    if key[0] == REST:
        return containing(key[1:])
    split = split_of(key)
    return ALL_ROWS if key[0] == "split" or split is None else ("split", split)


def complement(key: CohortKey) -> CohortKey:
    """The rest of ``key``: the rows of :func:`containing` ``(key)`` that are not in it,
    ``("rest", *key)``; the complement of a rest is the cohort itself."""
    key = _checked(key)
    if key == ALL_ROWS:
        raise ValueError("key: all rows have no rest")
    return key[1:] if key[0] == REST else (REST, *key)


def cohort_family(key: CohortKey) -> CohortKey:
    """The family of ``key``: cohorts of one family never share a row. ``("pred",)`` for the
    whole table's predicted classes and ``("pred", "test")`` for the test rows' (likewise the
    other prediction-based kinds), ``("split",)``, ``("decile", column)``, ``("level",
    column)``; all rows, a filter (over any rows) and a rest are each a family of their own."""
    key = _checked(key)
    kind = key[0]
    if kind in ("all", "filter", REST):
        return key
    if kind == "split":
        return ("split",)
    if kind in ("decile", "level"):
        return key[:2]
    return (kind, *key[2:])


def disjoint(a: CohortKey, b: CohortKey) -> bool:
    """Whether two cohorts can share no row: they differ and are of one family (see
    :func:`cohort_family`), or one is the other's :func:`complement`, or they are of the rows of
    two different splits, or they are two classes of one kind (true class, predicted class,
    correct or wrong) of any rows. ``False`` for any other pair, even when their rows happen not
    to meet."""
    a, b = _checked(a), _checked(b)
    if a == b:
        return False
    if cohort_family(a) == cohort_family(b) or (REST, *a) == b or (REST, *b) == a:
        return True
    if a[0] == b[0] and a[0] in CLASS_KINDS and a[1] != b[1]:
        return True
    split_a, split_b = split_of(a), split_of(b)
    return split_a is not None and split_b is not None and split_a != split_b


def with_split(key: CohortKey, split: str | None) -> CohortKey:
    """The same cohort over other rows: a prediction-based cohort or a filter of the whole table
    (``split`` None) or of a split's rows (a split's quintiles are its own: quintile 2 of the
    test rows is another range than the whole table's); all rows and a split cohort become the
    split's rows (``split`` None: all rows). ``ValueError`` for the deciles, the levels and the
    rests, which are of the whole table only."""
    key = _checked(key)
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    if key == ALL_ROWS or key[0] == "split":
        return ALL_ROWS if split is None else ("split", split)
    if key[0] not in _SCOPED_KINDS:
        raise ValueError(f"key {key!r} has no cohort of a split's rows")
    return key[:2] if split is None else (*key[:2], split)


def default_cohort(cohorts: Sequence[CohortKey]) -> CohortKey:
    """The cohort a view opens on among ``cohorts`` (an atlas's): the first prediction-based
    cohort of the test rows, else the first prediction-based cohort, else all rows."""
    keys = [_checked(key) for key in cohorts]
    predicted = [key for key in keys if key[0] in PREDICTION_KINDS]
    tested = [key for key in predicted if split_of(key) == "test"]
    return (tested or predicted or [ALL_ROWS])[0]


def rows_note(cohorts: Sequence[CohortKey]) -> str | None:
    """What a view of ``cohorts`` (an atlas's) must say of its rows when none of them is of the
    test rows alone; ``None`` when some are."""
    splits = {split_of(key) for key in cohorts}
    if "test" in splits:
        return None
    if splits <= {None}:
        return (
            "These rows carry no split (they are not known to be the run's own table): every "
            "cohort is of the whole table, training and test rows together."
        )
    return (
        "None of these rows is in the run's test split (its test rows may be in a separate "
        "test file): the cohorts are of the whole table and of the training rows, none of "
        "held-out rows."
    )
