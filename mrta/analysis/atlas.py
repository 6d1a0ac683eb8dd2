"""Attention maps at every scale: one row, a whole dataset, cohorts, and differences of cohorts.

:func:`collect_attention` runs a model once over a table, in eval mode without gradients, and
streams every attention map into running float64 sums per cohort (constant memory, however many
rows). The cohorts are all filled in that one pass: every row, true class, predicted class,
correct or wrong, each decile of each numerical column (missing values a cohort of their own),
each frequent level of each categorical column (the rest pooled as "other"), and any custom
row filters. The result, an :class:`AttentionAtlas`, holds per layer, map and cohort the mean and
standard-deviation maps of every head, with the token names, the row counts, each row's
normalized entropy per head and each row's rollout importance (see :mod:`mrta.analysis.rollout`),
averaged per cohort.

Cohort keys are tuples: ``("all",)``, ``("true", "Adelie")``, ``("pred", "Gentoo")``,
``("correct", True)``, ``("decile", "income", 3)`` (deciles 1 to 10), ``("decile", "income",
None)`` (missing), ``("level", "region", "north")``, ``("level", "region", "other")``,
``("level", "region", None)`` (missing), ``("filter", name)``.

The model interface: an ``nn.Module`` whose :class:`~mrta.nn.layer.MultiResolutionTabularAttention`
layers carry ``token_names = {"num": [...], "cat": [...]}``, with ``task`` (``"binary"``,
``"multiclass"`` or ``"regression"``) and ``forward(numerical, indicators, categorical) ->
logits``: ``(B, n_num)`` float32 twice and ``(B, n_cat)`` int64 in; ``(B, 1)`` for binary
(logit of class 1) and regression, ``(B, C)`` for multiclass out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import Tensor, nn

from mrta.analysis.recorder import ALL, AttentionRecorder, StreamStats
from mrta.analysis.rollout import rollout_importance
from mrta.analysis.stats import normalized_entropy
from mrta.data import values
from mrta.data.preprocessing import EncodedTable
from mrta.data.schema import TableSchema
from mrta.nn.layer import MAP_IDS, MultiResolutionTabularAttention
from mrta.task import Task

CohortKey = tuple[str | int | bool | None, ...]
MapKey = tuple[int, str]  # (layer index, map id)
#: ``progress(done, total, message)``, called as work advances.
Progress = Callable[[int, int, str], None]
#: The model's inputs: an encoded table, or ``(numerical, indicators, categorical)`` tensors.
Inputs = EncodedTable | Sequence[Tensor]

ALL_ROWS: CohortKey = ("all",)
DEFAULT_TOP_LEVELS = 8  # levels of a categorical column with a cohort each; the rest is "other"
DEFAULT_BATCH_SIZE = 512  # rows per forward pass: large enough for fast matmuls, small in memory
DECILES = 10
OTHER = "other"


# -- inputs ----------------------------------------------------------------------------------
def split_inputs(
    data: Inputs, targets: Tensor | np.ndarray | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """``(numerical, indicators, categorical, targets)`` of ``data``; ``targets`` overrides."""
    if isinstance(data, EncodedTable):
        numerical, indicators, categorical = data.numerical, data.indicators, data.categorical
        target = data.target
    else:
        if len(data) != 3:
            raise ValueError(
                "data must be an EncodedTable or (numerical, indicators, categorical) tensors, "
                f"got {len(data)} items"
            )
        (numerical, indicators, categorical), target = data, None
    if targets is not None:
        target = torch.as_tensor(targets)
    rows = {len(numerical), len(indicators), len(categorical)}
    if target is not None:
        rows.add(len(target))
    if len(rows) != 1:
        raise ValueError(f"inputs and targets must have the same number of rows, got {rows}")
    return numerical, indicators, categorical, target


def model_task(model: nn.Module) -> str:
    """The model's task as a plain string: ``"binary"``, ``"multiclass"`` or ``"regression"``."""
    task = getattr(model, "task", None)
    return str(getattr(task, "value", task))


