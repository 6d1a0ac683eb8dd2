"""The set-resolution model: rows as tokens, stacked MRTA layers with masks, a pooled head.

One example is a set of rows (set resolution: see the README's group mode). Per row, the numerical
stream's features are the row's numbers beside their missing-indicators (``2 * n_num``), and the
categorical stream's are the per-column learned embeddings of its codes, concatenated (``n_cat *
d_token``): the seed's input shapes ``(B, rows, features)``. Both streams have the same rows, so
one key-padding mask serves both. The readout pools each stream's outputs over the set's real rows,
by mean and by max, into a head per set.

Attention has no positions and cross-attention matches tokens by content, not by row, so with
the streams split this way no block can tie a row's numbers to that same row's categories
(e.g. "the amount of an *equity* position"). ``bind_rows=True`` also gives the numerical stream
each row's categorical embeddings, so that a row's numbers and categories meet in one token.
``benchmarks/sets.py`` measures both on ``sample_data/synthetic_set.csv`` (5 seeds): without
it the model ties the per-group aggregate baseline, with it the model reaches the planted
rule's accuracy.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from mrta.config import ModelConfig
from mrta.nn.layer import MultiResolutionTabularAttention
from mrta.nn.model import TaskModel


class SetAttentionModel(TaskModel):
    """Row features, a stack of masked MRTA layers, masked mean and max pooling, a task head.

    Padded rows neither give nor receive attention that reaches the output: they are zeroed
    before use (so any values there are fine), masked as keys in every attention block, and left
    out of the pooling; a set's logits do not change when padding is added.

    Args:
        config: embedding width per categorical column (``d_token``), layer width, depth, heads,
            dropout, and ``bind_rows``: also feed each row's categorical embeddings to the
            numerical stream (``2 * n_num + n_cat * d_token`` features), tying a row's numbers
            to its categories.
        task: ``"binary"``, ``"multiclass"`` or ``"regression"``.
        numerical_tokens: names of the numerical columns (tokens), in input order.
        categorical_tokens: names of the categorical columns, in input order.
        vocabulary_sizes: embedding rows per categorical column, reserved index 0 included.
        n_classes: classes of a multiclass task (at least 3); ignored otherwise.

    Shape:
        - numerical, indicators: ``(B, S, n_num)`` float32; categorical: ``(B, S, n_cat)``
          int64; mask: ``(B, S)`` bool, ``True`` for real rows, at least one per set. A stream
          without columns takes ``(B, S, 0)``.
        - output: logits ``(B, 1)`` for binary and regression, ``(B, n_classes)`` for multiclass

    Building it twice after the same ``torch.manual_seed`` gives the same initial weights.
    """

    def __init__(self, config: ModelConfig, **task: Any) -> None:
        super().__init__(config, **task)  # task, tokens, vocabularies: see TaskModel

        n_num, n_cat = len(self.numerical_tokens), len(self.categorical_tokens)
        self.tokenizer = nn.ModuleList(  # one embedding table per categorical column
            nn.Embedding(size, config.d_token) for size in self.vocabulary_sizes
        )
        num_width = 2 * n_num + (n_cat * config.d_token if config.bind_rows else 0)
        self.layers = nn.ModuleList()
        for index in range(config.num_layers):
            first = index == 0
            self.layers.append(
                MultiResolutionTabularAttention(
                    config.num_heads,
                    config.d_model,
                    config.dropout,
                    num_features=(num_width if first else config.d_model) if n_num else None,
                    cat_features=(n_cat * config.d_token if first else config.d_model)
                    if n_cat
                    else None,
                )
            )
        pooled = 2 * config.d_model * len(self.streams)  # mean and max of each stream
        self.head = nn.Sequential(
            nn.LayerNorm(pooled),
            nn.Linear(pooled, config.d_model),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.d_model, self.n_outputs),
        )

    def row_features(
        self, numerical: Tensor, indicators: Tensor, categorical: Tensor, mask: Tensor
    ) -> tuple[Tensor | None, Tensor | None]:
        """Each row's inputs to the two streams, zero in padded rows; ``None`` for an absent
        stream.

        Shape: ``(B, S, n_num)`` ×2, ``(B, S, n_cat)``, ``(B, S)`` -> ``(B, S, 2 * n_num)``
        (``2 * n_num + n_cat * d_token`` with ``bind_rows``), ``(B, S, n_cat * d_token)``.
        """
        real = mask.unsqueeze(-1)  # (B, S, 1)
        num = cat = None
        if self.numerical_tokens:
            num = torch.cat([numerical, indicators], dim=-1).masked_fill(~real, 0.0)  # (B, S, 2n)
        if self.categorical_tokens:
            codes = categorical.masked_fill(~real, 0)  # (B, S, n_cat)
            cat = torch.cat(
                [table(codes[..., j]) for j, table in enumerate(self.tokenizer)], dim=-1
            )  # (B, S, n_cat * d_token)
        if self.config.bind_rows and num is not None and cat is not None:
            num = torch.cat([num, cat], dim=-1)  # (B, S, 2 * n_num + n_cat * d_token)
        return num, cat

    def forward(
        self, numerical: Tensor, indicators: Tensor, categorical: Tensor, mask: Tensor
    ) -> Tensor:
        self._check_inputs(numerical, indicators, categorical, mask)
        num, cat = self.row_features(numerical, indicators, categorical, mask)
        num_mask = None if num is None else mask
        cat_mask = None if cat is None else mask
        for layer in self.layers:
            num, cat = layer(num, cat, num_mask=num_mask, cat_mask=cat_mask)  # (B, S, D) each
        pooled = torch.cat([masked_mean_max(x, mask) for x in (num, cat) if x is not None], dim=-1)
        return self.head(pooled)  # (B, n_outputs)

    def _check_inputs(
        self, numerical: Tensor, indicators: Tensor, categorical: Tensor, mask: Tensor
    ) -> None:
        if mask.dim() != 2 or mask.dtype != torch.bool:
            raise ValueError(
                f"mask must be a bool tensor of shape (sets, rows), got {mask.dtype} of shape "
                f"{tuple(mask.shape)}"
            )
        sets, rows = mask.shape
        n_num, n_cat = len(self.numerical_tokens), len(self.categorical_tokens)
        for arg, x, width in (
            ("numerical", numerical, n_num),
            ("indicators", indicators, n_num),
            ("categorical", categorical, n_cat),
        ):
            if tuple(x.shape) != (sets, rows, width):
                raise ValueError(
                    f"{arg} must have shape (sets, rows, {width}) = {(sets, rows, width)} to "
                    f"match the mask, got {tuple(x.shape)}"
                )
        if categorical.dtype != torch.int64:
            raise ValueError(f"categorical must be int64 codes, got {categorical.dtype}")
        if not bool(mask.any(dim=1).all()):
            raise ValueError("every set needs at least one real row (True in the mask)")


def masked_mean_max(x: Tensor, mask: Tensor) -> Tensor:
    """Mean and max of each feature over the real rows of each set, side by side.

    Shape: x ``(B, S, D)``, mask ``(B, S)`` bool with a real row per set -> ``(B, 2 * D)``.
    """
    real = mask.unsqueeze(-1)  # (B, S, 1)
    count = real.sum(dim=1).clamp(min=1).to(x.dtype)  # (B, 1)
    mean = x.masked_fill(~real, 0.0).sum(dim=1) / count  # (B, D)
    largest = x.masked_fill(~real, float("-inf")).amax(dim=1)  # (B, D)
    return torch.cat([mean, largest], dim=-1)  # (B, 2D)
