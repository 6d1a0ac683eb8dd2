"""Attention in set resolution: which rows a set's prediction rests on.

In a set run the tokens are rows, so every attention map is a row × row map of one set, and
sets differ in size and in what their rows hold: maps cannot be averaged across sets cell by
cell as column maps are. :func:`explain_sets` therefore reduces each set's maps to measures
per row, and the dataset-level view aggregates rows by what they hold:

- ``received``: the attention a row receives in one map, over the heads and the set's rows as
  queries, times the set's size, so that ``1`` is an even share (a row of a set of 40 that
  draws a tenth of the attention scores 4);
- ``rollout``: the row's share of the pooled representation by attention rollout
  (:func:`~mrta.analysis.rollout.pooled_importance`; its numerical and categorical tokens together),
  times the set's size, so again ``1`` is an even share.

:func:`set_maps` gives one set's full maps, with its rows' values, for a heatmap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mrta.analysis.atlas import attention_layers, format_value, model_device
from mrta.analysis.recorder import AttentionRecorder
from mrta.analysis.rollout import pooled_importance
from mrta.data.sets import SetBatch
from mrta.runs.run import Run
from mrta.task import Task
from mrta.training.evaluate import batch_limit, to_predictions

#: Sets analysed at most by default: a seeded sample of the groups beyond it.
DEFAULT_MAX_SETS = 500
#: Query-key pairs per map and head recorded in one forward pass: a set of 1,000 rows.
RECORD_PAIRS = 2**20
#: The per-row measure summaries and rankings use by default.
ROLLOUT = "rollout"
#: Quantile bins of a numerical column in :meth:`SetExplanation.summary`.
BINS = 5
#: Levels of a categorical column shown in a summary; the rest are pooled.
TOP_LEVELS = 12

Phase = Callable[[int, int, str], None]


def measure_name(layer: int, map_id: str) -> str:
    """The column of a map's received attention in :attr:`SetExplanation.rows`."""
    return f"layer {layer} {map_id}"


@dataclass(frozen=True, eq=False)
class SetExplanation:
    """Per-set and per-row attention measures of a set run over some sets.

    ``sets`` has one row per analysed set: the group key (column named by the group key),
    ``n_rows``, ``target`` and ``prediction`` (labels for classification), and ``correct``.
    ``rows`` has one row per analysed row: the group key, ``position`` (its place in the set,
    0-based, in ``order_by`` order), ``row`` (its position in the table explained), one
    ``received`` column per map (:func:`measure_name`) and ``rollout``. ``values`` holds the
    same rows' feature values (and the order-by column), index aligned with ``rows``.
    """

    group_by: str
    order_by: str | None
    map_keys: tuple[tuple[int, str], ...]
    sets: pd.DataFrame
    rows: pd.DataFrame
    values: pd.DataFrame
    sampled_from: int | None
    seconds: float

    @property
    def measures(self) -> list[str]:
        """The per-row measures: ``rollout`` first, then each map's received attention."""
        return [ROLLOUT, *(measure_name(layer, map_id) for layer, map_id in self.map_keys)]

    def summary(self, column: str, measure: str = ROLLOUT, bins: int = BINS) -> pd.DataFrame:
        """Mean `measure` of the rows by what they hold in `column`: each level of a
        categorical column (the most frequent :data:`TOP_LEVELS`, the rest pooled), or each
        quantile bin of a numerical one; with the rows counted and the standard error.

        Returns columns ``group`` (the level or bin), ``rows``, ``mean``, ``sem``, in level
        order (bins ascending, levels by frequency).
        """
        if column not in self.values.columns:
            raise KeyError(f"no column {column!r}; columns: {', '.join(self.values.columns)}")
        if measure not in self.measures:
            raise KeyError(f"no measure {measure!r}; measures: {', '.join(self.measures)}")
        raw = self.values[column]
        numbers = pd.to_numeric(raw, errors="coerce")
        if pd.api.types.is_numeric_dtype(raw) or numbers.notna().mean() > 0.95:
            groups = pd.qcut(numbers, bins, duplicates="drop").astype(object)
            groups = groups.map(lambda b: f"{b.left:.4g} to {b.right:.4g}", na_action="ignore")
            order = [
                f"{b.left:.4g} to {b.right:.4g}"
                for b in pd.qcut(numbers, bins, duplicates="drop").cat.categories
            ]
        else:
            labels = raw.map(format_value)
            order = labels.value_counts().index[:TOP_LEVELS].tolist()
            groups = labels.where(labels.isin(order), "(other levels)")
            if (~labels.isin(order)).any():
                order.append("(other levels)")
        groups = groups.fillna("(missing)")
        if groups.eq("(missing)").any():
            order.append("(missing)")
        values = self.rows[measure].to_numpy()
        table = (
            pd.DataFrame({"group": groups.to_numpy(), "value": values})
            .groupby("group", sort=False)["value"]
            .agg(rows="size", mean="mean", sem="sem")
        )
        return table.reindex(order).reset_index()

    def set_rows(self, key: str, measure: str = ROLLOUT) -> pd.DataFrame:
        """One set's rows, most attended first: position, measures and values."""
        rows = self.rows[self.rows[self.group_by] == key]
        if rows.empty:
            raise KeyError(f"no analysed set {key!r}")
        joined = rows.join(self.values.drop(columns=[self.group_by], errors="ignore"))
        return joined.sort_values(measure, ascending=False, kind="stable")


