"""The quality benchmark's choice and goals (benchmarks/quality.py), on made-up summaries."""

import numpy as np
import pytest

from benchmarks import quality


def entry(table, candidate, validation, test, *, metric="r2", sd=0.01, hgb=0.5, high=0.01):
    return {
        "table": table,
        "candidate": candidate,
        "metric": metric,
        "validation_mean": validation,
        "test_mean": test,
        "test_sd": sd,
        "hgb": hgb,
        "gap_to_hgb": test - hgb,
        "interval_vs_hgb": [-0.02, high],
    }


def test_the_winner_has_the_best_mean_validation_rank_and_test_scores_never_choose():
    summary = [
        entry("a", "today", 0.50, 0.99),
        entry("a", "plr", 0.52, 0.10),
        entry("b", "today", 0.40, 0.99),
        entry("b", "plr", 0.41, 0.10),
    ]
    choice = quality.choose(summary)
    assert choice["winner"] == "plr"
    assert choice["mean_validation_rank"] == {"today": 2.0, "plr": 1.0}
    assert choice["mean_validation_gain_over_today"]["plr"] == pytest.approx(0.015)


def test_a_tie_in_rank_goes_to_the_larger_mean_validation_gain():
    summary = [
        entry("a", "today", 0.50, 0.5),
        entry("a", "plr", 0.51, 0.5),
        entry("b", "today", 0.45, 0.5),
        entry("b", "plr", 0.40, 0.5),
    ]
    choice = quality.choose(summary)
    assert choice["mean_validation_rank"] == {"today": 1.5, "plr": 1.5}
    assert choice["winner"] == "today"  # plr gains 0.01 on a, loses 0.05 on b


def test_the_goals_read_the_interval_the_r2_tolerance_and_the_seed_spread():
    summary = [
        entry("reg", "today", 0.5, 0.480, sd=0.004, hgb=0.495),
        entry("reg", "plr", 0.5, 0.486, sd=0.004, hgb=0.495, high=-0.001),
        entry("cls", "today", 0.9, 0.900, metric="roc_auc", sd=0.002, hgb=0.89),
        entry("cls", "plr", 0.9, 0.897, metric="roc_auc", sd=0.001, hgb=0.89),
    ]
    goals = quality.goals(summary, "plr")
    assert goals["reg"] == {
        "not_worse_than_hgb": False,  # the interval's upper end is below 0
        "not_worse_than_today": True,
        "r2_within_0.01_of_hgb": True,  # 0.486 against 0.495
    }
    assert goals["cls"] == {
        "not_worse_than_hgb": True,
        "not_worse_than_today": False,  # 0.003 lower, more than either spread
        "ahead_of_hgb": True,
    }


def test_the_interval_of_the_seed_mean_against_hgb_is_zero_for_the_same_predictions():
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    same = y + rng.normal(scale=0.5, size=200)
    assert quality.interval(y, [same, same], same, "r2") == [0.0, 0.0]
    better = y + rng.normal(scale=0.1, size=200)
    low, high = quality.interval(y, [better, better], same, "r2")
    assert 0 < low < high
    labels = (y > 0).astype(int)
    probabilities = np.column_stack([1 - (same > 0), same > 0]).astype(float)
    low, high = quality.interval(labels, [probabilities], probabilities, "roc_auc")
    assert low == high == 0.0


def test_large_settings_replace_the_training_settings_from_the_large_table_rows_on():
    candidate = quality.CANDIDATES["plr, batch by rows, rate 2e-3 from 5,000 rows"]
    _, small, _ = candidate.configs(seed=1, train_rows=quality.LARGE_TABLE_ROWS - 1)
    _, large, _ = candidate.configs(seed=1, train_rows=quality.LARGE_TABLE_ROWS)
    assert (small.batch_size, small.learning_rate, small.seed) == (None, 1e-3, 1)
    assert (large.batch_size, large.learning_rate, large.seed) == (128, 2e-3, 1)
    # "plr, batch by rows" spells out what the library's rule gave when it was measured
    _, by_rows, _ = quality.BY_ROWS.configs(seed=0, train_rows=quality.LARGE_TABLE_ROWS)
    assert (by_rows.batch_size, by_rows.learning_rate) == (128, pytest.approx(1e-3 * 0.5**0.5))


