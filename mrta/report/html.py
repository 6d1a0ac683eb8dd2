"""A self-contained HTML page of figures and tables: the template of a run's report.

Figures are embedded with plotly.js inline, once (the page works offline); every value and name
is HTML-escaped, and no value is written as JSON: a nested value becomes a table, or a line of
``name: value`` pairs inside a cell. Tables wrap their text at spaces to fit the page's width
(one that still does not fit scrolls within it).
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from mrta.jsonable import json_ready

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; padding: 0 1em;
  color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top;
  overflow-wrap: break-word; }
div.table { max-width: 100%; overflow-x: auto; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1em 0 2em; }
figcaption, p.note { color: #444; font-size: 0.92em; max-width: 60em; }
.verdict { padding: 0.8em 1em; border-radius: 4px; margin: 1em 0; }
.verdict.no { background: #fdecea; border: 2px solid #b71c1c; }
.verdict.yes { background: #e8f5e9; border: 1px solid #2e7d32; }
"""

#: A figure as the report shows it: ``(note under it, figure)``; the figure carries its title.
Figure = tuple[str, go.Figure]


def _text(value: Any) -> str:
    """One value as plain text: numbers to 4 significant digits, nested values as
    ``name: value`` pairs (never JSON)."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Mapping):
        return "; ".join(f"{name}: {_text(inner)}" for name, inner in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_text(inner) for inner in value)
    return str(value)


def _cell(value: Any) -> str:
    value = json_ready(value)
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return f"<td{' class=num' if number else ''}>{html.escape(_text(value))}</td>"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table: `header` names its columns; the first column of each row is a header."""
    head = "".join(f"<th>{html.escape(str(name))}</th>" for name in header)
    body = "".join(
        f"<tr><th>{html.escape(_text(json_ready(row[0])))}</th>"
        + "".join(_cell(value) for value in row[1:])
        + "</tr>"
        for row in rows
    )
    return f'<div class="table"><table><tr>{head}</tr>{body}</table></div>'


def _key_value_table(data: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th>{_cell(v)}</tr>" for k, v in data.items())
    return f'<div class="table"><table>{rows}</table></div>'


def _records_table(records: Sequence[Any]) -> str:
    rows = [json_ready(record) for record in records]
    if not rows:
        return "<p>None.</p>"
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(r.get(c)) for c in columns) + "</tr>" for r in rows)
    return f'<div class="table"><table><tr>{head}</tr>{body}</table></div>'


def _any_table(value: Any) -> str:
    """A list of records, a mapping (of mappings: one row each), or a single value, as HTML."""
    value = json_ready(value)
    if value is None:
        return "<p>Not measured.</p>"
    if isinstance(value, list | tuple):
        return _records_table(value)
    if isinstance(value, Mapping):
        inner = [v for v in value.values() if isinstance(v, Mapping)]
        if inner and len(inner) == len(value):
            columns = list(dict.fromkeys(k for v in inner for k in v))
            return table(
                ["", *columns], [[k, *(v.get(c) for c in columns)] for k, v in value.items()]
            )
        return _key_value_table(value)
    return f"<p>{html.escape(_text(value))}</p>"


def metrics_table(metrics: Mapping[str, Any], baselines: Mapping[str, Mapping[str, Any]]) -> str:
    """One table: a row per metric, the model's column beside each baseline's. Values that are
    not numbers (a confusion matrix) are left out: they are figures."""
    columns = {"model": metrics, **baselines}
    names = list(
        dict.fromkeys(
            name
            for values in columns.values()
            for name, value in values.items()
            if value is None or isinstance(value, int | float)
        )
    )
    rows = [[name, *(values.get(name) for values in columns.values())] for name in names]
    return table(["metric", *columns], rows)


class Plots:
    """Figures as HTML, plotly.js inlined with the first one only."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, note: str, fig: go.Figure) -> str:
        plot = fig.to_html(
            full_html=False,
            include_plotlyjs=self.count == 0,
            default_height=f"{fig.layout.height or 480}px",
            config={"responsive": True, "displaylogo": False},
        )
        self.count += 1
        caption = f"<figcaption>{html.escape(note)}</figcaption>" if note else ""
        return f"<figure>{plot}{caption}</figure>"


def run_report(
    *,
    title: str,
    data_summary: Mapping[str, Any],
    metrics: Mapping[str, Any],
    baselines: Mapping[str, Mapping[str, Any]],
    figures: Sequence[Figure] | Mapping[str, Sequence[Figure]],
    heads: Sequence[Any],
    sanity: Mapping[str, Any],
    verdict: tuple[bool, str, Sequence[str]] | None = None,
    notes: Mapping[str, str] | None = None,
    metric_figures: Sequence[Figure] = (),
    check_figures: Sequence[Figure] = (),
    before_checks: Sequence[Callable[[Plots], str]] = (),
) -> str:
    """A self-contained HTML page of a run: it embeds plotly.js once, so it opens offline.

    Args:
        title: the page's heading (and its ``<title>``).
        verdict: ``(worth reading, headline, reasons)``, shown first: a warning banner when
            the model is not worth reading.
        data_summary: facts about the table (rows, columns, target...).
        metrics: the model's metrics; baselines: per baseline name, its metrics; shown as one
            table, then `metric_figures`.
        figures: ``(note, figure)`` pairs (each figure carries its own title, the note says
            what it can and cannot tell); a mapping groups them under its keys as headings.
        heads: the head table (records: dicts or dataclasses).
        sanity: the checks, each a table under its name, after `check_figures`.
        notes: a paragraph under a section's heading, by heading ("Metrics", "Heads",
            "Checks", or a key of `figures`).
        before_checks: more sections, each made (HTML) by a function of the page's
            :class:`Plots`, which draws their figures.
    """
    notes = notes or {}
    plot = Plots()

    def section(heading: str, content: str) -> str:
        note = notes.get(heading)
        paragraph = f'<p class="note">{html.escape(note)}</p>' if note else ""
        return f"<h2>{html.escape(heading)}</h2>{paragraph}{content}"

    parts = []
    if verdict is not None:
        yes, headline, reasons = verdict
        items = "".join(f"<li>{html.escape(reason)}</li>" for reason in reasons)
        parts.append(
            f'<div class="verdict {"yes" if yes else "no"}" role="{"status" if yes else "alert"}">'
            f"<strong>{html.escape(headline)}</strong><ul>{items}</ul></div>"
        )
    parts.append(section("Data", _key_value_table(data_summary)))
    parts.append(
        section(
            "Metrics",
            metrics_table(metrics, baselines) + "".join(plot(*f) for f in metric_figures),
        )
    )
    grouped = figures if isinstance(figures, Mapping) else {"Figures": figures}
    for heading, shown in grouped.items():
        parts.append(section(heading, "".join(plot(*f) for f in shown)))
    checks = "".join(plot(*f) for f in check_figures) + "".join(
        f"<h3>{html.escape(name)}</h3>{_any_table(value)}" for name, value in sanity.items()
    )
    parts.extend(make(plot) for make in before_checks)
    parts.append(section("Checks", checks))
    parts.append(section("Heads", _records_table(heads)))
    return page(title, parts)


def page(title: str, parts: Sequence[str]) -> str:
    """The self-contained HTML page titled `title` around `parts` (HTML, in order), in the
    report's style."""
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )
