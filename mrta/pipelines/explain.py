"""Explain a run: every view the dashboard, the report and ``mrta explain`` show, in one place.

:func:`explain` records the trained model's attention over a table once (all cohorts in one
pass), does the same for the two nulls, the untrained model (the run's initial weights) and the
control (trained on shuffled labels), derives the head table and the map divergences, and
judges the run on its test split (:func:`run_verdict`). When the table is the run's own, its
rows carry their split: the training, validation and test rows are cohorts, and the
prediction-based cohorts (true and predicted class, correct or wrong; the quintiles of a
regression's target, prediction and residual) come for the whole table, the training rows and
the test rows (see :mod:`mrta.analysis.cohorts`); rows of another table, or a run's test rows
held in a separate test file, have no split. :func:`attach_control` adds a control that landed
after the explanation. :func:`run_checks` adds the on-demand checks (head and map ablation,
zeroed and mean-replaced, on validation rows; on test rows the four column importances and their
deletion curves against random orders, and the nulls' rank agreements); :func:`filter_atlas`
records a custom cohort, of the whole table and of its training and test rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mrta.analysis.atlas import AttentionAtlas
from mrta.analysis.checks import ablate_heads, ablate_maps, map_divergence, rollout_agreement
from mrta.analysis.cohorts import ALL_ROWS, SPLITS, CohortSpec
from mrta.analysis.collect import ProgressFn, Shard, collect_attention
from mrta.analysis.deletion import (
    MIN_ROWS,
    RANDOM_ORDERS,
    Faithfulness,
    deletion_losses,
    faithfulness,
    random_orders,
    removal_values,
    row_losses,
    split_halves,
)
from mrta.analysis.explanation import Explanation
from mrta.analysis.heads import head_table
from mrta.analysis.importance import (
    METHODS,
    ColumnImportances,
    MethodImportance,
    attention_importances,
    column_streams,
    input_columns,
)
from mrta.analysis.labels import token_frame
from mrta.analysis.permutation import PermutationImportance, permutation_importance
from mrta.analysis.scoring import CHECK_ROWS
from mrta.analysis.verdict import Verdict, judge
from mrta.data.preprocessing import Examples
from mrta.errors import RunError, one_line
from mrta.runs.run import Run
from mrta.task import Task
from mrta.training.losses import task_scores

#: Why a set run has no row-level importances or deletion curves.
SET_RUN_CHECKS = (
    "The column importances, their deletion curves and the head checks work on row runs: in a "
    "set run an example is a group of rows, so shuffling or removing a column of one row says "
    "little. Explore the set run's rollout shares instead."
)
DEFAULT_MAX_ROWS = (
    10_000  # rows recorded for the maps: cohorts are well filled, a pass takes seconds
)
#: The note of an explanation made without its verdict, which is scored after it.
VERDICT_LATER = "The verdict is being scored on the test split (a few seconds)."
#: The phases :func:`explain` names to its progress callback: the trained model's pass, the
#: untrained model's, the control model's (the last only for a run with a control).
RECORDING = (
    "recording the trained model",
    "recording the untrained model",
    "recording the control model",
)


def analysed_rows(run: Run, frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """The rows of ``frame`` that have a target, at most ``max_rows`` of them (seeded sample)."""
    return frame.iloc[_analysed_positions(run, frame, max_rows, seed)]


def _analysed_positions(run: Run, frame: pd.DataFrame, max_rows: int, seed: int) -> np.ndarray:
    """The positions in ``frame`` of :func:`analysed_rows`, in their order."""
    target = run.schema.encode_target(frame)
    has_target = target >= 0 if run.schema.task != Task.REGRESSION else ~np.isnan(target)
    positions = pd.Series(np.arange(len(frame)), index=frame.index)[has_target]
    if len(positions) > max_rows:  # the sample DataFrame.sample draws, sorted by index label
        positions = positions.sample(n=max_rows, random_state=seed).sort_index()
    return positions.to_numpy()


def _row_splits(
    run: Run, frame: pd.DataFrame, positions: np.ndarray, of_run_table: bool = False
) -> np.ndarray | None:
    """The split of each row of ``frame`` at ``positions`` (``"train"``, ``"validation"``,
    ``"test"``; ``""`` for a row in none) when ``frame`` is the run's own table (the run's
    frame, or a table with its fingerprint) or, with ``of_run_table``, rows of it indexed by
    their position in it; ``None`` for another table. The test rows of a separate test file are
    not in the run's table: none of its rows is then ``"test"``."""
    if of_run_table:
        in_table = frame.index.to_numpy()[positions]
    elif frame is run.frame or (
        run.table is not None
        and run.table.sha256 is not None
        and len(frame) == run.table.rows
        and run.check_table(frame).matches
    ):
        in_table = positions
    else:
        return None
    splits = np.full(len(in_table), "", dtype="<U10")
    for split in SPLITS:
        if not (split == "test" and run.splits.separate_test_file):
            splits[np.isin(in_table, getattr(run.splits, split))] = split
    return splits


