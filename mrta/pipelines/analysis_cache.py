"""A run directory's cached explanation, in ``RUN_DIR/analysis/``, tied to the rows it was
computed on.

Maps are stored as ``.npz`` + JSON (nothing is unpickled), the rest as JSON. A cache of another
format version, of other rows or that cannot be read is ignored: the explanation is recomputed.
"""

from __future__ import annotations

import json
from pathlib import Path

from mrta.analysis.checks import AblationResult, MapAblationResult
from mrta.analysis.cohorts import ALL_ROWS
from mrta.analysis.deletion import Faithfulness
from mrta.analysis.explanation import Explanation
from mrta.analysis.heads import head_table
from mrta.analysis.importance import ColumnImportances
from mrta.analysis.permutation import PermutationImportance
from mrta.analysis.verdict import Verdict
from mrta.jsonable import write_json
from mrta.report.exports import load_atlas, save_atlas

ANALYSIS_DIR = "analysis"  # where a run directory caches its explanation
#: 2: the control's maps, the verdict, the null checks; 3: importances; 4: the atlases' head mean
#: standard deviations (atlas format 2)
ANALYSIS_FORMAT = 4


def save_explanation(explanation: Explanation, run_dir: str | Path, source: str) -> Path:
    """Cache an explanation in ``RUN_DIR/analysis/``.

    ``source`` identifies the rows it was computed on (e.g. a hash of the data file), so that a
    later load can tell whether the cache fits.
    """
    out = Path(run_dir) / ANALYSIS_DIR
    out.mkdir(parents=True, exist_ok=True)
    save_atlas(explanation.atlas, out / "atlas")
    save_atlas(explanation.untrained, out / "untrained")
    (out / "control.npz").unlink(missing_ok=True)
    if explanation.control is not None:
        save_atlas(explanation.control, out / "control")
    record = {
        "format_version": ANALYSIS_FORMAT,
        "source": source,
        "rows": explanation.rows,
        "sampled_from": explanation.sampled_from,
        "divergence": explanation.divergence,
        "control": explanation.control is not None,
        "verdict": None if explanation.verdict is None else explanation.verdict.to_dict(),
        "verdict_note": explanation.verdict_note,
        "ablation": explanation.ablation,
        "mean_ablation": explanation.mean_ablation,
        "map_ablation": explanation.map_ablation,
        "permutation": explanation.permutation,
        "null_agreement": explanation.null_agreement,
        "importance": explanation.importance and explanation.importance.to_record(),
        "faithfulness": explanation.faithfulness and explanation.faithfulness.to_dict(),
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
        control = load_atlas(folder / "control") if record["control"] else None
        ablation = record["ablation"] and AblationResult.from_dict(record["ablation"])
        mean_ablation = record["mean_ablation"] and AblationResult.from_dict(
            record["mean_ablation"]
        )
        map_ablation = record["map_ablation"] and MapAblationResult.from_dict(
            record["map_ablation"]
        )
        permutation = record["permutation"] and PermutationImportance.from_dict(
            record["permutation"]
        )
        verdict = record["verdict"] and Verdict.from_dict(record["verdict"])
        importance = record["importance"] and ColumnImportances.from_record(record["importance"])
        faithfulness = record["faithfulness"] and Faithfulness.from_dict(record["faithfulness"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Explanation(
        atlas=atlas,
        untrained=untrained,
        rows=record["rows"],
        sampled_from=record["sampled_from"],
        heads=head_table(atlas, ALL_ROWS, reference=untrained, ablation=ablation),
        divergence=record["divergence"],
        control=control,
        verdict=verdict,
        verdict_note=record["verdict_note"],
        ablation=ablation,
        mean_ablation=mean_ablation,
        map_ablation=map_ablation,
        permutation=permutation,
        null_agreement=record["null_agreement"] or {},
        importance=importance,
        faithfulness=faithfulness,
    )
