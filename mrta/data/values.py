"""Parsing cell values: numbers written as text, booleans, dates, and category labels.

Every parser is vectorised over a pandas Series and never raises on a bad cell: what does not
parse becomes missing. The schema decides which parser a column gets and stores its settings
(decimal mark, date format), so new data is parsed exactly as the training data was.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

# Spellings of a two-valued column, compared in lower case.
BOOLEAN_SPELLINGS = (
    frozenset({"yes", "no"}),
    frozenset({"y", "n"}),
    frozenset({"true", "false"}),
    frozenset({"t", "f"}),
    frozenset({"0", "1"}),
    frozenset({"on", "off"}),
)
# Date formats tried in order; "ISO8601" is pandas' fast parser for 2024-01-31[T12:00[:00]].
DATE_FORMATS = (
    "ISO8601",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%d.%m.%Y",
    "%d-%m-%Y",
    "%Y/%m/%d",
    "%d/%m/%Y %H:%M",
    "%m/%d/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M:%S",
    "%d %b %Y",
    "%b %d, %Y",
    "%d %B %Y",
    "%B %d, %Y",
)
# The numerical parts a date column becomes, in token order.
DATE_PARTS = ("year", "month", "weekday", "hour")
# How many values are tried against each date format before the whole column is parsed.
DATE_SAMPLE = 200

# Currency signs, percent signs, spaces (also non-breaking) and apostrophe thousands separators.
# Patterns here avoid \s, \d and \u escapes so that pandas runs them in pyarrow, not in Python.
_NUMBER_NOISE = "[ \t\u00a0\u202f$€£¥%']"
_NUMBER_PATTERNS = {
    ".": r"[+-]?(?:(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?",
    ",": r"[+-]?(?:(?:[0-9]{1,3}(?:\.[0-9]{3})+|[0-9]+)(?:,[0-9]*)?|,[0-9]+)(?:[eE][+-]?[0-9]+)?",
}
# How many values decide whether a text column holds numbers, before the whole column is parsed.
NUMBER_SAMPLE = 1000
_ACCOUNTING_NEGATIVE = r"^\((.*)\)$"
_HAS_DIGIT = re.compile(r"[0-9]")


def as_text(values: pd.Series) -> pd.Series:
    """The values as stripped strings, missing where missing or empty."""
    text = values.astype("str").str.strip()
    return text.where(text != "")


def number_text_format(text: pd.Series, min_share: float = 0.0) -> tuple[str, float]:
    """The decimal mark ("." or ",") that parses most of the non-missing `text`, and that share.

    A tie (as for "1,234", a thousands separator or a decimal comma) goes to ".". The share is
    first measured on a sample; when that is below `min_share`, the sample's share is returned.
    """
    present = text.dropna()
    if present.empty:
        return ".", 0.0
    sample = (
        present.sample(n=NUMBER_SAMPLE, random_state=0) if len(present) > NUMBER_SAMPLE else present
    )
    cleaned = _strip_number_noise(sample)
    shares = {mark: float(cleaned.str.fullmatch(p).mean()) for mark, p in _NUMBER_PATTERNS.items()}
    mark = "," if shares[","] > shares["."] else "."
    if len(sample) < len(present) and shares[mark] >= min_share:
        return mark, float(np.mean(~np.isnan(parse_number_text(present, mark))))
    return mark, shares[mark]


def parse_number_text(text: pd.Series, decimal: str) -> np.ndarray:
    """Numbers written as text ("1,234", "$12.50", "45%", "(7)") as float64; NaN where not."""
    negative = text.str.fullmatch(_ACCOUNTING_NEGATIVE).fillna(False).to_numpy(dtype=bool)
    cleaned = _strip_number_noise(text)
    valid = cleaned.str.fullmatch(_NUMBER_PATTERNS[decimal]).fillna(False)
    if decimal == ".":
        cleaned = cleaned.str.replace(",", "", regex=False)
    else:
        cleaned = cleaned.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    numbers = pd.to_numeric(cleaned.where(valid), errors="coerce").to_numpy("float64", copy=True)
    numbers[negative] *= -1
    return numbers


def _strip_number_noise(text: pd.Series) -> pd.Series:
    return text.str.replace(_ACCOUNTING_NEGATIVE, r"\1", regex=True).str.replace(
        _NUMBER_NOISE, "", regex=True
    )


def to_numbers(values: pd.Series, decimal: str | None) -> np.ndarray:
    """A column as float64, parsing text with the given decimal mark; NaN where missing."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype="float64", na_value=np.nan)
    return parse_number_text(as_text(values), decimal or ".")


def is_boolean(distinct: set[str]) -> bool:
    """Whether distinct text values are a common spelling of yes/no (in any letter case)."""
    return frozenset(value.lower() for value in distinct) in BOOLEAN_SPELLINGS


def detect_date_format(text: pd.Series, min_share: float) -> str | None:
    """The first date format that parses at least `min_share` of a sample of `text`, if any."""
    sample = text.dropna().iloc[:DATE_SAMPLE]
    if sample.empty or sample.map(lambda value: bool(_HAS_DIGIT.search(value))).mean() < min_share:
        return None
    for date_format in DATE_FORMATS:
        parsed = pd.to_datetime(sample, format=date_format, errors="coerce")
        if parsed.notna().mean() >= min_share:
            return date_format
    return None


def to_dates(values: pd.Series, date_format: str | None) -> pd.Series:
    """A column as timezone-naive datetimes (UTC where a zone was given); NaT where not a date."""
    if not pd.api.types.is_datetime64_any_dtype(values):
        values = pd.to_datetime(as_text(values), format=date_format or "ISO8601", errors="coerce")
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values


def date_part_values(dates: pd.Series, part: str) -> np.ndarray:
    """One numerical part of datetimes as float64 (weekday: Monday is 0); NaN where NaT."""
    accessor = {"year": "year", "month": "month", "weekday": "day_of_week", "hour": "hour"}[part]
    return getattr(dates.dt, accessor).to_numpy(dtype="float64", na_value=np.nan)


def to_labels(values: pd.Series) -> np.ndarray:
    """A column as category labels: an object array of str, None where missing.

    Whole numbers print without a fractional part ("3", not "3.0"), so a code column reads the
    same whether or not missing values made pandas store it as floats.
    """
    if pd.api.types.is_bool_dtype(values):
        labels = values.map({True: "True", False: "False"})
    elif pd.api.types.is_numeric_dtype(values):
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        whole = np.isfinite(numbers) & (numbers == np.round(numbers)) & (np.abs(numbers) < 2**53)
        texts = np.where(whole, numbers, 0).astype("int64").astype(str).astype(object)
        texts[~whole] = numbers[~whole].astype(str)
        texts[np.isnan(numbers)] = None
        return texts
    elif pd.api.types.is_datetime64_any_dtype(values):
        labels = values.astype("str")
        labels = labels.where(values.notna())
    else:
        labels = as_text(values)
    return labels.to_numpy(dtype=object, na_value=None)
