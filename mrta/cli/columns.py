"""What ``mrta train`` prints before training: how each column of the table is used (its role
and the reason, from :func:`mrta.data.schema.infer_schema`), and which columns reading renamed.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence

import pandas as pd

from mrta.data.schema import Role, TableSchema, infer_schema
from mrta.data.sets import SetOptions
from mrta.task import Task

#: Characters of a column name in the printout's first column (longer names push the rest).
NAME_WIDTH = 28
# The names :func:`mrta.data.read.clean_names` gives: "Unnamed: 3", and "x (2)" for a second "x".
_UNNAMED = re.compile(r"Unnamed: (\d+)")
_DUPLICATE = re.compile(r"(.+) \((\d+)\)")


def renamed_columns(columns: Sequence[str]) -> dict[str, str]:
    """Per column that reading named, why: a header cell left empty, or a name the header
    repeats (the names :func:`mrta.data.read.clean_names` makes)."""
    why = {}
    for position, name in enumerate(columns):
        unnamed = _UNNAMED.fullmatch(name)
        duplicate = _DUPLICATE.fullmatch(name)
        if unnamed and int(unnamed.group(1)) == position:
            why[name] = "renamed: its header cell is empty"
        elif duplicate and duplicate.group(1) in columns[:position]:
            why[name] = f"renamed: the header names {duplicate.group(1)!r} more than once"
    return why


def column_usage(schema: TableSchema, *, sampled: bool = False) -> str:
    """Every column with its role and the reason, the target last; renamed columns say so.
    `sampled`: the roles were decided on a sample of a streamed table."""
    names = [spec.name for spec in schema.columns]
    renamed = renamed_columns(names)
    width = min(NAME_WIDTH, max(len(name) for name in names))
    specs = sorted(schema.columns, key=lambda spec: spec.role is Role.TARGET)
    task = "" if schema.task is None else f", {_task_words(schema.task)}"
    source = " (decided on a seeded sample of the rows)" if sampled else ""
    lines = [f"How the columns are used{source}, target {schema.target!r}{task}:"]
    for spec in specs:
        reason = spec.reason + (f"; {renamed[spec.name]}" if spec.name in renamed else "")
        lines.append(f"  {spec.name.ljust(width)}  {spec.role.value.ljust(11)}  {reason}")
    used = len(schema.feature_columns)
    counts = {
        role: sum(spec.role is role for spec in schema.columns)
        for role in (Role.NUMERICAL, Role.CATEGORICAL, Role.IGNORED)
    }
    lines.append(
        f"The model reads {used} column{'' if used == 1 else 's'}: "
        f"{counts[Role.NUMERICAL]} numerical, "
        f"{counts[Role.CATEGORICAL]} categorical; {counts[Role.IGNORED]} ignored. "
        "Change a role with --numerical, --categorical or --ignore COL."
    )
    return "\n".join(lines)


def _task_words(task: Task) -> str:
    return "regression" if task is Task.REGRESSION else f"{task.value} classification"


def training_columns(
    frame: pd.DataFrame,
    args: argparse.Namespace,
    roles: Mapping[str, Role],
    sets: SetOptions | None,
) -> str:
    """:func:`column_usage` of `frame` as ``mrta train`` (`args`: its ``target`` and ``task``)
    will train on it: :func:`mrta.pipelines.train_run.train_run` infers the same schema, a set
    run's group key ignored unless `roles` says otherwise."""
    if sets is not None:
        roles = {sets.group_by: Role.IGNORED, **roles}
    task = None if args.task == "auto" else args.task
    return column_usage(infer_schema(frame, args.target, task=task, roles=roles))
