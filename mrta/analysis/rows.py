"""One row's attention: every map of every layer for a single example, labelled with its values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
from torch import nn

from mrta.analysis.atlas import AttentionAtlas
from mrta.analysis.cohorts import CohortSpec
from mrta.analysis.collect import collect_attention
from mrta.analysis.inputs import Inputs, split_inputs
from mrta.analysis.labels import value_labels


@dataclass(frozen=True)
class RowAttention:
    """One row's maps (an atlas whose only cohort is ``("all",)``) and its value labels."""

    atlas: AttentionAtlas
    labels: Mapping[str, list[str]]  # "num"/"cat": tokens labelled with the row's raw values


def row_attention(
    model: nn.Module, data: Inputs, row: int, frame: pd.DataFrame | None = None
) -> RowAttention:
    """The maps of one row (position ``row`` of ``data``), tokens labelled with its values.

    ``frame`` holds the raw rows by token name (see :func:`token_frame`); without it the labels
    are the bare token names.
    """
    numerical, indicators, categorical, _ = split_inputs(data)
    one = slice(row, row + 1)
    atlas = collect_attention(
        model,
        (numerical[one], indicators[one], categorical[one]),
        cohorts=CohortSpec(classes=False),
    )
    names = atlas.token_names[0]
    if frame is None:
        labels = {stream: list(tokens) for stream, tokens in names.items()}
    else:
        raw = frame.iloc[row]
        labels = {stream: value_labels(raw, tokens) for stream, tokens in names.items()}
    return RowAttention(atlas, labels)
