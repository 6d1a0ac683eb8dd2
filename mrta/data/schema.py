"""The table's schema: each column's role (numerical, categorical, target, ignored) and why.

`infer_schema` looks at a DataFrame as read from a CSV and decides, column by column, what the
model will see, with a one-line reason the dashboard shows. Every decision can be overridden.
The schema also knows the target and the task, and turns any table with the same columns into
the arrays the preprocessor fits on: numbers as float64, categories as labels (str or None).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from mrta.data import values
from mrta.errors import TableError
from mrta.streams import present_streams
from mrta.task import Task


class Role(StrEnum):
    """What the model does with a column."""

    NUMERICAL = "numerical"
    CATEGORICAL = "categorical"
    TARGET = "target"
    IGNORED = "ignored"


class Kind(StrEnum):
    """What a column was detected to hold (the reason's first word, for grouping and tests)."""

    NUMBER = "number"
    NUMBER_TEXT = "number_text"
    MIXED = "mixed"
    INTEGER_CODES = "integer_codes"
    BOOLEAN = "boolean"
    TEXT = "text"
    DATE = "date"
    IDENTIFIER = "identifier"
    CONSTANT = "constant"
    EMPTY = "empty"
    FREE_TEXT = "free_text"


@dataclass(frozen=True)
class SchemaOptions:
    """Thresholds of the inference; each field's `why` metadata is the reason for its default."""

    low_cardinality_integers: int = field(
        default=10,
        metadata={"why": "whole numbers with this few values are codes or ratings: categories"},
    )
    number_text_min_share: float = field(
        default=0.5,
        metadata={
            "why": "a column that is mostly numbers is numerical; its words become missing "
            "values, which the missing-indicator keeps"
        },
    )
    free_text_distinct_share: float = field(
        default=0.5,
        metadata={
            "why": "text with more distinct values than half its rows is names or comments: "
            "most values would be seen once"
        },
    )
    identifier_distinct_share: float = field(
        default=0.5,
        metadata={"why": "a column named like an id that is mostly distinct identifies rows"},
    )
    identifier_max_levels: int = field(
        default=100,
        metadata={
            "why": "an id-named column with more values names entities (customers, portfolios) "
            "that a model would memorise"
        },
    )
    min_rows_for_cardinality: int = field(
        default=20,
        metadata={"why": "in a smaller table nearly every column looks unique"},
    )
    date_min_share: float = field(
        default=0.95,
        metadata={"why": "a column is dates only if nearly all its values parse in one format"},
    )
    dates: str = field(
        default="parts",
        metadata={
            "why": "'parts': year, month, weekday (and hour) carry trend and season; "
            "'ignore' drops dates"
        },
    )
    max_classes: int = field(
        default=100,
        metadata={"why": "a target with more labels is likely an identifier or a number"},
    )


@dataclass(frozen=True)
class ColumnSpec:
    """One column's role, what it holds, why, and how to parse it."""

    name: str
    role: Role
    kind: Kind
    reason: str
    tokens: tuple[str, ...] = ()  # the token names it feeds the model (date parts: several)
    decimal: str | None = None  # decimal mark of numbers written as text
    date_format: str | None = None
    date_parts: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "name": self.name,
            "role": self.role.value,
            "kind": self.kind.value,
            "reason": self.reason,
            "tokens": list(self.tokens),
            "decimal": self.decimal,
            "date_format": self.date_format,
            "date_parts": list(self.date_parts),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSpec:
        """Inverse of `to_dict`."""
        return cls(
            name=data["name"],
            role=Role(data["role"]),
            kind=Kind(data["kind"]),
            reason=data["reason"],
            tokens=tuple(data["tokens"]),
            decimal=data["decimal"],
            date_format=data["date_format"],
            date_parts=tuple(data["date_parts"]),
        )


@dataclass(frozen=True, eq=False)
class FeatureArrays:
    """A table's features as the preprocessor takes them, one column per token."""

    numerical: np.ndarray  # (rows, n_numerical) float64, NaN where missing
    categorical: np.ndarray  # (rows, n_categorical) object: str labels, None where missing


@dataclass(frozen=True)
class TableSchema:
    """Every column's spec (in table order), the target and the task."""

    columns: tuple[ColumnSpec, ...]
    target: str | None = None
    task: Task | None = None
    class_labels: tuple[str, ...] = ()  # classification only, in the original spelling
    notes: tuple[str, ...] = ()

    def column(self, name: str) -> ColumnSpec:
        """The spec of the column called `name`."""
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def _with_role(self, role: Role) -> tuple[ColumnSpec, ...]:
        return tuple(spec for spec in self.columns if spec.role is role)

    @property
    def numerical_columns(self) -> tuple[str, ...]:
        """Source columns of the numerical stream."""
        return tuple(spec.name for spec in self._with_role(Role.NUMERICAL))

    @property
    def categorical_columns(self) -> tuple[str, ...]:
        """Source columns of the categorical stream."""
        return tuple(spec.name for spec in self._with_role(Role.CATEGORICAL))

    @property
    def numerical_tokens(self) -> tuple[str, ...]:
        """Token names of the numerical stream (a date column gives one per part)."""
        return tuple(token for spec in self._with_role(Role.NUMERICAL) for token in spec.tokens)

    @property
    def categorical_tokens(self) -> tuple[str, ...]:
        """Token names of the categorical stream."""
        return tuple(token for spec in self._with_role(Role.CATEGORICAL) for token in spec.tokens)

    @property
    def streams(self) -> tuple[str, ...]:
        """Which of the streams "numerical" and "categorical" have at least one token."""
        return present_streams(self.numerical_tokens, self.categorical_tokens)

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """Source columns the model reads, in table order."""
        return tuple(
            spec.name for spec in self.columns if spec.role in (Role.NUMERICAL, Role.CATEGORICAL)
        )

    def require_columns(self, frame: pd.DataFrame) -> None:
        """Raise `TableError` naming the feature columns that `frame` lacks."""
        missing = [name for name in self.feature_columns if name not in frame.columns]
        if missing:
            listed = ", ".join(repr(name) for name in missing)
            raise TableError(
                f"The table lacks the column(s) {listed} that the model was built on: "
                "upload a table with the same columns."
            )

    def features(self, frame: pd.DataFrame) -> FeatureArrays:
        """The feature columns of `frame` parsed as the schema says, one column per token."""
        self.require_columns(frame)
        numerical = []
        for spec in self._with_role(Role.NUMERICAL):
            if spec.kind is Kind.DATE:
                dates = values.to_dates(frame[spec.name], spec.date_format)
                numerical.extend(values.date_part_values(dates, part) for part in spec.date_parts)
            else:
                numerical.append(values.to_numbers(frame[spec.name], spec.decimal))
        categorical = [values.to_labels(frame[name]) for name in self.categorical_columns]
        rows = len(frame)
        return FeatureArrays(
            numerical=np.column_stack(numerical) if numerical else np.empty((rows, 0)),
            categorical=(
                np.column_stack(categorical) if categorical else np.empty((rows, 0), dtype=object)
            ),
        )

    def encode_target(self, frame: pd.DataFrame) -> np.ndarray:
        """The target of each row: the class index (int64, -1 where missing) or value (NaN).

        Raises `TableError` when the target column is absent or holds labels the schema
        does not know.
        """
        if self.target is None:
            raise TableError("No target was chosen: pick the column to predict.")
        if self.target not in frame.columns:
            raise TableError(
                f"The table lacks the target column {self.target!r}: upload a table that has it."
            )
        if self.task is Task.REGRESSION:
            return values.to_numbers(frame[self.target], self.column(self.target).decimal)
        labels = values.to_labels(frame[self.target])
        index = {label: i for i, label in enumerate(self.class_labels)}
        codes = np.fromiter((index.get(label, -2) for label in labels), np.int64, len(labels))
        codes[pd.isna(labels)] = -1
        unknown = sorted(set(labels[codes == -2]))
        if unknown:
            listed = ", ".join(repr(label) for label in unknown[:5])
            raise TableError(
                f"The target {self.target!r} holds label(s) the model does not know ({listed}): "
                f"its classes are {', '.join(map(repr, self.class_labels))}."
            )
        return codes

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "columns": [spec.to_dict() for spec in self.columns],
            "target": self.target,
            "task": self.task.value if self.task else None,
            "class_labels": list(self.class_labels),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableSchema:
        """Inverse of `to_dict`."""
        return cls(
            columns=tuple(ColumnSpec.from_dict(spec) for spec in data["columns"]),
            target=data["target"],
            task=Task(data["task"]) if data["task"] else None,
            class_labels=tuple(data["class_labels"]),
            notes=tuple(data["notes"]),
        )


def infer_schema(
    frame: pd.DataFrame,
    target: str | None = None,
    *,
    task: Task | str | None = None,
    roles: Mapping[str, Role | str] | None = None,
    options: SchemaOptions | None = None,
) -> TableSchema:
    """Decide every column's role (overridden by `roles`), the target's task and its classes.

    Raises `TableError` for an unknown column name, an impossible override or task, a target
    that cannot be learned (one class, a constant) and a table with no usable feature.
    """
    options = options or SchemaOptions()
    if options.dates not in ("parts", "ignore"):
        raise ValueError(f"dates must be 'parts' or 'ignore', not {options.dates!r}")
    roles = {name: Role(role) for name, role in (roles or {}).items()}
    for name in [*roles, *([target] if target is not None else [])]:
        if name not in frame.columns:
            raise TableError(f"There is no column named {name!r}{_did_you_mean(name, frame)}.")
    if Role.TARGET in roles.values():
        raise TableError(
            "A column becomes the target by being chosen as the target, not through its role: "
            "choose it as the target."
        )
    if task is not None and target is None:
        raise TableError("A task needs a target: choose the column to predict first.")
    notes: list[str] = []
    specs = []
    task_info: tuple[Task | None, tuple[str, ...]] = (None, ())
    for position, name in enumerate(frame.columns):
        if name == target:
            spec, inferred_task, labels, target_notes = _infer_target(
                frame[name], name, Task(task) if task else None, options
            )
            task_info = (inferred_task, labels)
            notes.extend(target_notes)
        else:
            spec = _infer_column(frame[name], name, position, options)
            if name in roles:
                spec = _override(spec, roles[name], frame[name])
            notes.extend(_column_notes(spec))
        specs.append(spec)
    ignored = [spec for spec in specs if spec.role is Role.IGNORED]
    if ignored:
        listed = ", ".join(repr(spec.name) for spec in ignored)
        notes.append(f"Ignored column(s), each for the reason given with it: {listed}.")
    schema = TableSchema(
        columns=tuple(specs),
        target=target,
        task=task_info[0],
        class_labels=task_info[1],
        notes=tuple(notes),
    )
    if not schema.streams:
        raise TableError(
            "No column is left to learn from (all are ignored or the target): "
            "set at least one column's role to numerical or categorical."
        )
    return schema


def _did_you_mean(name: str, frame: pd.DataFrame) -> str:
    close = difflib.get_close_matches(name, [str(column) for column in frame.columns], n=1)
    return f": did you mean {close[0]!r}?" if close else ": check the spelling"


# Whole names that mark a row identifier (compared case-insensitively).
_ID_NAMES = re.compile(
    r"(?i)(?:ids?|index|idx|key|uuid|guid|row|rowid|row[ _.]?ids?|row[ _.]?names?"
    r"|row[ _.]?num(?:ber)?|record[ _.]?id|obs)"
)
# Name endings that mark one: "customer_id", "order id", "PassengerId", "CustomerID".
_ID_SUFFIX = re.compile(r"(?:^|[_\s.\-])(?:id|ID|Id)$|[a-z0-9](?:Id|ID)$")


def _looks_like_id_name(name: str, position: int) -> bool:
    leading_unnamed = position == 0 and name.startswith("Unnamed: ")
    return leading_unnamed or bool(_ID_NAMES.fullmatch(name) or _ID_SUFFIX.search(name))


def _quote(value: object) -> str:
    text = str(value)
    return repr(text if len(text) <= 30 else text[:27] + "...")


def _infer_column(
    series: pd.Series, name: str, position: int, options: SchemaOptions
) -> ColumnSpec:
    """The automatic decision for one feature column."""
    is_text = not (
        pd.api.types.is_numeric_dtype(series)
        or pd.api.types.is_bool_dtype(series)
        or pd.api.types.is_datetime64_any_dtype(series)
    )
    present = values.as_text(series).dropna() if is_text else series.dropna()
    n_present = len(present)

    def spec(role: Role, kind: Kind, reason: str, decimal: str | None = None) -> ColumnSpec:
        tokens = (name,) if role in (Role.NUMERICAL, Role.CATEGORICAL) else ()
        return ColumnSpec(name, role, kind, reason, tokens, decimal=decimal)

    if n_present == 0:
        return spec(Role.IGNORED, Kind.EMPTY, "empty: every value is missing")
    n_distinct = present.nunique()
    distinct_share = n_distinct / n_present
    many_rows = n_present >= options.min_rows_for_cardinality
    if n_distinct == 1:
        value = _quote(present.iloc[0])
        if n_present == len(series):
            return spec(Role.IGNORED, Kind.CONSTANT, f"constant: {value} in every row")
        return spec(
            Role.CATEGORICAL,
            Kind.BOOLEAN,
            f"one value ({value}) or missing: a flag",
        )
    if _looks_like_id_name(name, position) and (
        distinct_share > options.identifier_distinct_share
        or n_distinct > options.identifier_max_levels
    ):
        return spec(
            Role.IGNORED,
            Kind.IDENTIFIER,
            f"an identifier: named like one, with {n_distinct:,} distinct values in "
            f"{n_present:,} rows",
        )
    if pd.api.types.is_datetime64_any_dtype(series):
        return _date_spec(name, values.to_dates(series, None), "ISO8601", present, options)
    if not is_text:
        return spec(*_number_decision(series, present, n_distinct, many_rows, options))
    # a yes/no column has two words, at most in a few letter cases
    if n_distinct <= 8 and values.is_boolean(set(present.unique())):
        shown = " / ".join(_quote(v) for v in sorted(present.unique()))
        return spec(Role.CATEGORICAL, Kind.BOOLEAN, f"yes/no values ({shown}): categories")
    leading_zeros = present.str.fullmatch(r"0[0-9]+").any()
    if not leading_zeros:
        decision = _number_text_decision(present, n_distinct, options)
        if decision is not None:
            return spec(*decision)
    date_format = values.detect_date_format(present, options.date_min_share)
    if date_format is not None:
        dates = values.to_dates(series, date_format)
        return _date_spec(name, dates, date_format, present, options)
    # unique values mostly without spaces are codes; with spaces they are free text
    unique = many_rows and n_distinct == n_present
    if unique and present.str.contains(" ", regex=False).mean() <= 0.5:
        reason = "an identifier: a different value in each row"
        return spec(Role.IGNORED, Kind.IDENTIFIER, reason)
    if many_rows and distinct_share > options.free_text_distinct_share:
        return spec(
            Role.IGNORED,
            Kind.FREE_TEXT,
            f"free text: {n_distinct:,} distinct values in {n_present:,} rows, "
            "too many to learn as categories",
        )
    what = "codes with leading zeros" if leading_zeros else "text"
    return spec(
        Role.CATEGORICAL, Kind.TEXT, f"{what} with {n_distinct:,} distinct values: categories"
    )


def _number_text_decision(
    present: pd.Series, n_distinct: int, options: SchemaOptions
) -> tuple[Role, Kind, str, str] | None:
    """Role, kind, reason and decimal mark for text that is mostly numbers; None if it is not."""
    decimal, share = values.number_text_format(present, options.number_text_min_share)
    if share < options.number_text_min_share:
        return None
    numbers = values.parse_number_text(present, decimal)
    distinct_numbers = np.unique(numbers[~np.isnan(numbers)])
    whole = bool(np.all(distinct_numbers == np.round(distinct_numbers)))
    plain = present.str.fullmatch(r"[+-]?[0-9]+").all()
    if whole and len(distinct_numbers) <= options.low_cardinality_integers and (plain or share < 1):
        what = "numbers mixed with text" if share < 1 else "whole numbers"
        reason = f"{what} with only {n_distinct} distinct values (codes or ratings): categories"
        return Role.CATEGORICAL, Kind.MIXED if share < 1 else Kind.INTEGER_CODES, reason, decimal
    if share == 1:
        styled = present[~present.str.fullmatch(r"[+-]?[0-9]+(\.[0-9]*)?")]
        example = _quote((styled if len(styled) else present).iloc[0])
        reason = f"numbers written as text (like {example}): parsed as numbers"
        return Role.NUMERICAL, Kind.NUMBER_TEXT, reason, decimal
    words = ", ".join(_quote(w) for w in present[np.isnan(numbers)].value_counts().index[:2])
    reason = (
        f"mostly numbers ({share:.0%}) mixed with text (like {words}): numerical, "
        "the text counts as missing"
    )
    return Role.NUMERICAL, Kind.MIXED, reason, decimal


def _number_decision(
    series: pd.Series, present: pd.Series, n_distinct: int, many_rows: bool, options: SchemaOptions
) -> tuple[Role, Kind, str]:
    """Role, kind and reason for a column of numbers (or booleans)."""
    if pd.api.types.is_bool_dtype(series):
        return Role.CATEGORICAL, Kind.BOOLEAN, "true/false values: categories"
    numbers = present.to_numpy(dtype="float64")
    finite = numbers[np.isfinite(numbers)]
    whole = finite.size == numbers.size and bool(np.all(finite == np.round(finite)))
    if n_distinct == 2 and set(np.unique(numbers)) == {0.0, 1.0}:
        return Role.CATEGORICAL, Kind.BOOLEAN, "0/1 values: categories"
    if whole and n_distinct <= options.low_cardinality_integers:
        return (
            Role.CATEGORICAL,
            Kind.INTEGER_CODES,
            f"whole numbers with only {n_distinct} distinct values (codes or ratings): categories",
        )
    if whole and many_rows and n_distinct == len(series):
        in_order = bool(np.all(np.diff(numbers) > 0))
        a_range = numbers.max() - numbers.min() + 1 == n_distinct
        if in_order or a_range:
            how = "in increasing order" if in_order else "forming a range"
            return (
                Role.IGNORED,
                Kind.IDENTIFIER,
                f"an identifier: whole numbers, a different one in each row, {how}",
            )
    return Role.NUMERICAL, Kind.NUMBER, f"numbers ({n_distinct:,} distinct values)"


def _date_spec(
    name: str, dates: pd.Series, date_format: str, present: pd.Series, options: SchemaOptions
) -> ColumnSpec:
    parts = tuple(
        part
        for part in values.DATE_PARTS
        if pd.Series(values.date_part_values(dates, part)).nunique() > 1
    )
    first = present.iloc[0]
    if isinstance(first, pd.Timestamp) and first == first.normalize():
        first = first.date()
    example = _quote(first)
    if options.dates == "ignore" or not parts:
        why = "ignored, as dates are set to be" if parts else "ignored, all the same"
        return ColumnSpec(
            name,
            Role.IGNORED,
            Kind.DATE,
            f"dates (like {example}): {why}",
            date_format=date_format,
            date_parts=parts,
        )
    return ColumnSpec(
        name,
        Role.NUMERICAL,
        Kind.DATE,
        f"dates (like {example}): turned into numbers ({', '.join(parts)})",
        tokens=tuple(f"{name} ({part})" for part in parts),
        date_format=date_format,
        date_parts=parts,
    )


def _override(spec: ColumnSpec, role: Role, series: pd.Series) -> ColumnSpec:
    """`spec` with the role the user chose; the reason keeps what was detected."""
    if role is spec.role:
        return spec
    reason = f"{role.value}, as you chose (it looked like {spec.reason})"
    if role is Role.IGNORED:
        return replace(spec, role=role, reason=reason, tokens=())
    if role is Role.CATEGORICAL:
        return replace(
            spec, role=role, reason=reason, tokens=(spec.name,), decimal=None, date_format=None
        )
    if spec.kind is Kind.DATE:
        tokens = tuple(f"{spec.name} ({part})" for part in spec.date_parts)
        return replace(spec, role=role, reason=reason, tokens=tokens)
    decimal = None
    if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
        text = values.as_text(series).dropna()
        decimal, share = values.number_text_format(text)
        if share == 0:
            raise TableError(
                f"Column {spec.name!r} holds no numbers (its values are like "
                f"{_quote(text.iloc[0]) if len(text) else 'nothing'}), so it cannot be "
                "numerical: choose categorical or ignored."
            )
    return replace(spec, role=role, reason=reason, tokens=(spec.name,), decimal=decimal)


def _column_notes(spec: ColumnSpec) -> list[str]:
    if spec.kind is Kind.DATE and spec.role is Role.NUMERICAL:
        return [f"{spec.name!r} holds dates; the model sees its {', '.join(spec.date_parts)}."]
    if spec.kind is Kind.MIXED and spec.role is Role.NUMERICAL:
        return [f"{spec.name!r} mixes numbers and text; its text values count as missing."]
    return []


def _infer_target(
    series: pd.Series, name: str, task: Task | None, options: SchemaOptions
) -> tuple[ColumnSpec, Task, tuple[str, ...], list[str]]:
    """The target's spec, task and class labels, and notes; `TableError` if it is unusable."""
    labels = values.to_labels(series)
    has_value = ~pd.isna(labels)
    n_missing = int((~has_value).sum())
    if n_missing == len(series):
        raise TableError(f"The target {name!r} has no values: choose another target.")
    notes = []
    if n_missing:
        notes.append(f"{n_missing:,} row(s) have no value in the target {name!r} and are left out.")
    if pd.api.types.is_datetime64_any_dtype(series):
        raise TableError(f"The target {name!r} holds dates, which cannot be predicted here.")
    decimal = None
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric:
        numbers = series.to_numpy(dtype="float64", na_value=np.nan)
    else:
        text = values.as_text(series)
        decimal, share = values.number_text_format(text.dropna(), min_share=1.0)
        numeric = share == 1
        numbers = values.parse_number_text(text, decimal) if numeric else None
    distinct = sorted(set(labels[has_value]))
    if len(distinct) == 1:
        if numeric:
            raise TableError(
                f"The target {name!r} has the same value ({distinct[0]}) in every row: "
                "choose another target."
            )
        raise TableError(
            f"The target {name!r} has a single class ({_quote(distinct[0])}) in every row that "
            "has a value; a classifier needs at least two: choose another target."
        )
    if task is None:
        task = _infer_task(numbers if numeric else None, len(distinct), options)
    if task is Task.REGRESSION:
        if not numeric:
            example = _quote(next(label for label in distinct if _not_number(label)))
            raise TableError(
                f"The target {name!r} holds text (like {example}), so it cannot be a regression "
                "target: choose binary or multiclass."
            )
        reason = f"the target: regression on {len(distinct):,} distinct numbers"
        spec = ColumnSpec(name, Role.TARGET, Kind.NUMBER_TEXT if decimal else Kind.NUMBER, reason)
        return replace(spec, decimal=decimal), task, (), notes
    if task is Task.BINARY and len(distinct) != 2:
        raise TableError(
            f"The target {name!r} has {len(distinct):,} classes, not two: choose multiclass."
        )
    if len(distinct) > options.max_classes:
        raise TableError(
            f"The target {name!r} has {len(distinct):,} distinct values, more than "
            f"{options.max_classes} classes: if it is a number, choose regression; "
            "otherwise choose another target."
        )
    if numeric or all(not _not_number(label) for label in distinct):
        distinct.sort(key=float)
    shown = ", ".join(_quote(label) for label in distinct[:5])
    more = f" and {len(distinct) - 5} more" if len(distinct) > 5 else ""
    reason = f"the target: {task.value} classification of {shown}{more}"
    kind = Kind.INTEGER_CODES if numeric else Kind.TEXT
    return ColumnSpec(name, Role.TARGET, kind, reason), task, tuple(distinct), notes


def _infer_task(numbers: np.ndarray | None, n_distinct: int, options: SchemaOptions) -> Task:
    if numbers is not None and n_distinct > 2:
        present = numbers[~np.isnan(numbers)]
        whole = bool(np.all(present == np.round(present)))
        if not whole or n_distinct > options.low_cardinality_integers:
            return Task.REGRESSION
    return Task.BINARY if n_distinct <= 2 else Task.MULTICLASS


def _not_number(label: str) -> bool:
    try:
        float(label)
    except ValueError:
        return True
    return False
