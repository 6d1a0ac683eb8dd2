"""Time recording and aggregating attention per cohort, and check its memory stays bounded.

Model: the real row model (:class:`mrta.nn.model.TabularAttentionModel`, built as a run builds
it: per-column tokens of the default width 32, two MultiResolutionTabularAttention layers of 8
heads at d_model 64, a head on the mean of all tokens), untrained, on a generated 30-column
table: 20 numerical columns (10 % missing) and 10 categorical columns of 12 codes, 3 classes.

Stages, each on 10,000 rows in batches of 512:

- ``forward``: the model alone, eval mode, no grad, no recorder (what any analysis costs);
- ``collect_all_rows``: :func:`mrta.analysis.atlas.collect_attention` with the ``all`` cohort only
  (recording, per-row rollout and entropy, streaming sums);
- ``collect_all_cohorts``: every cohort in the same single pass: true and predicted class,
  correct/wrong, deciles of the 20 numerical columns (with a missing cohort), the 8 top levels of
  the 10 categorical columns plus "other": ``cohorts`` in the results.
  ``recorder_commit_seconds`` is the part spent in ``AttentionRecorder.commit``.

Memory: each size runs in a subprocess of its own (a process's peak counter only rises) and
reports peak resident memory minus resident memory just before the collection, for 10,000
and 100,000 rows with every cohort, on a smaller model (1 head, d_model and tokens 8) so that
the large size finishes in minutes; the streamed state does not depend on the number of rows.

Run: ``python -m benchmarks.analysis_speed [--threads N]`` (a few minutes on 2 cores); it
writes ``benchmarks/results/analysis_speed.json``. On a machine shared with other busy
processes, ``--threads 1`` gives steadier (and there, faster) figures: torch's threads wait on
each other when a core is taken.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.memory import memory_mb
from mrta.analysis.cohorts import CohortSpec
from mrta.analysis.collect import collect_attention
from mrta.analysis.recorder import AttentionRecorder
from mrta.config import ModelConfig
from mrta.nn.model import build_model

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "analysis_speed.json"
ROWS, N_NUM, N_CAT, LEVELS, CLASSES = 10_000, 20, 10, 12, 3
HEADS, D_MODEL, DEPTH, BATCH = 8, 64, 2, 512
MODEL = ModelConfig(d_model=D_MODEL, num_layers=DEPTH, num_heads=HEADS)  # default d_token
MEMORY_MODEL = ModelConfig(d_token=8, d_model=8, num_layers=DEPTH, num_heads=1)
MEMORY_ROWS = (10_000, 100_000)
SEED = 0


def table(rows: int, config: ModelConfig = MODEL):
    """The model, its inputs, targets and the raw frame with one column per token."""
    num_names = [f"num_{j}" for j in range(N_NUM)]
    cat_names = [f"cat_{j}" for j in range(N_CAT)]
    spec = {  # what Preprocessor.model_spec gives for such a table
        "config": config.to_dict(),
        "task": "multiclass",
        "numerical_tokens": num_names,
        "categorical_tokens": cat_names,
        "vocabulary_sizes": [LEVELS] * N_CAT,
        "n_classes": CLASSES,
    }
    model = build_model(spec, SEED)  # a TabularAttentionModel
    num, ind, cat = random_inputs(rows)
    targets = torch.randint(0, CLASSES, (rows,), generator=torch.Generator().manual_seed(SEED))
    raw = np.where(ind.numpy() > 0, np.nan, num.numpy().astype(np.float64) * 1000)
    labels = np.array([f"level {k}" for k in range(LEVELS)], dtype=object)[cat.numpy()]
    frame = pd.DataFrame(
        {**dict(zip(num_names, raw.T, strict=True)), **dict(zip(cat_names, labels.T, strict=True))}
    )
    cohorts = CohortSpec.for_frame(frame, class_labels=("a", "b", "c"))
    return model.eval(), (num, ind, cat), targets, frame, cohorts


def random_inputs(rows: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Seeded ``(numerical, indicators, categorical)``: about 10 % of numbers missing (value 0,
    indicator 1); codes in ``[0, LEVELS)``."""
    generator = torch.Generator().manual_seed(SEED)
    numerical = torch.randn(rows, N_NUM, generator=generator)
    indicators = (torch.rand(rows, N_NUM, generator=generator) < 0.1).float()
    numerical = numerical * (1 - indicators)
    categorical = torch.randint(0, LEVELS, (rows, N_CAT), generator=generator)
    return numerical, indicators, categorical


