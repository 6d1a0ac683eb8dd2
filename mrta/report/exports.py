"""Exports: attention atlases as ``.npz`` + JSON, a tidy CSV of maps, and a JSON summary.

Nothing here needs pickle: names are stored as fixed-width unicode arrays, so
``np.load(path, allow_pickle=False)`` reads every file, and structured metadata (cohort keys)
goes to JSON. Text cells of CSV exports that a spreadsheet would run as a formula are escaped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mrta.analysis.atlas import AttentionAtlas
from mrta.analysis.checks import AblationResult
from mrta.analysis.cohorts import ALL_ROWS, CohortKey
from mrta.analysis.deletion import EXPORT_KEY, Faithfulness
from mrta.analysis.heads import HeadStats
from mrta.analysis.importance import METHODS, ColumnImportances
from mrta.analysis.permutation import PermutationImportance
from mrta.analysis.stability import SeedStability
from mrta.analysis.verdict import Verdict
from mrta.csvfile import FORMULA_STARTS as FORMULA_STARTS  # where it was, for old imports
from mrta.csvfile import escape_cell, write_csv
from mrta.jsonable import json_ready, write_json
from mrta.streams import MAP_IDS

ATLAS_FORMAT = "mrta-attention-atlas"
SUMMARY_FORMAT = "mrta-analysis-summary"
FORMAT_VERSION = 2  # of the atlas files; 2: the head mean's standard deviation
#: 2: the verdict and the control model; 3: every method's importance with its standard error,
#: their faithfulness, and the atlas's rollout under its own key
SUMMARY_VERSION = 3
TIDY_COLUMNS = ("layer", "map", "head", "cohort", "query", "key", "weight")


# -- atlas files -----------------------------------------------------------------------------
def _names(values: Iterable[str]) -> np.ndarray:
    """Fixed-width unicode, never an object array. Shape: ``(n,)``."""
    return np.array(list(values), dtype=np.str_)


def _map_prefix(layer: int, map_id: str) -> str:
    return f"layer{layer}.{map_id}"


def atlas_paths(stem: str | Path) -> tuple[Path, Path]:
    """``(stem.npz, stem.json)``; the stem may contain dots."""
    return Path(f"{stem}.npz"), Path(f"{stem}.json")


def save_atlas(atlas: AttentionAtlas, stem: str | Path) -> tuple[Path, Path]:
    """Write ``stem.npz`` (every array, with names for use elsewhere) and ``stem.json``,
    creating the folder if needed.

    The npz holds ``counts``, ``cohort_labels``, ``layer_names``, ``rollout.mean``,
    ``rollout.std``, ``rollout.tokens`` and per map ``layer{i}.{map_id}.mean``, ``.std``,
    ``.head_mean_std``, ``.entropy``, ``.queries``, ``.keys``; the JSON the cohort keys and token
    names.
    """
    npz_path, json_path = atlas_paths(stem)
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "counts": atlas.counts,
        "cohort_labels": _names(atlas.cohort_labels),
        "layer_names": _names(atlas.layer_names),
        "rollout.mean": atlas.rollout_mean,
        "rollout.std": atlas.rollout_std,
        "rollout.tokens": _names(atlas.rollout_tokens),
    }
    for layer, map_id in atlas.map_keys:
        prefix = _map_prefix(layer, map_id)
        queries, keys = atlas.names(layer, map_id)
        arrays[f"{prefix}.mean"] = atlas.means[(layer, map_id)]
        arrays[f"{prefix}.std"] = atlas.stds[(layer, map_id)]
        arrays[f"{prefix}.head_mean_std"] = atlas.head_mean_stds[(layer, map_id)]
        arrays[f"{prefix}.entropy"] = atlas.entropy[(layer, map_id)]
        arrays[f"{prefix}.queries"] = _names(queries)
        arrays[f"{prefix}.keys"] = _names(keys)
    np.savez_compressed(npz_path, **arrays)
    write_json(
        json_path,
        {
            "format": ATLAS_FORMAT,
            "format_version": FORMAT_VERSION,
            "layer_names": atlas.layer_names,
            "token_names": atlas.token_names,
            "cohorts": atlas.cohorts,
            "cohort_labels": atlas.cohort_labels,
            "maps": atlas.map_keys,
        },
    )
    return npz_path, json_path


def load_atlas(stem: str | Path) -> AttentionAtlas:
    """Inverse of :func:`save_atlas`; reads without pickle. An atlas of another format version
    (version 1 lacks the head mean's standard deviation) is refused with a ``ValueError``: its
    attention is to be collected again."""
    npz_path, json_path = atlas_paths(stem)
    meta = json.loads(json_path.read_text(encoding="utf-8"))
    if meta.get("format") != ATLAS_FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{json_path} is not an attention atlas of format version {FORMAT_VERSION} "
            f"(format {meta.get('format')!r}, version {meta.get('format_version')!r}): "
            "collect the attention again"
        )
    with np.load(npz_path, allow_pickle=False) as arrays:
        map_keys = [(int(layer), str(map_id)) for layer, map_id in meta["maps"]]

        def per_map(field: str) -> dict[tuple[int, str], np.ndarray]:
            return {key: arrays[f"{_map_prefix(*key)}.{field}"] for key in map_keys}

        return AttentionAtlas(
            layer_names=tuple(meta["layer_names"]),
            token_names=tuple(
                {stream: tuple(names) for stream, names in layer.items()}
                for layer in meta["token_names"]
            ),
            cohorts=tuple(tuple(key) for key in meta["cohorts"]),
            cohort_labels=tuple(meta["cohort_labels"]),
            counts=arrays["counts"],
            means=per_map("mean"),
            stds=per_map("std"),
            head_mean_stds=per_map("head_mean_std"),
            entropy=per_map("entropy"),
            rollout_mean=arrays["rollout.mean"],
            rollout_std=arrays["rollout.std"],
        )


# -- CSV -------------------------------------------------------------------------------------
def write_tidy_csv(
    atlas: AttentionAtlas,
    path: str | Path,
    cohorts: Sequence[CohortKey] = (ALL_ROWS,),
    map_ids: Sequence[str] = MAP_IDS,
) -> int:
    """One row per layer, map, head, cohort, query and key: the cohort's mean weight.

    Columns: ``layer`` (index), ``map`` (id), ``head``, ``cohort`` (its label), ``query``,
    ``key``, ``weight``. Returns the number of rows written.
    """
    path = Path(path)
    written = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        write_csv(pd.DataFrame(columns=list(TIDY_COLUMNS)), handle, index=False)
        for cohort in cohorts:
            i = atlas.index(cohort)
            label = escape_cell(atlas.cohort_labels[i])
            for layer, map_id in atlas.map_keys:
                if map_id not in map_ids:
                    continue
                mean = atlas.means[(layer, map_id)][i]  # (H, Tq, Tk)
                heads, tq, tk = mean.shape
                queries, keys = (
                    np.array([escape_cell(n) for n in names], dtype=object)
                    for names in atlas.names(layer, map_id)
                )
                block = pd.DataFrame(
                    {
                        "layer": layer,
                        "map": map_id,
                        "head": np.repeat(np.arange(heads), tq * tk),
                        "cohort": label,
                        "query": np.tile(np.repeat(queries, tk), heads),
                        "key": np.tile(keys, heads * tq),
                        "weight": mean.reshape(-1),
                    }
                )
                write_csv(block, handle, index=False, header=False, float_format="%.6g")
                written += len(block)
    return written


# -- summary ---------------------------------------------------------------------------------
def analysis_summary(
    atlas: AttentionAtlas,
    *,
    heads: Sequence[HeadStats] = (),
    permutation: PermutationImportance | None = None,
    importance: ColumnImportances | None = None,
    faithfulness: Faithfulness | None = None,
    ablation: AblationResult | None = None,
    sanity: Mapping[str, Any] | None = None,
    verdict: Verdict | None = None,
    control: Mapping[str, Any] | None = None,
    cohort: CohortKey = ALL_ROWS,
) -> dict[str, Any]:
    """The run's analysis as plain JSON (every key is documented in the README's "summary.json").

    Keys: ``format``, ``format_version``, ``cohort``, ``rows``, ``verdict`` (see
    :class:`~mrta.analysis.verdict.Verdict`; ``None`` without the test rows), ``control``
    (``steps``, ``epochs``, ``metric`` (its test value), ``map_divergence`` (per map, the
    control's divergence from the untrained model); ``None`` without a control), ``heads`` (the
    head table), ``rollout`` (the atlas's attention received, rolled out, over the cohort's
    rows: ``mean``, each row's rollout averaged, and ``of_mean_maps``), ``importance`` (per
    method id, ``mean`` and ``se`` per input column, on the ranking half of the test rows;
    ``None`` until the checks run), ``importance_rows`` (``ranked_on``, ``curves_on``: the rows
    of each half), ``faithfulness`` (per method, the deletion ``area``, ``low``, ``high`` and
    ``beats_random``, and ``random``'s ``low`` and ``high``), ``permutation`` (its details),
    ``ablation``, ``sanity``.
    """
    return json_ready(
        {
            "format": SUMMARY_FORMAT,
            "format_version": SUMMARY_VERSION,
            "cohort": atlas.cohort_labels[atlas.index(cohort)],
            "rows": atlas.counts[atlas.index(cohort)],
            "verdict": None if verdict is None else verdict.to_dict(),
            "control": control,
            "heads": list(heads),
            "rollout": {
                "mean": atlas.importance(cohort),
                "of_mean_maps": atlas.mean_map_importance(cohort),
            },
            "importance": None if importance is None else importance.to_dict(),
            "importance_rows": None
            if importance is None or faithfulness is None
            else {"ranked_on": importance.rows, "curves_on": faithfulness.rows},
            "faithfulness": None if faithfulness is None else faithfulness.to_dict()[EXPORT_KEY],
            "permutation": permutation,
            "ablation": ablation,
            "sanity": sanity,
        }
    )


IMPORTANCE_COLUMNS = ("method", "column", "stream", "mean", "se", "rank")
FAITHFULNESS_COLUMNS = ("method", "area", "low", "high", "beats_random")


def write_importance_csv(importance: ColumnImportances, path: str | Path) -> Path:
    """Tidy: one row per method and input column: ``method``, ``column``, ``stream``, ``mean``,
    ``se`` (empty where none) and ``rank`` (1 = most important)."""
    rows = []
    for method in METHODS:
        if method not in importance:
            continue
        result = importance.methods[method]
        rank = {name: i for i, name in enumerate(result.ranking(), start=1)}
        for name, mean in result.mean.items():
            se = None if result.se is None else result.se[name]
            stream = importance.streams.get(name)
            rows.append((method, escape_cell(name), stream, mean, se, rank[name]))
    write_csv(
        pd.DataFrame(rows, columns=list(IMPORTANCE_COLUMNS)), path, index=False, float_format="%.6g"
    )
    return Path(path)


def write_faithfulness_csv(faithfulness: Faithfulness, path: str | Path) -> Path:
    """Tidy: one row per method of the deletion check (``method``, ``area``, ``low``, ``high``,
    ``beats_random``), and a ``random`` row: the random orders' own areas, 5th and 95th
    percentiles, in ``low`` and ``high``."""
    export = faithfulness.to_dict()[EXPORT_KEY]
    rows = [{"method": method, **values} for method, values in export.items()]
    write_csv(
        pd.DataFrame(rows, columns=list(FAITHFULNESS_COLUMNS)),
        path,
        index=False,
        float_format="%.6g",
    )
    return Path(path)


STABILITY_COLUMNS = ("layer", "map_id", "query", "key", "mean", "sd", "unstable", "member_0")


def write_stability_csv(stability: SeedStability, atlas: AttentionAtlas, path: str | Path) -> Path:
    """Tidy: one row per layer, map and cell: its head-mean weight averaged over the seed
    members (``mean``), their standard deviation (``sd``), whether it is ``unstable``, and each
    member's own weight (``member_0``, ``member_1``, ...). Token names come from `atlas`
    (member 0's)."""
    members = [f"member_{k}" for k in range(stability.members)]
    frames = []
    for found in stability.maps:
        queries, keys = atlas.names(found.layer, found.map_id)
        cells = found.cells
        grid = pd.MultiIndex.from_product([queries, keys], names=["query", "key"]).to_frame(
            index=False
        )
        frame = pd.DataFrame(
            {
                "layer": found.layer,
                "map_id": found.map_id,
                "query": [escape_cell(n) for n in grid["query"]],
                "key": [escape_cell(n) for n in grid["key"]],
                "mean": cells.mean.ravel(),
                "sd": cells.sd.ravel(),
                "unstable": cells.unstable.ravel(),
            }
        )
        for k, name in enumerate(members):
            frame[name] = cells.member_means[k].ravel()
        frames.append(frame)
    columns = [*STABILITY_COLUMNS[:-1], *members]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
    write_csv(table[columns], path, index=False, float_format="%.6g")
    return Path(path)
