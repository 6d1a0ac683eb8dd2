"""A run directory's cached explanation, in ``RUN_DIR/analysis/``, tied to the rows it was
computed on and checked before it is used.

Maps are stored as ``.npz`` + JSON (nothing is unpickled), the rest as JSON. The folder is
written all at once (:mod:`mrta.runs.atomic`), so that a kill while caching leaves the old cache
or the new one; ``explanation.json`` lists the SHA-256 of every other file. A cache of other rows
is ignored; one of another format version, or damaged, is ignored with a note: the explanation
is recomputed.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import NamedTuple

from mrta.analysis.checks import AblationResult, MapAblationResult
from mrta.analysis.cohorts import ALL_ROWS
from mrta.analysis.deletion import Faithfulness
from mrta.analysis.explanation import Explanation
from mrta.analysis.heads import head_table
from mrta.analysis.importance import ColumnImportances
from mrta.analysis.permutation import PermutationImportance
from mrta.analysis.verdict import Verdict
from mrta.errors import RunError
from mrta.jsonable import json_bytes
from mrta.report.exports import load_atlas, save_atlas
from mrta.runs.atomic import recover_folder, staged_folder, write_file
from mrta.runs.bounds import load_json, max_json_bytes, max_run_bytes
from mrta.runs.manifest import ANALYSIS_DIR, file_digest

#: 2: the control's maps, the verdict, the null checks; 3: importances; 4: the atlases' head mean
#: standard deviations (atlas format 2); 5: the checksums of the cached files
ANALYSIS_FORMAT = 5
RECORD = "explanation.json"  # written last, listing the checksums of the other files


class CachedExplanation(NamedTuple):
    """What :func:`load_explanation` found: the explanation, or ``None`` with a ``note`` saying
    why a cache that was there is not used (``None`` when there was none, or it was of other
    rows)."""

    explanation: Explanation | None
    note: str | None = None


def save_explanation(explanation: Explanation, run_dir: str | Path, source: str) -> Path:
    """Cache an explanation in ``RUN_DIR/analysis/``.

    ``source`` identifies the rows it was computed on (e.g. a hash of the data file), so that a
    later load can tell whether the cache fits.
    """
    target = Path(run_dir) / ANALYSIS_DIR
    with staged_folder(target) as out:
        save_atlas(explanation.atlas, out / "atlas")
        save_atlas(explanation.untrained, out / "untrained")
        if explanation.control is not None:
            save_atlas(explanation.control, out / "control")
        record = _record(explanation, source)
        record["files"] = {path.name: file_digest(path.read_bytes()) for path in out.iterdir()}
        write_file(out / RECORD, json_bytes(record))
    return target


def _record(explanation: Explanation, source: str) -> dict:
    return {
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


def load_explanation(run_dir: str | Path, source: str) -> CachedExplanation:
    """The explanation cached in ``RUN_DIR/analysis/`` for ``source``. It is ``None`` when there
    is none or it was computed on other rows; ``None`` with a note when it is of another format
    version or damaged (a file missing, changed or unreadable): it is then recomputed."""
    folder = Path(run_dir) / ANALYSIS_DIR
    recover_folder(folder)
    try:
        if not _within_limit(folder / RECORD):
            return CachedExplanation(None, _damaged(RECORD))
        record = load_json((folder / RECORD).read_bytes(), f"The cached {RECORD}")
    except FileNotFoundError:
        return CachedExplanation(None)
    except (OSError, RunError):
        return CachedExplanation(None, _damaged(RECORD))
    if not isinstance(record, dict) or record.get("source") != source:
        return CachedExplanation(None)
    if record.get("format_version") != ANALYSIS_FORMAT:
        return CachedExplanation(
            None,
            "The analysis cached in the run was saved by another version of MRTA Explorer: it "
            "is recorded again.",
        )
    listed = record.get("files")
    if not isinstance(listed, dict):
        return CachedExplanation(None, _damaged(RECORD))
    for name, digest in listed.items():
        path = folder / str(name)
        try:
            if not _within_limit(path) or file_digest(path.read_bytes()) != digest:
                return CachedExplanation(None, _damaged(str(name)))
        except OSError:
            return CachedExplanation(None, _damaged(str(name)))
    try:
        return CachedExplanation(_explanation(folder, record))
    except (OSError, ValueError, KeyError, TypeError, RecursionError, MemoryError):
        return CachedExplanation(None, _damaged(RECORD))


def _within_limit(path: Path) -> bool:
    """Whether ``path`` is a regular file (not a link) no larger than a run's files may be."""
    found = path.lstat()
    limit = max_json_bytes() if path.suffix == ".json" else max_run_bytes()
    return stat.S_ISREG(found.st_mode) and found.st_size <= limit


def _damaged(name: str) -> str:
    return (
        f"The analysis cached in the run is damaged ({name} is missing or does not match its "
        "checksum): it is recorded again."
    )


def _explanation(folder: Path, record: dict) -> Explanation:
    atlas, untrained = load_atlas(folder / "atlas"), load_atlas(folder / "untrained")
    control = load_atlas(folder / "control") if record["control"] else None
    ablation = record["ablation"] and AblationResult.from_dict(record["ablation"])
    mean_ablation = record["mean_ablation"] and AblationResult.from_dict(record["mean_ablation"])
    map_ablation = record["map_ablation"] and MapAblationResult.from_dict(record["map_ablation"])
    permutation = record["permutation"] and PermutationImportance.from_dict(record["permutation"])
    verdict = record["verdict"] and Verdict.from_dict(record["verdict"])
    importance = record["importance"] and ColumnImportances.from_record(record["importance"])
    faithfulness = record["faithfulness"] and Faithfulness.from_dict(record["faithfulness"])
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
