"""The self-contained HTML report of a run: what it shows (:func:`report_figures`) and the page
(:func:`report_html`), used by the dashboard and ``mrta explain --report``.
"""

from __future__ import annotations

from typing import Any

from mrta.analysis.cohorts import ALL_ROWS
from mrta.analysis.explanation import Explanation
from mrta.report import figures
from mrta.report.html import run_report
from mrta.runs.run import Run
from mrta.streams import MAP_LABELS


def report_figures(explanation: Explanation, layer: int = 0) -> list[tuple[str, Any]]:
    """The maps and importances a report shows: every map of one layer, all heads."""
    atlas = explanation.atlas
    shown = []
    for layer_index, map_id in atlas.map_keys:
        if layer_index != layer:
            continue
        cohort = atlas.cohort_map(layer_index, map_id, ALL_ROWS)
        queries, keys = atlas.names(layer_index, map_id)
        title = f"layer {layer_index}, {MAP_LABELS[map_id]}: every head, all rows"
        shown.append((title, figures.head_grid(cohort.mean, queries, keys, title=title)))
    shown.append(
        ("Rollout importance", figures.importance_bars(atlas.importance(), title="Rollout"))
    )
    if explanation.divergence:
        shown.append(
            (
                "Divergence from the untrained model",
                figures.divergence_bars(explanation.divergence, title="Trained vs untrained"),
            )
        )
    return shown


def report_html(run: Run, explanation: Explanation, title: str = "MRTA Explorer run") -> str:
    """The self-contained HTML report of a run (used by the dashboard and ``mrta explain``)."""
    schema = run.schema
    data = {
        "target": schema.target,
        "task": schema.task.value,
        "numerical tokens": ", ".join(schema.numerical_tokens) or "none",
        "categorical tokens": ", ".join(schema.categorical_tokens) or "none",
        "rows recorded": explanation.rows,
        "training steps": run.training.steps,
        "training seconds": round(run.training.elapsed, 1),
        "stopped because": run.training.stop_reason,
    }
    return run_report(
        title=title,
        data_summary=data,
        metrics=run.metrics["model"],
        baselines={"gradient boosting": run.metrics["hgb"], "trivial": run.metrics["trivial"]},
        figures=report_figures(explanation),
        heads=explanation.heads,
        sanity=explanation.sanity,
    )
