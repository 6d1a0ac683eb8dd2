"""The row-resolution model: a token per column, stacked MRTA layers, a pooled readout, a head.

One CSV row is one example (row resolution, the dashboard's default). Each numerical column becomes
one token through its own linear embedding, with its missing-indicator folded into the same token;
each categorical column one token through its own embedding table (index 0: missing, unseen or
rare). The :class:`~mrta.nn.layer.MultiResolutionTabularAttention` layers then attend between
columns, and every layer knows its token names, so that every recorded map can be labelled.

A table with one type of column only trains too: the layers run self-attention on the stream
that exists, and :attr:`TabularAttentionModel.map_ids` lists the maps that exist for it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from mrta.config import ModelConfig
from mrta.nn.gates import ColumnGates
from mrta.nn.layer import MultiResolutionTabularAttention
from mrta.nn.periodic import PeriodicEmbeddings
from mrta.nn.random_stream import RandomStream
from mrta.streams import present_maps, present_streams
from mrta.task import Task


class FeatureTokenizer(nn.Module):
    """One token per column: ``x_j * W_j + b_j + ind_j * M_j`` for numerical column ``j``
    (``PLR_j(x_j) + ind_j * M_j`` with ``embedding="plr"``), ``E_j[code_j]`` for categorical
    column ``j``. A missing value's ``x_j`` is the preprocessor's fill; its indicator adds the
    column's missing vector ``M_j`` to the same token, whichever the embedding.

    Args:
        n_numerical: numerical columns (tokens).
        vocabulary_sizes: rows of each categorical column's table, the reserved index 0
            included (:attr:`mrta.data.preprocessing.Preprocessor.vocabulary_sizes`).
        d_token: width of a token.
        embedding: ``"linear"`` or ``"plr"`` (:class:`~mrta.nn.periodic.PeriodicEmbeddings`,
            with ``plr_frequencies`` and ``plr_sigma``).

    Shape:
        - numerical, indicators: ``(B, Tn)`` float; categorical: ``(B, Tc)`` int64
        - output: ``(B, Tn, d_token)`` and ``(B, Tc, d_token)``; ``None`` for a stream
          without columns
    """

    def __init__(
        self,
        n_numerical: int,
        vocabulary_sizes: Sequence[int],
        d_token: int,
        embedding: str = "linear",
        plr_frequencies: int = 48,
        plr_sigma: float = 0.1,
    ) -> None:
        super().__init__()
        self.d_token = d_token
        self.weight = self.bias = self.missing = self.periodic = None
        if n_numerical:
            if embedding == "plr":
                self.periodic = PeriodicEmbeddings(n_numerical, d_token, plr_frequencies, plr_sigma)
            else:
                self.weight = nn.Parameter(torch.empty(n_numerical, d_token))
                self.bias = nn.Parameter(torch.empty(n_numerical, d_token))
            self.missing = nn.Parameter(torch.empty(n_numerical, d_token))
        self.embeddings = nn.ModuleList(nn.Embedding(size, d_token) for size in vocabulary_sizes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in ``±1/sqrt(d_token)``, as FT-Transformer initialises its tokenizer (the
        periodic embeddings as their paper does)."""
        bound = 1.0 / math.sqrt(self.d_token)
        for parameter in (self.weight, self.bias, self.missing):
            if parameter is not None:
                nn.init.uniform_(parameter, -bound, bound)
        if self.periodic is not None:
            self.periodic.reset_parameters()
        for embedding in self.embeddings:
            nn.init.uniform_(embedding.weight, -bound, bound)

    def forward(
        self, numerical: Tensor, indicators: Tensor, categorical: Tensor
    ) -> tuple[Tensor | None, Tensor | None]:
        num_tokens = cat_tokens = None
        if self.missing is not None:
            if self.periodic is not None:
                values = self.periodic(numerical)  # (B, Tn, d_token)
            else:
                values = numerical.unsqueeze(-1) * self.weight + self.bias  # (B, Tn, d_token)
            num_tokens = values + indicators.unsqueeze(-1) * self.missing  # (B, Tn, d_token)
        if len(self.embeddings):
            cat_tokens = torch.stack(
                [table(categorical[:, j]) for j, table in enumerate(self.embeddings)], dim=1
            )  # (B, Tc, d_token)
        return num_tokens, cat_tokens


