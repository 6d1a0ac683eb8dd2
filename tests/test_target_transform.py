"""A log-transformed regression target: chosen on the training rows, learned on the log scale,
brought back with Duan's smearing factor, and scored on the target's own units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_train import QUICK, TINY_MODEL

from mrta.data.preprocessing import PreprocessingOptions, Preprocessor
from mrta.data.schema import infer_schema
from mrta.data.sets import SetOptions
from mrta.data.target_transform import choose_transform, from_model_scale, smearing_factor
from mrta.errors import TableError
from mrta.pipelines.train_run import train_run
from mrta.runs.run import Run
from mrta.training.evaluate import metrics


def skewed_frame(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """A price-like target: log-normal, its log linear in `x` and shifted by `kind`."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    kind = rng.choice(["a", "b", "c"], rows)
    log_y = 3 + 0.8 * x + np.select([kind == "a", kind == "b"], [0.5, -0.5], 0.0)
    y = np.exp(log_y + rng.normal(scale=0.6, size=rows))
    return pd.DataFrame({"x": x, "kind": kind, "price": y.round(2)})


def test_smearing_corrects_the_bias_of_exponentiating_a_mean_of_logs():
    rng = np.random.default_rng(0)
    sigma = 0.8
    y = np.exp(2.0 + rng.normal(scale=sigma, size=200_000))
    naive = np.exp(np.log(y).mean())  # the geometric mean: biased low by exp(sigma^2 / 2)
    factor = smearing_factor(np.log(y) - np.log(y).mean())
    assert naive < 0.8 * y.mean()
    assert factor == pytest.approx(np.exp(sigma**2 / 2), rel=0.01)
    assert from_model_scale(np.log(naive), "log", factor) == pytest.approx(y.mean(), rel=0.01)
    assert smearing_factor(np.array([])) == 1.0
    np.testing.assert_array_equal(from_model_scale(np.array([1.5]), "none", 9.0), [1.5])


def test_auto_takes_the_log_only_of_a_positive_skewed_target():
    rng = np.random.default_rng(0)
    skewed = np.exp(rng.normal(scale=1.0, size=5_000))
    assert choose_transform(skewed, "auto")[0] == "log"
    assert choose_transform(rng.normal(size=5_000), "auto")[0] == "none"  # no tail, not positive
    assert choose_transform(rng.uniform(1, 2, size=5_000), "auto")[0] == "none"  # not skewed
    name, note = choose_transform(skewed - 1, "auto")
    assert name == "none" and "0 or less" in note
    assert choose_transform(skewed, "none") == ("none", None)
    with pytest.raises(TableError, match=r"value\(s\) of 0 or less .* no logarithm"):
        choose_transform(skewed - 1, "log")
    with pytest.raises(ValueError, match="target_transform must be one of"):
        choose_transform(skewed, "sqrt")


def test_the_model_learns_the_standardised_log_and_old_preprocessors_read_as_none():
    frame = skewed_frame()
    schema = infer_schema(frame, "price")
    logged = Preprocessor.fit(frame, schema, PreprocessingOptions(target_transform="log"))
    target = logged.transform(frame).target.numpy()
    np.testing.assert_allclose(target, np.log(frame["price"]), rtol=1e-5)
    assert logged.target_mean == pytest.approx(np.log(frame["price"]).mean())
    assert any(note.startswith("The target was log-transformed") for note in logged.notes)
    state = logged.to_dict()
    assert Preprocessor.from_dict(state).target_transform == "log"
    old = {k: v for k, v in state.items() if not k.startswith("target_")}
    old.update(target_mean=1.0, target_std=2.0)
    assert Preprocessor.from_dict(old).target_transform == "none"
    with pytest.raises(TableError, match="target of 0 or less"):
        logged.transform(frame.assign(price=frame["price"] - frame["price"].max()))


@pytest.mark.slow
def test_a_log_run_predicts_and_is_scored_in_the_targets_units(tmp_path):
    frame = skewed_frame()
    options = PreprocessingOptions(target_transform="auto")
    run = train_run(frame, "price", model_config=TINY_MODEL, train_config=QUICK,
                    preprocessing_options=options)  # fmt: skip
    assert run.preprocessor.target_transform == "log"
    assert 1.0 < run.preprocessor.target_smearing < 2.0  # residual variance on the log scale
    test = run.rows("test")
    predicted = run.predict_frame(test)["prediction"].to_numpy()
    assert (predicted > 0).all() and np.median(predicted) > 5  # prices, not their logs
    scored = metrics(run.schema.task, test["price"].to_numpy(), predicted, ())
    assert run.metrics["model"]["rmse"] == pytest.approx(scored["rmse"], rel=1e-6)
    assert run.metrics["model"]["r2"] == pytest.approx(scored["r2"], rel=1e-6)
    loaded = Run.load(run.save(tmp_path / "run", include_data=True))
    assert loaded.preprocessor.target_smearing == run.preprocessor.target_smearing
    np.testing.assert_allclose(loaded.predict_frame(test)["prediction"], predicted, rtol=1e-6)


def test_a_run_on_sets_refuses_a_target_transform():
    frame = skewed_frame().assign(group=np.arange(400) // 4)
    with pytest.raises(ValueError, match="a run on sets learns its target as it is"):
        train_run(frame, "price", sets=SetOptions("group"),
                  preprocessing_options=PreprocessingOptions(target_transform="log"))  # fmt: skip
