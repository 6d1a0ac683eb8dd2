"""Compare two runs on the same rows: the one function behind ``mrta compare`` and the
dashboard's Compare page.

:func:`compare_runs` matches the runs' columns by name (runs that share no map are refused,
:func:`check_comparable`), records both models on the same rows of a table in one pass (at most
:data:`~mrta.pipelines.explain.DEFAULT_MAX_ROWS` rows, a seeded sample as
:func:`~mrta.pipelines.explain.analysed_rows` draws it), tests each cell of every shared map
by the paired t on the per-row differences (:mod:`mrta.analysis.comparison`), measures each
map's divergence, computes the column importances of both on the same rows (at most
:data:`~mrta.analysis.scoring.CHECK_ROWS`, seeded: a run compared with itself gets the same
importances, so rank correlation 1) and puts the runs' metrics side by side.

```python
from mrta.pipelines.compare import compare_runs

comparison = compare_runs(run_a, run_b, frame, names=("seed 0", "seed 1"))
[(m.layer, m.map_id, m.divergence) for m in comparison.maps]
comparison.rank_correlation["permutation"]["spearman"]
```
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from mrta.analysis.collect import ProgressFn
from mrta.analysis.comparison import (
    SIDES,
    Comparison,
    MapComparison,
    PairedDifference,
    SharedMap,
    compare_map,
    rank_correlations,
    shared_maps,
)
from mrta.analysis.difference import DEFAULT_Q
from mrta.analysis.importance import (
    ColumnImportances,
    column_streams,
    input_columns,
)
from mrta.analysis.inputs import attention_layers
from mrta.analysis.paired import record_paired
from mrta.analysis.scoring import CHECK_ROWS
from mrta.errors import RunError, counted
from mrta.pipelines.explain import (
    DEFAULT_MAX_ROWS,
    analysed_rows,
    check_scores,
    column_importances,
)
from mrta.runs.run import Run

__all__ = [  # its own names, and those of the analysis that a face shows
    "DEFAULT_Q",
    "Comparison",
    "MapComparison",
    "PairedDifference",
    "check_comparable",
    "compare_runs",
]


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(repr(name) for name in names) or "none"


def check_comparable(run_a: Run, run_b: Run, names: tuple[str, str] = ("A", "B")) -> None:
    """Raise :class:`~mrta.errors.RunError` when the runs cannot be compared: a set run (its
    examples are groups of rows), or runs that share no map (no column of the same name and
    type), with a message that names each run's columns."""
    for name, run in zip(names, (run_a, run_b), strict=True):
        if run.sets is not None:
            raise RunError(
                f"Run {name} is a set run (one example per group of rows): comparing runs works "
                "on runs of one row per example."
            )
    if not shared_maps(run_a.model, run_b.model):
        columns = [list(input_columns(run.schema)) for run in (run_a, run_b)]
        raise RunError(
            f"The runs share no map, so there is nothing to compare: {names[0]} reads "
            f"{_quoted(columns[0])}; {names[1]} reads {_quoted(columns[1])} (columns are matched "
            "by name, and must be of the same type in both)."
        )


def _members_note(run: Run, name: str) -> str | None:
    """What is compared of a run trained with several seeds: its first member."""
    if run.seeds > 1:
        return (
            f"Run {name} has {run.seeds} seed members: its maps and importances are member "
            "0's; its metrics are those of the members' mean."
        )
    return None


def _importances(run: Run, rows: pd.DataFrame, seed: int) -> ColumnImportances:
    """The four column importances of `run` on `rows`
    (:func:`~mrta.pipelines.explain.column_importances`, the permutation seeded)."""
    encoded = run.preprocessor.transform(rows)
    common = check_scores(run, seed)
    _, methods = column_importances(run.model, encoded, input_columns(run.schema), common)
    return ColumnImportances(rows=len(rows), methods=methods, streams=column_streams(run.schema))