@dataclass(frozen=True, eq=False)
class SetMaps:
    """One set's row × row maps: ``maps[(layer, map_id)]`` is ``(H, n, n)``, rows in set order
    (queries down, keys across); ``values`` holds the rows' values, one per row."""

    key: str
    maps: dict[tuple[int, str], np.ndarray]
    values: pd.DataFrame
    order_by: str | None

    def labels(self, column: str | None = None) -> list[str]:
        """A label per row: its value in `column` (default: the order-by column), else its
        position, made unique with the position where values repeat."""
        column = column or self.order_by
        if column is None or column not in self.values.columns:
            return [f"row {i}" for i in range(len(self.values))]
        texts = [format_value(v) for v in self.values[column]]
        repeated = {t for t in texts if texts.count(t) > 1}
        return [f"{t} (#{i})" if t in repeated else t for i, t in enumerate(texts)]

    def hover(self) -> list[str]:
        """Each row's values as one line, for a heatmap's hover text."""
        return [
            ", ".join(f"{c}={format_value(v)}" for c, v in row.items())
            for _, row in self.values.iterrows()
        ]


def explain_sets(
    run: Run,
    frame: pd.DataFrame,
    *,
    max_sets: int = DEFAULT_MAX_SETS,
    seed: int = 0,
    progress: Phase | None = None,
) -> SetExplanation:
    """Record a set run's attention over the groups of `frame` (a seeded sample of `max_sets`
    of them when there are more) and reduce each set's maps to measures per row.

    Sets are recorded a few at a time (at most :data:`RECORD_PAIRS` query-key pairs per map
    and head) and reduced at once, so the memory in use is bounded by the largest set, not by
    the number of sets.
    `progress` is called as ``(sets done, sets, message)``.
    """
    options = _set_options(run)
    if max_sets < 1:
        raise ValueError(f"max_sets must be at least 1, got {max_sets}")
    start = time.perf_counter()
    with_target = run.schema.target in frame.columns
    sets = options.make(
        frame, run.preprocessor, seed=run.train_config.seed, with_target=with_target
    )
    sampled_from = None
    if len(sets) > max_sets:
        sampled_from = len(sets)
        chosen = np.sort(np.random.default_rng(seed).choice(len(sets), max_sets, replace=False))
        sets = sets.select(chosen.tolist())
    model = run.model.eval()
    layers = attention_layers(model)
    map_keys = tuple(
        sorted((i, map_id) for i, layer in enumerate(layers) for map_id in layer.attention_blocks())
    )
    # Filled in place: small arrays kept between the batches' large, short-lived tensors
    # would fragment the heap and let resident memory grow with the number of sets.
    measures = np.empty((int(sets.mask.sum()), 1 + len(map_keys)), dtype=np.float32)
    logits = torch.empty(len(sets), model.n_outputs)
    batch = batch_limit(len(sets), sets, RECORD_PAIRS)
    filled = 0
    for begin in range(0, len(sets), batch):
        if progress is not None:
            progress(begin, len(sets), "recording attention")
        part = sets.select(slice(begin, begin + batch))
        with torch.no_grad(), AttentionRecorder(model, mode="keep", max_bytes=2**40) as recorder:
            inputs = part.to(model_device(model)).model_inputs()
            logits[begin : begin + len(part)] = model(*inputs).float().cpu()
            weights = {key: recorder.weights(*key) for key in map_keys}
        filled = _row_measures(part, weights, map_keys, len(layers), measures, filled)
        del weights
    if progress is not None:
        progress(len(sets), len(sets), "recording attention")
    sizes = sets.set_sizes.numpy()
    table = pd.DataFrame(
        {
            options.group_by: np.repeat(np.asarray(sets.keys, dtype=object), sizes),
            "position": np.concatenate([np.arange(n) for n in sizes]),
            "row": sets.row_index[sets.mask].numpy(),
        }
    )
    names = [ROLLOUT, *(measure_name(*key) for key in map_keys)]
    table[names] = measures
    return SetExplanation(
        group_by=options.group_by,
        order_by=options.order_by,
        map_keys=map_keys,
        sets=_set_table(run, sets, logits),
        rows=table,
        values=_values(run, frame, table["row"].to_numpy(), options.group_by),
        sampled_from=sampled_from,
        seconds=round(time.perf_counter() - start, 3),
    )


