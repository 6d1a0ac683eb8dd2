"""A self-contained HTML page of figures and tables: the template of a run's report.

Figures are embedded with plotly.js inline (the page works offline); every value and name is
HTML-escaped.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from mrta.jsonable import json_ready

# -- the report ------------------------------------------------------------------------------
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { padding: 0.8em 1em; border-radius: 4px; margin: 1em 0; }
.verdict.no { background: #fdecea; border: 2px solid #b71c1c; }
.verdict.yes { background: #e8f5e9; border: 1px solid #2e7d32; }
"""


def _cell(value: Any) -> str:
    value = json_ready(value)
    if value is None:
        return "<td>–</td>"
    if isinstance(value, bool):
        return f"<td>{value}</td>"
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, int):
        return f'<td class="num">{value:,}</td>'
    if isinstance(value, dict | list):
        return f"<td><code>{html.escape(json.dumps(value, ensure_ascii=False))}</code></td>"
    return f"<td>{html.escape(str(value))}</td>"


def _key_value_table(data: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th>{_cell(v)}</tr>" for k, v in data.items())
    return f"<table>{rows}</table>"


def _any_table(value: Any) -> str:
    """A list of records, a mapping, or a single value, as HTML."""
    if isinstance(value, list | tuple):
        return _records_table(value)
    if isinstance(value, Mapping):
        return _key_value_table(value)
    return "<p>Not measured.</p>" if value is None else f"<p>{html.escape(str(value))}</p>"


def _records_table(records: Sequence[Any]) -> str:
    rows = [json_ready(record) for record in records]
    if not rows:
        return "<p>None.</p>"
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(r.get(c)) for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def run_report(
    *,
    title: str,
    data_summary: Mapping[str, Any],
    metrics: Mapping[str, Any],
    baselines: Mapping[str, Mapping[str, Any]],
    figures: Sequence[tuple[str, go.Figure]],
    heads: Sequence[Any],
    sanity: Mapping[str, Any],
    verdict: tuple[bool, str, Sequence[str]] | None = None,
) -> str:
    """A self-contained HTML page of a run: it embeds plotly.js once, so it opens offline.

    Args:
        verdict: ``(worth reading, headline, reasons)``, shown first: a warning banner when
            the model is not worth reading.
        data_summary: facts about the table (rows, columns, target...).
        metrics: the model's metrics; baselines: per baseline name, its metrics.
        figures: ``(caption, figure)`` pairs: the chosen maps, importances, sanity figures.
        heads: the head table (:class:`~mrta.analysis.heads.HeadStats` or dicts).
        sanity: the sanity checks (see :func:`mrta.analysis.checks.sanity_checks`).
    """
    parts = []
    if verdict is not None:
        yes, headline, reasons = verdict
        items = "".join(f"<li>{html.escape(reason)}</li>" for reason in reasons)
        parts.append(
            f'<div class="verdict {"yes" if yes else "no"}" role="{"status" if yes else "alert"}">'
            f"<strong>{html.escape(headline)}</strong><ul>{items}</ul></div>"
        )
    parts += [
        f"<h2>Data</h2>{_key_value_table(data_summary)}",
        f"<h2>Metrics</h2>{_key_value_table(metrics)}",
        "<h2>Baselines</h2>"
        + "".join(
            f"<h3>{html.escape(name)}</h3>{_key_value_table(values)}"
            for name, values in baselines.items()
        ),
        "<h2>Figures</h2>",
    ]
    for i, (caption, fig) in enumerate(figures):
        plot = fig.to_html(
            full_html=False,
            include_plotlyjs=i == 0,
            default_height=f"{fig.layout.height or 480}px",
            config={"responsive": True},
        )
        parts.append(f"<figure>{plot}<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append(f"<h2>Heads</h2>{_records_table(heads)}")
    parts.append(
        "<h2>Sanity checks</h2>"
        + "".join(
            f"<h3>{html.escape(name)}</h3>{_any_table(value)}" for name, value in sanity.items()
        )
    )
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )
