"""How the run's model fared on each of some rows: what the Explore page's row picker shows
beside the rows, so that a wrong prediction is one click away.

```python
from mrta.pipelines.explore import explorable_rows
from mrta.pipelines.row_outcomes import row_outcomes

rows = explorable_rows(run)
row_outcomes(run, rows.head(100))   # predicted, probability, true, right (or the residual)
```
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mrta.runs.run import Run
from mrta.task import Task

PREDICTED, PROBABILITY, TRUE, RIGHT = "predicted", "probability", "true", "right"
ACTUAL, RESIDUAL = "actual", "residual"


def row_outcomes(run: Run, rows: pd.DataFrame) -> pd.DataFrame:
    """One line per row of `rows` (raw rows of the run's columns, each with a target), with
    their index.

    Classification: ``predicted`` (the most probable class), ``probability`` (the model's
    probability of it), ``true`` (the row's class) and ``right`` (whether they agree).
    Regression: ``predicted`` and ``actual`` in the target's units, and ``residual``, actual
    minus predicted. Raises ``TableError`` when a feature column is missing.
    """
    if run.sets is not None:
        raise ValueError("row_outcomes is for a run on rows; a run on sets predicts per group")
    predicted = run.predict_frame(rows)
    target = run.schema.encode_target(rows)
    if run.schema.task == Task.REGRESSION:
        actual = np.asarray(target, dtype=np.float64)
        values = predicted["prediction"].to_numpy(dtype=np.float64)
        return pd.DataFrame(
            {PREDICTED: values, ACTUAL: actual, RESIDUAL: actual - values}, index=rows.index
        )
    labels = np.asarray(run.class_labels, dtype=object)
    classes = target
    probabilities = predicted[list(run.class_labels)].to_numpy(dtype=np.float64)
    best = probabilities.argmax(axis=1)
    return pd.DataFrame(
        {
            PREDICTED: labels[best],
            PROBABILITY: probabilities[np.arange(len(rows)), best],
            TRUE: np.where(classes >= 0, labels[classes], None),
            RIGHT: best == classes,
        },
        index=rows.index,
    )