def set_maps(run: Run, frame: pd.DataFrame, key: str) -> SetMaps:
    """The full row × row maps of the group `key` of `frame`, every layer, map and head."""
    options = _set_options(run)
    group = frame[frame[options.group_by].map(format_value) == key]
    if group.empty:
        raise KeyError(f"there is no group {key!r} in {options.group_by!r}")
    sets = options.make(group, run.preprocessor, seed=run.train_config.seed, with_target=False)
    model = run.model.eval()
    with torch.no_grad(), AttentionRecorder(model, mode="keep", max_bytes=2**40) as recorder:
        model(*sets.to(model_device(model)).model_inputs())
        maps = {k: recorder.weights(*k)[0].numpy() for k in recorder.keys}  # (H, n, n) each
    positions = group.index[sets.row_index[0].numpy()]
    values = _values(run, frame, frame.index.get_indexer(positions), options.group_by)
    return SetMaps(
        key=key, maps=maps, values=values.reset_index(drop=True), order_by=options.order_by
    )


def write_set_exports(
    explanation: SetExplanation, out: str | Path, maps: SetMaps | None = None
) -> list[Path]:
    """Write ``sets.csv``, ``rows.csv`` (measures beside values), ``summary.csv`` (every
    column's summary of the rollout measure) and, with `maps`, ``set_maps.npz`` (arrays named
    ``layer{L}_{map_id}``, ``(H, n, n)``) and ``set_maps.csv`` (tidy) into the folder `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "sets.csv", out / "rows.csv", out / "summary.csv"]
    explanation.sets.to_csv(written[0], index=False)
    values = explanation.values.drop(columns=[explanation.group_by], errors="ignore")
    explanation.rows.join(values).to_csv(written[1], index=False)
    summaries = [
        explanation.summary(column).assign(column=column)
        for column in values.columns
        if column != explanation.order_by
    ]
    pd.concat(summaries, ignore_index=True)[["column", "group", "rows", "mean", "sem"]].to_csv(
        written[2], index=False
    )
    if maps is not None:
        arrays = {f"layer{layer}_{map_id}": m for (layer, map_id), m in maps.maps.items()}
        np.savez_compressed(out / "set_maps.npz", **arrays)
        labels = maps.labels()
        tidy = [
            pd.DataFrame(
                {
                    "layer": layer,
                    "map": map_id,
                    "head": np.repeat(np.arange(m.shape[0]), m.shape[1] * m.shape[2]),
                    "query": np.tile(np.repeat(labels, m.shape[2]), m.shape[0]),
                    "key": np.tile(labels, m.shape[0] * m.shape[1]),
                    "weight": m.reshape(-1),
                }
            )
            for (layer, map_id), m in maps.maps.items()
        ]
        pd.concat(tidy, ignore_index=True).to_csv(out / "set_maps.csv", index=False)
        written += [out / "set_maps.npz", out / "set_maps.csv"]
    return written


def _set_options(run: Run):
    if run.sets is None:
        raise ValueError(
            "this run predicts one row at a time: its attention is between columns; use "
            "mrta.pipelines.explain.explain (set analysis needs a run trained with group_by)"
        )
    return run.sets


def _row_measures(
    part: SetBatch,
    weights: dict[tuple[int, str], torch.Tensor],
    map_keys: Sequence[tuple[int, str]],
    n_layers: int,
    out: np.ndarray,
    start: int,
) -> int:
    """Write each real row's rollout share and received attention per map, relative to an
    even share, into ``out[start:]`` (a row per real row, columns: rollout, then `map_keys`);
    returns the next free row. Shape: weights ``(B, H, S, S)`` each."""
    streams = {map_id.split("_")[0] for _, map_id in map_keys}
    for i, n in enumerate(part.set_sizes.tolist()):
        rows = slice(start, start + n)
        layers: list[dict[str, np.ndarray]] = [{} for _ in range(n_layers)]
        for column, (layer, map_id) in enumerate(map_keys, start=1):
            w = weights[(layer, map_id)][i, :, :n, :n]  # (H, n, n) float32: real rows only
            head_mean = w.mean(dim=0)  # (n, n)
            out[rows, column] = head_mean.mean(dim=0).numpy() * n
            layers[layer][map_id] = head_mean.numpy()
        n_num = n if "num" in streams else 0
        n_cat = n if "cat" in streams else 0
        share = pooled_importance(layers, n_num, n_cat)  # (n_num + n_cat,)
        out[rows, 0] = (share[:n_num] + share[n_num:] if n_num and n_cat else share) * n
        start += n
    return start


def _set_table(run: Run, sets: SetBatch, logits: torch.Tensor) -> pd.DataFrame:
    """One row per set: key, size, target, prediction, and whether it was right."""
    task = run.schema.task.value
    predicted = to_predictions(
        task, logits, run.preprocessor.target_mean, run.preprocessor.target_std
    )
    table = pd.DataFrame({run.sets.group_by: list(sets.keys), "n_rows": sets.set_sizes.numpy()})
    labels = np.asarray(run.class_labels, dtype=object)
    if task == Task.REGRESSION:
        table["prediction"] = predicted
        if sets.target is not None:
            table["target"] = sets.target.numpy()
            table["error"] = table["prediction"] - table["target"]
        return table
    table["prediction"] = labels[predicted.argmax(axis=1)]
    table["probability"] = predicted.max(axis=1)
    if sets.target is not None:
        table["target"] = labels[sets.target.numpy()]
        table["correct"] = table["prediction"] == table["target"]
    return table


def _values(run: Run, frame: pd.DataFrame, rows: np.ndarray, group_by: str) -> pd.DataFrame:
    """The feature columns (and group key and order-by column) of `frame` at positions `rows`."""
    schema = run.schema
    columns = [group_by, *([run.sets.order_by] if run.sets.order_by else [])]
    columns += [c for c in schema.feature_columns if c not in columns]
    return frame.iloc[rows][[c for c in columns if c in frame.columns]].reset_index(drop=True)
