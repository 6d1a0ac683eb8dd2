"""Set resolution's data: a table's rows grouped by a key column into padded sets of rows.

One example is a group (a portfolio, a patient); its rows are the tokens and the label belongs to
the group (set resolution: see the README's group mode). :func:`make_sets` encodes every row with
a fitted :class:`~mrta.data.preprocessing.Preprocessor`, then gathers each group's rows into one
padded set with a key-padding mask. :func:`set_baseline_features` gives the natural alternative's
input: one row of per-group aggregates for HistGradientBoosting. Before any training,
:func:`guess_group_key` proposes a key column and :func:`preview_sets` counts the sets a grouping
makes.

The model has no positions, so the row order (``order_by``) changes what the sets show (row
labels, the first rows of a set), not what the model computes.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from mrta.data import values
from mrta.data.preprocessing import Preprocessor
from mrta.data.schema import Kind, Role, TableSchema
from mrta.errors import TableError, counted, positive_int
from mrta.task import Task

#: Rows kept per set by default: the seed's first example's size.
MAX_SET_SIZE = 1000
#: Sets per training step by default (``TrainConfig.batch_size`` counts rows otherwise): a set
#: table has few examples (1,050 training sets in ``synthetic_set.csv``), and 256 of them a
#: step would leave five steps an epoch; ``benchmarks/sets.py`` measures this default.
SET_BATCH_SIZE = 32
#: Groups named in an error message, at most.
_EXAMPLES = 3
#: Suffix of a categorical column's aggregate for the rows whose level is not among the levels.
OTHER_LEVEL = "(other)"
#: Names that say "identifier": ``portfolio_id``, ``PatientID``, ``customer key``, ``id_x``.
ID_NAME = re.compile(r"(^|[_\s.-])(id|key|code)$|^id([_\s.-]|$)|[a-z]ID$", re.IGNORECASE)
#: Groups a key needs to be guessed without an identifier's look (a few levels are categories).
MIN_GUESSED_GROUPS = 20


@dataclass(frozen=True)
class SetOptions:
    """How a table becomes sets: its group key, the rows' order within a set, the set size."""

    group_by: str  # the key column: one example per distinct value
    order_by: str | None = None  # the column that orders a set's rows (a date, a number)
    max_set_size: int = MAX_SET_SIZE  # larger groups keep a seeded random sample of rows

    def __post_init__(self) -> None:
        if not isinstance(self.group_by, str) or not self.group_by:
            raise ValueError(f"group_by must name a column, got {self.group_by!r}")
        if self.order_by == self.group_by:
            raise ValueError(f"order_by must differ from group_by ({self.group_by!r})")
        positive_int(self.max_set_size, "max_set_size")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SetOptions:
        """Inverse of `to_dict`."""
        return cls(**data)

    def make(
        self,
        frame: pd.DataFrame,
        preprocessor: Preprocessor,
        *,
        seed: int = 0,
        with_target: bool = True,
    ) -> SetBatch:
        """:func:`make_sets` with these options and the preprocessor's schema."""
        return make_sets(
            frame,
            preprocessor.schema,
            preprocessor,
            self.group_by,
            self.order_by,
            max_set_size=self.max_set_size,
            seed=seed,
            with_target=with_target,
        )


