"""The saved run: a trained model with its table's schema, preprocessor, split, metrics and
history, written to and read back from a directory checked by its manifest."""

from mrta.runs.run import Run

__all__ = ["Run"]
