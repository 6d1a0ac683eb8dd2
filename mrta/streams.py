"""The two token streams and the four attention maps between them: the names every level uses.

A model has a numerical and a categorical stream of tokens; each layer has four attention maps,
named query side first (their blocks and the reference's names: :mod:`mrta.nn.layer`). A table
with one type of column has one stream, and then only that stream's self-attention map.
"""

from __future__ import annotations

from collections.abc import Sequence

#: The streams, in the model's order.
STREAMS: tuple[str, ...] = ("numerical", "categorical")
#: The canonical map ids, query side first.
MAP_IDS: tuple[str, ...] = ("num_num", "cat_cat", "cat_num", "num_cat")
#: Human labels for the map ids, as shown on figures.
MAP_LABELS: dict[str, str] = {
    "num_num": "numerical → numerical",
    "cat_cat": "categorical → categorical",
    "cat_num": "categorical → numerical",
    "num_cat": "numerical → categorical",
}
#: ``(layer index, map id)``: one map of one layer.
MapKey = tuple[int, str]


def present_streams(
    numerical_tokens: Sequence[str], categorical_tokens: Sequence[str]
) -> tuple[str, ...]:
    """Which of the streams have at least one token."""
    return tuple(
        stream
        for stream, tokens in zip(STREAMS, (numerical_tokens, categorical_tokens), strict=True)
        if tokens
    )


def present_maps(numerical_tokens: Sequence[str], categorical_tokens: Sequence[str]) -> list[str]:
    """The maps that exist for these tokens: the cross-type maps need both streams."""
    if numerical_tokens and categorical_tokens:
        return list(MAP_IDS)
    return ["num_num"] if numerical_tokens else ["cat_cat"]
