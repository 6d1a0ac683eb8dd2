"""What a benchmark's figures were measured on: the cores, the load around the run and the
versions of the libraries that do the work."""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import torch


def machine(load_before: tuple[float, ...]) -> dict[str, Any]:
    """The machine now, with the load average taken before the run (`load_before`:
    ``os.getloadavg()`` then)."""
    return {
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "scikit_learn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }
