"""The files two runs compared are exported to: ``comparison.json``, ``comparison.csv`` (tidy:
one row per cell of every shared map) and, on request, ``comparison.html``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mrta.analysis.comparison import Comparison
from mrta.csvfile import write_csv
from mrta.errors import RunError
from mrta.jsonable import write_json
from mrta.report.compare_report import comparison_html

COMPARISON_FORMAT = "mrta-run-comparison"
FORMAT_VERSION = 1
JSON_FILE, CSV_FILE, REPORT_FILE = "comparison.json", "comparison.csv", "comparison.html"
TIDY_COLUMNS = (
    "layer",
    "map_id",
    "query",
    "key",
    "weight_a",
    "weight_b",
    "difference",
    "standard_error",
    "p_value",
    "q_value",
    "significant",
)


def comparison_files(report: bool) -> tuple[str, ...]:
    """The names of the files :func:`write_comparison` writes."""
    return (JSON_FILE, CSV_FILE, *((REPORT_FILE,) if report else ()))


def check_comparison_out(out: str | Path, *, report: bool, overwrite: bool = False) -> None:
    """Raise :class:`~mrta.errors.RunError` unless the comparison can be written into `out`: a
    folder (or a path where one can be made) that this process may write, holding none of the
    files it would write unless `overwrite`. Checks only; run it before the work."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunError(f"{str(out)!r} is a file, not a folder: choose a folder for --out.")
    existing = [name for name in comparison_files(report) if (out / name).exists()]
    if existing and not overwrite:
        raise RunError(
            f"{str(out)!r} already holds {', '.join(existing)}: choose another folder, or "
            "replace them with --overwrite. Nothing was written."
        )
    folder = out
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise RunError(f"{str(out)!r} cannot be written: choose a folder you can write to.")


def comparison_summary(comparison: Comparison) -> dict[str, Any]:
    """What ``comparison.json`` holds: the runs, the rows, per shared map its divergence, the
    cells tested and significant and the tokens left out, each importance's rank correlation
    (Spearman's rho; with its p-value under ``importance_rank_agreement``), both runs'
    importances and metrics (``"a"``, ``"b"``: the runs in the order of ``runs``) and the
    notes."""
    return {
        "format": COMPARISON_FORMAT,
        "format_version": FORMAT_VERSION,
        "runs": list(comparison.runs),
        "rows": comparison.rows,
        "sampled_from": comparison.sampled_from,
        "q": comparison.q,
        "maps": [
            {
                "layer": m.layer,
                "map_id": m.map_id,
                "divergence": m.divergence,
                "cells": int(m.difference.diff.size),
                "cells_tested": m.difference.cells_tested,
                "significant_cells": m.difference.passing,
                "least_difference": m.difference.min_effect,
                "queries": list(m.shared.queries),
                "keys": list(m.shared.keys),
                "left_out": {
                    side: {"queries": list(queries), "keys": list(keys)}
                    for side, (queries, keys) in m.shared.left_out.items()
                },
                "rows_sum_to_one": m.shared.complete,
            }
            for m in comparison.maps
        ],
        "importance_rank_correlation": {
            method: result["spearman"] for method, result in comparison.rank_correlation.items()
        },
        "importance_rank_agreement": dict(comparison.rank_correlation),
        "importance_rows": comparison.importance_rows,
        "importance": {side: imp.to_dict() for side, imp in comparison.importance.items()},
        "columns": {side: list(columns) for side, columns in comparison.columns.items()},
        "metrics": dict(comparison.metrics),
        "notes": list(comparison.notes),
    }


def difference_frame(comparison: Comparison) -> pd.DataFrame:
    """One row per cell of every shared map (head means): both runs' weights, their difference,
    its standard error, p-value and Benjamini–Yekutieli adjusted p-value (``q_value``), and
    whether it is significant at the comparison's q and differs by at least the map's least
    difference (columns :data:`TIDY_COLUMNS`)."""
    parts = []
    for m in comparison.maps:
        queries, keys = m.shared.queries, m.shared.keys
        d = m.difference
        q_index, k_index = np.meshgrid(np.arange(len(queries)), np.arange(len(keys)), indexing="ij")
        cells: dict[str, Sequence[Any] | np.ndarray] = {
            "layer": np.full(q_index.size, m.layer),
            "map_id": [m.map_id] * q_index.size,
            "query": np.asarray(queries, dtype=object)[q_index.ravel()],
            "key": np.asarray(keys, dtype=object)[k_index.ravel()],
            "weight_a": m.mean_a.ravel(),
            "weight_b": m.mean_b.ravel(),
            "difference": d.diff.ravel(),
            "standard_error": d.se.ravel(),
            "p_value": d.p.ravel(),
            "q_value": d.p_adjusted.ravel(),
            "significant": d.significant.ravel(),
        }
        parts.append(pd.DataFrame(cells, columns=list(TIDY_COLUMNS)))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=TIDY_COLUMNS)


def write_comparison(
    comparison: Comparison,
    out: str | Path,
    *,
    report: bool = False,
    table: str | None = None,
) -> list[Path]:
    """Write ``comparison.json``, ``comparison.csv`` (tidy, :func:`difference_frame`, through
    the escaping CSV writer) and with `report` ``comparison.html`` (titled with the file name of
    `table`, the rows compared on) into `out`, creating it; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [write_json(out / JSON_FILE, comparison_summary(comparison))]
    write_csv(difference_frame(comparison), out / CSV_FILE, index=False)
    written.append(out / CSV_FILE)
    if report:
        path = out / REPORT_FILE
        path.write_text(comparison_html(comparison, table), encoding="utf-8")
        written.append(path)
    return written
