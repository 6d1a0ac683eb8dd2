"""Explain a run: every view the dashboard, the report and ``mrta explain`` show, in one place.

:func:`explain` records the trained model's attention over a table once (all cohorts in one
pass), does the same for the two nulls, the untrained model (the run's initial weights) and the
control (trained on shuffled labels), derives the head table and the map divergences, and
judges the run on its test split (:func:`run_verdict`). :func:`attach_control` adds a control
that landed after the explanation. :func:`run_checks` adds the on-demand checks (head and map
ablation, zeroed and mean-replaced, and permutation importance on a bounded validation sample,
for the nulls too); :func:`filter_atlas` records a custom cohort.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from mrta.analysis.atlas import AttentionAtlas
from mrta.analysis.checks import ablate_heads, ablate_maps, map_divergence, rollout_agreement
from mrta.analysis.cohorts import ALL_ROWS, CohortSpec
from mrta.analysis.collect import ProgressFn, Shard, collect_attention
from mrta.analysis.explanation import Explanation
from mrta.analysis.heads import head_table
from mrta.analysis.labels import token_frame
from mrta.analysis.permutation import permutation_importance
from mrta.analysis.scoring import CHECK_ROWS
from mrta.analysis.verdict import Verdict, judge
from mrta.errors import RunError, one_line
from mrta.runs.run import Run
from mrta.task import Task
from mrta.training.losses import task_scores

DEFAULT_MAX_ROWS = (
    10_000  # rows recorded for the maps: cohorts are well filled, a pass takes seconds
)


def analysed_rows(run: Run, frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """The rows of ``frame`` that have a target, at most ``max_rows`` of them (seeded sample)."""
    target = run.schema.encode_target(frame)
    has_target = target >= 0 if run.schema.task != Task.REGRESSION else ~np.isnan(target)
    rows = frame[has_target]
    if len(rows) > max_rows:
        rows = rows.sample(n=max_rows, random_state=seed).sort_index()
    return rows


def explain(
    run: Run,
    frame: pd.DataFrame | None = None,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
    progress: ProgressFn | None = None,
    shard: Shard | None = None,
) -> Explanation:
    """Record attention over ``frame`` (default: the run's own table) and derive every view.

    With ``shard``, this process records its block of the rows and the sums of every process
    of the shard's group are added up (see :func:`~mrta.analysis.atlas.collect_attention`): every
    process calls it alike and gets the explanation of all the rows.
    """
    frame = _table(run, frame)
    rows = analysed_rows(run, frame, max_rows, seed)
    encoded = run.preprocessor.transform(rows)
    tokens = token_frame(run.schema, rows)
    classification = run.schema.task != Task.REGRESSION
    spec = CohortSpec.for_frame(tokens, class_labels=run.class_labels, classes=classification)
    phases = ["recording attention", "recording the untrained model"]
    if run.control is not None:
        phases.append("recording the control model")
    step = _phases(progress, phases)
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
    verdict, note = run_verdict(run) if leader else (None, None)
    return Explanation(
        atlas=atlas,
        untrained=untrained,
        rows=len(rows),
        sampled_from=len(frame) if len(rows) < len(frame) else None,
        heads=head_table(atlas, ALL_ROWS, reference=untrained),
        divergence=map_divergence(atlas, untrained, control=control),
        control=control,
        verdict=verdict,
        verdict_note=note,
    )


def run_verdict(run: Run, *, seed: int = 0) -> tuple[Verdict | None, str | None]:
    """The verdict on the run's test split (:func:`mrta.analysis.verdict.judge`: the model
    against chance and against its control, by a paired bootstrap), or ``None`` and why."""
    if run.frame is None:
        return None, (
            "No verdict: the run holds no rows to score it on (a streamed run, or one saved "
            "without --save-data): explain it with the table it was trained on."
        )
    try:
        targets, model, control = run.split_predictions("test")
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
    rows = analysed_rows(run, _table(run, None), explanation.rows, 0)
    explanation.control = collect_attention(
        run.control.model,
        run.preprocessor.transform(rows),
        cohorts=CohortSpec(classes=False),
        progress=progress,
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
    them): its own pass over those rows, keyed ``("filter", name)``."""
    frame = _table(run, frame)
    if len(mask) != len(frame):
        raise ValueError(f"the filter has {len(mask)} values for {len(frame)} rows")
    rows = analysed_rows(run, frame[np.asarray(mask, dtype=bool)], DEFAULT_MAX_ROWS, seed)
    if len(rows) == 0:
        raise ValueError(f"no row with a target matches {name}")
    spec = CohortSpec(classes=False, filters={name: np.ones(len(rows), dtype=bool)})
    return collect_attention(run.model, run.preprocessor.transform(rows), cohorts=spec)


def _table(run: Run, frame: pd.DataFrame | None) -> pd.DataFrame:
    frame = run.frame if frame is None else frame
    if frame is None:
        raise ValueError("this run holds no table: give the rows to explain it on")
    return frame


def run_checks(
    run: Run, explanation: Explanation, *, seed: int = 0, progress: ProgressFn | None = None
) -> Explanation:
    """The interventions on the validation split (at most :data:`CHECK_ROWS` rows): every head
    zeroed and replaced by its mean output, every map zeroed, and permutation importance; and
    the rollout-vs-permutation agreement of the untrained and the control models, the nulls of
    the trained model's."""
    encoded = run.preprocessor.transform(run.rows("validation"))
    loss_fn, metric_fn, _ = task_scores(
        run.schema.task, run.preprocessor.target_mean, run.preprocessor.target_std
    )
    nulls = {"untrained": (run.untrained_model(), explanation.untrained)}
    if run.control is not None and explanation.control is not None:
        nulls["control"] = (run.control.model, explanation.control)
    names = ["ablating heads", "mean-ablating heads", "ablating maps", "permuting columns"]
    step = _phases(progress, [*names, *(f"permuting columns of the {n} model" for n in nulls)])
    common = {"loss_fn": loss_fn, "metric_fn": metric_fn, "max_rows": CHECK_ROWS, "seed": seed}
    with torch.no_grad():
        explanation.ablation = ablate_heads(run.model, encoded, progress=step(0), **common)
        explanation.mean_ablation = ablate_heads(
            run.model, encoded, method="mean", progress=step(1), **common
        )
        explanation.map_ablation = ablate_maps(run.model, encoded, progress=step(2), **common)
        explanation.permutation = permutation_importance(
            run.model, encoded, progress=step(3), **common
        )
        for i, (name, (model, atlas)) in enumerate(nulls.items()):
            permutation = permutation_importance(model, encoded, progress=step(4 + i), **common)
            explanation.null_agreement[name] = rollout_agreement(
                atlas.importance(), permutation.loss_increases()
            )
    explanation.heads = head_table(
        explanation.atlas, ALL_ROWS, reference=explanation.untrained, ablation=explanation.ablation
    )
    return explanation


def _phases(progress: ProgressFn | None, names: Sequence[str]):
    """Per phase, a progress callback that reports ``(done, total, "phase: ...")``."""

    def phase(i: int) -> ProgressFn | None:
        if progress is None:
            return None
        return lambda done, total, _message: progress(done, total, names[i])

    return phase