def predicted_class(logits: Tensor, task: str) -> Tensor:
    """Class index per row: the sign of a binary logit, else the largest logit. Shape: ``(B,)``."""
    if task == Task.BINARY and logits.shape[-1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(dim=-1)


def model_device(model: nn.Module) -> torch.device:
    """Where the model's parameters live."""
    return next(model.parameters()).device


def attention_layers(model: nn.Module) -> list[MultiResolutionTabularAttention]:
    """The model's attention layers, in the recorder's order (layer index = position)."""
    return [m for m in model.modules() if isinstance(m, MultiResolutionTabularAttention)]


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


# -- cohorts ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CohortSpec:
    """Which cohorts :func:`collect_attention` fills.

    Attributes:
        classes: true class, predicted class, correct vs wrong (classification only).
        class_labels: class names in index order; ``"0"``, ``"1"``, ... when empty.
        deciles: columns of the frame cut into deciles of their raw values.
        levels: columns of the frame cut into levels (the ``top_levels`` most frequent each).
        top_levels: levels per column with a cohort of their own; the rest are "other".
        filters: custom cohorts by name, each a bool row mask of the data's length.
    """

    classes: bool = True
    class_labels: tuple[str, ...] = ()
    deciles: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    top_levels: int = DEFAULT_TOP_LEVELS
    filters: Mapping[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def for_frame(
        cls, frame: pd.DataFrame, class_labels: Sequence[str] = (), **options: object
    ) -> CohortSpec:
        """Deciles for the numeric columns of ``frame``, levels for the others."""
        numeric = [
            str(name)
            for name in frame.columns
            if pd.api.types.is_numeric_dtype(frame[name])
            and not pd.api.types.is_bool_dtype(frame[name])
        ]
        others = [str(name) for name in frame.columns if str(name) not in numeric]
        return cls(
            class_labels=tuple(class_labels),
            deciles=tuple(numeric),
            levels=tuple(others),
            **options,  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class _Family:
    """Cohorts that each row belongs to at most one of: keys, labels and per-row codes."""

    keys: list[CohortKey]
    labels: list[str]
    codes: Callable[[slice, Tensor], np.ndarray]  # (rows, logits) -> (B,) index, -1 = none


def _decile_family(name: str, raw: pd.Series) -> _Family:
    x = raw.to_numpy(dtype="float64", na_value=np.nan)
    present = ~np.isnan(x)
    codes = np.full(len(x), -1, dtype=np.int64)
    keys: list[CohortKey] = []
    labels: list[str] = []
    if present.any():
        edges = np.quantile(x[present], np.arange(1, DECILES) / DECILES)
        bins = np.searchsorted(edges, x[present], side="right")  # 0..9; ties may empty some
        for b in np.unique(bins):
            inside = x[present][bins == b]
            lo, hi = format_value(inside.min()), format_value(inside.max())
            keys.append(("decile", name, int(b) + 1))
            labels.append(f"{name}: decile {int(b) + 1} ({lo} to {hi})")
        codes[present] = np.searchsorted(np.unique(bins), bins)
    if not present.all():
        codes[~present] = len(keys)
        keys.append(("decile", name, None))
        labels.append(f"{name}: missing")
    return _Family(keys, labels, lambda rows, _logits: codes[rows])


def _level_family(name: str, raw: pd.Series, top: int) -> _Family:
    labels_ = pd.Series(values.to_labels(raw))
    counts = labels_.value_counts()
    order = sorted(counts.index, key=lambda level: (-counts[level], level))
    levels = order[:top]
    rest = order[top:]
    keys: list[CohortKey] = [("level", name, level) for level in levels]
    labels = [f"{name} = {level}" for level in levels]
    lookup = {level: i for i, level in enumerate(levels)}
    if rest:
        other = OTHER
        while other in lookup:  # a real level called "other" keeps its name
            other = f"({other})"
        lookup.update(dict.fromkeys(rest, len(keys)))
        keys.append(("level", name, other))
        labels.append(f"{name}: {len(rest)} other levels")
    missing = labels_.isna().to_numpy()
    codes = labels_.map(lookup).fillna(len(keys)).to_numpy(dtype=np.int64)
    if missing.any():
        keys.append(("level", name, None))
        labels.append(f"{name}: missing")
    return _Family(keys, labels, lambda rows, _logits: codes[rows])


def _filter_family(name: str, mask: np.ndarray, n_rows: int) -> _Family:
    mask = np.asarray(mask)
    if mask.dtype != np.bool_ or mask.shape != (n_rows,):
        raise ValueError(
            f"filter {name!r} must be a bool row mask of shape ({n_rows},), got {mask.dtype} "
            f"of shape {mask.shape}"
        )
    codes = np.where(mask, 0, -1)
    return _Family([("filter", name)], [name], lambda rows, _logits: codes[rows])


def _class_families(
    spec: CohortSpec, task: str, n_outputs: int, target: Tensor | None
) -> list[_Family]:
    if not spec.classes or not Task(task).is_classification:
        return []
    n_classes = 2 if task == Task.BINARY and n_outputs == 1 else n_outputs
    names = list(spec.class_labels) or [str(i) for i in range(n_classes)]
    if len(names) != n_classes:
        raise ValueError(f"{len(names)} class labels given for a model of {n_classes} classes")

    def pred(rows: slice, logits: Tensor) -> np.ndarray:
        return predicted_class(logits, task).numpy()

    families = [
        _Family([("pred", c) for c in names], [f"predicted: {c}" for c in names], pred),
    ]
    if target is not None:
        true = target.long().numpy()
        families.insert(
            0,
            _Family(
                [("true", c) for c in names],
                [f"true class: {c}" for c in names],
                lambda rows, _logits: true[rows],
            ),
        )
        families.append(
            _Family(
                [("correct", True), ("correct", False)],
                ["correct predictions", "wrong predictions"],
                lambda rows, logits: (pred(rows, logits) != true[rows]).astype(np.int64),
            )
        )
    return families


def _frame_families(spec: CohortSpec, frame: pd.DataFrame | None, n_rows: int) -> list[_Family]:
    families = [_filter_family(name, mask, n_rows) for name, mask in spec.filters.items()]
    if not spec.deciles and not spec.levels:
        return families
    if frame is None:
        raise ValueError("decile and level cohorts need the raw rows: pass frame")
    absent = [name for name in (*spec.deciles, *spec.levels) if name not in frame.columns]
    if absent:
        raise ValueError(f"the frame lacks the cohort column(s) {absent}")
    families += [_decile_family(name, frame[name]) for name in spec.deciles]
    families += [_level_family(name, frame[name], spec.top_levels) for name in spec.levels]
    return families


@dataclass(frozen=True)
class Shard:
    """One process's part of a collection spread over a ``torch.distributed`` group.

    The process records a contiguous block of the rows (:meth:`rows`: every row in exactly one
    block, block sizes differing by at most one), and the float64 sums of every process are
    then added up (all-reduce), so that each ends with the atlas of all the rows.
    """

    rank: int
    world_size: int
    group: Any = None  # the process group; None: the default one

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, {self.world_size}), got {self.rank}")

    def rows(self, n_rows: int) -> slice:
        """This process's block of `n_rows` rows (empty when there are fewer rows than
        processes)."""
        return slice(
            self.rank * n_rows // self.world_size, (self.rank + 1) * n_rows // self.world_size
        )


# -- the atlas -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CohortMap:
    """One cohort's map: mean and population standard deviation per cell, and its row count.

    ``std_is_bound``: for head-averaged maps the standard deviation is the mean of the heads'
    standard deviations, an upper bound of the true one (heads co-vary across rows, and the
    recorder keeps no cross-head moments).

    Shape: ``mean``, ``std``: ``(H, Tq, Tk)``, or ``(Tq, Tk)`` for one head or the head mean.
    """

    mean: np.ndarray
    std: np.ndarray
    count: int
    std_is_bound: bool = False


@dataclass(frozen=True)
class MapDifference:
    """``a - b`` of two cohorts' mean maps, its standard error, and which cells are noise.

    Shape: all three like the cohorts' maps.
    """

    diff: np.ndarray
    se: np.ndarray
    muted: np.ndarray  # bool: |diff| < z * se


def cohort_difference(a: CohortMap, b: CohortMap, z: float = 2.0) -> MapDifference:
    """The difference of two cohorts' mean maps, with a standard error per cell.

    ``se = sqrt(s_a²/n_a + s_b²/n_b)`` with sample variances ``s² = std² · n/(n−1)``; a cohort of
    fewer than 2 rows has an infinite error (everything muted). Cells with ``|diff| < z·se``
    are muted. The errors assume independent cohorts; for overlapping ones (a cohort against
    all rows) the true error is smaller, so muting errs on the side of silence.
    """
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"cohort maps differ in shape: {a.mean.shape} and {b.mean.shape}")
    variance = np.zeros_like(a.mean, dtype=np.float64)
    for cohort in (a, b):
        if cohort.count < 2:
            variance = variance + np.inf
        else:
            variance = variance + cohort.std.astype(np.float64) ** 2 / (cohort.count - 1)
    diff = a.mean.astype(np.float64) - b.mean.astype(np.float64)
    se = np.sqrt(variance)
    return MapDifference(diff=diff, se=se, muted=~(np.abs(diff) >= z * se))


@dataclass(frozen=True, eq=False)
class AttentionAtlas:
    """Mean and standard-deviation maps per layer, map and cohort, with names and counts.

    Attributes:
        layer_names: display name of each layer.
        token_names: per layer, ``{"num": names, "cat": names}``.
        cohorts: cohort keys (first ``("all",)``); cohort ``i`` is index ``i`` below.
        cohort_labels: a readable label per cohort.
        counts: rows per cohort, ``(K,)`` int64.
        means, stds: per ``(layer, map_id)``, ``(K, H, Tq, Tk)`` float32; stds are population
            standard deviations over the cohort's rows.
        entropy: per ``(layer, map_id)``, ``(K, H)`` float32: each row's normalized entropy
            (mean over query rows), averaged over the cohort's rows.
        rollout_mean, rollout_std: ``(K, T)`` float32: each row's rollout importance of the
            tokens ``[num..., cat...]`` of the first layer, mean and std over the cohort's rows.
    """

    layer_names: tuple[str, ...]
    token_names: tuple[Mapping[str, tuple[str, ...]], ...]
    cohorts: tuple[CohortKey, ...]
    cohort_labels: tuple[str, ...]
    counts: np.ndarray
    means: Mapping[MapKey, np.ndarray]
    stds: Mapping[MapKey, np.ndarray]
    entropy: Mapping[MapKey, np.ndarray]
    rollout_mean: np.ndarray
    rollout_std: np.ndarray

    @property
    def map_keys(self) -> list[MapKey]:
        """``(layer, map_id)`` of every map, by layer then in :data:`MAP_IDS` order."""
        return sorted(self.means, key=lambda key: (key[0], MAP_IDS.index(key[1])))

    @property
    def rollout_tokens(self) -> tuple[str, ...]:
        """The tokens of the rollout importances: numerical, then categorical."""
        names = self.token_names[0]
        return (*names.get("num", ()), *names.get("cat", ()))

    def names(self, layer: int, map_id: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``(query names, key names)`` of a map."""
        query_stream, key_stream = map_id.split("_")
        names = self.token_names[layer]
        return tuple(names[query_stream]), tuple(names[key_stream])

    def index(self, cohort: CohortKey) -> int:
        """Position of ``cohort``; ``KeyError`` listing the cohorts when absent."""
        try:
            return self.cohorts.index(tuple(cohort))
        except ValueError:
            raise KeyError(
                f"no cohort {cohort!r} (no rows, or not collected); cohorts: {list(self.cohorts)}"
            ) from None

    def cohort_map(
        self,
        layer: int,
        map_id: str,
        cohort: CohortKey = ALL_ROWS,
        head: int | Literal["mean"] | None = None,
    ) -> CohortMap:
        """One cohort's map: all heads (``None``), one head, or the head mean (``"mean"``)."""
        i = self.index(cohort)
        mean, std = self.means[(layer, map_id)][i], self.stds[(layer, map_id)][i]
        count = int(self.counts[i])
        if head is None:
            return CohortMap(mean, std, count)
        if head == "mean":
            return CohortMap(mean.mean(axis=0), std.mean(axis=0), count, std_is_bound=True)
        return CohortMap(mean[head], std[head], count)

    def difference(
        self,
        layer: int,
        map_id: str,
        a: CohortKey,
        b: CohortKey,
        head: int | Literal["mean"] | None = None,
        z: float = 2.0,
    ) -> MapDifference:
        """:func:`cohort_difference` of two cohorts of this atlas."""
        return cohort_difference(
            self.cohort_map(layer, map_id, a, head), self.cohort_map(layer, map_id, b, head), z
        )

    def importance(self, cohort: CohortKey = ALL_ROWS) -> dict[str, float]:
        """Rollout importance per token: each row's rollout, averaged over the cohort.

        Each row is rolled out through its own maps and then averaged, rather than rolling out
        the mean maps: the rollout is a product of the layers' maps, and the mean of products
        differs from the product of means whenever layers co-vary across rows; the per-row
        average is what the predictions actually used. :meth:`mean_map_importance` gives the
        other for comparison.
        """
        values_ = self.rollout_mean[self.index(cohort)]
        return dict(zip(self.rollout_tokens, map(float, values_), strict=True))

    def mean_map_importance(self, cohort: CohortKey = ALL_ROWS) -> dict[str, float]:
        """Rollout importance per token of the cohort's mean maps (see :meth:`importance`)."""
        i = self.index(cohort)
        layers: list[dict[str, np.ndarray]] = [{} for _ in self.layer_names]
        for (layer, map_id), mean in self.means.items():
            layers[layer][map_id] = mean[i].astype(np.float64)
        names = self.token_names[0]
        result = rollout_importance(layers, len(names.get("num", ())), len(names.get("cat", ())))
        return dict(zip(self.rollout_tokens, map(float, result), strict=True))


@dataclass(frozen=True)
class RowAttention:
    """One row's maps (an atlas whose only cohort is ``("all",)``) and its value labels."""

    atlas: AttentionAtlas
    labels: Mapping[str, list[str]]  # "num"/"cat": tokens labelled with the row's raw values


# -- collecting ------------------------------------------------------------------------------
def collect_attention(
    model: nn.Module,
    data: Inputs,
    frame: pd.DataFrame | None = None,
    cohorts: CohortSpec | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    targets: Tensor | np.ndarray | None = None,
    progress: Progress | None = None,
    shard: Shard | None = None,
) -> AttentionAtlas:
    """Run ``model`` over ``data`` once and aggregate its attention per cohort.

    Args:
        model: see the module docstring for the interface; run in eval mode, restored after.
        data: an :class:`~mrta.data.preprocessing.EncodedTable` or ``(numerical, indicators,
            categorical)`` tensors.
        frame: the raw rows, aligned with ``data`` by position, with the cohort columns (see
            :func:`token_frame`); needed for decile and level cohorts.
        cohorts: which cohorts; ``None`` means classes only.
        targets: true classes ``(N,)``, overriding ``data.target``.
        progress: called after each batch with ``(rows done, rows, message)``.
        shard: record only this process's block of the rows and add up the sums of all the
            processes of its group (every one calls this with the same arguments); the atlas
            is the one of all the rows, on every process. Cohorts (deciles, ...) are made from
            all the rows, as without it.
    """
    numerical, indicators, categorical, target = split_inputs(data, targets)
    n_rows = len(numerical)
    if n_rows == 0:
        raise ValueError("no rows to collect attention from")
    if frame is not None and len(frame) != n_rows:
        raise ValueError(f"frame has {len(frame)} rows, the data {n_rows}")
    spec = cohorts or CohortSpec()
    frame_families = _frame_families(spec, frame, n_rows)
    task, device = model_task(model), model_device(model)
    families: list[_Family] | None = None
    stream = AttentionRecorder(model, mode="stream", cohorts=True)
    sums = sums_sq = counts = None
    block = slice(0, n_rows) if shard is None else shard.rows(n_rows)
    was_training = model.training
    model.eval()
    try:
        if shard is not None:
            # What every process must know before the sums are added up, even one without
            # rows: the cohorts, the maps' shapes and the width of the per-row features.
            with AttentionRecorder(model, mode="keep") as probe, torch.no_grad():
                logits = model(
                    numerical[:1].to(device), indicators[:1].to(device), categorical[:1].to(device)
                )
            families = _class_families(spec, task, logits.shape[-1], target) + frame_families
            shapes = {key: tuple(probe.weights(*key).shape[1:]) for key in probe.keys}
            width = _row_features(probe).shape[1]
        with stream, torch.no_grad():
            for start in range(block.start, block.stop, batch_size):
                rows = slice(start, min(start + batch_size, block.stop))
                with AttentionRecorder(model, mode="keep") as kept:
                    logits = model(
                        numerical[rows].to(device),
                        indicators[rows].to(device),
                        categorical[rows].to(device),
                    )
                logits = logits.detach().float().cpu()
                if families is None:
                    families = _class_families(spec, task, logits.shape[-1], target)
                    families += frame_families
                membership = _membership(families, rows, logits)  # (1 + K, B), row 0 = all
                stream.commit(
                    {
                        key: torch.from_numpy(member)
                        for key, member in zip(_keys(families), membership[1:], strict=True)
                    }
                )
                features = _row_features(kept)  # (B, D)
                weights = membership.astype(np.float64)
                if sums is None:
                    sums = np.zeros((len(weights), features.shape[1]))
                    sums_sq, counts = np.zeros_like(sums), np.zeros(len(weights), np.int64)
                sums += weights @ features
                sums_sq += weights @ features**2
                counts += membership.sum(axis=1)
                if progress is not None:
                    progress(
                        rows.stop - block.start, block.stop - block.start, "recording attention"
                    )
    finally:
        model.train(was_training)
    if shard is not None:
        assert families is not None
        sums, sums_sq, counts = _all_reduce(
            shard, stream, families, shapes, width, sums, sums_sq, counts
        )
    assert families is not None and sums is not None and sums_sq is not None
    keys = [ALL_ROWS, *_keys(families)]
    labels = ["all rows", *(label for family in families for label in family.labels)]
    return _build_atlas(stream, keys, labels, counts, sums, sums_sq)


def _all_reduce(
    shard: Shard,
    stream: AttentionRecorder,
    families: Sequence[_Family],
    shapes: Mapping[MapKey, tuple[int, ...]],
    width: int,
    sums: np.ndarray | None,
    sums_sq: np.ndarray | None,
    counts: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sums of every process of the shard's group: the recorder's maps, and the per-row
    features' sums, sums of squares and counts ``(1 + K, ...)`` (zeros where none)."""
    stream.all_reduce([ALL, *_keys(families)], shapes, group=shard.group)
    n_cohorts = 1 + len(_keys(families))
    packed = torch.zeros(n_cohorts, 2 * width + 1, dtype=torch.float64)
    if sums is not None:
        assert sums_sq is not None and counts is not None
        packed[:, :width] = torch.from_numpy(sums)
        packed[:, width:-1] = torch.from_numpy(sums_sq)
        packed[:, -1] = torch.from_numpy(counts.astype(np.float64))
    dist.all_reduce(packed, op=dist.ReduceOp.SUM, group=shard.group)
    packed_ = packed.numpy()
    return packed_[:, :width], packed_[:, width:-1], packed_[:, -1].round().astype(np.int64)


def _keys(families: Sequence[_Family]) -> list[CohortKey]:
    return [key for family in families for key in family.keys]


def _membership(families: Sequence[_Family], rows: slice, logits: Tensor) -> np.ndarray:
    """Which cohorts each row of the batch is in. Shape: ``(1 + K, B)`` bool, row 0 all rows."""
    parts = [np.ones((1, rows.stop - rows.start), dtype=bool)]
    for family in families:
        codes = family.codes(rows, logits)
        parts.append(codes[None, :] == np.arange(len(family.keys))[:, None])
    return np.concatenate(parts)


def _row_features(kept: AttentionRecorder) -> np.ndarray:
    """Per row: rollout importances, then every map's per-head normalized entropy.

    Shape: ``(B, T + Σ H)``, maps in :attr:`AttentionRecorder.keys` order.
    """
    layers: list[dict[str, np.ndarray]] = [{} for _ in kept.layers]
    entropies = []
    for layer, map_id in kept.keys:
        w = kept.weights(layer, map_id)  # (B, H, Tq, Tk)
        layers[layer][map_id] = w.numpy()
        entropies.append(normalized_entropy(w).mean(dim=-1).numpy())  # (B, H)
    n_num, n_cat = _token_counts(layers[0])
    return np.concatenate([rollout_importance(layers, n_num, n_cat), *entropies], axis=1)


def _token_counts(maps: Mapping[str, np.ndarray]) -> tuple[int, int]:
    """``(Tn, Tc)`` of one layer's maps ``(..., Tq, Tk)``; 0 for an absent stream."""
    n_num = n_cat = 0
    for map_id, w in maps.items():
        query, key = map_id.split("_")
        sizes = {query: w.shape[-2], key: w.shape[-1]}
        n_num, n_cat = sizes.get("num", n_num), sizes.get("cat", n_cat)
    return n_num, n_cat


def _layer_token_names(
    layer: MultiResolutionTabularAttention, sizes: tuple[int, int]
) -> dict[str, tuple[str, ...]]:
    names: dict[str, tuple[str, ...]] = {}
    for stream, size in zip(("num", "cat"), sizes, strict=True):
        given = tuple(layer.token_names.get(stream, ()))
        if given and len(given) != size:
            raise ValueError(
                f"layer token_names[{stream!r}] has {len(given)} names for {size} tokens"
            )
        names[stream] = given or tuple(f"{stream} {i + 1}" for i in range(size))
    return names


def _build_atlas(
    stream: AttentionRecorder,
    keys: Sequence[CohortKey],
    labels: Sequence[str],
    counts: np.ndarray,
    sums: np.ndarray,
    sums_sq: np.ndarray,
) -> AttentionAtlas:
    present = [i for i in range(len(keys)) if counts[i] > 0]
    recorder_keys = [ALL if i == 0 else keys[i] for i in present]
    means, stds, entropy = {}, {}, {}
    row_stats = [
        StreamStats(torch.from_numpy(sums[i]), torch.from_numpy(sums_sq[i]), int(counts[i]))
        for i in present
    ]
    row_mean = torch.stack([s.mean() for s in row_stats]).numpy().astype(np.float32)
    row_std = torch.stack([s.std() for s in row_stats]).numpy().astype(np.float32)
    shapes: list[dict[str, np.ndarray]] = [{} for _ in stream.layers]
    for layer, map_id in stream.keys:
        per_cohort = [stream.cohort_stats(layer, map_id, key) for key in recorder_keys]
        means[(layer, map_id)] = torch.stack([s.mean() for s in per_cohort]).float().numpy()
        stds[(layer, map_id)] = torch.stack([s.std() for s in per_cohort]).float().numpy()
        shapes[layer][map_id] = means[(layer, map_id)]
    token_names = tuple(
        _layer_token_names(layer, _token_counts(maps))
        for layer, maps in zip(stream.layers, shapes, strict=True)
    )
    n_tokens = offset = sum(_token_counts(shapes[0]))
    for key in stream.keys:
        heads = means[key].shape[1]
        entropy[key] = row_mean[:, offset : offset + heads]
        offset += heads
    return AttentionAtlas(
        layer_names=tuple(stream.layer_names),
        token_names=token_names,
        cohorts=tuple(keys[i] for i in present),
        cohort_labels=tuple(labels[i] for i in present),
        counts=counts[present].astype(np.int64),
        means=means,
        stds=stds,
        entropy=entropy,
        rollout_mean=row_mean[:, :n_tokens],
        rollout_std=row_std[:, :n_tokens],
    )


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
