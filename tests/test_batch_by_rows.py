"""The batch left to the rows (TrainConfig(batch_size=None)): 256, or 128 from 5,000 training
rows with the learning rate scaled by the square root of the batch; an explicit batch is kept."""

import math
from dataclasses import replace

import pytest
from test_train import QUICK, TINY_MODEL, tiny_frame

from mrta.cli.config_flags import FLAGS
from mrta.config import TrainConfig
from mrta.data.preprocessing import Preprocessor
from mrta.data.schema import infer_schema
from mrta.nn.model import build_model
from mrta.training.loop import (
    BATCH_SIZE,
    LARGE_TABLE_BATCH,
    LARGE_TABLE_ROWS,
    TrainResult,
    batch_for_rows,
    fit,
)


def one_step(rows: int, config: TrainConfig) -> TrainResult:
    frame = tiny_frame(rows=rows + 40)
    preprocessor = Preprocessor.fit(frame, infer_schema(frame, "y"))
    train, validation = (preprocessor.transform(part) for part in (frame[:rows], frame[rows:]))
    model = build_model(preprocessor.model_spec(TINY_MODEL), 0)
    return fit(model, train, validation, config, steps=1)


def test_the_rule_and_its_defaults():
    assert TrainConfig().batch_size is None and TrainConfig().learning_rate == 1e-3
    assert batch_for_rows(LARGE_TABLE_ROWS - 1) == BATCH_SIZE == 256
    assert batch_for_rows(LARGE_TABLE_ROWS) == LARGE_TABLE_BATCH == 128
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    # the field's reason and the flag's help state the rule's numbers
    why = TrainConfig.__dataclass_fields__["batch_size"].metadata["why"]
    assert "256 below 5,000 and 128" in why
    assert "(256, or 128 from 5,000)" in FLAGS[TrainConfig]["batch_size"].default_text


@pytest.mark.parametrize(
    ("rows", "batch_size", "batch", "rate"),
    [
        (LARGE_TABLE_ROWS, None, 128, 1e-3 * math.sqrt(0.5)),  # a large table: more steps
        (LARGE_TABLE_ROWS, 256, 256, 1e-3),  # an explicit batch is kept, with its rate
        (2000, None, 256, 1e-3),
        (300, None, 75, 1e-3),  # a small table: 4 steps an epoch, the rate of 256
    ],
)
def test_the_batch_and_peak_learning_rate_of_a_training(rows, batch_size, batch, rate):
    config = replace(QUICK, batch_size=batch_size, learning_rate=1e-3)
    result = one_step(rows, config)
    assert result.batch_size == batch
    assert result.learning_rate == pytest.approx(rate)
    assert TrainResult.from_dict(result.to_dict()) == result


def test_a_training_result_saved_before_the_rate_was_recorded_loads_without_it():
    saved = one_step(300, QUICK).to_dict()
    del saved["learning_rate"]
    assert TrainResult.from_dict(saved).learning_rate is None
