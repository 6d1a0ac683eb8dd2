"""How table values and tokens are named in the views: a token per column, values as short text."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from mrta.data.schema import TableSchema


# -- row labels ------------------------------------------------------------------------------
def token_frame(schema: TableSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """The raw feature values of ``frame`` with one column per token, named by token.

    Numerical tokens are float64 (NaN where missing; a date column gives one column per part),
    categorical tokens their labels as strings (None where missing): what the cohorts and row
    labels are made from.
    """
    features = schema.features(frame)
    columns: dict[str, object] = dict(
        zip(schema.numerical_tokens, features.numerical.T, strict=True)
    )
    columns.update(zip(schema.categorical_tokens, features.categorical.T, strict=True))
    return pd.DataFrame(columns, index=frame.index)


def format_value(value: object) -> str:
    """A raw cell for a label: ``52,000``, ``0.1235``, ``north``; ``missing`` for NaN/None."""
    if value is None or pd.isna(value):  # type: ignore[arg-type]
        return "missing"
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        return str(value)
    number = float(value)
    if not math.isfinite(number):
        return str(number)
    if number == int(number) and abs(number) < 1e15:
        return f"{int(number):,}"
    magnitude = math.floor(math.log10(abs(number)))
    if not -4 <= magnitude < 15:
        return f"{number:.3g}"
    text = f"{number:,.{max(0, 3 - magnitude)}f}"  # four significant digits, never scientific
    return text.rstrip("0").rstrip(".") if "." in text else text


def value_labels(row: pd.Series, names: Sequence[str]) -> list[str]:
    """``name=value`` for each token name found in ``row`` (a raw row); the bare name else."""
    return [f"{name}={format_value(row[name])}" if name in row.index else name for name in names]
