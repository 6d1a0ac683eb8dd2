"""The race benchmark's summary (benchmarks/race.py), on made-up runs of train_run(race=True)."""

import numpy as np
import pytest

from benchmarks import race

ASKED, CHALLENGER = race.RACERS


def run(winner, seed, test, targets, predictions, validations=(0.5, 0.6), steps=(100, 80)):
    racers = [
        {"name": name, "validation": v, "steps": s}
        for name, v, s in zip(race.RACERS, validations, steps, strict=True)
    ]
    return {
        "seed": seed,
        "metric": "r2",
        "test": test,
        "winner": winner,
        "race": {"kept": race.RACERS.index(winner), "racers": racers},
        "_targets": targets,
        "_predictions": predictions,
    }


def test_the_summary_counts_the_winners_and_compares_the_kept_models_with_hgb():
    rng = np.random.default_rng(0)
    y = rng.normal(size=60)
    good, bad = y + rng.normal(scale=0.1, size=60), y + rng.normal(scale=1.0, size=60)
    kept = [
        run(CHALLENGER, 0, 0.95, y, good, validations=(0.4, 0.9), steps=(100, 90)),
        run(ASKED, 1, 0.90, y, good, validations=(0.8, 0.3), steps=(120, 110)),
    ]
    summary = race.summarise("t", kept, {"test": 0.5, "predictions": bad})
    assert summary["winners"] == [CHALLENGER, ASKED]
    assert summary["test_mean"] == pytest.approx(0.925)
    assert summary["gap_to_hgb"] == pytest.approx(0.425)
    low, high = summary["interval_vs_hgb"]
    assert 0 < low < high  # the kept models' predictions are better than HGB's on every resample
    assert summary["racers"][ASKED]["validation_mean"] == pytest.approx(0.6)
    assert summary["racers"][CHALLENGER]["steps_mean"] == pytest.approx(100)
    table = race.markdown([summary])
    assert "| t | r2 | 0.9250 ± 0.0354 |" in table and "| 1 of 2 | 110 / 100 |" in table
