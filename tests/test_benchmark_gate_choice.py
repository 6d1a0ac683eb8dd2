"""The gates' choice (benchmarks/gate_choice.py) ranks the choices on validation scores alone."""

import pytest

from benchmarks import gate_choice


def runs(scores: dict[str, list[tuple[float, float]]]) -> dict:
    """A race result: per table, (validation, test) per seed."""
    return {
        "runs": [
            {"table": table, "validation": v, "test": t}
            for table, seeds in scores.items()
            for v, t in seeds
        ]
    }


def test_the_best_mean_validation_rank_is_chosen_and_test_scores_never_choose():
    results = {
        "0": runs({"a": [(0.80, 0.99), (0.82, 0.99)], "b": [(0.50, 0.99)]}),
        "0.003": runs({"a": [(0.85, 0.10), (0.85, 0.10)], "b": [(0.60, 0.10)]}),
    }
    chosen, mean_rank, tables = gate_choice.choose(results)
    assert chosen == "0.003"
    assert mean_rank == {"0": 2.0, "0.003": 1.0}
    assert tables["a"]["0"] == {"validation": pytest.approx(0.81), "test": pytest.approx(0.99)}


def test_a_tie_in_rank_goes_to_the_higher_mean_validation_score_and_the_table_shows_both():
    results = {
        "0": runs({"a": [(0.80, 0.5)], "b": [(0.50, 0.5)]}),
        "0.001": runs({"a": [(0.70, 0.5)], "b": [(0.55, 0.5)]}),
    }
    chosen, mean_rank, tables = gate_choice.choose(results)
    assert mean_rank == {"0": 1.5, "0.001": 1.5} and chosen == "0"
    text = gate_choice.markdown(mean_rank, tables)
    assert "| a | 0.8000 (0.5000) | 0.7000 (0.5000) |" in text
    assert "| mean validation rank | 1.500 | 1.500 |" in text
