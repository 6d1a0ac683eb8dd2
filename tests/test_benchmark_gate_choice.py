"""The gates' choice (benchmarks/gate_choice.py) ranks the choices on validation scores alone."""

import json
from pathlib import Path

import pytest

from benchmarks import gate_choice


def runs(scores: dict[str, list[tuple[float, float]]]) -> dict:
    """A race result: per table, (validation, test) per seed."""
    return {
        "runs": [
            {"table": table, "seed": seed, "validation": v, "test": t}
            for table, seeds in scores.items()
            for seed, (v, t) in enumerate(seeds)
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


def test_choices_compare_on_the_seeds_they_all_have():
    results = {
        "0": runs({"a": [(0.80, 0.5), (0.80, 0.5), (0.10, 0.5)], "b": [(0.5, 0.5)]}),
        "0.003": runs({"a": [(0.70, 0.5), (0.70, 0.5)]}),
    }
    assert gate_choice.common_seeds(results) == {"a": {0, 1}}
    chosen, _, tables = gate_choice.choose(results)
    assert list(tables) == ["a"] and chosen == "0"  # seed 2 (0.10) is not compared
    assert tables["a"]["0"]["validation"] == pytest.approx(0.80)


@pytest.mark.parametrize(
    ("name", "choice"),
    [
        ("race.json", "0"),
        ("race_seeds_3-5.json", "0"),
        ("race_gates_0.003.json", "0.003"),
        ("race_gates_0.003_defaults_only_seeds_3-5.json", "0.003_defaults_only"),
    ],
)
def test_a_file_names_its_choice(name, choice):
    assert gate_choice.choice_of(Path(name)) == choice


def test_a_choice_gathers_the_runs_of_all_its_files(tmp_path):
    def write(name: str, scores: dict, first: int) -> None:
        result = runs(scores)
        for run in result["runs"]:
            run["seed"] += first
        (tmp_path / name).write_text(json.dumps(result))

    write("race.json", {"a": [(0.8, 0.5)] * 3}, 0)
    write("race_seeds_3-5.json", {"a": [(0.6, 0.5)] * 3}, 3)
    write("race_gates_0.003.json", {"a": [(0.7, 0.5)] * 3}, 0)
    found = gate_choice.load(tmp_path)
    assert list(found) == ["0", "0.003"]
    assert sorted(r["seed"] for r in found["0"]["runs"]) == [0, 1, 2, 3, 4, 5]
    assert gate_choice.common_seeds(found) == {"a": {0, 1, 2}}
