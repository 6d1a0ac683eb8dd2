"""The saved run: a trained model with its table's schema and fingerprint, preprocessor, split,
metrics, history and control model, written to and read back from a directory checked by its
manifest."""

from mrta.runs.control import Control
from mrta.runs.run import Run

__all__ = ["Control", "Run"]
