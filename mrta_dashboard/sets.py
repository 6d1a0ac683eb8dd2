"""Group mode (one prediction per group of rows) as the pages share it: a guess of the key
column, the check of a grouping before training, and one set's maps, computed once a session.

The grouping itself, the sets and their attention are :mod:`mrta.data.sets` and
:mod:`mrta.analysis.sets`; this module only counts and caches for the pages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from mrta.analysis.sets import SetMaps
from mrta.pipelines.explain_sets import set_maps
from mrta.data import values
from mrta.data.schema import Kind, TableSchema
from mrta.data.sets import SetOptions, group_targets
from mrta.errors import TableError

#: Names that say "identifier": ``portfolio_id``, ``PatientID``, ``customer key``, ``id_x``.
ID_NAME = re.compile(r"(^|[_\s.-])(id|key|code)$|^id([_\s.-]|$)|[a-z]ID$", re.IGNORECASE)
#: Groups a key needs to be guessed without an identifier's look (a few levels are categories).
MIN_GUESSED_GROUPS = 20
#: One set's maps kept per session at most (a set of 1,000 rows weighs about 128 MB of maps).
KEPT_MAPS = 4


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
        """One paragraph, in Markdown."""
        text = (
            f"**{self.groups:,} groups** of {group_by!r}, one example each: "
            f"{self.smallest:,} to {self.largest:,} rows (median {self.median:,.0f})."
        )
        if self.cut:
            text += (
                f" {self.cut:,} group(s) have more than {self.max_set_size:,} rows: each keeps "
                f"a random {self.max_set_size:,} of them (seeded by the training seed)."
            )
        else:
            text += f" No group has more than {self.max_set_size:,} rows: every row is used."
        if self.without_key:
            text += f" {self.without_key:,} row(s) have no {group_by!r} and are left out."
        if self.without_target:
            text += f" {self.without_target:,} group(s) have no target value and are left out."
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


def cached_maps(run, key: str) -> SetMaps | None:
    """The maps of the set `key` when this session already recorded them, else ``None``."""
    entry = st.session_state.get("x_set_maps", {}).get(key)
    return entry[1] if entry is not None and entry[0] is run else None


def maps_of(run, key: str) -> SetMaps:
    """The row × row maps of the set `key` of the session's run, kept for the session (the
    last :data:`KEPT_MAPS` sets). The run's own table holds the rows."""
    cache: dict = st.session_state.setdefault("x_set_maps", {})
    entry = cache.get(key)
    if entry is None or entry[0] is not run:
        cache.pop(key, None)
        while len(cache) >= KEPT_MAPS:
            cache.pop(next(iter(cache)))
        entry = cache[key] = (run, set_maps(run, run.frame, key))
    return entry[1]
