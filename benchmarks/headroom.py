"""How much room the synthetic tables leave above gradient boosting: the score of their own
generating rule on the test split that every run of the quality and race benchmarks is scored on.

``synthetic_binary``'s rule gives each row its true probability of churning, σ(logit), and no
model ranks rows better in expectation than that probability: its ROC AUC is the table's
ceiling (on a finite test split, a model may pass it by chance). ``synthetic_regression``'s rule
gives the noise-free mean f(x); its R² is the ceiling of a model's expected R² (the noise
ε ~ N(0, 75²) cannot be predicted). Rules: ``sample_data/README.md``.

Run ``python -m benchmarks.headroom`` (seconds); it writes ``benchmarks/results/headroom.json``
and prints the README's table beside gradient boosting's test scores from
``benchmarks/results/race.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import r2_score, roc_auc_score

from mrta.data.read import read_table
from mrta.pipelines.train_run import RunPlan

SAMPLES = Path(__file__).resolve().parents[1] / "sample_data"
RESULTS = Path(__file__).resolve().parent / "results"
RESULT = RESULTS / "headroom.json"


def churn_probability(rows: pd.DataFrame) -> np.ndarray:
    """``synthetic_binary``'s rule: σ(s(plan) · (monthly_spend − 60) / 5 − (tenure − 36) / 8)."""
    s = rows["plan"].map({"basic": 1.0, "standard": 0.5, "premium": -1.0})
    logit = s * (rows["monthly_spend"] - 60) / 5 - (rows["tenure_months"] - 36) / 8
    return (1 / (1 + np.exp(-logit))).to_numpy()


def revenue_mean(rows: pd.DataFrame) -> np.ndarray:
    """``synthetic_regression``'s rule without its noise: f(x)."""
    t = rows["customer_segment"].map({"bargain_hunter": 10.0, "regular": 2.0, "premium": -6.0})
    f = 100 + rows["items_in_cart"] * rows["avg_item_price"] + t * (rows["discount_pct"] - 20)
    return f.to_numpy()


TABLES = {  # name -> (file, target, metric, the rule's score on rows and their targets)
    "synthetic_binary": (
        "synthetic_binary.csv",
        "churned",
        "roc_auc",
        lambda rows, y: roc_auc_score(y, churn_probability(rows)),
    ),
    "synthetic_regression": (
        "synthetic_regression.csv",
        "net_revenue",
        "r2",
        lambda rows, y: r2_score(y, revenue_mean(rows)),
    ),
}


def headroom() -> list[dict]:
    """Per table: the rule's test score, gradient boosting's (race.json) and the room between."""
    race = json.loads((RESULTS / "race.json").read_text())
    hgb = {s["table"]: s["hgb"] for s in race["summary"]}
    out = []
    for name, (file, target, metric, score) in TABLES.items():
        plan = RunPlan.prepare(read_table(SAMPLES / file).frame, target)
        rule = float(score(plan.test_rows, plan.schema.encode_target(plan.test_rows)))
        out.append(
            {
                "table": name,
                "metric": metric,
                "test_rows": len(plan.test_rows),
                "rule": rule,
                "hgb": hgb[name],
                "room": rule - hgb[name],
            }
        )
    return out


def markdown(rows: list[dict]) -> str:
    lines = [
        "| table | metric | test rows | the rule's score | HGB test | room above HGB |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['table']} | {r['metric']} | {r['test_rows']:,} | {r['rule']:.4f} | "
            f"{r['hgb']:.4f} | {r['room']:+.4f} |"
        )
    return "\n".join(lines)


def main() -> None:
    rows = headroom()
    RESULT.write_text(json.dumps({"benchmark": "headroom", "tables": rows}, indent=1) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
