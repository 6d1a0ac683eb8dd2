"""Whole tasks that the command line and the dashboard run: training a run (in memory, racing
two settings, streamed from a file, or on several workers), explaining it, and opening saved
runs."""

from mrta.pipelines.explain import explain, run_checks
from mrta.pipelines.explain_sets import explain_sets
from mrta.pipelines.train_run import train_run

__all__ = ["explain", "explain_sets", "run_checks", "train_run"]
