"""What a person reads and downloads: plotly figures, the HTML report and the export files.

The only package of ``mrta`` that imports plotly.
"""

from mrta.report.run_exports import write_exports
from mrta.report.run_report import report_html
from mrta.report.set_exports import write_set_exports

__all__ = ["report_html", "write_exports", "write_set_exports"]
