"""The files a run's explanation is exported to: the maps (``.npz`` + JSON and a tidy CSV),
``summary.json`` and, on request, ``report.html``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mrta.analysis.cohorts import ALL_ROWS, CohortKey
from mrta.analysis.explanation import Explanation
from mrta.jsonable import write_json
from mrta.report.exports import analysis_summary, save_atlas, write_tidy_csv
from mrta.report.run_report import report_html
from mrta.runs.run import Run


def write_exports(
    run: Run,
    explanation: Explanation,
    out: str | Path,
    *,
    cohorts: Sequence[CohortKey] = (ALL_ROWS,),
    report: bool = False,
) -> list[Path]:
    """Write ``maps.npz`` + ``maps.json``, ``maps.csv`` (tidy), ``summary.json`` and, with
    ``report``, ``report.html`` into ``out``; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = list(save_atlas(explanation.atlas, out / "maps"))
    write_tidy_csv(explanation.atlas, out / "maps.csv", cohorts=cohorts)
    written.append(out / "maps.csv")
    summary = analysis_summary(
        explanation.atlas,
        heads=explanation.heads,
        permutation=explanation.permutation,
        ablation=explanation.ablation,
        sanity=explanation.sanity,
    )
    written.append(write_json(out / "summary.json", summary))
    if report:
        path = out / "report.html"
        path.write_text(report_html(run, explanation), encoding="utf-8")
        written.append(path)
    return written
