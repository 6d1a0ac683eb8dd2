"""Seeded generator for the synthetic sample tables with planted structure.

Three tables are written, each from its own ``numpy.random.default_rng`` seed, with every float
rounded to two decimals before the label is drawn and written with ``%.2f`` and ``\\n`` line
endings, so that ``python sample_data/make_synthetic.py`` rewrites the committed files byte for
byte:

* ``synthetic_binary.csv``: customer churn; the label depends on ``plan`` × ``monthly_spend``
  (the spend effect flips sign with the plan) and on ``tenure_months`` alone.
* ``synthetic_regression.csv``: order net revenue; ``customer_segment`` × ``discount_pct`` and
  ``items_in_cart`` × ``avg_item_price``.
* ``synthetic_set.csv``: investment portfolios, one row per position; one label per portfolio
  that compares the summed ``amount_k`` of its equity positions with that of its bond positions.

The planted rules are exposed as functions (``binary_logit``, ``regression_signal``,
``portfolio_exposures``, ``set_logit``) so that tests and notebooks can score the noise-free rule
on the written files. ``sample_data/README.md`` states the same rules as formulas.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

BINARY_FILE = "synthetic_binary.csv"
REGRESSION_FILE = "synthetic_regression.csv"
SET_FILE = "synthetic_set.csv"

BINARY_SEED = 20_241
REGRESSION_SEED = 20_242
SET_SEED = 20_243

N_CUSTOMERS = 10_000
N_ORDERS = 10_000
N_PORTFOLIOS = 1_500
MIN_POSITIONS = 5
MAX_POSITIONS = 60

DECIMALS = 2
FLOAT_FORMAT = f"%.{DECIMALS}f"

# Binary table: the per-plan slope of (monthly_spend - 60) / 5 in the logit.
PLAN_SLOPE = {"basic": 1.0, "standard": 0.5, "premium": -1.0}
PLAN_PROBS = (0.40, 0.35, 0.25)
BINARY_TARGET = "churned"
BINARY_PLANTED = ("plan", "monthly_spend", "tenure_months")
BINARY_NOISE = (
    "age",
    "num_devices",
    "avg_session_minutes",
    "region",
    "signup_channel",
    "payment_method",
)

# Regression table: the per-segment slope of (discount_pct - 20) in the signal.
SEGMENT_SLOPE = {"bargain_hunter": 10.0, "regular": 2.0, "premium": -6.0}
SEGMENT_PROBS = (0.35, 0.40, 0.25)
REGRESSION_NOISE_SD = 75.0
REGRESSION_TARGET = "net_revenue"
REGRESSION_PLANTED = ("customer_segment", "discount_pct", "items_in_cart", "avg_item_price")
REGRESSION_NOISE = (
    "customer_age",
    "days_since_last_order",
    "pages_viewed",
    "device",
    "region",
    "weekday",
)

# Set table: logit = SET_LOGIT_SCALE * ln((equity + SET_SMOOTHING) / (bond + SET_SMOOTHING)).
ASSET_CLASSES = ("equity", "bond", "cash", "commodity", "real_estate")
ASSET_PROBS = (0.30, 0.30, 0.15, 0.15, 0.10)
SET_LOGIT_SCALE = 5.0
SET_SMOOTHING = 10.0
SET_GROUP = "portfolio_id"
SET_TARGET = "aggressive"
SET_PLANTED = ("asset_class", "amount_k")
SET_NOISE = ("volatility", "holding_days", "currency")

REGIONS = ("north", "south", "east", "west")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function."""
    return 1.0 / (1.0 + np.exp(-x))


def _round(x: np.ndarray) -> np.ndarray:
    """Round to the precision the CSV stores, so rules computed on the file match generation."""
    return np.round(x, DECIMALS)


def binary_logit(df: pd.DataFrame) -> np.ndarray:
    """Noise-free logit of ``churned``.

    ``s(plan) * (monthly_spend - 60) / 5 - (tenure_months - 36) / 8`` with
    ``s = {basic: +1, standard: +0.5, premium: -1}``.
    """
    slope = df["plan"].astype(str).map(PLAN_SLOPE).to_numpy(dtype=float)
    spend = df["monthly_spend"].to_numpy(dtype=float)
    tenure = df["tenure_months"].to_numpy(dtype=float)
    return slope * (spend - 60.0) / 5.0 - (tenure - 36.0) / 8.0


def regression_signal(df: pd.DataFrame) -> np.ndarray:
    """Noise-free expectation of ``net_revenue``.

    ``100 + items_in_cart * avg_item_price + t(customer_segment) * (discount_pct - 20)`` with
    ``t = {bargain_hunter: +10, regular: +2, premium: -6}``.
    """
    slope = df["customer_segment"].astype(str).map(SEGMENT_SLOPE).to_numpy(dtype=float)
    items = df["items_in_cart"].to_numpy(dtype=float)
    price = df["avg_item_price"].to_numpy(dtype=float)
    discount = df["discount_pct"].to_numpy(dtype=float)
    return 100.0 + items * price + slope * (discount - 20.0)


