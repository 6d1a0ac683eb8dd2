"""The verdict that can say no: the paired bootstrap against scipy's, stratified resampling,
the resampled metrics against scikit-learn, and verdicts on good, shuffled and absent models."""

import json

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import r2_score, roc_auc_score

from mrta.analysis import verdict as verdict_module
from mrta.analysis.verdict import (
    NO_CONTROL,
    Verdict,
    bootstrap_metrics,
    judge,
    paired_bootstrap,
    resample_indices,
)
from mrta.task import Task


def mean_of_predictions(y, predictions):
    return predictions.mean(axis=1)


def binary_case(n=240, strength=2.0, seed=0):
    """Class indices with a 1:2 imbalance, class probabilities that know the class, and a
    control: the same probabilities in shuffled order (a model that learned nothing)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 1 / 3).astype(np.int64)
    positive = 1 / (1 + np.exp(-(strength * (y - 0.5) * 2 + rng.normal(size=n))))
    model = np.column_stack([1 - positive, positive])
    return y, model, model[rng.permutation(n)]


def multiclass_case(n=150, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), y] += 2.0
    model = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, model, model[rng.permutation(n)]


def regression_case(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = 3.0 + 2.0 * x + rng.normal(scale=0.8, size=n)
    model = 3.0 + 2.0 * x
    return y, model, model[rng.permutation(n)]


# -- the bootstrap against scipy's -----------------------------------------------------------
def test_a_paired_mean_difference_matches_scipy_bootstrap():
    """Same statistic, same number of resamples, different generators: the distributions agree
    within Monte Carlo error, and the spread is the paired one (the sides are correlated, so an
    unpaired bootstrap would be ~5 times wider)."""
    rng = np.random.default_rng(0)
    before = rng.normal(10.0, 2.0, 150)
    after = before + rng.normal(0.3, 0.4, 150)
    ours = paired_bootstrap(
        np.zeros(150), after, before, metric=mean_of_predictions, resamples=1000, seed=0
    )
    theirs = stats.bootstrap(
        (after, before),
        lambda a, b, axis: a.mean(axis=axis) - b.mean(axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=1000,
        confidence_level=0.90,
        method="percentile",
        rng=np.random.default_rng(1),
    )
    sd = theirs.standard_error
    low, high = np.percentile(ours, [5, 95])
    # the 5th percentile of 1,000 resamples has a Monte Carlo sd of ~0.07 sd per side
    assert low == pytest.approx(theirs.confidence_interval.low, abs=0.35 * sd)
    assert high == pytest.approx(theirs.confidence_interval.high, abs=0.35 * sd)
    assert ours.std() == pytest.approx(sd, rel=0.1)
    assert ours.mean() == pytest.approx(after.mean() - before.mean(), abs=0.15 * sd)
    assert stats.ks_2samp(ours, theirs.bootstrap_distribution).pvalue > 0.01


def test_a_paired_r2_difference_matches_scipy_bootstrap():
    y, model, _ = regression_case(n=100)
    other = model + np.random.default_rng(5).normal(scale=1.0, size=100)

    def r2(target, predicted, axis=-1):
        residual = ((target - predicted) ** 2).sum(axis=axis)
        total = ((target - target.mean(axis=axis, keepdims=True)) ** 2).sum(axis=axis)
        return 1 - residual / total

    ours = paired_bootstrap(y, model, other, metric="r2", resamples=1000, seed=3)
    theirs = stats.bootstrap(
        (y, model, other),
        lambda t, a, b, axis: r2(t, a, axis) - r2(t, b, axis),
        paired=True,
        vectorized=True,
        n_resamples=1000,
        confidence_level=0.90,
        method="percentile",
        rng=np.random.default_rng(4),
    )
    sd = theirs.standard_error
    assert np.percentile(ours, 5) == pytest.approx(theirs.confidence_interval.low, abs=0.35 * sd)
    assert ours.std() == pytest.approx(sd, rel=0.1)


# -- resampling and the resampled metrics ----------------------------------------------------
def test_stratified_resamples_keep_every_class_count():
    y = np.array([0] * 7 + [1] * 3 + [2] * 20)
    indices = resample_indices(len(y), 200, seed=1, strata=y)
    assert indices.shape == (200, 30)
    counts = np.stack([np.bincount(y[row], minlength=3) for row in indices])
    assert (counts == [7, 3, 20]).all()
    assert len({tuple(row) for row in indices}) == 200, "every resample draws anew"
    assert len(np.unique(indices[:, :7])) == 7 and len(np.unique(indices[:, 7:10])) == 3
    plain = resample_indices(len(y), 200, seed=1)
    assert len({tuple(np.bincount(y[row], minlength=3)) for row in plain}) > 10


def test_resamples_are_seeded_and_a_prefix_of_longer_runs():
    y = np.arange(12) % 3
    a = resample_indices(12, 20, seed=7, strata=y)
    assert np.array_equal(a, resample_indices(12, 20, seed=7, strata=y))
    assert np.array_equal(a[:5], resample_indices(12, 5, seed=7, strata=y))
    assert not np.array_equal(a, resample_indices(12, 20, seed=8, strata=y))


def test_both_sides_are_scored_on_the_same_resampled_rows():
    y, model, control = binary_case(n=60)
    indices = resample_indices(60, 30, seed=2, strata=y)
    scores = bootstrap_metrics(
        y, [model, control, 0.5], metric="roc_auc", resamples=30, seed=2, stratify=True
    )
    for row, (a, b, c) in zip(indices, scores, strict=True):
        assert a == pytest.approx(roc_auc_score(y[row], model[row, 1]), abs=1e-12)
        assert b == pytest.approx(roc_auc_score(y[row], control[row, 1]), abs=1e-12)
        assert c == 0.5
    differences = paired_bootstrap(
        y, model, control, metric="roc_auc", resamples=30, seed=2, stratify=True
    )
    np.testing.assert_allclose(differences, scores[:, 0] - scores[:, 1])


def test_resampled_auc_counts_ties_as_scikit_learn_does():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 80)
    scores = np.round(rng.random(80) + 0.3 * y, 1)  # few distinct values: many ties
    indices = resample_indices(80, 25, seed=0, strata=y)
    ours = bootstrap_metrics(y, [scores], metric="roc_auc", resamples=25, seed=0, stratify=True)[
        :, 0
    ]
    expected = [roc_auc_score(y[row], scores[row]) for row in indices]
    np.testing.assert_allclose(ours, expected, atol=1e-12)


def test_resampled_auc_of_several_classes_is_the_one_vs_rest_macro_average():
    y, model, _ = multiclass_case(n=90)
    indices = resample_indices(90, 20, seed=0, strata=y)
    ours = bootstrap_metrics(y, [model], metric="roc_auc", resamples=20, seed=0, stratify=True)
    expected = [
        roc_auc_score(y[row], model[row], multi_class="ovr", average="macro") for row in indices
    ]
    np.testing.assert_allclose(ours[:, 0], expected, atol=1e-12)


def test_resampled_r2_matches_scikit_learn_and_is_nan_on_a_constant_target():
    y, model, _ = regression_case(n=40)
    indices = resample_indices(40, 15, seed=0)
    ours = bootstrap_metrics(y, [model], metric="r2", resamples=15, seed=0)[:, 0]
    np.testing.assert_allclose(ours, [r2_score(y[row], model[row]) for row in indices])
    constant = bootstrap_metrics(
        np.array([0.1, 0.1, 0.1]), [np.zeros(3)], metric="r2", resamples=4, seed=0
    )
    assert np.isnan(constant).all()


def test_chunking_does_not_change_the_resamples(monkeypatch):
    y, model, control = binary_case(n=50)
    whole = paired_bootstrap(y, model, control, metric="roc_auc", resamples=40, stratify=True)
    monkeypatch.setattr(verdict_module, "CHUNK_CELLS", 120)  # two resamples per chunk
    chunked = paired_bootstrap(y, model, control, metric="roc_auc", resamples=40, stratify=True)
    np.testing.assert_array_equal(whole, chunked)


# -- verdicts --------------------------------------------------------------------------------
def test_a_good_model_beside_a_shuffled_control_is_worth_reading():
    y, model, control = binary_case()
    verdict = judge(Task.BINARY, y, model, control)
    assert verdict.worth_reading is True
    assert verdict.metric == "roc_auc" and verdict.trivial == 0.5
    assert verdict.model == pytest.approx(roc_auc_score(y, model[:, 1]))
    assert verdict.control == pytest.approx(roc_auc_score(y, control[:, 1]))
    assert verdict.vs_trivial_low > 0 and verdict.vs_control_low > 0
    assert len(verdict.reasons) == 2 and all("beats" in r for r in verdict.reasons)


def test_a_model_at_chance_is_not_worth_reading_and_says_why():
    y, model, control = binary_case()
    verdict = judge("binary", y, control, model)  # the shuffled one is now the model
    assert verdict.worth_reading is False
    assert verdict.vs_trivial_low <= 0 and verdict.vs_control_low <= 0
    trivial, against_control = verdict.reasons
    assert "does not beat the trivial baseline" in trivial
    assert "does not beat the control" in against_control


def test_beating_chance_but_not_the_control_is_not_enough():
    y, model, _ = binary_case()
    verdict = judge(Task.BINARY, y, model, model.copy())  # a control as good as the model
    assert verdict.worth_reading is False
    assert verdict.vs_trivial_low > 0 and verdict.vs_control_low == 0.0
    assert "beats the trivial baseline" in verdict.reasons[0]
    assert "does not beat the control" in verdict.reasons[1]


def test_without_a_control_the_verdict_is_no_and_says_so():
    y, model, _ = binary_case()
    verdict = judge(Task.BINARY, y, model)
    assert verdict.worth_reading is False
    assert verdict.control is None and verdict.vs_control_low is None
    assert verdict.vs_trivial_low > 0
    assert verdict.reasons[1] == NO_CONTROL


def test_several_classes():
    y, model, control = multiclass_case()
    yes = judge(Task.MULTICLASS, y, model, control)
    assert yes.worth_reading is True
    assert yes.model == pytest.approx(roc_auc_score(y, model, multi_class="ovr", average="macro"))
    no = judge(Task.MULTICLASS, y, control, model)
    assert no.worth_reading is False and "does not beat the trivial" in no.reasons[0]


def test_regression():
    y, model, control = regression_case()
    yes = judge(Task.REGRESSION, y, model, control)
    assert yes.worth_reading is True
    assert (yes.metric, yes.trivial) == ("r2", 0.0)
    assert yes.model == pytest.approx(r2_score(y, model))
    no = judge(Task.REGRESSION, y, control, model)
    assert no.worth_reading is False and no.vs_trivial_low < 0 and no.vs_control_low < 0


def test_resamples_with_a_constant_target_are_left_out_and_counted():
    y = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 2.0])
    model = np.array([0.1, 0.0, 0.2, 0.9, 1.1, 2.0])
    indices = resample_indices(6, 300, seed=0)
    constant = int((np.ptp(y[indices], axis=1) == 0).sum())
    assert constant > 0
    verdict = judge(Task.REGRESSION, y, model, model[::-1].copy(), resamples=300)
    assert verdict.reasons[-1].startswith(f"{constant} of 300 resamples had a constant target")
    scores = bootstrap_metrics(y, [model], metric="r2", resamples=300)[:, 0]
    kept = scores[np.isfinite(scores)] - 0.0
    assert verdict.vs_trivial_low == pytest.approx(np.percentile(kept, 5))


def test_the_verdict_is_seeded():
    y, model, control = binary_case(strength=0.3)
    first = judge(Task.BINARY, y, model, control, seed=4)
    assert judge(Task.BINARY, y, model, control, seed=4) == first
    assert judge(Task.BINARY, y, model, control, seed=5).vs_trivial_low != first.vs_trivial_low


def test_the_verdict_is_summary_json_ready():
    y, model, control = binary_case()
    verdict = judge(Task.BINARY, y, model, control, resamples=200)
    data = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert list(data) == [
        "worth_reading",
        "reasons",
        "metric",
        "model",
        "trivial",
        "control",
        "vs_trivial_low",
        "vs_control_low",
    ]
    assert isinstance(data["reasons"], list)
    assert Verdict.from_dict(data) == verdict
    pending = judge(Task.BINARY, y, model, resamples=200).to_dict()
    assert pending["control"] is None and pending["vs_control_low"] is None


def test_binary_predictions_may_be_class_one_probabilities():
    y, model, control = binary_case()
    assert judge(Task.BINARY, y, model[:, 1], control[:, 1]) == judge(
        Task.BINARY, y, model, control
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "ranking"}, "task must be one of"),
        ({"y_true": np.zeros((4, 1))}, "y_true must be a 1-D array"),
        ({"y_true": np.zeros(4, dtype=int)}, "y_true holds one class only"),
        ({"y_true": np.array([0.5, 1, 0, 1])}, "y_true must hold class indices"),
        ({"model_pred": np.full((4, 3), 0.3)}, "model_pred must have shape"),
        ({"control_pred": np.full((3, 2), 0.5)}, "control_pred must have shape"),
        ({"model_pred": np.array([[0.5, np.nan]] * 4)}, "model_pred must be finite"),
        ({"resamples": 0}, "resamples must be a positive integer"),
        ({"seed": 1.5}, "seed must be an integer"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    arguments = {
        "task": Task.BINARY,
        "y_true": np.array([0, 1, 0, 1]),
        "model_pred": np.full((4, 2), 0.5),
        "control_pred": None,
        **kwargs,
    }
    resamples = arguments.pop("resamples", 10)
    seed = arguments.pop("seed", 0)
    with pytest.raises(ValueError, match=message):
        judge(**arguments, resamples=resamples, seed=seed)


def test_a_constant_regression_target_is_refused():
    with pytest.raises(ValueError, match="y_true is constant"):
        judge(Task.REGRESSION, np.ones(5), np.ones(5))


def test_an_unknown_metric_is_refused():
    with pytest.raises(ValueError, match="metric must be"):
        paired_bootstrap(np.zeros(3), np.zeros(3), 0.0, metric="accuracy", resamples=2)
