"""Text from the data shown literally: table, column and class names, labels and messages
that quote them are escaped before Streamlit renders them as Markdown.

Streamlit's Markdown would otherwise run a table's names: links and images (``[x](...)``,
``![x](...)``, which make the browser fetch a remote address), emphasis, headings, LaTeX
(``$...$``) and Streamlit's own syntax (``:red[...]``, ``:material/icon:``). The marks that
open such syntax anywhere in a line are escaped with a backslash (CommonMark shows an escaped
mark as itself), and those that open a list or a heading only at the start of a line are
escaped there; line breaks become spaces.
"""

from __future__ import annotations

import re

_ANYWHERE = re.compile(r"([\\`*_\[\](){}#!<>$:|~^])")
_LINE_START = re.compile(r"^(\s*\d*)([-+=.)])")  # "- a", "+ a", "1. a", "1) a", "=" under a line


def md(value: object) -> str:
    """``value`` as Markdown that shows exactly its text."""
    text = _ANYWHERE.sub(r"\\\1", " ".join(str(value).splitlines()))
    return _LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text)


def md_list(values) -> str:
    """Names joined by commas, each shown literally."""
    return ", ".join(md(value) for value in values)
