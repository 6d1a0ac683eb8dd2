"""The headroom benchmark's rules (benchmarks/headroom.py) reproduce the figures that
sample_data/README.md gives for the whole synthetic tables."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import r2_score

from benchmarks import headroom


def test_the_churn_rule_gives_the_documented_bayes_accuracy():
    rows = pd.read_csv(headroom.SAMPLES / "synthetic_binary.csv")
    p = headroom.churn_probability(rows)
    assert np.mean(np.maximum(p, 1 - p)) == pytest.approx(0.878, abs=5e-4)
    assert np.mean((p > 0.5) == rows["churned"]) == pytest.approx(0.882, abs=5e-4)


def test_the_revenue_rule_gives_the_documented_r2():
    rows = pd.read_csv(headroom.SAMPLES / "synthetic_regression.csv")
    assert r2_score(rows["net_revenue"], headroom.revenue_mean(rows)) == pytest.approx(
        0.851, abs=5e-4
    )


def test_the_table_states_the_room():
    rows = [{"table": "t", "metric": "roc_auc", "test_rows": 1500, "rule": 0.95, "hgb": 0.94,
             "room": 0.01}]  # fmt: skip
    assert "| t | roc_auc | 1,500 | 0.9500 | 0.9400 | +0.0100 |" in headroom.markdown(rows)


def test_without_races_the_rows_put_the_rule_beside_the_recorded_race():
    rows = headroom.headroom(seeds=0)
    assert [r["table"] for r in rows] == ["synthetic_binary", "synthetic_regression"]
    for r in rows:
        assert r["test_rows"] == 1500
        assert r["room"] == pytest.approx(r["rule"] - r["hgb"])
        assert "planted_only" not in r
        assert set(r["planted"]) < set(pd.read_csv(headroom.SAMPLES / f"{r['table']}.csv"))


def test_where_the_room_goes_states_both_learners_with_and_without_noise():
    rows = [{"table": "t", "rule": 0.95, "race": 0.945, "race_sd": 0.001, "hgb": 0.944,
             "planted_only": {"race_mean": 0.949, "race_sd": 0.0007, "hgb": 0.947,
                              "interval_vs_hgb": [-0.0005, 0.0038]}}]  # fmt: skip
    assert (
        "| t | 0.9500 | 0.9450 ± 0.0010 | 0.9440 | 0.9490 ± 0.0007 | 0.9470 | [-0.0005, +0.0038] |"
        in headroom.where_the_room_goes(rows)
    )
