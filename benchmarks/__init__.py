"""The measurements behind every number in the README; run each as ``python -m benchmarks.NAME``
from the project's root. Results go to ``benchmarks/results/NAME.json``."""
