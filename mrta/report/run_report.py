"""The self-contained HTML report of a run: what it shows (:func:`report_figures`) and the page
(:func:`report_html`), used by the dashboard and ``mrta explain --report``.
"""

from __future__ import annotations

from typing import Any

from mrta.analysis.checks import LEARNED_FACTOR
from mrta.analysis.cohorts import ALL_ROWS, rows_note
from mrta.analysis.deletion import Faithfulness
from mrta.analysis.explanation import Explanation
from mrta.analysis.importance import METHOD_NOTES, METHOD_TITLES, METHODS
from mrta.report import figures, importance_figures
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
        title = (
            f"layer {layer_index}, {MAP_LABELS[map_id]}: every head, all rows "
            f"(white: the uniform weight 1/{len(keys)})"
        )
        grid = figures.head_grid(cohort.mean, queries, keys, title=title)
        shown.append((title, figures.centred_on_uniform(grid, cohort.mean)))
    streams = {name: s for s, names in atlas.token_names[0].items() for name in names}
    shown.append(
        (
            f"Attention received, rolled out, over the {explanation.rows:,} rows recorded: "
            "where the attention weights point, not what the model needs",
            importance_figures.rollout_by_stream(atlas.importance(), streams),
        )
    )
    if explanation.importance is not None:
        notes = " ".join(
            f"{METHOD_TITLES[m]}: {METHOD_NOTES[m]}" for m in METHODS if m in explanation.importance
        )
        shown.append(
            (
                f"Column importance by four methods, on the first half of the test rows. {notes}",
                importance_figures.importance_panels(explanation.importance),
            )
        )
    if explanation.faithfulness is not None:
        shown.append(
            (
                f"Faithfulness: {faithfulness_words(explanation.faithfulness)}",
                importance_figures.deletion_curves(explanation.faithfulness),
            )
        )
    if explanation.divergence:
        caption = (
            "Divergence from the untrained model, trained beside the control (a map counts as "
            f"learned where the first is more than {LEARNED_FACTOR:g} times the second and the map "
            "is neither uniform nor trivial)"
            if explanation.control is not None
            else "Divergence from the untrained model (no control model to compare with)"
        )
        shown.append(
            (caption, figures.divergence_bars(explanation.divergence, title="Trained vs untrained"))
        )
    return shown


def faithfulness_words(faithfulness: Faithfulness) -> str:
    """Which methods' rankings beat random deletion orders, in one paragraph."""
    beat = [METHOD_TITLES[m] for m, r in faithfulness.methods.items() if r.beats_random]
    missed = [METHOD_TITLES[m] for m, r in faithfulness.methods.items() if not r.beats_random]
    level = round(100 * faithfulness.level)
    said = (
        f"removing columns in the order of {', '.join(beat)} raised the test loss faster than "
        f"random orders ({level} % bootstrap interval of the area above zero)"
        if beat
        else "no method's order raised the test loss faster than random orders"
    )
    if beat and missed:
        said += f"; {', '.join(missed)} did not"
    return (
        f"{said}. Measured on {faithfulness.rows:,} test rows that played no part in the "
        "ranking, each column replaced by its training mean or most frequent level. A method "
        "that does not beat random here gives no ranking to trust on this run."
    )


def verdict_banner(run: Run, explanation: Explanation) -> tuple[bool, str, list[str]]:
    """``(worth reading, headline, reasons)``: what the report, the command line and the
    dashboard say first about a run's attention."""
    verdict = explanation.verdict
    if verdict is None:
        note = explanation.verdict_note or "No verdict."
        return False, "No verdict: do not read these maps as what the model learned.", [note]
    reasons = list(verdict.reasons)
    if run.control is None:
        reasons.append(run.control_status())
    if verdict.worth_reading:
        return True, "Worth reading: the model beats chance and its control.", reasons
    return (
        False,
        (
            "Not worth reading: the model does not beat chance and its control by a margin the "
            "bootstrap trusts, so its maps may show the architecture or noise, not the data."
        ),
        reasons,
    )


def report_html(run: Run, explanation: Explanation, title: str = "MRTA Explorer run") -> str:
    """The self-contained HTML report of a run (used by the dashboard and ``mrta explain``)."""
    schema = run.schema
    data = {
        "target": schema.target,
        "task": schema.task.value,
        "numerical tokens": ", ".join(schema.numerical_tokens) or "none",
        "categorical tokens": ", ".join(schema.categorical_tokens) or "none",
        "rows recorded": (
            f"{explanation.rows:,} (the maps shown are of all of them"
            + (
                ": training, validation and test rows together)"
                if any(c[0] == "split" for c in explanation.atlas.cohorts)
                else ")"
            )
        ),
        "rows of the cohorts": rows_note(explanation.atlas.cohorts)
        or "each cohort's label says its rows: the whole table, training rows or test rows",
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
        verdict=verdict_banner(run, explanation),
    )