def explain(
    run: Run,
    frame: pd.DataFrame | None = None,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
    progress: ProgressFn | None = None,
    shard: Shard | None = None,
    of_run_table: bool = False,
    verdict: bool = True,
) -> Explanation:
    """Record attention over ``frame`` (default: the run's own table) and derive every view.

    Without `verdict`, none is scored (its note says :data:`VERDICT_LATER`): the caller scores
    it afterwards with :func:`run_verdict`, as the dashboard does in the background so that the
    first heatmap does not wait for it.

    The cohorts of the split (training, validation and test rows) and the prediction-based
    cohorts of the training and of the test rows need ``frame`` to be the run's own table (its
    ``frame``, or a table with its fingerprint) or, with ``of_run_table``, rows of it indexed by
    their position in it (a sample read from the file, as
    :func:`mrta.pipelines.streamed.explained_rows` reads one; the caller vouches that the file
    is the run's table). For a regression run the rows are first predicted in one pass: the
    quintiles are cut before recording.

    With ``shard``, this process records its block of the rows and the sums of every process
    of the shard's group are added up (see :func:`~mrta.analysis.atlas.collect_attention`): every
    process calls it alike and gets the explanation of all the rows.
    """
    frame = run_table(run, frame)
    positions = _analysed_positions(run, frame, max_rows, seed)
    rows = frame.iloc[positions]
    encoded = run.preprocessor.transform(rows)
    tokens = token_frame(run.schema, rows)
    phases = RECORDING if run.control is not None else RECORDING[:2]
    step = progress_phases(progress, phases)
    outcomes: dict[str, np.ndarray] = {}
    if run.schema.task == Task.REGRESSION:
        _report(step(0), phases[0])
        outcomes = {
            "targets": run.schema.encode_target(rows),
            "predictions": run.predict_examples(encoded, run.model),  # the model recorded
        }
    spec = CohortSpec.for_frame(
        tokens,
        class_labels=run.class_labels,
        splits=_row_splits(run, frame, positions, of_run_table),
        **outcomes,
    )
    atlas = collect_attention(run.model, encoded, tokens, spec, progress=step(0), shard=shard)
    untrained = collect_attention(
        run.untrained_model(),
        encoded,
        cohorts=CohortSpec(classes=False),
        progress=step(1),
        shard=shard,
    )
    control = None
    if run.control is not None:
        control = collect_attention(
            run.control.model,
            encoded,
            cohorts=CohortSpec(classes=False),
            progress=step(2),
            shard=shard,
        )
    # workers other than rank 0 hand back nothing: they need no verdict
    leader = shard is None or shard.rank == 0
    if not leader:
        judged, note = None, None
    elif verdict:
        judged, note = run_verdict(run)
    else:
        judged, note = None, VERDICT_LATER
    return Explanation(
        atlas=atlas,
        untrained=untrained,
        rows=len(rows),
        sampled_from=len(frame) if len(rows) < len(frame) else None,
        heads=head_table(atlas, ALL_ROWS, reference=untrained),
        divergence=map_divergence(atlas, untrained, control=control),
        control=control,
        verdict=judged,
        verdict_note=note,
    )


def run_verdict(
    run: Run,
    *,
    seed: int = 0,
    predictions: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None,
) -> tuple[Verdict | None, str | None]:
    """The verdict on the run's test split (:func:`mrta.analysis.verdict.judge`: the model
    against chance and against its control, by a paired bootstrap), or ``None`` and why.
    `predictions`: ``run.split_predictions("test")``, where the caller has it already."""
    if run.frame is None:
        return None, (
            "No verdict: the run holds no rows to score it on (a streamed run, or one saved "
            "without --save-data): explain it with the table it was trained on."
        )
    try:
        targets, model, control = predictions or run.split_predictions("test")
        return judge(run.schema.task, targets, model, control, seed=seed), None
    except (RunError, ValueError) as error:  # e.g. a test split of one class: no ROC AUC
        return None, f"No verdict: {one_line(error)}"