@dataclass(frozen=True, eq=False)
class SetBatch:
    """Groups of rows as padded sets: one set per group, in order of first appearance.

    ``row_index`` holds each token's row position in the frame given to :func:`make_sets`
    (``-1`` for padding), for labelling rows and showing their values.

    Shape:
        - numerical, indicators: ``(G, S, n_num)`` float32; categorical: ``(G, S, n_cat)`` int64
          (0 = missing, unseen or rare; 0 in padding too); padding is zero
        - mask: ``(G, S)`` bool, ``True`` for real rows; every set has at least one
        - row_index: ``(G, S)`` int64; target: ``(G,)`` int64 class index or float32 value,
          ``None`` without a target
    """

    numerical: torch.Tensor
    indicators: torch.Tensor
    categorical: torch.Tensor
    mask: torch.Tensor
    row_index: torch.Tensor
    target: torch.Tensor | None
    keys: tuple[str, ...]
    group_by: str
    order_by: str | None
    numerical_tokens: tuple[str, ...]
    categorical_tokens: tuple[str, ...]
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def set_sizes(self) -> torch.Tensor:
        """Real rows per set. Shape: ``(G,)`` int64."""
        return self.mask.sum(dim=1)

    @property
    def tokens_per_example(self) -> int:
        """Tokens one set gives each attention map: its padded number of rows."""
        return self.mask.shape[1]

    def model_inputs(self) -> tuple[torch.Tensor, ...]:
        """The model's positional inputs: numerical, indicators, categorical, mask."""
        return self.numerical, self.indicators, self.categorical, self.mask

    def select(self, groups: torch.Tensor | Sequence[int] | slice) -> SetBatch:
        """The sets at positions `groups`, padded only to the longest of them (a minibatch).

        Shape: ``(G,)`` -> a batch of ``(len(groups), S')`` sets, ``S' <= S``.
        """
        if isinstance(groups, slice):
            groups = range(*groups.indices(len(self)))
        index = torch.as_tensor(groups, dtype=torch.int64, device=self.mask.device)
        width = int(self.mask[index].sum(dim=1).max()) if len(index) else 0
        return replace(
            self,
            numerical=self.numerical[index, :width],
            indicators=self.indicators[index, :width],
            categorical=self.categorical[index, :width],
            mask=self.mask[index, :width],
            row_index=self.row_index[index, :width],
            target=None if self.target is None else self.target[index],
            keys=tuple(self.keys[i] for i in index.tolist()),
        )

    def to(self, device: torch.device | str) -> SetBatch:
        """The same sets on `device`."""
        return replace(
            self,
            numerical=self.numerical.to(device),
            indicators=self.indicators.to(device),
            categorical=self.categorical.to(device),
            mask=self.mask.to(device),
            row_index=self.row_index.to(device),
            target=None if self.target is None else self.target.to(device),
        )