def memory_child(rows: int, threads: int) -> None:
    """Print the peak memory of one collection over ``rows`` rows, as JSON."""
    torch.set_num_threads(threads)
    model, inputs, targets, frame, spec = table(rows, MEMORY_MODEL)
    before = memory_mb("VmRSS")
    start = time.perf_counter()
    atlas = collect_attention(model, inputs, frame, spec, BATCH, targets)
    seconds = time.perf_counter() - start
    peak = memory_mb("VmHWM")
    print(
        json.dumps(
            {
                "rows": rows,
                "cohorts": len(atlas.cohorts),
                "seconds": round(seconds, 2),
                "peak_minus_start_megabytes": round(peak - before, 1),
            }
        )
    )


def main(threads: int) -> None:
    torch.set_num_threads(threads)
    model, inputs, targets, frame, spec = table(ROWS)
    num, ind, cat = inputs
    seconds: dict[str, float] = {}
    with torch.no_grad():
        model(num[:BATCH], ind[:BATCH], cat[:BATCH])  # warm up
        start = time.perf_counter()
        for i in range(0, ROWS, BATCH):
            model(num[i : i + BATCH], ind[i : i + BATCH], cat[i : i + BATCH])
        seconds["forward"] = time.perf_counter() - start

    start = time.perf_counter()
    collect_attention(model, inputs, cohorts=CohortSpec(classes=False), batch_size=BATCH)
    seconds["collect_all_rows"] = time.perf_counter() - start

    commit, spent = AttentionRecorder.commit, [0.0]

    def timed_commit(self, cohorts=None):
        begin = time.perf_counter()
        commit(self, cohorts)
        spent[0] += time.perf_counter() - begin

    AttentionRecorder.commit = timed_commit
    try:
        start = time.perf_counter()
        atlas = collect_attention(model, inputs, frame, spec, BATCH, targets)
        seconds["collect_all_cohorts"] = time.perf_counter() - start
    finally:
        AttentionRecorder.commit = commit
    seconds["recorder_commit_seconds"] = spent[0]

    map_bytes = sum(a.nbytes for a in (*atlas.means.values(), *atlas.stds.values()))
    child = [sys.executable, "-m", "benchmarks.analysis_speed", "--threads", str(threads)]
    memory = [
        json.loads(
            subprocess.run(
                [*child, "--memory-child", str(rows)],
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
            ).stdout
        )
        for rows in MEMORY_ROWS
    ]
    result = {
        "benchmark": "analysis_speed",
        "what": "seconds to record and aggregate attention per cohort over one table, one run",
        "rows": ROWS,
        "columns": {"numerical": N_NUM, "categorical": N_CAT, "levels": LEVELS},
        "model": {
            "class": "TabularAttentionModel",
            "layers": DEPTH,
            "heads": HEADS,
            "d_model": D_MODEL,
            "d_token": MODEL.d_token,
            "batch_size": BATCH,
        },
        "memory_model": {"heads": 1, "d_model": 8, "d_token": 8},
        "cohorts": len(atlas.cohorts),
        "seconds": {name: round(value, 2) for name, value in seconds.items()},
        "atlas_megabytes": round(map_bytes / 2**20, 1),
        "memory": memory,
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_1min": round(os.getloadavg()[0], 2),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.threads)
    else:
        main(args.threads)
