"""A table cannot put Markdown (or Streamlit's own syntax) into the dashboard: trained on a table
whose file name, column names, target and class labels are Markdown payloads, every page's
text elements show them literally (escaped), and the figures' titles and labels escape HTML."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from test_train_page import new_app, stop_control, wait

from mrta_dashboard import keys

FILE = "[a](javascript:alert(1)).csv"
TARGET = ":red[target]"
FEATURES = ["![x](http://evil.example/x.png)", "**bold** $x^2$", "<b>html</b>", "plain"]
LABELS = ["[yes](javascript:alert(2))", ":material/home: no"]
#: What a rendered payload would look like, if it were not escaped.
RAW = ("](", "![", ":red[", ":material/", "$x^2$", "**bold**", "<b>")


def hostile_table(rows: int = 120) -> bytes:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            FEATURES[0]: rng.normal(size=rows).round(3),
            FEATURES[1]: rng.normal(size=rows).round(3),
            FEATURES[2]: rng.choice(["=HYPERLINK(1)", "+sum", "ok"], rows),
            FEATURES[3]: rng.choice(["p", "q"], rows),
        }
    )
    frame[TARGET] = np.where(frame[FEATURES[0]] > 0, LABELS[0], LABELS[1])
    return frame.to_csv(index=False).encode()


def texts(at) -> list[str]:
    """Every text element's Markdown source on the page."""
    kinds = ("markdown", "caption", "info", "warning", "error", "success", "subheader", "header")
    return [element.value for kind in kinds for element in at.get(kind)]


def unescaped(text: str) -> list[str]:
    """The payloads that `text` would render (backslash escapes removed first)."""
    shown = re.sub(r"\\.", "", text)
    return [raw for raw in RAW if raw in shown]


@pytest.mark.slow
def test_no_page_renders_a_tables_markdown():
    at = new_app()
    at.radio(key=keys.SOURCE).set_value("Upload a CSV").run()
    at.file_uploader(key=keys.UPLOAD).set_value((FILE, hostile_table(), "text/csv")).run()
    loaded = at.session_state[keys.TABLE]
    at.selectbox(key=keys.target(loaded.source_id)).set_value(TARGET).run()
    assert not at.exception
    found = {"data": texts(at)}
    at.switch_page("views/train.py").run()
    at.number_input(key="budget:quick").set_value(3.0)
    at.button[0].click().run()
    wait(at.session_state[keys.TRAIN_JOB])
    at.run()
    stop_control(at)
    at.run()
    found["train"] = texts(at)
    for page in ("explore", "export"):
        at.switch_page(f"views/{page}.py").run()
        assert not at.exception, page
        found[page] = texts(at)
    assert all(found.values()), "every page shows text"
    everything = " ".join(" ".join(values) for values in found.values())
    assert "javascript\\:alert" in everything  # the names are there, escaped
    for page, values in found.items():
        for value in values:
            assert not unescaped(value), (page, value)
    at.switch_page("views/explore.py").run()
    # the categorical column is in the cat_cat map, whichever map the page opens on
    at.selectbox(key=keys.MAP).set_value("cat_cat").run()
    assert not at.exception
    specs = " ".join(chart.proto.spec for chart in at.get("plotly_chart"))
    assert "&lt;b&gt;html" in specs  # the column's name, HTML-escaped in titles and labels
    assert "<b>html" not in specs and "\\u003cb\\u003ehtml" not in specs
