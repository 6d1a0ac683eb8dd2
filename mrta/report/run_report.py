"""The self-contained HTML report of a run: what it shows (:func:`report_figures`) and the page
(:func:`report_html`), the one function behind the dashboard's Export page and ``mrta explain
--report``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from pathlib import PurePath
from typing import Any

import plotly.graph_objects as go

from mrta.analysis.checks import LEARNED_FACTOR
from mrta.analysis.cohorts import ALL_ROWS, rows_note
from mrta.analysis.deletion import Faithfulness
from mrta.analysis.explanation import Explanation
from mrta.analysis.importance import METHOD_NOTES, METHOD_TITLES, METHODS
from mrta.analysis.verdict import METRIC_LABELS
from mrta.report import figures, importance_figures
from mrta.report.html import Figure, run_report
from mrta.report.metric_figures import confusion_matrix_figure, divergence_chart
from mrta.report.stability_report import stability_section
from mrta.runs.gates import gate_report
from mrta.runs.run import Run
from mrta.streams import MAP_LABELS

#: How the report names the metrics and the baselines' other measures.
MEASURE_LABELS = {
    **METRIC_LABELS,
    "accuracy": "accuracy",
    "log_loss": "log loss",
    "rmse": "RMSE",
    "mae": "MAE",
    "rows": "test rows",
    "iterations": "boosting iterations",
    "seconds": "seconds to fit",
}
NOT_CHECKED = "Not measured: run mrta explain with --checks (or the checks on the Explore page)."


def report_title(table: str | None, target: str | None) -> str:
    """The report's title, from the file name of the table explained and the target."""
    source = f" from {PurePath(table).name}" if table else ""
    return f"MRTA Explorer: predicting {target or 'the target'}{source}"


def _map_note(entry: Mapping[str, Any] | None, keys: int) -> str:
    """What a map's colours mean, and how far it moved from the untrained model."""
    said = (
        f"White: the uniform weight 1/{keys}, a query spreading evenly over the {keys} keys; red: "
        "more than an even share, blue: less."
    )
    if entry is None:
        return said
    moved = f" Divergence from the untrained model: {entry['divergence']:.3g}"
    control = entry.get("control_divergence")
    moved += "." if control is None else f" (the control's: {control:.3g})."
    if entry.get("label"):
        moved += f" This map is {entry['label']}, so it shows nothing learned however it looks."
    elif entry.get("learned"):
        moved += f" Learned: it moved more than {LEARNED_FACTOR:g} times as far as the control's."
    elif entry.get("learned") is not None:
        moved += f" Not learned: it moved no more than {LEARNED_FACTOR:g} times the control's."
    return said + moved


def _sections(explanation: Explanation) -> dict[str, list[tuple[str, str, go.Figure]]]:
    """The report's figures by section: ``(title, note, figure)``, the figure titled."""
    atlas = explanation.atlas
    divergence = {(e["layer"], e["map_id"]): e for e in explanation.divergence}
    recorded = f"mean over all {explanation.rows:,} rows recorded"
    maps = []
    for layer, map_id in atlas.map_keys:
        cohort = atlas.cohort_map(layer, map_id, ALL_ROWS)
        queries, keys = atlas.names(layer, map_id)
        title = f"Layer {layer}, {MAP_LABELS[map_id]}: every head"
        grid = figures.head_grid(cohort.mean, queries, keys, title=title, rows=recorded)
        figure = figures.centred_on_uniform(grid, cohort.mean)
        maps.append((title, _map_note(divergence.get((layer, map_id)), len(keys)), figure))
    streams = {name: s for s, names in atlas.token_names[0].items() for name in names}
    rollout = importance_figures.rollout_by_stream(
        atlas.importance(), streams, rows=f"the {explanation.rows:,} rows recorded"
    )
    importances = [
        (
            rollout.layout.title.text,
            "Where the attention weights point, not what the model needs.",
            rollout,
        )
    ]
    if explanation.importance is not None:
        figure = importance_figures.importance_panels(explanation.importance)
        notes = " ".join(
            f"{METHOD_TITLES[m]}: {METHOD_NOTES[m]}" for m in METHODS if m in explanation.importance
        )
        importances.append((figure.layout.title.text or "", notes, figure))
    if explanation.faithfulness is not None:
        figure = importance_figures.deletion_curves(explanation.faithfulness)
        importances.append(
            (
                figure.layout.title.text or "",
                f"Faithfulness: {faithfulness_words(explanation.faithfulness)}",
                figure,
            )
        )
    shown = {"Maps": maps, "Importances": importances}
    if explanation.divergence:
        title = (
            "Divergence from the untrained model: the trained model beside the control"
            if explanation.control is not None
            else "Divergence from the untrained model (no control model to compare with)"
        )
        note = (
            f"A map counts as learned where the trained model's divergence is more than "
            f"{LEARNED_FACTOR:g} times the control's and the map is neither uniform nor trivial "
            "by construction."
        )
        shown["Checks"] = [(title, note, divergence_chart(explanation.divergence, title=title))]
    for entries in shown.values():
        for _, _, figure in entries:
            _fit(figure)
    return shown


def _fit(figure: go.Figure) -> None:
    """Room for the figure's title (its lines), its subplots' titles and its axes' labels."""
    lines = 1 + (figure.layout.title.text or "").count("<br>")
    top = max(figure.layout.margin.t or 0, 60 + 22 * lines)
    figure.update_layout(margin={"t": top})
    figure.update_xaxes(automargin=True)
    figure.update_yaxes(automargin=True)