def attach_control(
    run: Run, explanation: Explanation, *, progress: ProgressFn | None = None
) -> Explanation:
    """Record the run's control model (trained after the explanation was made) on the same rows
    and bring the divergences and the verdict up to date. The rows are the run's own table
    sampled as :func:`explain` samples it."""
    if run.control is None:
        raise RunError(f"This run has no control model to attach: {run.control_status()}")
    rows = analysed_rows(run, run_table(run, None), explanation.rows, 0)
    explanation.control = collect_attention(
        run.control.model,
        run.preprocessor.transform(rows),
        cohorts=CohortSpec(classes=False),
        progress=progress_phases(progress, RECORDING[2:])(0),
    )
    explanation.divergence = map_divergence(
        explanation.atlas, explanation.untrained, control=explanation.control
    )
    explanation.verdict, explanation.verdict_note = run_verdict(run)
    return explanation


def filter_atlas(
    run: Run, name: str, mask: np.ndarray, frame: pd.DataFrame | None = None, *, seed: int = 0
) -> AttentionAtlas:
    """A custom cohort (``mask`` over ``frame``'s rows, at most :data:`DEFAULT_MAX_ROWS` of
    them): its own pass over those rows, keyed ``("filter", name)`` and, when ``frame`` is the
    run's own table, ``("filter", name, "train")`` and ``("filter", name, "test")`` for those of
    its training and of its test rows (see :mod:`mrta.analysis.cohorts`)."""
    frame = run_table(run, frame)
    if len(mask) != len(frame):
        raise ValueError(f"the filter has {len(mask)} values for {len(frame)} rows")
    matching = np.flatnonzero(np.asarray(mask, dtype=bool))
    positions = matching[_analysed_positions(run, frame.iloc[matching], DEFAULT_MAX_ROWS, seed)]
    if len(positions) == 0:
        raise ValueError(f"no row with a target matches {name}")
    spec = CohortSpec(
        classes=False,
        filters={name: np.ones(len(positions), dtype=bool)},
        splits=_row_splits(run, frame, positions),
        split_cohorts=False,
    )
    rows = frame.iloc[positions]
    return collect_attention(run.model, run.preprocessor.transform(rows), cohorts=spec)


def run_table(run: Run, frame: pd.DataFrame | None) -> pd.DataFrame:
    """`frame`, or the run's own table when it is `None` (``ValueError`` when it has none)."""
    frame = run.frame if frame is None else frame
    if frame is None:
        raise ValueError("this run holds no table: give the rows to explain it on")
    return frame


def run_checks(
    run: Run, explanation: Explanation, *, seed: int = 0, progress: ProgressFn | None = None
) -> Explanation:
    """The interventions and the importances, each beside its null.

    On the validation split (at most :data:`CHECK_ROWS` rows): every head zeroed and replaced by
    its mean output, every map zeroed. On the test split (at most :data:`CHECK_ROWS` rows, cut
    in two halves by :func:`~mrta.analysis.deletion.split_halves`): the four column importances
    of :mod:`mrta.analysis.importance` on the first half, and their deletion curves against
    random orders on the second (:func:`deletion_faithfulness`), so that no row both ranks the
    columns and scores the ranking; and the rollout-vs-permutation agreement of the untrained
    and the control models on the first half, the nulls of the trained model's.
    Raises ``RunError`` for a set run (its examples are groups of rows: these row-level
    attributions and curves do not apply).
    """
    if run.sets is not None:
        raise RunError(SET_RUN_CHECKS)
    validation = run.preprocessor.transform(run.rows("validation"))
    ranked_rows, curve_rows = importance_rows(run, seed)
    ranked = run.preprocessor.transform(ranked_rows)
    nulls = {"untrained": (run.untrained_model(), explanation.untrained)}
    if run.control is not None and explanation.control is not None:
        nulls["control"] = (run.control.model, explanation.control)
    names = [
        "ablating heads",
        "mean-ablating heads",
        "ablating maps",
        "permuting columns",
        "attributing attention",
        "deleting columns",
        *(f"permuting columns of the {n} model" for n in nulls),
    ]
    step = progress_phases(progress, names)
    common = check_scores(run, seed)
    columns = input_columns(run.schema)
    with torch.no_grad():
        explanation.ablation = ablate_heads(run.model, validation, progress=step(0), **common)
        explanation.mean_ablation = ablate_heads(
            run.model, validation, method="mean", progress=step(1), **common
        )
        explanation.map_ablation = ablate_maps(run.model, validation, progress=step(2), **common)
    explanation.permutation, methods = column_importances(
        run.model, ranked, columns, common, progress=step(3), attributing=step(4)
    )
    explanation.importance = ColumnImportances(
        rows=len(ranked_rows), methods=methods, streams=column_streams(run.schema)
    )
    explanation.faithfulness = deletion_faithfulness(
        run, explanation.importance, curve_rows, seed=seed, progress=step(5)
    )
    with torch.no_grad():
        for i, (name, (model, atlas)) in enumerate(nulls.items()):
            null_permutation = permutation_importance(
                model, ranked, columns=columns, progress=step(6 + i), **common
            )
            explanation.null_agreement[name] = rollout_agreement(
                atlas.importance(), null_permutation.loss_increases()
            )
    explanation.heads = head_table(
        explanation.atlas, ALL_ROWS, reference=explanation.untrained, ablation=explanation.ablation
    )
    return explanation


