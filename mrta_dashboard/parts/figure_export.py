"""Beside a figure of the Explore page, the button that saves it as it is shown (its layer, map,
head and rows, named in its title) as a standalone HTML page that opens offline."""

from __future__ import annotations

import re

import streamlit as st

from mrta.report import figures


def file_name(name: str) -> str:
    """A file name for the figure called `name`: its letters and digits, dashes between."""
    stem = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:80].rstrip("-")
    return f"{stem or 'figure'}.html"


def download(figure, name: str, key: str) -> None:
    """A download button for `figure` (built on click, so that an unclicked button costs no
    page of plotly.js per rerun); `name` titles the page and names the file."""
    st.download_button(
        "Download this figure (HTML)",
        data=lambda: figures.standalone_html(figure, name),
        file_name=file_name(name),
        mime="text/html",
        key=key,
        on_click="ignore",
        icon=":material/download:",
        help="The figure as shown, its rows named in its title, as a standalone page that "
        "opens offline (plotly.js is inside it, about 5 MB).",
    )