def report_figures(explanation: Explanation) -> list[tuple[str, go.Figure]]:
    """The report's figures as ``(title, figure)``: every layer's maps, the importances and the
    divergence from the untrained model."""
    return [
        (title, figure)
        for entries in _sections(explanation).values()
        for title, _, figure in entries
    ]


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


def _measures(values: Mapping[str, Any]) -> dict[str, Any]:
    return {MEASURE_LABELS.get(name, name): value for name, value in values.items()}


def _metrics(run: Run) -> tuple[dict[str, Any], dict[str, dict[str, Any]], str]:
    """The model's metrics, the baselines' (the control's metric among them) and a note."""
    baselines = {
        "gradient boosting": _measures(run.metrics["hgb"]),
        "trivial": _measures(run.metrics["trivial"]),
    }
    note = (
        f"On the {run.metrics['split']} split. Gradient boosting: scikit-learn's "
        "HistGradientBoosting on the same columns; trivial: the most frequent class or the mean."
    )
    control = run.control
    if control is not None:
        label = MEASURE_LABELS.get(control.metric, control.metric)
        baselines["control (shuffled labels)"] = {label: control.value}
        note += (
            " Control: the same model trained on labels shuffled within the training split for "
            f"as many steps, scored on the true labels; only its {label} was measured."
        )
    return _measures(run.metrics["model"]), baselines, note + " –: not measured."


def _agreement(explanation: Explanation) -> list[dict[str, Any]] | str:
    """Rollout against permutation importance, for the model, per stream and for its nulls."""
    sanity = explanation.sanity
    if sanity["rollout_vs_permutation"] is None:
        return NOT_CHECKED
    by_stream = sanity["rollout_vs_permutation_by_stream"] or {}
    compared = [("trained model, all columns", sanity["rollout_vs_permutation"])]
    compared += [
        (f"trained model, {'numerical' if s == 'num' else 'categorical'} columns", result)
        for s, result in by_stream.items()
    ]
    compared += [
        (f"{name} model, all columns", r) for name, r in explanation.null_agreement.items()
    ]
    return [
        {
            "model and columns": name,
            "columns": result["columns"],
            "Spearman ρ": result["spearman"],
            "p value": result["p_value"],
            "p value by": result["p_value_method"] or "–",
        }
        for name, result in compared
    ]


def _divergence_rows(explanation: Explanation) -> list[dict[str, Any]]:
    return [
        {
            "map": f"layer {e['layer']}, {MAP_LABELS[e['map_id']]}",
            "divergence from the untrained model": e["divergence"],
            "its largest head's": e["max_head_divergence"],
            "the control's": e["control_divergence"],
            "learned": "no control" if e["learned"] is None else e["learned"],
            "uniform or trivial": e["label"] or "no",
        }
        for e in explanation.divergence
    ]


def _heads(explanation: Explanation) -> list[dict[str, Any]]:
    return [
        {
            "layer": h.layer,
            "map": MAP_LABELS[h.map_id],
            "head": h.head,
            "entropy of each row's map": h.entropy,
            "entropy of the mean map": h.mean_map_entropy,
            "largest mean weight": h.max_weight,
            "at query → key": f"{h.max_query} → {h.max_key}",
            "divergence from the untrained model": h.divergence,
            "loss change when zeroed": h.loss_delta,
            "metric change when zeroed": h.metric_delta,
        }
        for h in explanation.heads
    ]


HEADS_NOTE = (
    "Entropies are normalised: 1 is an even spread over the keys. A change when zeroed is the "
    "model with the head's output set to zero minus the model as trained, on the validation "
    "split: a loss that rises (positive) or a metric that falls (negative) means the model "
    "uses the head. –: not measured (mrta explain --checks)."
)


def report_html(run: Run, explanation: Explanation, table: str | None = None) -> str:
    """The self-contained HTML report of a run explained on `table` (its file name, for the
    title): the one report of the dashboard and ``mrta explain --report``."""
    schema = run.schema
    data = {
        "table": PurePath(table).name if table else "not named",
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
        "stopped": run.training.message,
    }
    if run.seeds > 1:
        data["seed members"] = (
            f"{run.seeds}: the metrics and the verdict are of their mean, the maps of member 0"
        )
    if run.race is not None:
        data["race of two settings"] = run.race.sentence()
    gates = gate_report(run)
    if gates is not None:
        data["column gates"] = gates.sentence()
    metrics, baselines, metrics_note = _metrics(run)
    metric_figures: list[Figure] = []
    matrix = run.metrics["model"].get("confusion_matrix")
    if matrix is not None:
        title = f"Confusion matrix of the model on the {run.metrics['split']} split"
        metric_figures.append(
            ("", confusion_matrix_figure(matrix["matrix"], matrix["labels"], title=title))
        )
    sections = _sections(explanation)
    checks = sections.pop("Checks", [])
    stability = explanation.stability
    return run_report(
        title=report_title(table, schema.target),
        data_summary=data,
        metrics=metrics,
        baselines=baselines,
        metric_figures=metric_figures,
        figures={name: [(note, fig) for _, note, fig in shown] for name, shown in sections.items()},
        check_figures=[(note, fig) for _, note, fig in checks],
        heads=_heads(explanation),
        sanity={
            "Rollout against permutation importance (rank agreement)": _agreement(explanation),
            "Each map's divergence from the untrained model": _divergence_rows(explanation),
        },
        verdict=verdict_banner(run, explanation),
        notes={
            "Metrics": metrics_note,
            "Maps": "Every layer's maps, each head on one colour scale centred on the uniform "
            "weight.",
            "Heads": HEADS_NOTE,
        },
        before_checks=()
        if stability is None
        else (partial(stability_section, stability, explanation.atlas),),
    )