def make_sets(
    frame: pd.DataFrame,
    schema: TableSchema,
    preprocessor: Preprocessor,
    group_by: str,
    order_by: str | None = None,
    *,
    max_set_size: int = MAX_SET_SIZE,
    seed: int = 0,
    with_target: bool = True,
) -> SetBatch:
    """Group `frame`'s rows by `group_by` into padded sets encoded by `preprocessor`.

    Rows keep their table order within a group, or follow `order_by` when given (missing values
    last). A group with more than `max_set_size` rows keeps a random `max_set_size` of them, the
    same for the same `seed`, in their order; the notes say how many groups were cut. Rows
    without a group key are left out, and so are groups without any target value; the notes
    say how many.

    The target is the group's: it must be the same on every row of a group that has a value.
    It is encoded when `with_target` and the frame has the target column.

    Raises:
        TableError (a ValueError): `group_by` or `order_by` is not a column, `group_by` is a
            feature or the target, or the target differs within some groups.

    Shape: a frame of N rows -> a :class:`SetBatch` of ``(G, S, ...)``, ``S <= max_set_size``.
    """
    positive_int(max_set_size, "max_set_size")
    _check_group_column(frame, schema, group_by)
    if order_by is not None and order_by not in frame.columns:
        raise TableError(f"There is no column named {order_by!r} to order the rows of a set by.")
    notes: list[str] = []
    labels = values.to_labels(frame[group_by])  # (N,) str or None
    has_key = np.array([label is not None for label in labels], dtype=bool)
    if not has_key.all():
        notes.append(
            f"{int((~has_key).sum()):,} row(s) have no value in {group_by!r} and are left out."
        )
    codes, keys = pd.factorize(pd.Series(labels, dtype=object), sort=False)  # (N,), (G,)

    target = None
    if with_target and schema.target is not None and schema.target in frame.columns:
        per_group = _group_targets(frame, schema, codes, keys, group_by)  # (G,)
        absent = np.isnan(per_group)
        if absent.any():
            notes.append(
                f"{int(absent.sum()):,} group(s) have no value in the target {schema.target!r} "
                "and are left out."
            )
            kept = ~absent  # (G,)
            renumber = np.cumsum(kept) - 1  # (G,) a kept group's new code
            group = np.maximum(codes, 0)
            codes = np.where((codes >= 0) & kept[group], renumber[group], -1)
            keys, per_group = keys[kept], per_group[kept]
        dtype = torch.float32 if schema.task is Task.REGRESSION else torch.int64
        target = torch.from_numpy(per_group).to(dtype)
    if len(keys) == 0:
        raise TableError(
            f"No row has a value in {group_by!r} (and in the target): there are no groups to "
            "make sets of."
        )

    rows = _ordered_rows(frame, schema, codes, order_by)  # (N',) positions, grouped
    rows, cut = _subsample(rows, codes[rows], keys, max_set_size, seed)
    if cut:
        notes.append(
            f"{cut:,} group(s) have more than {max_set_size:,} rows; each keeps a random "
            f"{max_set_size:,} of them (seed {seed})."
        )
    group_of = codes[rows]  # (N'',) non-decreasing
    starts = np.searchsorted(group_of, np.arange(len(keys)))  # (G,)
    position = np.arange(len(rows)) - starts[group_of]  # (N'',) slot within the set
    width = int(np.bincount(group_of, minlength=len(keys)).max())

    encoded = preprocessor.transform(frame.iloc[rows], with_target=False)
    shape = (len(keys), width)
    where = (torch.from_numpy(group_of), torch.from_numpy(position))
    numerical = torch.zeros(*shape, encoded.numerical.shape[1])  # (G, S, n_num)
    numerical[where] = encoded.numerical
    indicators = torch.zeros(*shape, encoded.indicators.shape[1])  # (G, S, n_num)
    indicators[where] = encoded.indicators
    categorical = torch.zeros(*shape, encoded.categorical.shape[1], dtype=torch.int64)
    categorical[where] = encoded.categorical  # (G, S, n_cat)
    mask = torch.zeros(shape, dtype=torch.bool)  # (G, S)
    mask[where] = True
    row_index = torch.full(shape, -1, dtype=torch.int64)  # (G, S)
    row_index[where] = torch.from_numpy(rows.astype(np.int64))
    return SetBatch(
        numerical=numerical,
        indicators=indicators,
        categorical=categorical,
        mask=mask,
        row_index=row_index,
        target=target,
        keys=tuple(str(key) for key in keys),
        group_by=group_by,
        order_by=order_by,
        numerical_tokens=preprocessor.numerical_tokens,
        categorical_tokens=preprocessor.categorical_tokens,
        notes=tuple(notes),
    )


