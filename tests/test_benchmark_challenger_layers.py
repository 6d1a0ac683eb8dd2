"""The challenger-layers benchmark (benchmarks/challenger_layers.py): its settings are the
library's challenger but for the layers, and its summary, on made-up runs."""

import pytest

from benchmarks import challenger_layers as bench
from mrta.config import ModelConfig, TrainConfig
from mrta.training.race import challenger


@pytest.mark.parametrize("layers", bench.LAYERS)
def test_the_settings_are_the_librarys_challenger_on_one_thread_with_the_layers_given(layers):
    model, train, _ = bench.settings(layers).configs(seed=4, train_rows=40_000)
    expected_model, expected_train = challenger(ModelConfig(), TrainConfig(seed=4))
    assert model.num_layers == layers
    assert model.to_dict() == {**expected_model.to_dict(), "num_layers": layers}
    assert train.to_dict() == {**expected_train.to_dict(), "threads": 1}


def test_the_summary_gives_each_layer_count_its_means_and_spreads_in_order():
    rows = [
        {"layers": 1, "validation": 0.98, "test": 0.97, "steps": 1000},
        {"layers": 2, "validation": 0.96, "test": 0.95, "steps": 500},
        {"layers": 1, "validation": 0.99, "test": 0.98, "steps": 1200},
        {"layers": 2, "validation": 0.97, "test": 0.96, "steps": 700},
    ]
    summary = bench.summarise(rows)
    assert [s["layers"] for s in summary] == [2, 1]
    two, one = summary
    assert (two["seeds"], one["seeds"]) == (2, 2)
    assert one["validation_mean"] == pytest.approx(0.985)
    assert one["validation_sd"] == pytest.approx(0.00707, abs=1e-5)
    assert two["steps_mean"] == pytest.approx(600)
    table = bench.markdown(summary)
    assert "| 1 | 0.9850 ± 0.0071 | 0.9750 ± 0.0071 | 1,100 |" in table
    assert table.index("| 2 |") < table.index("| 1 |")
