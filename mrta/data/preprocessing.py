"""The preprocessor: fitted on the training rows, it turns any table with the same columns into
tensors for the model, and saves to plain JSON that loads back bit-identically.

Numerical tokens are mapped to a normal distribution through their training quantiles
(scikit-learn's QuantileTransformer fits them; the transform is re-implemented here with numpy
so that a round trip through JSON gives the same bits) or standardised; a missing value becomes
0 with a missing-indicator kept beside its own column. Categorical tokens get a vocabulary from
the training rows; index 0 stands for missing, unseen and rare values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.preprocessing import QuantileTransformer

from mrta.config import ModelConfig
from mrta.data.schema import TableSchema
from mrta.data.target_transform import choose_transform, from_model_scale, to_model_scale
from mrta.errors import TableError
from mrta.task import Task

FORMAT_VERSION = 1
# The reserved category index: missing, unseen in training, or rare.
RESERVED_INDEX = 0
# scikit-learn's margin that keeps the normal quantile function finite at the extremes.
_BOUNDS_THRESHOLD = 1e-7


@dataclass(frozen=True)
class PreprocessingOptions:
    """How columns are encoded; each field's `why` metadata is the reason for its default."""

    numerical_transform: str = field(
        default="quantile",
        metadata={
            "why": "quantile-normal is robust to skew and outliers (incomes, prices); "
            "'standard' keeps distances"
        },
    )
    n_quantiles: int = field(
        default=1000,
        metadata={"why": "scikit-learn's default; a finer grid changes nothing a model can see"},
    )
    quantile_subsample: int = field(
        default=100_000,
        metadata={
            "why": "quantiles of 100,000 rows are as good as those of all; fitting stays fast"
        },
    )
    min_category_count: int = field(
        default=5,
        metadata={
            "why": "an embedding seen fewer than 5 times is noise; pooling rare levels also "
            "teaches the reserved index"
        },
    )
    max_vocabulary: int = field(
        default=1000,
        metadata={
            "why": "the 1,000 most frequent levels cover most rows; more embeddings would be "
            "seen too seldom to learn"
        },
    )
    seed: int = field(default=0, metadata={"why": "the quantile subsample is repeatable"})
    target_transform: str = field(
        default="none",
        metadata={
            "why": "regression: 'log' or 'auto' (log where the target is positive and skewed) "
            "are offered; auto took the log on wage and diamonds: level on wage's validation "
            "split (0.3359 against 0.3360) and lower on diamonds' (benchmarks/quality.py)"
        },
    )


class Examples(Protocol):
    """What training and prediction need of encoded examples: rows (:class:`EncodedTable`) or
    sets of rows (:class:`~mrta.data.sets.SetBatch`)."""

    target: torch.Tensor | None  # (N,) int64 class index, or float32 value

    def __len__(self) -> int: ...

    @property
    def tokens_per_example(self) -> int: ...

    def model_inputs(self) -> tuple[torch.Tensor, ...]: ...

    def select(self, rows: torch.Tensor | slice) -> Examples: ...

    def to(self, device: torch.device | str) -> Examples: ...


@dataclass(frozen=True, eq=False)
class EncodedTable:
    """A table as tensors, with the token names of both streams."""

    numerical: torch.Tensor  # (rows, n_numerical) float32
    indicators: torch.Tensor  # (rows, n_numerical) float32: 1 where the value was missing
    categorical: torch.Tensor  # (rows, n_categorical) int64; 0 = missing, unseen or rare
    target: torch.Tensor | None  # (rows,) int64 class index, or float32 value; None if absent
    numerical_tokens: tuple[str, ...]
    categorical_tokens: tuple[str, ...]

    def __len__(self) -> int:
        return self.numerical.shape[0]

    @property
    def tokens_per_example(self) -> int:
        """Tokens one example gives each attention map: one per column."""
        return len(self.numerical_tokens) + len(self.categorical_tokens)

    def model_inputs(self) -> tuple[torch.Tensor, ...]:
        """The model's positional inputs: numerical, indicators, categorical."""
        return self.numerical, self.indicators, self.categorical

    def select(self, rows: torch.Tensor | slice) -> EncodedTable:
        """The rows at `rows` (positions or a slice).

        Shape: ``(N, ...)`` -> ``(len(rows), ...)``.
        """
        return replace(
            self,
            numerical=self.numerical[rows],
            indicators=self.indicators[rows],
            categorical=self.categorical[rows],
            target=None if self.target is None else self.target[rows],
        )

    def to(self, device: torch.device | str) -> EncodedTable:
        """The same rows on `device`."""
        return replace(
            self,
            numerical=self.numerical.to(device),
            indicators=self.indicators.to(device),
            categorical=self.categorical.to(device),
            target=None if self.target is None else self.target.to(device),
        )