def set_baseline_features(
    frame: pd.DataFrame,
    schema: TableSchema,
    group_by: str,
    *,
    levels: Sequence[Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Per-group aggregates of the feature columns: the input of the set baseline.

    Columns: ``count`` (rows in the group); for each numerical token ``"<token> mean"``,
    ``min``, ``max`` and ``std`` (population standard deviation: 0 for a single row) over the
    rows that have a value (NaN where none has); for each categorical column the share of the
    group's rows at each level, ``"<column>=<level>"``, and ``"<column>=(other)"`` for the rest
    (missing, or not among the levels).

    Args:
        levels: one sequence of levels per categorical column, for the same columns on every
            split (pass the training preprocessor's ``vocabularies``); by default the levels
            that occur in `frame`, sorted.

    Returns one row per group, indexed by the group key (str), in order of first appearance;
    rows without a key are left out. Select the sets' groups with ``.loc[sets.keys]``.

    Shape: a frame of N rows -> ``(G, 1 + 4 * n_num + sum(levels + 1))``.
    """
    _check_group_column(frame, schema, group_by)
    features = schema.features(frame)
    n_cat = features.categorical.shape[1]
    if levels is not None and len(levels) != n_cat:
        raise ValueError(
            f"levels must give one sequence of levels per categorical column, got {len(levels)} "
            f"for {n_cat} columns ({', '.join(schema.categorical_columns) or 'none'})"
        )
    keys = pd.Series(values.to_labels(frame[group_by]), dtype=object, name=group_by)
    columns: dict[str, np.ndarray | pd.Series] = {}
    numbers = np.where(np.isfinite(features.numerical), features.numerical, np.nan)
    for j, token in enumerate(schema.numerical_tokens):
        columns[token] = numbers[:, j]
    for j, column in enumerate(schema.categorical_columns):
        labels = pd.Series(features.categorical[:, j], dtype=object)
        kept = sorted(labels.dropna().unique()) if levels is None else list(levels[j])
        for level in kept:
            columns[f"{column}={level}"] = (labels == level).to_numpy(dtype=np.float64)
        columns[f"{column}={OTHER_LEVEL}"] = (~labels.isin(kept)).to_numpy(dtype=np.float64)
    table = pd.DataFrame(columns, index=frame.index).set_index(keys.set_axis(frame.index))
    grouped = table[keys.notna().to_numpy()].groupby(level=0, sort=False)
    parts = [grouped.size().rename("count").astype(np.float64)]
    for token in schema.numerical_tokens:
        stats = grouped[token].agg(["mean", "min", "max"])
        stats["std"] = grouped[token].std(ddof=0)
        parts.append(stats.add_prefix(f"{token} "))
    shares = [name for name in columns if name not in schema.numerical_tokens]
    if shares:
        parts.append(grouped[shares].mean())
    result = pd.concat(parts, axis=1)
    result.index.name = group_by
    return result


def group_targets(frame: pd.DataFrame, schema: TableSchema, group_by: str) -> pd.Series:
    """Each group's target (a class index or a value; NaN where no row of the group has one),
    indexed by the group key (str), in order of first appearance.

    Raises `TableError` where the rows of a group disagree (naming how many and a few).
    """
    _check_group_column(frame, schema, group_by)
    labels = pd.Series(values.to_labels(frame[group_by]), dtype=object)
    codes, keys = pd.factorize(labels, sort=False)
    targets = _group_targets(frame, schema, codes, keys, group_by)
    return pd.Series(targets, index=pd.Index([str(k) for k in keys], name=group_by))


def _check_group_column(frame: pd.DataFrame, schema: TableSchema, group_by: str) -> None:
    """`TableError` unless `group_by` is a column of `frame` that the model does not read."""
    if group_by not in frame.columns:
        raise TableError(f"There is no column named {group_by!r} to group the rows by.")
    if group_by == schema.target:
        raise TableError(
            f"{group_by!r} is the target, so it cannot also group the rows: choose a key column."
        )
    try:
        role = schema.column(group_by).role
    except KeyError:
        return  # a column the schema never saw is not read by the model either
    if role is not Role.IGNORED:
        raise TableError(
            f"The group key {group_by!r} is a {role.value} feature, but a set's key must not be "
            f"one (the model would learn each group's name): set its role to ignored."
        )


def _group_targets(
    frame: pd.DataFrame, schema: TableSchema, codes: np.ndarray, keys: pd.Index, group_by: str
) -> np.ndarray:
    """The target of each group (NaN where no row has one); `TableError` where rows disagree.

    Shape: codes ``(N,)`` (-1 = no key) -> ``(G,)`` float64 (a class index or a value).
    """
    y = schema.encode_target(frame).astype(np.float64)  # (N,) NaN or -1 where missing
    if schema.task is not Task.REGRESSION:
        y[y < 0] = np.nan
    rows = (codes >= 0) & ~np.isnan(y)
    per_row = pd.Series(y[rows]).groupby(codes[rows])
    distinct = per_row.nunique()
    broken = distinct.index[distinct.to_numpy() > 1]
    if len(broken):
        raw = frame[schema.target].to_numpy()[rows]
        examples = []
        for code in broken[:_EXAMPLES]:
            seen = pd.unique(pd.Series(raw[codes[rows] == code], dtype=object))
            shown = ", ".join(repr(value) for value in seen[:_EXAMPLES])
            more = ", …" if len(seen) > _EXAMPLES else ""
            examples.append(f"{keys[code]!r} ({shown}{more})")
        raise TableError(
            f"The target {schema.target!r} must be the same on every row of a group, but "
            f"{len(broken):,} of the {len(keys):,} groups of {group_by!r} have several values, "
            f"e.g. {'; '.join(examples)}: fix those rows, or group by a column whose groups "
            "share one target value."
        )
    per_group = np.full(len(keys), np.nan)
    per_group[per_row.first().index.to_numpy()] = per_row.first().to_numpy()
    return per_group


def _ordered_rows(
    frame: pd.DataFrame, schema: TableSchema, codes: np.ndarray, order_by: str | None
) -> np.ndarray:
    """Row positions with a group, grouped in group order, each group in table or `order_by`
    order (missing values last). Shape: ``(N,)`` -> ``(N',)`` int64."""
    rows = np.flatnonzero(codes >= 0)
    if order_by is None:
        return rows[np.argsort(codes[rows], kind="stable")]
    order = pd.Series(_sort_values(frame, schema, order_by)).iloc[rows]
    table = pd.DataFrame({"group": codes[rows], "order": order.to_numpy()}, index=rows)
    return table.sort_values(["group", "order"], kind="stable", na_position="last").index.to_numpy()


def _sort_values(frame: pd.DataFrame, schema: TableSchema, column: str) -> pd.Series:
    """`column` as what it holds (dates, numbers or text), so that sorting it means something."""
    series = frame[column]
    try:
        spec = schema.column(column)
    except KeyError:
        spec = None
    if spec is not None and spec.kind is Kind.DATE:
        return values.to_dates(series, spec.date_format).reset_index(drop=True)
    if pd.api.types.is_numeric_dtype(series) or (spec is not None and spec.role is Role.NUMERICAL):
        return pd.Series(values.to_numbers(series, spec.decimal if spec else None))
    return pd.Series(values.to_labels(series), dtype=object)


def _subsample(
    rows: np.ndarray, group_of: np.ndarray, keys: Sequence[object], max_set_size: int, seed: int
) -> tuple[np.ndarray, int]:
    """Keep a random `max_set_size` rows of each larger group, in their order; and how many
    groups were cut. Each group's draw is seeded by `seed` and its own key, so a group keeps
    the same rows whichever other groups the table holds.

    Shape: rows, group_of ``(N',)`` grouped -> ``(N'',)``.
    """
    sizes = np.bincount(group_of, minlength=len(keys))  # (G,)
    large = np.flatnonzero(sizes > max_set_size)
    if not len(large):
        return rows, 0
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    keep = np.ones(len(rows), dtype=bool)
    for group in large:
        key = zlib.crc32(str(keys[group]).encode())
        rng = np.random.default_rng([seed, key])
        dropped = rng.choice(sizes[group], size=sizes[group] - max_set_size, replace=False)
        keep[starts[group] + dropped] = False
    return rows[keep], len(large)


# -- choosing a grouping: the key's guess, and the sets it makes, before any training -------------
def guess_group_key(frame: pd.DataFrame, schema: TableSchema | None, target: str) -> str | None:
    """The column that most looks like a group key: its values repeat (two rows a group on
    average) and it is not a real-valued number; identifiers and names like ``*_id`` first,
    then the text column with the most groups (at least :data:`MIN_GUESSED_GROUPS`; numbers
    only when named like keys). ``None`` when no column fits."""
    best, best_rank = None, None
    for column in frame.columns:
        if column == target:
            continue
        series = frame[column]
        if pd.api.types.is_float_dtype(series) and not (series.dropna() % 1 == 0).all():
            continue
        groups = int(series.nunique(dropna=True))
        if groups < 2 or groups > series.notna().sum() / 2:
            continue
        try:
            identifier = schema is not None and schema.column(column).kind is Kind.IDENTIFIER
        except KeyError:
            identifier = False
        named = bool(ID_NAME.search(str(column)))
        numbers = pd.api.types.is_numeric_dtype(series)  # measurements, unless named as keys
        if not (identifier or named) and (numbers or groups < MIN_GUESSED_GROUPS):
            continue
        rank = (identifier, named, groups)
        if best_rank is None or rank > best_rank:
            best, best_rank = column, rank
    return best


@dataclass(frozen=True)
class SetPreview:
    """What the sets of a grouping look like, before any training."""

    groups: int  # groups with a target value: the examples
    smallest: int  # rows in the smallest group
    median: float
    largest: int
    cut: int  # groups larger than the set size, which keep a random sample of their rows
    max_set_size: int
    without_key: int  # rows without a key value, left out
    without_target: int  # groups without any target value, left out

    def describe(self, group_by: str) -> str:
        """One paragraph, in plain text."""
        text = (
            f"{counted(self.groups, 'group')} of {group_by!r}, one example each: "
            f"{self.smallest:,} to {self.largest:,} rows (median {self.median:,.0f})."
        )
        if self.cut:
            text += (
                f" {counted(self.cut, 'group')} {'has' if self.cut == 1 else 'have'} more than "
                f"{self.max_set_size:,} rows: each keeps a random {self.max_set_size:,} of them "
                "(seeded by the training seed)."
            )
        else:
            text += f" No group has more than {self.max_set_size:,} rows: every row is used."
        if self.without_key:
            text += (
                f" {counted(self.without_key, 'row')} {'has' if self.without_key == 1 else 'have'}"
                f" no {group_by!r} and {'is' if self.without_key == 1 else 'are'} left out."
            )
        if self.without_target:
            n = self.without_target
            text += (
                f" {counted(n, 'group')} {'has' if n == 1 else 'have'} no target value and "
                f"{'is' if n == 1 else 'are'} left out."
            )
        return text


def preview_sets(frame: pd.DataFrame, schema: TableSchema, options: SetOptions) -> SetPreview:
    """Count the groups `options` makes of `frame` and their sizes.

    Raises:
        TableError: the key is not a column the model leaves out, the target differs within
            some groups (the message names a few), or no group has a target value.
    """
    targets = group_targets(frame, schema, options.group_by)  # (G,) NaN: no target
    labels = pd.Series(values.to_labels(frame[options.group_by]), dtype=object)
    counts = labels.dropna().value_counts()
    kept = targets.index[targets.notna().to_numpy()]
    if not len(kept):
        raise TableError(
            f"No group of {options.group_by!r} has a value in the target {schema.target!r}: "
            "there are no examples to learn from."
        )
    sizes = counts.reindex(kept).to_numpy()
    return SetPreview(
        groups=len(kept),
        smallest=int(sizes.min()),
        median=float(pd.Series(sizes).median()),
        largest=int(sizes.max()),
        cut=int((sizes > options.max_set_size).sum()),
        max_set_size=options.max_set_size,
        without_key=int(labels.isna().sum()),
        without_target=int(len(targets) - len(kept)),
    )


def targets_of_groups(
    frame: pd.DataFrame, schema: TableSchema, group_by: str, keys: Sequence[object]
) -> tuple[np.ndarray, np.ndarray]:
    """The targets of the groups `keys` (e.g. the groups of a prediction table, in its order):
    which of them have one, and those targets.

    Shape: keys ``(K,)`` -> kept ``(K,)`` bool, targets ``(kept.sum(),)``: int64 class
    indices, or float64 values for regression.
    """
    targets = group_targets(frame, schema, group_by)  # (G,) by key, NaN: none
    y = targets.reindex([str(key) for key in keys]).to_numpy(dtype=np.float64)  # (K,)
    kept = ~np.isnan(y)
    y = y[kept]
    return kept, y if schema.task is Task.REGRESSION else y.astype(np.int64)
