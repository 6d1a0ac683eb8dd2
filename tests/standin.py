"""A small model with the interface the analysis expects, for tests and benchmarks.

It stands in for the real model: per-column numerical embeddings (value and missing-indicator),
per-column categorical embedding tables, stacked attention layers with token names, and a head
on the uniform mean of all tokens of both streams.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mrta.nn.layer import MultiResolutionTabularAttention


class StandInModel(nn.Module):
    """``forward(numerical (B, Tn), indicators (B, Tn), categorical (B, Tc) int64) -> logits``.

    Logits are ``(B, 1)`` for binary and regression, ``(B, n_classes)`` for multiclass. Either
    stream may have no tokens (then it is not passed to the layers).
    """

    def __init__(
        self,
        numerical_tokens: Sequence[str],
        categorical_tokens: Sequence[str],
        vocabulary_sizes: Sequence[int] = (),
        task: str = "multiclass",
        n_classes: int = 3,
        d_model: int = 8,
        num_heads: int = 2,
        depth: int = 2,
    ) -> None:
        super().__init__()
        self.numerical_tokens = tuple(numerical_tokens)
        self.categorical_tokens = tuple(categorical_tokens)
        self.task = task
        n_num, n_cat = len(self.numerical_tokens), len(self.categorical_tokens)
        self.value_weight = nn.Parameter(torch.randn(n_num, d_model))
        self.indicator_weight = nn.Parameter(torch.randn(n_num, d_model))
        self.num_bias = nn.Parameter(torch.randn(n_num, d_model))
        sizes = list(vocabulary_sizes) or [4] * n_cat
        offsets = torch.tensor([0, *sizes[:-1]]).cumsum(0) if sizes else torch.zeros(0)
        self.register_buffer("offsets", offsets.long())
        self.embedding = nn.Embedding(max(sum(sizes), 1), d_model)
        self.layers = nn.ModuleList(
            MultiResolutionTabularAttention(
                num_heads,
                d_model,
                0.0,
                num_features=d_model if n_num else None,
                cat_features=d_model if n_cat else None,
            )
            for _ in range(depth)
        )
        for layer in self.layers:
            layer.token_names = {"num": list(self.numerical_tokens)} if n_num else {}
            if n_cat:
                layer.token_names["cat"] = list(self.categorical_tokens)
        outputs = n_classes if task == "multiclass" else 1
        self.head = nn.Linear(d_model, outputs)

    def forward(self, numerical: Tensor, indicators: Tensor, categorical: Tensor) -> Tensor:
        num = cat = None
        if self.numerical_tokens:
            num = (
                numerical[..., None] * self.value_weight
                + indicators[..., None] * self.indicator_weight
                + self.num_bias
            )  # (B, Tn, D)
        if self.categorical_tokens:
            cat = self.embedding(categorical + self.offsets)  # (B, Tc, D)
        for layer in self.layers:
            num, cat = layer(num, cat)
        tokens = torch.cat([t for t in (num, cat) if t is not None], dim=1)
        return self.head(tokens.mean(dim=1))


def random_inputs(
    rows: int, n_num: int, n_cat: int, levels: int = 4, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """Seeded ``(numerical, indicators, categorical)``: about 10 % of numbers missing."""
    generator = torch.Generator().manual_seed(seed)
    numerical = torch.randn(rows, n_num, generator=generator)
    indicators = (torch.rand(rows, n_num, generator=generator) < 0.1).float()
    numerical = numerical * (1 - indicators)
    categorical = torch.randint(0, levels, (rows, n_cat), generator=generator)
    return numerical, indicators, categorical