class Preprocessor:
    """Turns tables into tensors; build it with `fit` or `from_dict`."""

    def __init__(
        self,
        schema: TableSchema,
        options: PreprocessingOptions,
        numerical: dict[str, Any],
        vocabularies: tuple[tuple[str, ...], ...],
        target_mean: float | None,
        target_std: float | None,
        notes: tuple[str, ...],
        target_transform: str = "none",
        target_smearing: float = 1.0,
    ) -> None:
        self.schema = schema
        self.options = options
        self._numerical = numerical
        self.vocabularies = vocabularies
        # regression: the trainer standardises the target (on the model's scale) with these
        self.target_mean = target_mean
        self.target_std = target_std
        # regression: "log" (the model learns log y) or "none", and Duan's smearing factor that
        # brings exp(prediction) back to the target's mean (set after training)
        self.target_transform = target_transform
        self.target_smearing = target_smearing
        self.notes = notes
        self.has_indicator: tuple[bool, ...] = tuple(numerical["has_indicator"])

    @property
    def numerical_tokens(self) -> tuple[str, ...]:
        """Token names of the numerical stream."""
        return self.schema.numerical_tokens

    @property
    def categorical_tokens(self) -> tuple[str, ...]:
        """Token names of the categorical stream."""
        return self.schema.categorical_tokens

    @property
    def vocabulary_sizes(self) -> tuple[int, ...]:
        """Embedding rows each categorical token needs: its vocabulary plus the reserved index."""
        return tuple(len(vocabulary) + 1 for vocabulary in self.vocabularies)

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        schema: TableSchema,
        options: PreprocessingOptions | None = None,
    ) -> Preprocessor:
        """Fit on the training rows `frame` (and only those)."""
        options = options or PreprocessingOptions()
        if options.numerical_transform not in ("quantile", "standard"):
            raise ValueError(
                "numerical_transform must be 'quantile' or 'standard', "
                f"not {options.numerical_transform!r}"
            )
        if len(frame) == 0:
            raise TableError("The training split has no rows: use a larger table.")
        features = schema.features(frame)
        numerical = _fit_numerical(features.numerical, options)
        vocabularies, notes = _fit_vocabularies(
            features.categorical, schema.categorical_tokens, options
        )
        target_mean = target_std = None
        transform = "none"
        if schema.task is Task.REGRESSION and schema.target in frame.columns:
            y = schema.encode_target(frame)
            y = y[np.isfinite(y)]
            transform, note = choose_transform(y, options.target_transform)
            if note:
                notes = (*notes, note)
            y = to_model_scale(y, transform)
            if y.size:
                target_mean = float(y.mean())
                target_std = float(y.std()) or 1.0
        elif options.target_transform != "none":
            raise ValueError("target_transform applies to a regression target only")
        return cls(
            schema, options, numerical, vocabularies, target_mean, target_std, notes, transform
        )

    def predictions_in_units(self, values: np.ndarray) -> np.ndarray:
        """Regression predictions on the model's scale (de-standardised) in the target's
        units: ``exp(values)`` times the smearing factor after a log transform."""
        return from_model_scale(values, self.target_transform, self.target_smearing)

    def transform(self, frame: pd.DataFrame, *, with_target: bool = True) -> EncodedTable:
        """Encode `frame`; it needs the feature columns (extra columns are ignored).

        The target is encoded too when `with_target` and the frame has the target column; then
        every row needs a target value. Unseen categories and new missing values are fine.
        """
        features = self.schema.features(frame)
        missing = np.isnan(features.numerical)
        numbers = np.empty_like(features.numerical)
        for j in range(numbers.shape[1]):
            numbers[:, j] = self._scale(features.numerical[:, j], j)
        numbers[missing] = 0.0
        indicators = missing & np.array(self.has_indicator, dtype=bool)
        codes = np.empty(features.categorical.shape, dtype=np.int64)
        for j, vocabulary in enumerate(self.vocabularies):
            codes[:, j] = pd.Index(vocabulary, dtype=object).get_indexer(features.categorical[:, j])
        codes += 1  # get_indexer gives -1 for unseen and missing, which lands on RESERVED_INDEX
        target = None
        if with_target and self.schema.target in frame.columns:
            target = self._encode_target(frame)
        return EncodedTable(
            numerical=torch.from_numpy(numbers.astype(np.float32)),
            indicators=torch.from_numpy(indicators.astype(np.float32)),
            categorical=torch.from_numpy(codes),
            target=target,
            numerical_tokens=self.numerical_tokens,
            categorical_tokens=self.categorical_tokens,
        )

    def _scale(self, column: np.ndarray, j: int) -> np.ndarray:
        state = self._numerical
        if state["transform"] == "quantile":
            quantiles = state["quantiles"][j]
            if quantiles is None:
                return np.zeros_like(column)
            return _quantile_normal(column, quantiles, state["references"])
        if state["means"][j] is None:
            return np.zeros_like(column)
        clipped = np.clip(column, state["lows"][j], state["highs"][j])
        return (clipped - state["means"][j]) / state["scales"][j]

    def _encode_target(self, frame: pd.DataFrame) -> torch.Tensor:
        y = self.schema.encode_target(frame)
        absent = np.isnan(y) if self.schema.task is Task.REGRESSION else y < 0
        if absent.any():
            raise TableError(
                f"{int(absent.sum()):,} row(s) have no value in the target "
                f"{self.schema.target!r}: leave them out (the splits do) or encode without "
                "the target."
            )
        if self.schema.task is Task.REGRESSION:
            if self.target_transform == "log" and (y <= 0).any():
                raise TableError(
                    f"{int((y <= 0).sum()):,} row(s) have a target of 0 or less, which the log "
                    "this run's model learns cannot take: leave them out."
                )
            return torch.from_numpy(to_model_scale(y, self.target_transform).astype(np.float32))
        return torch.from_numpy(y)

    def model_spec(self, config: ModelConfig) -> dict[str, Any]:
        """The model for this table at `config`, in
        :meth:`mrta.nn.model.TabularAttentionModel.to_dict` form."""
        task = self.schema.task
        if task is None:
            raise ValueError("the preprocessor's schema has no task: choose a target first")
        return {
            "config": config.to_dict(),
            "task": task.value,
            "numerical_tokens": list(self.numerical_tokens),
            "categorical_tokens": list(self.categorical_tokens),
            "vocabulary_sizes": list(self.vocabulary_sizes),
            "n_classes": len(self.schema.class_labels) if task == Task.MULTICLASS else None,
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON (no pickle); `from_dict` gives back a preprocessor with the same output."""
        state = self._numerical
        numerical: dict[str, Any] = {
            "transform": state["transform"],
            "has_indicator": list(self.has_indicator),
        }
        if state["transform"] == "quantile":
            numerical["references"] = state["references"].tolist()
            numerical["quantiles"] = [None if q is None else q.tolist() for q in state["quantiles"]]
        else:
            for key in ("means", "scales", "lows", "highs"):
                numerical[key] = list(state[key])
        return {
            "format_version": FORMAT_VERSION,
            "schema": self.schema.to_dict(),
            "options": asdict(self.options),
            "numerical": numerical,
            "vocabularies": [list(vocabulary) for vocabulary in self.vocabularies],
            "target_mean": self.target_mean,
            "target_std": self.target_std,
            "target_transform": self.target_transform,
            "target_smearing": self.target_smearing,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessor:
        """Inverse of `to_dict`."""
        if data.get("format_version") != FORMAT_VERSION:
            raise TableError(
                f"This saved preprocessor has format {data.get('format_version')!r}, but this "
                f"version reads format {FORMAT_VERSION}: train the model again."
            )
        numerical = dict(data["numerical"])
        if numerical["transform"] == "quantile":
            numerical["references"] = np.array(numerical["references"], dtype=np.float64)
            numerical["quantiles"] = [
                None if q is None else np.array(q, dtype=np.float64) for q in numerical["quantiles"]
            ]
        return cls(
            schema=TableSchema.from_dict(data["schema"]),
            options=PreprocessingOptions(**data["options"]),
            numerical=numerical,
            vocabularies=tuple(tuple(vocabulary) for vocabulary in data["vocabularies"]),
            target_mean=data["target_mean"],
            target_std=data["target_std"],
            notes=tuple(data["notes"]),
            target_transform=data.get("target_transform", "none"),  # runs saved before: none
            target_smearing=float(data.get("target_smearing", 1.0)),
        )


def _fit_numerical(x: np.ndarray, options: PreprocessingOptions) -> dict[str, Any]:
    """Per-column transform parameters from the training values `x` (rows, tokens)."""
    finite = np.where(np.isfinite(x), x, np.nan)
    has_values = ~np.all(np.isnan(finite), axis=0)
    state: dict[str, Any] = {
        "transform": options.numerical_transform,
        "has_indicator": np.isnan(x).any(axis=0).tolist(),
    }
    if options.numerical_transform == "quantile":
        n_quantiles = max(2, min(options.n_quantiles, x.shape[0]))
        references = np.linspace(0, 1, n_quantiles, endpoint=True)
        quantiles: list[np.ndarray | None] = [None] * x.shape[1]
        if has_values.any():
            transformer = QuantileTransformer(
                n_quantiles=n_quantiles,
                output_distribution="normal",
                subsample=options.quantile_subsample,
                random_state=options.seed,
            ).fit(finite[:, has_values])
            references = transformer.references_
            for j, column in zip(np.flatnonzero(has_values), transformer.quantiles_.T, strict=True):
                quantiles[j] = column.copy()
        state.update(references=references, quantiles=quantiles)
        return state
    stats_by_column = []
    for j in range(x.shape[1]):
        column = finite[:, j][~np.isnan(finite[:, j])]
        if column.size == 0:
            stats_by_column.append((None, None, None, None))
        else:
            scale = float(column.std()) or 1.0
            stats_by_column.append(
                (float(column.mean()), scale, float(column.min()), float(column.max()))
            )
    means, scales, lows, highs = ([row[k] for row in stats_by_column] for k in range(4))
    state.update(means=means, scales=scales, lows=lows, highs=highs)
    return state


def _quantile_normal(x: np.ndarray, quantiles: np.ndarray, references: np.ndarray) -> np.ndarray:
    """scikit-learn's QuantileTransformer forward transform to a normal, for one column.

    NaN stays NaN; values beyond the training range (infinities too) go to the extremes.
    """
    with np.errstate(invalid="ignore"):
        lower = x - _BOUNDS_THRESHOLD < quantiles[0]
        upper = x + _BOUNDS_THRESHOLD > quantiles[-1]
    out = x.copy()
    present = ~np.isnan(x)
    values = x[present]
    # Interpolating from both ends and averaging treats repeated quantiles (ties) evenly.
    out[present] = 0.5 * (
        np.interp(values, quantiles, references)
        - np.interp(-values, -quantiles[::-1], -references[::-1])
    )
    out[upper] = 1.0
    out[lower] = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        out = stats.norm.ppf(out)
        clip_min = stats.norm.ppf(_BOUNDS_THRESHOLD - np.spacing(1))
        clip_max = stats.norm.ppf(1 - (_BOUNDS_THRESHOLD - np.spacing(1)))
    return np.clip(out, clip_min, clip_max)


def _fit_vocabularies(
    labels: np.ndarray, tokens: tuple[str, ...], options: PreprocessingOptions
) -> tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]:
    """Each categorical token's kept levels (most frequent first), and notes on the rest."""
    vocabularies = []
    notes = []
    for j, token in enumerate(tokens):
        counts = pd.Series(labels[:, j], dtype=object).value_counts(dropna=True)
        frequent = sorted(
            (
                (label, count)
                for label, count in counts.items()
                if count >= options.min_category_count
            ),
            key=lambda item: (-item[1], item[0]),
        )
        kept = tuple(label for label, _ in frequent[: options.max_vocabulary])
        vocabularies.append(kept)
        if len(kept) < len(counts):
            share = 1 - counts[list(kept)].sum() / counts.sum()
            why = f"seen fewer than {options.min_category_count} times"
            if len(frequent) > options.max_vocabulary:
                why += f" or beyond the {options.max_vocabulary:,} most frequent"
            notes.append(
                f"{token!r}: {len(counts) - len(kept):,} of its {len(counts):,} levels ({why}; "
                f"{share:.0%} of training rows) share the reserved index with missing and "
                "unseen values."
            )
    return tuple(vocabularies), tuple(notes)
