"""Explain a run: every view the dashboard, the report and ``mrta explain`` show, in one place.

:func:`explain` records the trained model's attention over a table once (all cohorts in one
pass), does the same for the untrained model (the run's initial weights) for the sanity check,
and derives the head table and the map divergences. :func:`run_checks` adds the on-demand checks
(head ablation and permutation importance on a bounded validation sample). :func:`write_exports`
writes the files a user downloads.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mrta.analysis.atlas import AttentionAtlas
from mrta.analysis.checks import (
    AblationResult,
    PermutationImportance,
    ablate_heads,
    map_divergence,
    permutation_importance,
    sanity_checks,
)
from mrta.analysis.cohorts import ALL_ROWS, CohortKey, CohortSpec
from mrta.analysis.collect import ProgressFn, Shard, collect_attention
from mrta.analysis.heads import HeadStats, head_table
from mrta.analysis.labels import token_frame
from mrta.jsonable import write_json
from mrta.nn.layer import MAP_LABELS
from mrta.report import figures
from mrta.report.exports import analysis_summary, load_atlas, save_atlas, write_tidy_csv
from mrta.runs.run import Run
from mrta.task import Task
from mrta.training.losses import task_scores

DEFAULT_MAX_ROWS = (
    10_000  # rows recorded for the maps: cohorts are well filled, a pass takes seconds
)
CHECK_ROWS = 2_000  # validation rows for ablation and permutation: deltas of 0.01 stand out
ANALYSIS_DIR = "analysis"  # where a run directory caches its explanation
ANALYSIS_FORMAT = 1



@dataclass
class Explanation:
    """What was recorded and derived for one run on one table."""

    atlas: AttentionAtlas  # the trained model, every cohort
    untrained: AttentionAtlas  # the untrained model, all rows: the sanity baseline
    rows: int  # rows recorded
    sampled_from: int | None  # the table's rows with a target, when a sample was taken
    heads: list[HeadStats]
    divergence: list[dict[str, Any]]  # per map: how far from the untrained model
    ablation: AblationResult | None = None
    permutation: PermutationImportance | None = None

    @property
    def sanity(self) -> dict[str, Any]:
        """The sanity checks; the map divergences are the ones computed once in `explain`."""
        return {**sanity_checks(self.atlas, self.permutation), "map_divergence": self.divergence}


def analysed_rows(run: Run, frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """The rows of ``frame`` that have a target, at most ``max_rows`` of them (seeded sample)."""
    target = run.schema.encode_target(frame)
    has_target = target >= 0 if run.schema.task != Task.REGRESSION else ~np.isnan(target)
    rows = frame[has_target]
    if len(rows) > max_rows:
        rows = rows.sample(n=max_rows, random_state=seed).sort_index()
    return rows


def explain(
    run: Run,
    frame: pd.DataFrame | None = None,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    seed: int = 0,
    progress: ProgressFn | None = None,
    shard: Shard | None = None,
) -> Explanation:
    """Record attention over ``frame`` (default: the run's own table) and derive every view.

    With ``shard``, this process records its block of the rows and the sums of every process
    of the shard's group are added up (see :func:`~mrta.analysis.atlas.collect_attention`): every
    process calls it alike and gets the explanation of all the rows.
    """
    frame = _table(run, frame)
    rows = analysed_rows(run, frame, max_rows, seed)
    encoded = run.preprocessor.transform(rows)
    tokens = token_frame(run.schema, rows)
    classification = run.schema.task != Task.REGRESSION
    spec = CohortSpec.for_frame(tokens, class_labels=run.class_labels, classes=classification)
    step = _phases(progress, ("recording attention", "recording the untrained model"))
    atlas = collect_attention(run.model, encoded, tokens, spec, progress=step(0), shard=shard)
    untrained = collect_attention(
        run.untrained_model(),
        encoded,
        cohorts=CohortSpec(classes=False),
        progress=step(1),
        shard=shard,
    )
    return Explanation(
        atlas=atlas,
        untrained=untrained,
        rows=len(rows),
        sampled_from=len(frame) if len(rows) < len(frame) else None,
        heads=head_table(atlas, ALL_ROWS, reference=untrained),
        divergence=map_divergence(atlas, untrained),
    )


def filter_atlas(
    run: Run, name: str, mask: np.ndarray, frame: pd.DataFrame | None = None, *, seed: int = 0
) -> AttentionAtlas:
    """A custom cohort (``mask`` over ``frame``'s rows, at most :data:`DEFAULT_MAX_ROWS` of
    them): its own pass over those rows, keyed ``("filter", name)``."""
    frame = _table(run, frame)
    if len(mask) != len(frame):
        raise ValueError(f"the filter has {len(mask)} values for {len(frame)} rows")
    rows = analysed_rows(run, frame[np.asarray(mask, dtype=bool)], DEFAULT_MAX_ROWS, seed)
    if len(rows) == 0:
        raise ValueError(f"no row with a target matches {name}")
    spec = CohortSpec(classes=False, filters={name: np.ones(len(rows), dtype=bool)})
    return collect_attention(run.model, run.preprocessor.transform(rows), cohorts=spec)


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


def _table(run: Run, frame: pd.DataFrame | None) -> pd.DataFrame:
    frame = run.frame if frame is None else frame
    if frame is None:
        raise ValueError("this run holds no table: give the rows to explain it on")
    return frame


def run_checks(
    run: Run, explanation: Explanation, *, seed: int = 0, progress: ProgressFn | None = None
) -> Explanation:
    """Head ablation and permutation importance on the validation split (at most 2,000 rows)."""
    encoded = run.preprocessor.transform(run.rows("validation"))
    loss_fn, metric_fn, _ = task_scores(
        run.schema.task, run.preprocessor.target_mean, run.preprocessor.target_std
    )
    step = _phases(progress, ("ablating heads", "permuting columns"))
    common = {"loss_fn": loss_fn, "metric_fn": metric_fn, "max_rows": CHECK_ROWS, "seed": seed}
    with torch.no_grad():
        explanation.ablation = ablate_heads(run.model, encoded, progress=step(0), **common)
        explanation.permutation = permutation_importance(
            run.model, encoded, progress=step(1), **common
        )
    explanation.heads = head_table(
        explanation.atlas, ALL_ROWS, reference=explanation.untrained, ablation=explanation.ablation
    )
    return explanation


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
    return figures.run_report(
        title=title,
        data_summary=data,
        metrics=run.metrics["model"],
        baselines={"gradient boosting": run.metrics["hgb"], "trivial": run.metrics["trivial"]},
        figures=report_figures(explanation),
        heads=explanation.heads,
        sanity=explanation.sanity,
    )


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


def _phases(progress: ProgressFn | None, names: Sequence[str]):
    """Per phase, a progress callback that reports ``(done, total, "phase: ...")``."""

    def phase(i: int) -> ProgressFn | None:
        if progress is None:
            return None
        return lambda done, total, _message: progress(done, total, names[i])

    return phase
