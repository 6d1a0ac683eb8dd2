"""The bundled sample tables (``sample_data/``) with their documented targets and tasks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample_data"


@dataclass(frozen=True)
class SampleTable:
    """One file of ``sample_data/`` and what it is for (see ``sample_data/README.md``)."""

    file: str
    target: str
    task: str
    title: str
    group_by: str | None = None  # set resolution: the key that groups rows into one example

    @property
    def path(self) -> Path:
        return SAMPLE_DIR / self.file


SAMPLE_TABLES: tuple[SampleTable, ...] = (
    SampleTable("penguins.csv", "species", "multiclass", "Palmer penguins: species"),
    SampleTable("wage.csv", "wage", "regression", "ISLR Wage: wage"),
    SampleTable("hmda.csv", "deny", "binary", "AER HMDA: mortgage denied"),
    SampleTable("loans.csv.gz", "interest_rate", "regression", "Lending Club loans: interest rate"),
    SampleTable("synthetic_binary.csv", "churned", "binary", "Synthetic, planted: churn"),
    SampleTable(
        "synthetic_regression.csv", "net_revenue", "regression", "Synthetic, planted: revenue"
    ),
    SampleTable(
        "synthetic_set.csv",
        "aggressive",
        "binary",
        "Synthetic sets of rows: portfolio style",
        group_by="portfolio_id",
    ),
)
DEFAULT_SAMPLE = SAMPLE_TABLES[0]  # small and clean: the dashboard opens on it


def row_tables() -> tuple[SampleTable, ...]:
    """The tables whose examples are single rows (all but the set-resolution ones)."""
    return tuple(t for t in SAMPLE_TABLES if t.group_by is None)
