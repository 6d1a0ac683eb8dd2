"""The README works as documentation: its Python examples run and its tables are current."""

import os
import re
from pathlib import Path

import pytest

from mrta.defaults import markdown_table

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_defaults_table_is_generated_from_the_code():
    block = re.search(r"<!-- defaults:start -->\n(.*?)\n<!-- defaults:end -->", README, re.S)
    assert block, "README.md lacks the defaults table markers"
    assert block.group(1) == markdown_table(), "run `python -m mrta.defaults` and paste the table"


def test_python_examples_run(monkeypatch):
    if os.environ.get("CI") != "true":
        pytest.importorskip("kerasfactory")
    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    from loguru import logger

    logger.remove()
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:  # the examples build on one another, like a session would
        exec(compile(block, "README.md", "exec"), namespace)
