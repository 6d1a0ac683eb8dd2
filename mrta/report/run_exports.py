"""The files a run's explanation is exported to: the maps (``.npz`` + JSON and a tidy CSV),
``summary.json`` and, on request, ``report.html``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mrta.analysis.cohorts import ALL_ROWS, CohortKey
from mrta.analysis.explanation import Explanation
from mrta.analysis.stability import SeedStability
from mrta.jsonable import write_json
from mrta.report.exports import (
    analysis_summary,
    save_atlas,
    write_faithfulness_csv,
    write_importance_csv,
    write_stability_csv,
    write_tidy_csv,
)
from mrta.report.run_report import report_html
from mrta.runs.gates import gate_report
from mrta.runs.run import Run


def write_exports(
    run: Run,
    explanation: Explanation,
    out: str | Path,
    *,
    cohorts: Sequence[CohortKey] = (ALL_ROWS,),
    report: bool = False,
    table: str | None = None,
) -> list[Path]:
    """Write ``maps.npz`` + ``maps.json``, ``maps.csv`` (tidy), ``summary.json`` (with the
    run's ``race``, null where it did not race, and its column ``gates``, null without), once
    the checks ran ``importance.csv`` and ``faithfulness.csv`` (tidy), for a run of seed members
    ``stability.csv`` (tidy), and with ``report``,
    ``report.html`` (:func:`~mrta.report.run_report.report_html`, titled with the file name of
    `table`, the rows explained) into ``out``; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = list(save_atlas(explanation.atlas, out / "maps"))
    write_tidy_csv(explanation.atlas, out / "maps.csv", cohorts=cohorts)
    written.append(out / "maps.csv")
    summary = analysis_summary(
        explanation.atlas,
        heads=explanation.heads,
        permutation=explanation.permutation,
        importance=explanation.importance,
        faithfulness=explanation.faithfulness,
        ablation=explanation.ablation,
        sanity=explanation.sanity,
        verdict=explanation.verdict,
        control=control_summary(run, explanation),
    )
    if explanation.stability is not None:
        summary["stability"] = stability_entry(explanation.stability)
    summary["race"] = None if run.race is None else run.race.to_dict()
    gates = gate_report(run)
    summary["gates"] = None if gates is None else gates.to_dict()
    written.append(write_json(out / "summary.json", summary))
    if explanation.stability is not None:
        path = out / "stability.csv"
        written.append(write_stability_csv(explanation.stability, explanation.atlas, path))
    if explanation.importance is not None:
        written.append(write_importance_csv(explanation.importance, out / "importance.csv"))
    if explanation.faithfulness is not None:
        written.append(write_faithfulness_csv(explanation.faithfulness, out / "faithfulness.csv"))
    if report:
        path = out / "report.html"
        path.write_text(report_html(run, explanation, table), encoding="utf-8")
        written.append(path)
    return written


def stability_entry(stability: SeedStability) -> dict[str, Any]:
    """``summary.json``'s ``"stability"``: :meth:`SeedStability.summary`, with Kendall's W
    beside its chance level 1/N, its permutation p-value and its sentence per method, the rows
    compared and, where there is no agreement, why."""
    return {
        **stability.summary(),
        "importance_agreement_chance": 1 / stability.members,
        "importance_agreement_p": {m: c.p_value for m, c in stability.agreement.items()},
        "importance_agreement_sentences": {m: stability.sentence(m) for m in stability.agreement},
        "rows": stability.rows,
        "importance_rows": stability.importance_rows,
        "note": stability.note,
    }


def control_summary(run: Run, explanation: Explanation) -> dict[str, Any] | None:
    """The control model in ``summary.json``: its steps, epochs, test metric and per map its
    divergence from the untrained model; ``None`` for a run without a control."""
    if run.control is None:
        return None
    return {
        "steps": run.control.steps,
        "epochs": run.control.epochs,
        "metric": run.control.value,
        "map_divergence": [
            {"layer": e["layer"], "map_id": e["map_id"], "divergence": e["control_divergence"]}
            for e in explanation.divergence
            if e.get("control_divergence") is not None
        ],
    }
