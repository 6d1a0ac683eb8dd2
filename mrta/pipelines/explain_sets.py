"""Explaining a set run: its sets' attention reduced to measures per row, and one set's maps.

:func:`explain_sets` records the maps of at most ``max_sets`` sets, batch by batch (a batch
holds at most :data:`RECORD_PAIRS` query-key pairs per map and head), and reduces them to the
per-row measures of :mod:`mrta.analysis.sets` (the rollout's readout from the last layer's
outputs, which the model pools); :func:`set_maps` gives one group's full maps.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch
from torch import nn

from mrta.analysis.collect import ProgressFn
from mrta.analysis.inputs import attention_layers
from mrta.analysis.labels import format_value
from mrta.analysis.recorder import AttentionRecorder
from mrta.analysis.sets import ROLLOUT, SetExplanation, SetMaps, measure_name, row_measures
from mrta.data.sets import SetBatch
from mrta.runs.run import Run
from mrta.task import Task
from mrta.training.inference import batch_limit, batches, evaluating, model_device, to_predictions

#: Sets analysed at most by default: a seeded sample of the groups beyond it.
DEFAULT_MAX_SETS = 500


#: Query-key pairs per map and head recorded in one forward pass: a set of 1,000 rows.
RECORD_PAIRS = 2**20


def explain_sets(
    run: Run,
    frame: pd.DataFrame,
    *,
    max_sets: int = DEFAULT_MAX_SETS,
    seed: int = 0,
    progress: ProgressFn | None = None,
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
    model = run.model
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
    with evaluating(model):
        for rows in batches(len(sets), batch):
            if progress is not None:
                progress(rows.start, len(sets), "recording attention")
            part = sets.select(rows)
            with (
                AttentionRecorder(model, mode="keep", max_bytes=2**40) as recorder,
                _outputs_of(layers[-1]) as outputs,
            ):
                inputs = part.to(model_device(model)).model_inputs()
                logits[rows] = model(*inputs).float().cpu()
                weights = {key: recorder.weights(*key) for key in map_keys}
            filled = row_measures(
                part, weights, outputs[0], map_keys, len(layers), measures, filled
            )
            del weights, outputs
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
    model = run.model
    with evaluating(model), AttentionRecorder(model, mode="keep", max_bytes=2**40) as recorder:
        model(*sets.to(model_device(model)).model_inputs())
        maps = {k: recorder.weights(*k)[0].numpy() for k in recorder.keys}  # (H, n, n) each
    positions = group.index[sets.row_index[0].numpy()]
    values = _values(run, frame, frame.index.get_indexer(positions), options.group_by)
    return SetMaps(
        key=key, maps=maps, values=values.reset_index(drop=True), order_by=options.order_by
    )


@contextmanager
def _outputs_of(layer: nn.Module) -> Iterator[list[tuple[torch.Tensor | None, ...]]]:
    """A list that receives the outputs of `layer` (the model's last: what it pools) on the
    CPU, in their own precision, at each forward pass within the block."""
    caught: list[tuple[torch.Tensor | None, ...]] = []

    def keep(_module: nn.Module, _inputs: object, out: tuple[torch.Tensor | None, ...]) -> None:
        caught.append(tuple(None if x is None else x.detach().cpu() for x in out))

    hook = layer.register_forward_hook(keep)
    try:
        yield caught
    finally:
        hook.remove()


def _set_options(run: Run):
    if run.sets is None:
        raise ValueError(
            "this run predicts one row at a time: its attention is between columns; use "
            "mrta.pipelines.explain.explain (set analysis needs a run trained with group_by)"
        )
    return run.sets


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
