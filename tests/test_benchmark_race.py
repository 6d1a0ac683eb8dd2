"""The race benchmark's choice and summary (benchmarks/race.py), on made-up runs."""

import numpy as np
import pytest

from benchmarks import race

DEFAULTS, SHARP = race.RACERS


def run(candidate, seed, validation, test, targets, predictions):
    return {
        "candidate": candidate,
        "seed": seed,
        "metric": "r2",
        "validation": validation,
        "test": test,
        "steps": 100,
        "_targets": targets,
        "_predictions": predictions,
    }


def test_the_race_keeps_the_higher_validation_score_never_the_test_score():
    y = np.zeros(3)
    a, b = run(DEFAULTS, 0, 0.50, 0.99, y, y), run(SHARP, 0, 0.60, 0.10, y, y)
    assert race.race([a, b]) is b
    assert race.race([a, {**b, "validation": 0.50}]) is a  # a tie keeps the first


def test_the_summary_counts_the_winners_and_compares_the_kept_models_with_hgb():
    rng = np.random.default_rng(0)
    y = rng.normal(size=60)
    good, bad = y + rng.normal(scale=0.1, size=60), y + rng.normal(scale=1.0, size=60)
    racers = [
        run(DEFAULTS, 0, 0.4, 0.5, y, bad),
        run(SHARP, 0, 0.9, 0.95, y, good),
        run(DEFAULTS, 1, 0.8, 0.9, y, good),
        run(SHARP, 1, 0.3, 0.4, y, bad),
    ]
    kept = [race.race(racers[:2]), race.race(racers[2:])]
    summary = race.summarise("t", kept, racers, {"test": 0.5, "predictions": bad})
    assert summary["winners"] == [SHARP, DEFAULTS]
    assert summary["test_mean"] == pytest.approx(0.925)
    assert summary["gap_to_hgb"] == pytest.approx(0.425)
    low, high = summary["interval_vs_hgb"]
    assert 0 < low < high  # the kept models' predictions are better than HGB's on every resample
    assert summary["racers"][DEFAULTS]["validation_mean"] == pytest.approx(0.6)
    table = race.markdown([summary])
    assert "| t | r2 | 0.9250 ± 0.0354 |" in table and "| 1 of 2 | 0.7000 |" in table
