"""What survives another seed, in words and tables: the agreement of the seed members' column
importances beside chance, each map's unstable cells and spread, and the head matching, each with
what it can and cannot tell; and the report's "Stability across seeds" section
(:func:`stability_section`), the same tables and figures as the dashboard's Explore page."""

from __future__ import annotations

import html
from typing import Any

from mrta.analysis.atlas import AttentionAtlas
from mrta.analysis.importance import METHOD_TITLES, METHODS
from mrta.analysis.stability import (
    DEFAULT_Q,
    MIN_EFFECT,
    PERMUTATIONS,
    MapStability,
    SeedStability,
)
from mrta.errors import counted
from mrta.report.html import Plots, table
from mrta.report.stability_figures import stability_heatmaps
from mrta.streams import MAP_LABELS

SECTION = "Stability across seeds"
#: What Kendall's W beside its null can and cannot tell.
AGREEMENT_NOTE = (
    "Kendall's W of the members' rankings of the columns (corrected for ties): 1 when every "
    "member ranks them alike; unrelated rankings give 1/N on average (the chance column), and "
    f"the p-value is the share of {PERMUTATIONS:,} shuffles of each member's scores across the "
    "columns whose W is at least as large. A W well above 1/N with a small p says the members "
    "rank the columns alike; it does not say that the ranking is right (that is the deletion "
    "check's question), and with few columns or few members p cannot get small."
)
#: What an unstable cell is, and what an unmarked one is not.
UNSTABLE_NOTE = (
    "A cell is unstable where one member puts it significantly above the uniform weight 1/keys "
    "and another significantly below: each member's mean over the rows tested against uniform "
    f"(a z-test, Benjamini–Yekutieli at q = {DEFAULT_Q:g} over every member and cell) and at "
    f"least {MIN_EFFECT:.0%} of the uniform weight away from it. It is not a raw sign flip: "
    "cells near uniform, which flip sides by noise, are not marked. An unmarked cell is not "
    "shown to be stable: members may differ in how far from uniform it is without crossing it."
)
#: What the standard deviation across members can and cannot tell.
SPREAD_NOTE = (
    "The standard deviation of each cell across the members' head-mean maps: the spread of N "
    "values only (with 2 or 3 members a rough figure), not a standard error and not a test. "
    "It is large where the members disagree, whether or not they cross the uniform weight."
)
#: What the head matching can and cannot tell.
HEADS_NOTE = (
    "A head's index means nothing across seeds: each member's heads are matched to member 0's "
    "by the assignment of least total Jensen–Shannon divergence between their mean maps. A "
    "match is the closest pairing there is, not evidence that two heads do the same thing; the "
    "spread of the matched heads' cells says how close they are."
)


def rows_words(stability: SeedStability) -> str:
    """Which rows and members the maps compare, in words."""
    return (
        f"{stability.members} seed members, each recorded on the same "
        f"{counted(stability.rows, 'row')}"
    )


def map_title(found: MapStability) -> str:
    """``"Layer 0, numerical → categorical"``."""
    return f"Layer {found.layer}, {MAP_LABELS[found.map_id]}"


def agreement_records(stability: SeedStability) -> list[dict[str, Any]]:
    """Per importance method: Kendall's W of the members beside chance (1/N), its permutation
    p-value and the plain sentence."""
    return [
        {
            "method": METHOD_TITLES.get(method, method),
            "Kendall's W": stability.agreement[method].w,
            "chance (1/N)": stability.agreement[method].null,
            "permutation p": stability.agreement[method].p_value,
            "columns": stability.agreement[method].columns,
            "what it says": stability.sentence(method),
        }
        for method in METHODS
        if method in stability.agreement
    ]


def map_records(stability: SeedStability) -> list[dict[str, Any]]:
    """Per map: its cells, its unstable cells and the mean standard deviation of a cell across
    the members."""
    return [
        {
            "layer": found.layer,
            "map": MAP_LABELS[found.map_id],
            "cells": int(found.cells.unstable.size),
            "unstable cells": found.cells.unstable_cells,
            "mean SD of a cell": found.cells.mean_cell_sd,
        }
        for found in stability.maps
    ]


def head_records(found: MapStability) -> list[dict[str, Any]]:
    """Per head of member 0: the head of each other member matched to it, and the mean standard
    deviation of a cell across the matched heads."""
    heads = found.cells.heads
    return [
        {
            "head of member 0": h,
            **{f"member {i}": int(heads[i][h]) for i in range(1, len(heads))},
            "mean SD of a matched cell": float(found.cells.matched_sd[h].mean()),
        }
        for h in range(heads.shape[1])
    ]


def matching_sentence(found: MapStability, member: int = 1, head: int = 0) -> str:
    """``"head 2 of member 1 is head 0 of member 0"``."""
    matched = int(found.cells.heads[member][head])
    return f"head {matched} of member {member} is head {head} of member 0"


def stability_section(stability: SeedStability, atlas: AttentionAtlas, plot: Plots) -> str:
    """The report's section (HTML): the agreement table with its sentences, the per-map table,
    and per map the members' mean with its unstable cells marked, the spread of its cells and
    the head matching, its figures drawn by the report's `plot`."""

    def note(text: str) -> str:
        return f'<p class="note">{html.escape(text)}</p>'

    parts = [f"<h2>{SECTION}</h2>", note(f"{rows_words(stability)}; member 0's maps are above.")]
    parts.append("<h3>Agreement of the column importances</h3>" + note(AGREEMENT_NOTE))
    if stability.agreement:
        records = agreement_records(stability)
        parts.append(table(list(records[0]), [list(r.values()) for r in records]))
    if stability.note:
        parts.append(note(stability.note))
    parts.append("<h3>Each map across the members</h3>" + note(UNSTABLE_NOTE + " " + SPREAD_NOTE))
    records = map_records(stability)
    parts.append(table(list(records[0]), [list(r.values()) for r in records]))
    rows = rows_words(stability)
    for found in stability.maps:
        title = map_title(found)
        names = atlas.names(found.layer, found.map_id)
        mean, spread = stability_heatmaps(found.cells, names, title=title, rows=rows)
        records = head_records(found)
        parts.append(
            f"<h3>{html.escape(title)}</h3>"
            + plot(UNSTABLE_NOTE, mean)
            + plot(SPREAD_NOTE, spread)
            + note(f"Head matching ({matching_sentence(found)}, and so on). {HEADS_NOTE}")
            + table(list(records[0]), [list(r.values()) for r in records])
        )
    return "\n".join(parts)