def run_row(candidate, seed, **fields):
    return {"table": "t", "candidate": candidate, "seed": seed, "test": 0.5, **fields}


@pytest.mark.parametrize(
    ("candidate", "fields", "reused"),
    [
        ("plr, batch by rows, log target", {"auto_transform": "none"}, True),
        ("plr, batch by rows, log target", {"auto_transform": "log"}, False),
        ("plr, batch by rows, rate 2e-3 from 5,000 rows", {"train_rows": 4999}, True),
        ("plr, batch by rows, rate 2e-3 from 5,000 rows", {"train_rows": 5000}, False),
        ("today", {"train_rows": 10, "auto_transform": "none"}, False),
    ],
)
def test_a_candidate_reuses_the_rows_of_the_one_it_trains_as_only_where_it_does(
    candidate, fields, reused
):
    rows = [run_row("plr, batch by rows", seed, **fields) for seed in (0, 1)]
    row = quality.same_training(rows, "t", candidate, 1)
    if reused:
        assert row == {**rows[1], "candidate": candidate, "same_as": "plr, batch by rows"}
    else:
        assert row is None
    assert quality.same_training(rows, "other table", candidate, 1) is None


def test_added_rows_that_repeat_an_earlier_candidate_take_its_summary():
    earlier = [{**entry("t", "plr, batch by rows", 0.4, 0.45), "steps_mean": 90.0}]
    name = "plr, batch by rows, log target"
    rows = [
        run_row(name, seed, same_as="plr, batch by rows", validation=0.4, metric="r2")
        for seed in (0, 1)
    ]
    (summary,) = quality.summarise(rows, hgb={}, previous=earlier)
    assert summary == {**earlier[0], "candidate": name, "same_as": "plr, batch by rows"}


def test_a_candidate_trained_as_another_is_marked_and_left_out_of_the_readme_table():
    rng = np.random.default_rng(0)
    targets = rng.normal(size=40)
    fields = {
        "metric": "r2",
        "validation": 0.4,
        "steps": 10,
        "batch_size": 256,
        "_targets": targets,
        "_predictions": targets + rng.normal(scale=0.1, size=40),
    }
    other = "plr, batch by rows"
    large = "plr, batch by rows, no dropout from 5,000 rows"
    rows = [run_row(other, seed, **fields) for seed in (0, 1)]
    rows += [{**row, "candidate": large, "same_as": other} for row in rows]
    hgb = {"t": {"test": 0.5, "predictions": targets}}
    summary = quality.summarise(rows, hgb, previous=[])
    assert [s["candidate"] for s in summary] == [other, large]
    assert "same_as" not in summary[0] and summary[1]["same_as"] == other
    assert {k: v for k, v in summary[1].items() if k not in ("candidate", "same_as")} == {
        k: v for k, v in summary[0].items() if k != "candidate"
    }
    table = quality.markdown(summary)
    assert f"| {other} |" in table and large not in table
    assert len(table.splitlines()) == 3  # the header, its rule and one row


def test_large_model_settings_replace_the_model_settings_from_the_large_table_rows_on():
    candidate = quality.CANDIDATES["plr, batch by rows, no dropout from 5,000 rows"]
    small, _, _ = candidate.configs(seed=0, train_rows=quality.LARGE_TABLE_ROWS - 1)
    large, train, _ = candidate.configs(seed=0, train_rows=quality.LARGE_TABLE_ROWS)
    assert (small.dropout, large.dropout) == (0.1, 0.0)
    assert large.plr_sigma == small.plr_sigma == 0.1
    assert (train.batch_size, train.learning_rate) == (128, pytest.approx(1e-3 * 0.5**0.5))


def test_a_longer_budget_is_refused_into_the_defaults_results(monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["quality", "--time-budget", "120"])
    with pytest.raises(SystemExit) as stopped:
        quality.main()
    assert stopped.value.code == 2
    assert "--time-budget needs --out" in capsys.readouterr().err