def portfolio_exposures(df: pd.DataFrame) -> pd.DataFrame:
    """Per portfolio (sorted by id): summed ``amount_k`` of equity and of bond positions."""
    asset = df["asset_class"].astype(str)
    amount = df["amount_k"].astype(float)
    return (
        pd.DataFrame(
            {
                "equity_total": amount.where(asset == "equity", 0.0),
                "bond_total": amount.where(asset == "bond", 0.0),
            }
        )
        .groupby(df[SET_GROUP].to_numpy(), sort=True)
        .sum()
    )


def set_logit(exposures: pd.DataFrame) -> np.ndarray:
    """Noise-free logit of ``aggressive``: ``5 * ln((equity_total + 10) / (bond_total + 10))``."""
    equity = exposures["equity_total"].to_numpy(dtype=float)
    bond = exposures["bond_total"].to_numpy(dtype=float)
    return SET_LOGIT_SCALE * np.log((equity + SET_SMOOTHING) / (bond + SET_SMOOTHING))


def make_binary(seed: int = BINARY_SEED, n: int = N_CUSTOMERS) -> pd.DataFrame:
    """Customer churn table: plan × spend interaction, tenure effect, six noise columns."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "plan": rng.choice(list(PLAN_SLOPE), size=n, p=PLAN_PROBS),
            "monthly_spend": _round(np.clip(rng.normal(60.0, 20.0, n), 5.0, None)),
            "tenure_months": rng.integers(1, 73, n),
            "age": rng.integers(18, 81, n),
            "num_devices": rng.integers(1, 7, n),
            "avg_session_minutes": _round(rng.exponential(25.0, n)),
            "region": rng.choice(REGIONS, size=n),
            "signup_channel": rng.choice(("web", "app", "store", "referral"), size=n),
            "payment_method": rng.choice(("card", "paypal", "bank_transfer"), size=n),
        }
    )
    df[BINARY_TARGET] = (rng.random(n) < _sigmoid(binary_logit(df))).astype(int)
    return df


def make_regression(seed: int = REGRESSION_SEED, n: int = N_ORDERS) -> pd.DataFrame:
    """Order revenue table: segment × discount and items × price interactions, six noise columns."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "customer_segment": rng.choice(list(SEGMENT_SLOPE), size=n, p=SEGMENT_PROBS),
            "discount_pct": rng.integers(0, 41, n),
            "items_in_cart": rng.integers(1, 13, n),
            "avg_item_price": _round(rng.uniform(5.0, 60.0, n)),
            "customer_age": rng.integers(18, 81, n),
            "days_since_last_order": rng.integers(0, 366, n),
            "pages_viewed": rng.integers(1, 51, n),
            "device": rng.choice(("mobile", "desktop", "tablet"), size=n),
            "region": rng.choice(REGIONS, size=n),
            "weekday": rng.choice(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"), size=n),
        }
    )
    noise = rng.normal(0.0, REGRESSION_NOISE_SD, n)
    df[REGRESSION_TARGET] = _round(regression_signal(df) + noise)
    return df


def make_set(seed: int = SET_SEED, n_groups: int = N_PORTFOLIOS) -> pd.DataFrame:
    """Portfolio positions table: one row per position, one ``aggressive`` label per portfolio."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(MIN_POSITIONS, MAX_POSITIONS + 1, n_groups)
    ids = np.array([f"PF{i:04d}" for i in range(1, n_groups + 1)])
    n = int(sizes.sum())
    df = pd.DataFrame(
        {
            SET_GROUP: np.repeat(ids, sizes),
            "asset_class": rng.choice(ASSET_CLASSES, size=n, p=ASSET_PROBS),
            "amount_k": _round(np.exp(rng.normal(np.log(10.0), 1.0, n))),
            "volatility": _round(rng.uniform(0.02, 0.60, n)),
            "holding_days": rng.integers(1, 1500, n),
            "currency": rng.choice(("USD", "EUR", "GBP", "JPY"), size=n),
        }
    )
    group_label = (rng.random(n_groups) < _sigmoid(set_logit(portfolio_exposures(df)))).astype(int)
    df[SET_TARGET] = np.repeat(group_label, sizes)
    return df


def csv_bytes(df: pd.DataFrame) -> bytes:
    """Serialise a table the way the committed files are written (fixed floats, ``\\n``)."""
    return df.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n").encode("utf-8")


def write_all(out_dir: Path) -> list[Path]:
    """Write the three synthetic tables into ``out_dir`` and return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = {
        BINARY_FILE: make_binary(),
        REGRESSION_FILE: make_regression(),
        SET_FILE: make_set(),
    }
    paths = []
    for name, df in tables.items():
        path = out_dir / name
        path.write_bytes(csv_bytes(df))
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write_all(Path(__file__).resolve().parent):
        print(written)