def column_importances(
    model: nn.Module,
    ranked: Examples,
    columns: Mapping[str, Sequence[str]],
    common: Mapping[str, Any],
    *,
    progress: ProgressFn | None = None,
    attributing: ProgressFn | None = None,
) -> tuple[PermutationImportance, dict[str, MethodImportance]]:
    """The four column importances of `model` on the encoded rows `ranked`: permutation (with
    `common`: its loss and metric functions, rows and seed) and the three of
    :func:`~mrta.analysis.importance.attention_importances`; and the permutation's details."""
    with torch.no_grad():
        permutation = permutation_importance(
            model, ranked, columns=columns, progress=progress, **common
        )
    _report(attributing, "attributing attention")
    methods = {
        "permutation": MethodImportance(
            permutation.loss_increases(), permutation.standard_errors()
        ),
        **attention_importances(model, ranked, columns),
    }
    return permutation, methods


def check_scores(run: Run, seed: int = 0) -> dict[str, Any]:
    """What every check scores with: the run's loss and metric functions, the most rows a
    check takes (:data:`CHECK_ROWS`) and the seed of its samples."""
    loss_fn, metric_fn, _ = task_scores(
        run.schema.task, run.preprocessor.target_mean, run.preprocessor.target_std
    )
    return {"loss_fn": loss_fn, "metric_fn": metric_fn, "max_rows": CHECK_ROWS, "seed": seed}


def importance_rows(run: Run, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The test rows the importances are computed on and those their deletion curves are
    measured on: at most :data:`CHECK_ROWS` test rows with a target (a seeded sample), cut in
    two disjoint halves. Raises ``RunError`` when there are too few."""
    rows = analysed_rows(run, run.rows("test"), CHECK_ROWS, seed)
    if len(rows) < MIN_ROWS:
        raise RunError(
            f"The test split has {len(rows)} rows with a target; the importances and their "
            f"deletion curves need at least {MIN_ROWS}: keep a larger test fraction."
        )
    ranked, curves = split_halves(len(rows), seed)
    return rows.iloc[ranked], rows.iloc[curves]


def deletion_faithfulness(
    run: Run,
    importances: ColumnImportances,
    rows: pd.DataFrame,
    *,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> Faithfulness:
    """Each method's deletion curve on `rows` (columns replaced, in its order, by their training
    mean or most frequent level) against :data:`~mrta.analysis.deletion.RANDOM_ORDERS` random
    orders (:func:`mrta.analysis.deletion.faithfulness`)."""
    removal = removal_values(run.rows("train"), run.schema)
    orders = {m: importances.methods[m].ranking() for m in METHODS if m in importances}
    random = random_orders(list(removal), RANDOM_ORDERS, seed)

    def losses_of(frame: pd.DataFrame) -> np.ndarray:
        return row_losses(run.model, run.preprocessor, frame)

    total = len(orders) + len(random)
    curves = []
    for done, order in enumerate([*orders.values(), *random], start=1):
        curves.append(deletion_losses(losses_of, rows, removal, order))
        if progress is not None:
            progress(done, total, "deleting columns")
    return faithfulness(
        dict(zip(orders, curves[: len(orders)], strict=True)),
        np.stack(curves[len(orders) :]),
        orders=orders,
        random=random,
        seed=seed,
    )


def _report(progress: ProgressFn | None, message: str) -> None:
    if progress is not None:
        progress(0, 1, message)


def progress_phases(progress: ProgressFn | None, names: Sequence[str]):
    """Per phase, a progress callback that reports ``(done, total, "phase: ...")``."""

    def phase(i: int) -> ProgressFn | None:
        if progress is None:
            return None
        return lambda done, total, _message: progress(done, total, names[i])

    return phase
