"""The real row model at a tiny size, and seeded random inputs for it, for tests.

:func:`tiny_model` builds a :class:`~mrta.nn.model.TabularAttentionModel` the way a run does:
a spec in :meth:`~mrta.data.preprocessing.Preprocessor.model_spec` form through
:func:`~mrta.nn.model.build_model` with an init seed; :func:`model_for` takes the spec from a
fitted preprocessor, as :func:`mrta.pipelines.train_run.train_run` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mrta.config import ModelConfig
from mrta.data.preprocessing import Preprocessor
from mrta.nn.model import TabularAttentionModel, build_model


def tiny_config(
    d_model: int = 8, num_heads: int = 2, num_layers: int = 2, dropout: float = 0.0
) -> ModelConfig:
    """Tokens as wide as the layers; no dropout, so that train and eval mode agree; linear
    numerical tokens (``x*w + b``), which the hand computations follow."""
    return ModelConfig(
        d_token=d_model,
        d_model=d_model,
        num_layers=num_layers,
        num_heads=num_heads,
        dropout=dropout,
        numerical_embedding="linear",
    )


def tiny_model(
    numerical_tokens: Sequence[str],
    categorical_tokens: Sequence[str],
    vocabulary_sizes: Sequence[int] | None = None,
    *,
    task: str = "multiclass",
    n_classes: int = 3,
    config: ModelConfig | None = None,
    seed: int = 0,
) -> TabularAttentionModel:
    """The row model for these tokens (4 codes per categorical column unless given; code 0 is
    the reserved missing/unseen code), with the initial weights of `seed`."""
    spec = {
        "config": (config or tiny_config()).to_dict(),
        "task": task,
        "numerical_tokens": list(numerical_tokens),
        "categorical_tokens": list(categorical_tokens),
        "vocabulary_sizes": (
            [4] * len(categorical_tokens) if vocabulary_sizes is None else list(vocabulary_sizes)
        ),
        "n_classes": n_classes if task == "multiclass" else None,
    }
    return build_model(spec, seed)


def model_for(
    preprocessor: Preprocessor, config: ModelConfig | None = None, seed: int = 0
) -> TabularAttentionModel:
    """The row model of a fitted preprocessor's table, built as :func:`train_run` builds it."""
    return build_model(preprocessor.model_spec(config or tiny_config()), seed)


def random_inputs(
    rows: int, n_num: int, n_cat: int, levels: int = 4, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """Seeded ``(numerical, indicators, categorical)``: about 10 % of numbers missing (value 0,
    indicator 1); codes in ``[0, levels)``."""
    generator = torch.Generator().manual_seed(seed)
    numerical = torch.randn(rows, n_num, generator=generator)
    indicators = (torch.rand(rows, n_num, generator=generator) < 0.1).float()
    numerical = numerical * (1 - indicators)
    categorical = torch.randint(0, levels, (rows, n_cat), generator=generator)
    return numerical, indicators, categorical
