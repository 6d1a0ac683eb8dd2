"""A run directory's cached explanation, in ``RUN_DIR/analysis/``, tied to the rows it was
computed on.
"""

from __future__ import annotations

import json
from pathlib import Path

from mrta.analysis.checks import (
    AblationResult,
    PermutationImportance,
)
from mrta.analysis.cohorts import ALL_ROWS
from mrta.analysis.explanation import Explanation
from mrta.analysis.heads import head_table
from mrta.jsonable import write_json
from mrta.report.exports import load_atlas, save_atlas

ANALYSIS_DIR = "analysis"  # where a run directory caches its explanation


ANALYSIS_FORMAT = 1


def save_explanation(explanation: Explanation, run_dir: str | Path, source: str) -> Path:
    """Cache an explanation in ``RUN_DIR/analysis/`` (maps as npz + JSON, the rest as JSON).

    ``source`` identifies the rows it was computed on (e.g. a hash of the data file), so that a
    later load can tell whether the cache fits.
    """
    out = Path(run_dir) / ANALYSIS_DIR
    out.mkdir(parents=True, exist_ok=True)
    save_atlas(explanation.atlas, out / "atlas")
    save_atlas(explanation.untrained, out / "untrained")
    record = {
        "format_version": ANALYSIS_FORMAT,
        "source": source,
        "rows": explanation.rows,
        "sampled_from": explanation.sampled_from,
        "divergence": explanation.divergence,
        "ablation": explanation.ablation,
        "permutation": explanation.permutation,
    }
    write_json(out / "explanation.json", record)
    return out


def load_explanation(run_dir: str | Path, source: str) -> Explanation | None:
    """The explanation cached in ``RUN_DIR/analysis/`` for ``source``; ``None`` when there is
    none, it was computed on other rows, or it cannot be read (it is then recomputed)."""
    folder = Path(run_dir) / ANALYSIS_DIR
    try:
        record = json.loads((folder / "explanation.json").read_text())
        if record.get("format_version") != ANALYSIS_FORMAT or record.get("source") != source:
            return None
        atlas, untrained = load_atlas(folder / "atlas"), load_atlas(folder / "untrained")
    except (OSError, ValueError, KeyError):
        return None
    ablation = record["ablation"] and AblationResult.from_dict(record["ablation"])
    permutation = record["permutation"] and PermutationImportance.from_dict(record["permutation"])
    return Explanation(
        atlas=atlas,
        untrained=untrained,
        rows=record["rows"],
        sampled_from=record["sampled_from"],
        heads=head_table(atlas, ALL_ROWS, reference=untrained, ablation=ablation),
        divergence=record["divergence"],
        ablation=ablation,
        permutation=permutation,
    )
