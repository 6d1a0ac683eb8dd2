"""The files a set run's explanation is exported to: ``sets.csv``, ``rows.csv``, ``summary.csv``
and, for one set, its maps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mrta.analysis.sets import SE_CLUSTERED, SetExplanation, SetMaps
from mrta.csvfile import write_csv


def write_set_exports(
    explanation: SetExplanation, out: str | Path, maps: SetMaps | None = None
) -> list[Path]:
    """Write ``sets.csv``, ``rows.csv`` (measures beside values), ``summary.csv`` (every
    column's summary of the rollout measure: rows, sets, mean and ``se_clustered_by_set``, as
    :meth:`~mrta.analysis.sets.SetExplanation.summary`) and, with `maps`, ``set_maps.npz``
    (arrays named ``layer{L}_{map_id}``, ``(H, n, n)``) and ``set_maps.csv`` (tidy) into the
    folder `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "sets.csv", out / "rows.csv", out / "summary.csv"]
    write_csv(explanation.sets, written[0], index=False)
    values = explanation.values.drop(columns=[explanation.group_by], errors="ignore")
    write_csv(explanation.rows.join(values), written[1], index=False)
    summaries = [
        explanation.summary(column).assign(column=column)
        for column in values.columns
        if column != explanation.order_by
    ]
    columns = ["column", "group", "rows", "sets", "mean", SE_CLUSTERED]
    write_csv(pd.concat(summaries, ignore_index=True)[columns], written[2], index=False)
    if maps is not None:
        arrays = {f"layer{layer}_{map_id}": m for (layer, map_id), m in maps.maps.items()}
        np.savez_compressed(out / "set_maps.npz", **arrays)
        labels = maps.labels()
        tidy = [
            pd.DataFrame(
                {
                    "layer": layer,
                    "map": map_id,
                    "head": np.repeat(np.arange(m.shape[0]), m.shape[1] * m.shape[2]),
                    "query": np.tile(np.repeat(labels, m.shape[2]), m.shape[0]),
                    "key": np.tile(labels, m.shape[0] * m.shape[1]),
                    "weight": m.reshape(-1),
                }
            )
            for (layer, map_id), m in maps.maps.items()
        ]
        write_csv(pd.concat(tidy, ignore_index=True), out / "set_maps.csv", index=False)
        written += [out / "set_maps.npz", out / "set_maps.csv"]
    return written
