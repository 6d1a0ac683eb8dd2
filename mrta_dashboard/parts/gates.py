"""The column gates' caption: which columns the run's model reads nothing of, beside the
label-shuffled control's gates (:mod:`mrta.runs.gates`)."""

from __future__ import annotations

import streamlit as st

from mrta.runs.gates import gate_report
from mrta_dashboard.text import md


def caption(run) -> None:
    """Under a run's metrics, or above its maps: its column gates; nothing for a run without."""
    report = gate_report(run)
    if report is not None:
        st.caption(md(report.sentence()))
