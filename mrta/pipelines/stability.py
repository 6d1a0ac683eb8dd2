"""Seed stability of a run of N seed members (``mrta train --seeds N``): what survives another
seed (:mod:`mrta.analysis.stability`).

:func:`seed_stability` records members 1 on over the rows :func:`~mrta.pipelines.explain.explain`
recorded member 0 on, compares every map across the members, and computes the four column
importances of each member on the same test rows as the checks
(:func:`~mrta.pipelines.explain.importance_rows`) for their agreement.
"""

from __future__ import annotations

import pandas as pd

from mrta.analysis.cohorts import CohortSpec
from mrta.analysis.collect import ProgressFn, collect_attention
from mrta.analysis.explanation import Explanation
from mrta.analysis.importance import METHODS, MethodImportance, input_columns
from mrta.analysis.stability import SeedStability, importance_agreement, map_stabilities
from mrta.errors import RunError, one_line
from mrta.pipelines.explain import (
    analysed_rows,
    check_scores,
    column_importances,
    importance_rows,
    progress_phases,
    run_table,
)
from mrta.runs.run import Run

#: Why a run of one model has no stability to show.
ONE_MODEL = (
    "This run holds one model, so nothing can be said about another seed: train it with "
    "--seeds N (N of at least 2; the Train page's stability choice) to see which of its maps and "
    "importances survive another seed."
)


def seed_stability(
    run: Run,
    explanation: Explanation,
    frame: pd.DataFrame | None = None,
    *,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> SeedStability:
    """The stability of `run`'s maps and importances across its seed members.

    `explanation` is member 0's (:func:`~mrta.pipelines.explain.explain` of `run` over `frame`,
    default the run's table, with the same `seed`): its rows are sampled again the same way
    for the other members. The importances need the run's test rows (its ``frame``); without
    them the result has no agreement and its ``note`` says why. Raises ``RunError`` for a run
    of one model.
    """
    if run.seeds < 2:
        raise RunError(ONE_MODEL)
    rows = analysed_rows(run, run_table(run, frame), explanation.rows, seed)
    encoded = run.preprocessor.transform(rows)
    others = range(1, run.seeds)
    names = [
        *(f"recording member {k}" for k in others),
        *(f"importances of member {k}" for k in range(run.seeds)),
    ]
    step = progress_phases(progress, names)
    atlases = [explanation.atlas]
    for i, k in enumerate(others):
        spec = CohortSpec(classes=False)
        atlases.append(
            collect_attention(run.members[k].model, encoded, cohorts=spec, progress=step(i))
        )
    maps = map_stabilities(atlases)
    agreement, ranked_count, note = {}, 0, None
    try:
        importances = member_importances(run, explanation, seed, step, first_step=len(others))
    except RunError as error:  # no rows to rank on, or too few test rows
        note = f"No importance agreement: {one_line(error)}"
    else:
        ranked_count, importances = importances
        agreement = {
            method: importance_agreement([member[method].mean for member in importances])
            for method in METHODS
        }
    return SeedStability(
        members=run.seeds,
        rows=len(rows),
        maps=maps,
        agreement=agreement,
        importance_rows=ranked_count,
        note=note,
    )


def member_importances(
    run: Run, explanation: Explanation, seed: int, step, *, first_step: int
) -> tuple[int, list[dict[str, MethodImportance]]]:
    """Every member's four column importances on the checks' ranking rows, and how many rows
    those are (member 0's from `explanation` where its checks ran on them)."""
    if run.frame is None:
        raise RunError(
            "the run holds no test rows to compute its members' importances on: explain it "
            "with the table it was trained on"
        )
    ranked_rows, _ = importance_rows(run, seed)
    ranked = run.preprocessor.transform(ranked_rows)
    columns, common = input_columns(run.schema), check_scores(run, seed)
    found = []
    for k, member in enumerate(run.members):
        checked = explanation.importance
        if k == 0 and checked is not None and checked.rows == len(ranked_rows):
            found.append(dict(checked.methods))
            continue
        _, methods = column_importances(
            member.model, ranked, columns, common, progress=step(first_step + k)
        )
        found.append(methods)
    return len(ranked_rows), found
