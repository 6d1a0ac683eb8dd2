"""Metrics against scikit-learn, the trivial baseline, and HistGradientBoosting on our split."""

import numpy as np
import pytest
import torch
from sklearn.metrics import r2_score, roc_auc_score
from test_train import tiny_frame

from mrta.data.preprocessing import PreprocessingOptions, Preprocessor
from mrta.data.schema import infer_schema
from mrta.training.evaluate import (
    classification_metrics,
    hgb_predictions,
    regression_metrics,
    trivial_predictions,
)
from mrta.training.inference import to_predictions

RNG = np.random.default_rng(0)


def test_binary_metrics_and_a_labelled_confusion_matrix():
    y = np.array([0, 0, 1, 1, 1])
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4]])
    scores = classification_metrics(y, probabilities, ("no", "yes"))
    assert scores["accuracy"] == pytest.approx(0.6)
    assert scores["roc_auc"] == pytest.approx(roc_auc_score(y, probabilities[:, 1]))
    assert scores["confusion_matrix"] == {"labels": ["no", "yes"], "matrix": [[1, 1], [1, 2]]}


def test_multiclass_auc_is_the_one_vs_rest_macro_average():
    y = RNG.integers(0, 3, 60)
    probabilities = RNG.dirichlet(np.ones(3), 60)
    scores = classification_metrics(y, probabilities, ("a", "b", "c"))
    expected = roc_auc_score(y, probabilities, multi_class="ovr", average="macro")
    assert scores["roc_auc"] == pytest.approx(expected)
    assert (
        classification_metrics(np.zeros(4, int), probabilities[:4], ("a", "b", "c"))["roc_auc"]
        is None
    )


def test_regression_metrics_in_target_units():
    y = RNG.normal(100, 10, 50)
    predicted = y + RNG.normal(0, 5, 50)
    scores = regression_metrics(y, predicted)
    assert scores["rmse"] == pytest.approx(np.sqrt(np.mean((y - predicted) ** 2)))
    assert scores["mae"] == pytest.approx(np.mean(np.abs(y - predicted)))
    assert scores["r2"] == pytest.approx(r2_score(y, predicted))
    logits = torch.tensor([[0.0], [1.0]])
    assert to_predictions("regression", logits, 100.0, 10.0).tolist() == [100.0, 110.0]


def test_trivial_baseline_is_the_majority_class_or_the_mean():
    frequencies = trivial_predictions("multiclass", np.array([0, 2, 2, 2]), 3, 3)
    assert frequencies.shape == (3, 3) and frequencies[0].tolist() == [0.25, 0.0, 0.75]
    assert trivial_predictions("regression", np.array([1.0, 3.0]), 2, 0).tolist() == [2.0, 2.0]


def test_hgb_learns_on_the_split_and_takes_more_than_255_levels():
    frame = tiny_frame("binary", rows=600)
    frame["zip"] = [f"Z{i % 300:03d}" for i in range(600)]  # 300 levels
    schema = infer_schema(frame, "y", roles={"zip": "categorical"})
    train, validation, test = frame.iloc[:400], frame.iloc[400:500], frame.iloc[500:]
    preprocessor = Preprocessor.fit(train, schema, PreprocessingOptions(min_category_count=1))
    assert max(preprocessor.vocabulary_sizes) > 255
    probabilities, info = hgb_predictions(preprocessor, train, validation, test, threads=1)
    assert probabilities.shape == (100, 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    scores = classification_metrics(schema.encode_target(test), probabilities, ("no", "yes"))
    assert scores["roc_auc"] > 0.8
    assert info["iterations"] >= 1


def test_hgb_regression_with_missing_values():
    frame = tiny_frame("regression", rows=400)
    frame.loc[::7, "color"] = None
    schema = infer_schema(frame, "y")
    preprocessor = Preprocessor.fit(frame.iloc[:300], schema)
    predicted, _ = hgb_predictions(
        preprocessor, frame.iloc[:300], frame.iloc[300:350], frame.iloc[350:], threads=1
    )
    assert r2_score(frame["y"].iloc[350:], predicted) > 0.5