def compare_runs(
    run_a: Run,
    run_b: Run,
    frame: pd.DataFrame,
    *,
    names: tuple[str, str] = ("A", "B"),
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
    q: float = DEFAULT_Q,
    progress: ProgressFn | None = None,
) -> Comparison:
    """Compare `run_a` with `run_b` on the rows of `frame` that have both runs' targets (at most
    `max_rows`, a seeded sample): see the module docstring. Differences are ``a − b``.

    Raises :class:`~mrta.errors.RunError` for runs that cannot be compared
    (:func:`check_comparable`) or no row with a target, :class:`~mrta.errors.TableError` for a
    table that lacks a column either run reads, and ``ValueError`` naming `q` outside (0, 1).
    """
    if not 0 < q < 1:
        raise ValueError(f"q must be a false discovery rate in (0, 1), got {q!r}")
    check_comparable(run_a, run_b, names)
    rows = analysed_rows(run_b, analysed_rows(run_a, frame, max_rows, seed), max_rows, seed)
    if rows.empty:
        raise RunError("No row of the table has a target for both runs: nothing to compare on.")
    maps = shared_maps(run_a.model, run_b.model)
    sums = record_paired(
        run_a.model,
        run_b.model,
        run_a.preprocessor.transform(rows),
        run_b.preprocessor.transform(rows),
        maps,
        progress=progress,
    )
    compared = []
    for shared in maps:
        moments = sums[(shared.layer, shared.map_id)]
        mean_a, mean_b = moments.a.mean().numpy(), moments.b.mean().numpy()
        compared.append(compare_map(shared, mean_a, mean_b, moments.difference, moments.heads, q))
    ranked = analysed_rows(run_a, rows, CHECK_ROWS, seed)
    runs = dict(zip(SIDES, (run_a, run_b), strict=True))
    named = dict(zip(SIDES, names, strict=True))
    importance = {}
    for side, run in runs.items():
        if progress is not None:
            progress(0, 1, f"column importances of {named[side]}")
        importance[side] = _importances(run, ranked, seed)
    columns = {side: tuple(input_columns(run.schema)) for side, run in runs.items()}
    notes = [_members_note(run, named[side]) for side, run in runs.items()]
    notes += _left_out_notes(names, columns, maps, (run_a, run_b))
    return Comparison(
        runs=names,
        rows=len(rows),
        sampled_from=len(frame) if len(rows) < len(frame) else None,
        columns=columns,
        maps=tuple(compared),
        importance=importance,
        importance_rows=len(ranked),
        rank_correlation=rank_correlations(importance["a"], importance["b"]),
        metrics={"a": dict(run_a.metrics), "b": dict(run_b.metrics)},
        notes=tuple(note for note in notes if note),
        q=q,
    )


def _left_out_notes(
    names: tuple[str, str],
    columns: dict[str, tuple[str, ...]],
    maps: Sequence[SharedMap],
    runs: tuple[Run, Run],
) -> list[str]:
    """What was left out of the comparison: columns and maps of one run only, and what that
    does to the rows of the maps compared."""
    notes = []
    shared = {(m.layer, m.map_id) for m in maps}
    for side, name, other, run in zip(SIDES, names, reversed(SIDES), runs, strict=True):
        only = [c for c in columns[side] if c not in columns[other]]
        if only:
            notes.append(
                f"Left out: {counted(len(only), 'column')} that only {name} reads "
                f"({_quoted(only)})."
            )
        layers = len(attention_layers(run.model))
        unshared = [
            f"layer {layer} {map_id}"
            for layer in range(layers)
            for map_id in run.model.map_ids
            if (layer, map_id) not in shared
        ]
        if unshared:
            notes.append(f"Left out: maps that only {name} has ({', '.join(unshared)}).")
    if any(not m.complete for m in maps):
        notes.append(
            "Where keys were left out, the common tokens are compared as recorded: a row of "
            "those maps no longer sums to 1."
        )
    return notes
