"""The table ``mrta predict`` writes: a run's predictions, led by the columns the user keeps
(identifiers), with the class probabilities at :data:`PROBABILITY_DIGITS` significant digits.

Shared by the in-memory path and :func:`mrta.pipelines.streamed.predict_file`, so both write
the same columns in the same format.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from mrta.runs.run import Run

#: A probability's significant digits in the file (a float holds about 17; a model's
#: probability means nothing past the sixth).
PROBABILITY_DIGITS = 6
#: Columns of the table that the refusal of an unknown ``--keep`` column lists.
LISTED_COLUMNS = 20


def checked_keep(run: Run, keep: Sequence[str], columns: Iterable[str], source: str) -> list[str]:
    """The columns to keep, each once, in the order given; ``ValueError`` for a column that
    `source` (whose columns are `columns`) lacks, for a name the predictions already use, and
    for a set run (whose rows are groups)."""
    keep = list(dict.fromkeys(keep))
    if not keep:
        return keep
    if run.sets is not None:
        raise ValueError(
            "--keep applies to runs of one prediction per row; a set run writes one row per "
            f"group, led by its key {run.sets.group_by!r}: drop --keep"
        )
    available = [str(column) for column in columns]
    missing = [name for name in keep if name not in available]
    if missing:
        listed = ", ".join(repr(name) for name in available[:LISTED_COLUMNS])
        more = (
            f" and {len(available) - LISTED_COLUMNS} more"
            if len(available) > LISTED_COLUMNS
            else ""
        )
        raise ValueError(
            f"--keep: {source} has no column {missing[0]!r}; its columns are {listed}{more}"
        )
    taken = [*run.class_labels, "prediction"]
    clash = [name for name in keep if name in taken]
    if clash:
        raise ValueError(
            f"--keep: the column {clash[0]!r} has the name of a column the predictions write "
            f"({', '.join(map(repr, taken))}): rename it in the table, or keep another column"
        )
    return keep


def prediction_table(run: Run, frame: pd.DataFrame, keep: Sequence[str] = ()) -> pd.DataFrame:
    """:meth:`Run.predict_frame` of `frame`, led by its columns `keep` (as they are), with
    each class probability rounded to :data:`PROBABILITY_DIGITS` significant digits (so the CSV
    holds ``0.912837``, not ``0.9128373265266418``)."""
    table = run.predict_frame(frame)
    for label in run.class_labels:
        table[label] = [float(f"{p:.{PROBABILITY_DIGITS}g}") for p in table[label]]
    for position, name in enumerate(keep):
        table.insert(position, name, frame[name].to_numpy())
    return table