class TaskModel(nn.Module):
    """What the row and the set model share: the task, the streams' token names, the
    vocabularies, their checks, and the JSON form of all that (:meth:`to_dict`).

    Raises ``ValueError`` for an unknown task, a multiclass task without at least 3 classes,
    vocabulary sizes that do not match the categorical tokens, and a model without tokens.
    """

    def __init__(
        self,
        config: ModelConfig,
        *,
        task: Task | str,
        numerical_tokens: Sequence[str],
        categorical_tokens: Sequence[str],
        vocabulary_sizes: Sequence[int],
        n_classes: int | None = None,
    ) -> None:
        super().__init__()
        if task not in tuple(Task):
            raise ValueError(f"task must be one of {[t.value for t in Task]}, got {task!r}")
        task = Task(task)
        if task == Task.MULTICLASS and (n_classes is None or n_classes < 3):
            raise ValueError(f"a multiclass task needs n_classes of at least 3, got {n_classes!r}")
        if len(vocabulary_sizes) != len(categorical_tokens):
            raise ValueError(
                f"vocabulary_sizes must give one size per categorical token, got "
                f"{len(vocabulary_sizes)} sizes for {len(categorical_tokens)} tokens"
            )
        if any(size < 1 for size in vocabulary_sizes):
            raise ValueError(f"every vocabulary size must be at least 1, got {vocabulary_sizes}")
        if not numerical_tokens and not categorical_tokens:
            raise ValueError("the model needs at least one numerical or categorical token")
        self.config = config
        self.task = task
        self.numerical_tokens = list(numerical_tokens)
        self.categorical_tokens = list(categorical_tokens)
        self.vocabulary_sizes = [int(size) for size in vocabulary_sizes]
        self.n_classes = n_classes if task == Task.MULTICLASS else None
        self.n_outputs = n_classes if task == Task.MULTICLASS else 1

    def regularisation(self) -> Tensor | None:
        """What the training loss adds to the task's loss (``None``: nothing)."""
        return None

    def column_gates(self) -> dict[str, float] | None:
        """Each column's gate in evaluation, in [0, 1] (0: closed, its token empty); ``None``
        for a model without gates."""
        return None

    @property
    def streams(self) -> tuple[str, ...]:
        """Which of "numerical" and "categorical" the model has tokens for."""
        return present_streams(self.numerical_tokens, self.categorical_tokens)

    @property
    def map_ids(self) -> list[str]:
        """The attention maps that exist: cross-type maps need both streams."""
        return present_maps(self.numerical_tokens, self.categorical_tokens)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: everything the constructor needs (the weights are saved apart); the
        keys of :meth:`mrta.data.preprocessing.Preprocessor.model_spec`."""
        return {
            "config": self.config.to_dict(),
            "task": self.task,
            "numerical_tokens": list(self.numerical_tokens),
            "categorical_tokens": list(self.categorical_tokens),
            "vocabulary_sizes": list(self.vocabulary_sizes),
            "n_classes": self.n_classes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """A freshly initialised model from `to_dict`'s (or `model_spec`'s) output (seed the
        RNG first)."""
        return cls(
            ModelConfig.from_dict(data["config"]),
            task=data["task"],
            numerical_tokens=data["numerical_tokens"],
            categorical_tokens=data["categorical_tokens"],
            vocabulary_sizes=data["vocabulary_sizes"],
            n_classes=data["n_classes"],
        )


class TabularAttentionModel(TaskModel):
    """Tokenizer, a stack of MRTA layers, a readout pooling both streams, and a task head.

    The readout is the uniform mean over all tokens of both streams (what
    :mod:`mrta.analysis.rollout` assumes), then
    ``LayerNorm -> Linear -> ReLU -> Dropout -> Linear``. With ``config.gate_penalty`` above 0,
    each column's token passes its gate (:class:`~mrta.nn.gates.ColumnGates`) before the layers.

    Args:
        config: token width, layer width, depth, heads and dropout.
        task: ``"binary"``, ``"multiclass"`` or ``"regression"``.
        numerical_tokens: names of the numerical tokens, in input column order.
        categorical_tokens: names of the categorical tokens, in input column order.
        vocabulary_sizes: embedding rows per categorical token, reserved index 0 included.
        n_classes: classes of a multiclass task (at least 3); ignored otherwise.

    Shape:
        - numerical: ``(B, Tn)`` float32; indicators: ``(B, Tn)`` float32 0/1;
          categorical: ``(B, Tc)`` int64. A stream without columns takes ``(B, 0)``.
        - output: logits ``(B, 1)`` for binary and regression (the standardised target),
          ``(B, n_classes)`` for multiclass

    Building it twice after the same ``torch.manual_seed`` gives the same initial weights.
    """

    def __init__(self, config: ModelConfig, **task: Any) -> None:
        super().__init__(config, **task)  # task, tokens, vocabularies: see TaskModel

        has_num, has_cat = bool(self.numerical_tokens), bool(self.categorical_tokens)
        self.tokenizer = FeatureTokenizer(
            len(self.numerical_tokens),
            self.vocabulary_sizes,
            config.d_token,
            config.numerical_embedding,
            config.plr_frequencies,
            config.plr_sigma,
        )
        n_tokens = len(self.numerical_tokens) + len(self.categorical_tokens)
        self.gates = ColumnGates(n_tokens) if config.gate_penalty > 0 else None
        self.layers = nn.ModuleList()
        for index in range(config.num_layers):
            width = config.d_token if index == 0 else config.d_model
            layer = MultiResolutionTabularAttention(
                config.num_heads,
                config.d_model,
                config.dropout,
                num_features=width if has_num else None,
                cat_features=width if has_cat else None,
            )
            layer.token_names = {
                "num": list(self.numerical_tokens),
                "cat": list(self.categorical_tokens),
            }
            self.layers.append(layer)
        self.head = nn.Sequential(
            nn.LayerNorm(config.d_model),
            nn.Linear(config.d_model, config.d_model),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.d_model, self.n_outputs),
        )

    def forward(self, numerical: Tensor, indicators: Tensor, categorical: Tensor) -> Tensor:
        self._check_inputs(numerical, indicators, categorical)
        num, cat = self.tokenizer(numerical, indicators, categorical)  # (B, Tn, d), (B, Tc, d)
        if self.gates is not None:
            tokens = self.gates(torch.cat([t for t in (num, cat) if t is not None], dim=1))
            n_num = len(self.numerical_tokens)
            num = tokens[:, :n_num] if num is not None else None  # (B, Tn, d)
            cat = tokens[:, n_num:] if cat is not None else None  # (B, Tc, d)
        for layer in self.layers:
            num, cat = layer(num, cat)  # (B, Tn, D), (B, Tc, D)
        tokens = torch.cat([t for t in (num, cat) if t is not None], dim=1)  # (B, Tn+Tc, D)
        pooled = tokens.mean(dim=1)  # (B, D): every token of both streams weighs the same
        return self.head(pooled)  # (B, n_outputs)

    def regularisation(self) -> Tensor | None:
        """``gate_penalty`` times the expected number of open column gates."""
        if self.gates is None:
            return None
        return self.config.gate_penalty * self.gates.expected_open()

    def column_gates(self) -> dict[str, float] | None:
        if self.gates is None:
            return None
        values = self.gates.values().detach().cpu().tolist()
        return dict(zip([*self.numerical_tokens, *self.categorical_tokens], values, strict=True))

    def _check_inputs(self, numerical: Tensor, indicators: Tensor, categorical: Tensor) -> None:
        n_num, n_cat = len(self.numerical_tokens), len(self.categorical_tokens)
        for arg, x, width in (
            ("numerical", numerical, n_num),
            ("indicators", indicators, n_num),
            ("categorical", categorical, n_cat),
        ):
            if x.dim() != 2 or x.shape[1] != width:
                raise ValueError(f"{arg} must have shape (batch, {width}), got {tuple(x.shape)}")
        if not numerical.shape[0] == indicators.shape[0] == categorical.shape[0]:
            raise ValueError(
                "numerical, indicators and categorical must have the same batch size, got "
                f"{numerical.shape[0]}, {indicators.shape[0]} and {categorical.shape[0]}"
            )
        if categorical.dtype != torch.int64:
            raise ValueError(f"categorical must be int64 codes, got {categorical.dtype}")


def build_model(
    spec: Mapping[str, Any], init_seed: int, model_class: type[TaskModel] | None = None
) -> TaskModel:
    """The model of `spec` (a :class:`TabularAttentionModel` unless `model_class` says, e.g.
    :class:`~mrta.nn.set_model.SetAttentionModel`) with the initial weights that
    `torch.manual_seed(init_seed)` gives, leaving the global random state as it was, whatever
    other threads draw meanwhile (:class:`~mrta.nn.random_stream.RandomStream`)."""
    with RandomStream(init_seed):
        return (model_class or TabularAttentionModel).from_dict(spec)


def build_meta_model(
    spec: Mapping[str, Any], model_class: type[TaskModel] | None = None
) -> TaskModel:
    """The model of `spec` (as :func:`build_model`) on the ``meta`` device: every parameter's
    name, shape and dtype, and no memory for any; load its weights with
    ``load_state_dict(..., assign=True)``."""
    with torch.device("meta"), _SkipInitialisation():
        return (model_class or TabularAttentionModel).from_dict(spec)


class _SkipInitialisation(TorchFunctionMode):
    """Skips the initialisers a model's constructor calls: on the ``meta`` device they compute
    nothing, and one (``normal_``) costs seconds of imports at its first call there and a
    millisecond at each."""

    SKIPPED = (Tensor.normal_, Tensor.uniform_, Tensor.zero_, Tensor.fill_)

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func in self.SKIPPED or getattr(func, "__module__", None) == "torch.nn.init":
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)
