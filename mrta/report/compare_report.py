"""The self-contained HTML report of two runs compared (``mrta compare --report``), in the style of
a run's report: what was compared and left out, the metrics side by side, per shared map both
maps on one colour scale with their difference and divergence, and the importances side by side
with their rank correlation. Each figure says what it can and cannot tell."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from mrta.analysis.comparison import Comparison, MapComparison
from mrta.analysis.importance import METHOD_TITLES, METHODS
from mrta.errors import counted
from mrta.report.compare_figures import (
    difference_map,
    importances_side_by_side,
    map_title,
    maps_side_by_side,
    rho_text,
)
from mrta.report.html import Plots, page, table
from mrta.report.run_report import MEASURE_LABELS

#: What the divergence measures, and what it does not.
DIVERGENCE_NOTE = (
    "Divergence: the Jensen–Shannon divergence (base 2, from 0 for identical maps to 1) of the "
    "two head-mean maps' rows, averaged over the query rows. It says how far apart the maps are, "
    "not which is right, nor whether the difference matters for the predictions."
)
#: What the side-by-side maps can and cannot tell.
MAPS_NOTE = (
    "Both runs' maps are means of their heads over the same rows (a head index need not mean the "
    "same in two runs), on one colour scale. Two runs that differ only in their seed differ too: "
    "compare a difference with the one between two seeds of the same run before reading it as a "
    "property of the data."
)
#: What the rank correlation of the importances can and cannot tell.
IMPORTANCE_NOTE = (
    "Each run's column importances on the same rows (rows either model may have trained on). "
    "Spearman's ρ of the two runs' importances over the columns both read, with an exact or "
    "permutation p-value: whether the two models rank the columns alike, not whether either "
    "ranking is right (see the deletion check of mrta explain --checks)."
)


def rows_words(comparison: Comparison) -> str:
    """Which rows both runs were recorded on, in words."""
    sampled = f", a seeded sample of {comparison.sampled_from:,}" if comparison.sampled_from else ""
    return f"mean over the same {counted(comparison.rows, 'row')}{sampled}"


def left_out_words(compared: MapComparison, names: tuple[str, str]) -> str:
    """The tokens of a map that only one run has, in words; empty when none."""
    parts = []
    for side, name in zip(("a", "b"), names, strict=True):
        queries, keys = compared.shared.left_out[side]
        if queries or keys:
            tokens = ", ".join(dict.fromkeys((*queries, *keys)))
            parts.append(f"{name} only: {tokens}")
    if not parts:
        return ""
    return (
        f"Left out of this map ({'; '.join(parts)}); the common tokens are compared as recorded"
        + ("" if compared.shared.complete else ", so a row no longer sums to 1")
        + "."
    )


def map_note(compared: MapComparison, names: tuple[str, str]) -> str:
    """The note under a shared map's figures: divergence, tested cells, left-out tokens."""
    note = f"Divergence {compared.divergence:.4g}. {compared.difference.caption()}"
    left_out = left_out_words(compared, names)
    return f"{note} {left_out}".strip()


def metrics_side_by_side(comparison: Comparison) -> tuple[list[str], list[list[Any]]]:
    """``(header, rows)``: per metric, each run's model and gradient boosting, each on its own
    test split."""
    names = dict(zip(("a", "b"), comparison.runs, strict=True))
    columns = [
        (side, part)
        for part in ("model", "hgb")
        for side in ("a", "b")
        if isinstance(comparison.metrics[side].get(part), Mapping)
    ]
    header = ["metric"] + [
        f"{names[side]}: {'model' if part == 'model' else 'gradient boosting'}"
        for side, part in columns
    ]
    measures = dict.fromkeys(
        name
        for side, part in columns
        for name, value in comparison.metrics[side][part].items()
        if value is None or isinstance(value, int | float)
    )
    rows = [
        [MEASURE_LABELS.get(name, name)]
        + [comparison.metrics[side][part].get(name) for side, part in columns]
        for name in measures
    ]
    return header, rows


def comparison_html(comparison: Comparison, table_name: str | None = None) -> str:
    """The report of `comparison`, with the file name of the rows compared on (`table_name`)."""
    names = comparison.runs
    plot = Plots()
    source = PurePath(table_name).name if table_name else "the table given"
    facts = [
        ["runs", f"A: {names[0]}; B: {names[1]} (differences are A − B)"],
        ["rows", f"{rows_words(comparison)}, of {source}"],
        ["false discovery rate q", comparison.q],
        ["maps compared", len(comparison.maps)],
        *(["note", note] for note in comparison.notes),
    ]
    parts = [_section("What was compared", table(["", ""], facts))]
    parts.append(
        _section(
            "Metrics",
            table(*metrics_side_by_side(comparison)),
            "Each run's own metrics on its own test split: two runs of different splits were "
            "not scored on the same rows.",
        )
    )
    divergences = [
        [map_title(m), m.divergence, m.difference.passing, m.difference.cells_tested]
        for m in comparison.maps
    ]
    parts.append(
        _section(
            "Divergence per map",
            table(["map", "divergence", "cells that differ", "cells tested"], divergences),
            DIVERGENCE_NOTE,
        )
    )
    rows = rows_words(comparison)
    shown = []
    for compared in comparison.maps:
        shown.append(plot("", maps_side_by_side(compared, names, rows=rows)))
        shown.append(plot(map_note(compared, names), difference_map(compared, names, rows=rows)))
    parts.append(_section("Maps", "".join(shown), MAPS_NOTE))
    a, b = comparison.importance["a"], comparison.importance["b"]
    correlations = [
        [METHOD_TITLES[m], rho_text(comparison.rank_correlation.get(m))]
        for m in METHODS
        if m in comparison.rank_correlation
    ]
    figure = importances_side_by_side(a, b, names, comparison.rank_correlation)
    parts.append(
        _section(
            "Importances",
            table(["importance", "rank correlation"], correlations) + plot("", figure),
            IMPORTANCE_NOTE,
        )
    )
    return page(f"MRTA Explorer: {names[0]} against {names[1]}", parts)


def _section(heading: str, content: str, note: str = "") -> str:
    paragraph = f'<p class="note">{html.escape(note)}</p>' if note else ""
    return f"<h2>{html.escape(heading)}</h2>{paragraph}{content}"
