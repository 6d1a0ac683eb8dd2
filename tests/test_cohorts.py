"""Cohorts by rows (mrta.analysis.cohorts): the split cohorts, the prediction-based cohorts of the
whole table and of the training and test rows, the regression quintiles, against a direct
computation; which cohorts are disjoint, which contains which, and what a view opens on; and an
explained tiny run's cohorts against its split."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
import torch
from test_train import tiny_frame
from tiny_models import random_inputs, tiny_model

from mrta import AttentionRecorder
from mrta.analysis.cohorts import (
    ALL_ROWS,
    QUINTILES,
    SPLIT_ROWS,
    CohortSpec,
    cohort_family,
    complement,
    containing,
    default_cohort,
    disjoint,
    rows_note,
    rows_scope,
    split_of,
    with_split,
)
from mrta.analysis.collect import collect_attention
from mrta.analysis.labels import format_value
from mrta.config import ModelConfig, TrainConfig
from mrta.pipelines.explain import DEFAULT_MAX_ROWS, analysed_rows, explain, filter_atlas
from mrta.pipelines.train_run import train_run

ROWS = 60
CLASSES = ("Adelie", "Chinstrap", "Gentoo")
SPLITS = np.array(["train"] * 30 + ["validation"] * 10 + ["test"] * 15 + [""] * 5)


@pytest.fixture
def inputs():
    num, ind, cat = random_inputs(ROWS, 2, 1)
    y = torch.randint(0, 3, (ROWS,), generator=torch.Generator().manual_seed(1))
    splits = np.random.default_rng(2).permutation(SPLITS)
    return (num, ind, cat), y, splits


def kept(model, data):
    """Every row's maps by (layer, map id) and the logits, from one keep-mode pass."""
    with AttentionRecorder(model, mode="keep") as recorder, torch.no_grad():
        logits = model.eval()(*data)
    return {key: recorder.weights(*key).double().numpy() for key in recorder.keys}, logits


def class_masks(y, pred, splits, even):
    """Every cohort's rows, computed directly from the classes, the splits and the filter."""
    masks = {ALL_ROWS: np.ones(ROWS, bool)}
    for split in ("train", "validation", "test"):
        masks[("split", split)] = splits == split
    for scope in (None, "train", "test"):
        rows = np.ones(ROWS, bool) if scope is None else splits == scope
        suffix = () if scope is None else (scope,)
        for c, name in enumerate(CLASSES):
            masks[("true", name, *suffix)] = rows & (y == c)
            masks[("pred", name, *suffix)] = rows & (pred == c)
        masks[("correct", True, *suffix)] = rows & (pred == y)
        masks[("correct", False, *suffix)] = rows & (pred != y)
        masks[("filter", "even", *suffix)] = rows & even
    return masks


def test_class_cohorts_of_each_split_match_a_direct_computation(inputs):
    data, y, splits = inputs
    model = tiny_model(["a", "b"], ["c"], seed=4)  # predicts every class
    even = np.arange(ROWS) % 2 == 0
    spec = CohortSpec(class_labels=CLASSES, splits=splits, filters={"even": even})
    atlas = collect_attention(model, data, cohorts=spec, batch_size=16, targets=y)
    weights, logits = kept(model, data)
    masks = class_masks(y.numpy(), logits.argmax(-1).numpy(), splits, even)
    assert set(atlas.cohorts) == {key for key, mask in masks.items() if mask.any()}
    for key in atlas.cohorts:
        i, mask = atlas.index(key), masks[key]
        assert atlas.counts[i] == mask.sum(), key
        for map_key, w in weights.items():
            np.testing.assert_allclose(atlas.means[map_key][i], w[mask].mean(0), atol=1e-6)
    labels = dict(zip(atlas.cohorts, atlas.cohort_labels, strict=True))
    assert labels[("true", "Gentoo", "test")] == "true class: Gentoo, test rows"
    predicted = next(key for key in atlas.cohorts if key[0] == "pred" and len(key) == 3)
    assert labels[predicted] == f"predicted: {predicted[1]}, {SPLIT_ROWS[predicted[2]]}"
    assert labels[("correct", False, "train")] == "wrong predictions, training rows"
    assert labels[("true", "Adelie")] == "true class: Adelie, whole table"
    assert labels[("split", "validation")] == "validation rows"
    assert labels[("filter", "even", "test")] == "even, test rows"
    assert all(label.endswith(rows_scope(key)) for key, label in labels.items() if key != ALL_ROWS)
    # what the keys say of the rows holds of the rows themselves
    for a, b in combinations(atlas.cohorts, 2):
        if disjoint(a, b):
            assert not (masks[a] & masks[b]).any(), (a, b)
    for key in atlas.cohorts[1:]:
        outer = masks[containing(key)]
        assert not (masks[key] & ~outer).any(), key
        assert disjoint(key, complement(key))


def test_a_split_cohort_without_rows_is_absent_and_no_split_means_no_split_cohorts(inputs):
    data, y, splits = inputs
    model = tiny_model(["a", "b"], ["c"])
    no_test = np.where(splits == "test", "", splits)
    atlas = collect_attention(
        model, data, cohorts=CohortSpec(class_labels=CLASSES, splits=no_test), targets=y
    )
    assert {split_of(key) for key in atlas.cohorts} == {None, "train", "validation"}
    assert "test split" in rows_note(atlas.cohorts)
    whole = collect_attention(model, data, cohorts=CohortSpec(class_labels=CLASSES), targets=y)
    assert {split_of(key) for key in whole.cohorts} == {None}
    assert "no split" in rows_note(whole.cohorts)


def quintile_masks(x, rows):
    """Quintile bins of x over `rows` by np.quantile edges, the ranges of the non-empty ones."""
    edges = np.quantile(x[rows], [0.2, 0.4, 0.6, 0.8])
    bins = np.digitize(x, edges) + 1  # lower edge included, upper excluded
    found = {}
    for q in range(1, QUINTILES + 1):
        mask = rows & (bins == q)
        if mask.any():
            span = f"{format_value(x[mask].min())} to {format_value(x[mask].max())}"
            found[q] = (mask, span)
    return found


def test_regression_quintiles_of_target_prediction_and_residual_match_numpy(inputs):
    data, _, splits = inputs
    rng = np.random.default_rng(3)
    targets = np.round(rng.normal(10, 3, ROWS))  # ties: some quintiles may be empty
    predictions = targets + rng.normal(0, 1, ROWS)
    model = tiny_model(["a", "b"], ["c"], task="regression")
    spec = CohortSpec(splits=splits, targets=targets, predictions=predictions)
    atlas = collect_attention(model, data, cohorts=spec, batch_size=16)
    counts = dict(zip(atlas.cohorts, atlas.counts, strict=True))
    labels = dict(zip(atlas.cohorts, atlas.cohort_labels, strict=True))
    values = {"target": targets, "prediction": predictions, "residual": targets - predictions}
    expected = set()
    for scope in (None, "train", "test"):
        rows = np.ones(ROWS, bool) if scope is None else splits == scope
        suffix = () if scope is None else (scope,)
        for kind, x in values.items():
            for q, (mask, span) in quintile_masks(x, rows).items():
                key = (kind, q, *suffix)
                expected.add(key)
                assert counts[key] == mask.sum(), key
                where = "whole table" if scope is None else SPLIT_ROWS[scope]
                assert labels[key] == f"{kind}: quintile {q} ({span}), {where}"
    assert {key for key in atlas.cohorts if key[0] in values} == expected
    assert not any(key[0] in ("true", "pred", "correct") for key in atlas.cohorts)


@pytest.mark.parametrize(
    "key, family, contained_in, scope",
    [
        (ALL_ROWS, ALL_ROWS, None, "whole table"),
        (("split", "test"), ("split",), ALL_ROWS, "test rows"),
        (("true", "a"), ("true",), ALL_ROWS, "whole table"),
        (("pred", "a", "test"), ("pred", "test"), ("split", "test"), "test rows"),
        (("correct", False, "train"), ("correct", "train"), ("split", "train"), "training rows"),
        (("prediction", 2), ("prediction",), ALL_ROWS, "whole table"),
        (("residual", 5, "test"), ("residual", "test"), ("split", "test"), "test rows"),
        (("decile", "x", 3), ("decile", "x"), ALL_ROWS, "whole table"),
        (("decile", "x", None), ("decile", "x"), ALL_ROWS, "whole table"),
        (("level", "c", "test"), ("level", "c"), ALL_ROWS, "whole table"),
        (("filter", "test"), ("filter", "test"), ALL_ROWS, "whole table"),
        (("filter", "f", "test"), ("filter", "f", "test"), ("split", "test"), "test rows"),
        (
            ("rest", "pred", "a", "test"),
            ("rest", "pred", "a", "test"),
            ("split", "test"),
            "test rows",
        ),
    ],
)
def test_family_containing_cohort_and_rows_of_every_kind_of_key(key, family, contained_in, scope):
    assert cohort_family(key) == family
    assert rows_scope(key) == scope
    if contained_in is None:
        with pytest.raises(ValueError, match="key"):
            containing(key)
    else:
        assert containing(key) == contained_in


@pytest.mark.parametrize(
    "a, b, expected",
    [
        (("pred", "a", "test"), ("pred", "b", "test"), True),  # one family
        (("pred", "a"), ("pred", "a", "test"), False),  # the test part of the whole
        (("pred", "a"), ("pred", "b", "test"), True),  # two classes, whatever the rows
        (("correct", True), ("correct", False, "train"), True),
        (("pred", "a", "train"), ("correct", False, "test"), True),  # two splits
        (("split", "train"), ("pred", "a", "test"), True),
        (("split", "test"), ("pred", "a", "test"), False),
        (("split", "train"), ("split", "test"), True),
        (("prediction", 2), ("prediction", 3, "test"), False),  # a split's own quintiles
        (("prediction", 2, "test"), ("prediction", 3, "test"), True),
        (("pred", "a"), ("correct", True), False),  # two families
        (("decile", "x", 1), ("decile", "x", None), True),
        (("decile", "x", 1), ("decile", "y", 1), False),
        (("level", "c", "n"), ("level", "c", "other"), True),
        (("filter", "f"), ("filter", "g"), False),
        (("filter", "f", "train"), ("filter", "f", "test"), True),
        (("pred", "a", "test"), ("rest", "pred", "a", "test"), True),  # a cohort and its rest
        (("pred", "b", "test"), ("rest", "pred", "a", "test"), False),
        (ALL_ROWS, ("pred", "a"), False),
        (("pred", "a"), ("pred", "a"), False),
    ],
)
def test_disjoint_only_for_cohorts_that_cannot_share_a_row(a, b, expected):
    assert disjoint(a, b) is expected
    assert disjoint(b, a) is expected


@pytest.mark.parametrize(
    "key",
    [(), ("nope",), ("pred", "a", "holdout"), ("split", "all"), ("decile", "x"), ("rest", "all")],
)
def test_a_key_that_is_no_cohort_key_is_refused_by_name(key):
    with pytest.raises(ValueError, match="key must be a cohort key"):
        cohort_family(key)
    with pytest.raises(ValueError, match="key must be a cohort key"):
        disjoint(key, ALL_ROWS)


def test_switching_rows_and_the_cohort_a_view_opens_on():
    assert with_split(("pred", "a"), "test") == ("pred", "a", "test")
    assert with_split(("correct", False, "test"), "train") == ("correct", False, "train")
    assert with_split(("prediction", 2, "test"), None) == ("prediction", 2)
    assert with_split(ALL_ROWS, "test") == ("split", "test")
    assert with_split(("split", "test"), None) == ALL_ROWS
    with pytest.raises(ValueError, match="no cohort of a split"):
        with_split(("decile", "x", 1), "test")
    with pytest.raises(ValueError, match="split must be one of"):
        with_split(("pred", "a"), "holdout")
    assert complement(complement(("pred", "a"))) == ("pred", "a")
    with pytest.raises(ValueError, match="no rest"):
        complement(ALL_ROWS)
    keys = [ALL_ROWS, ("split", "test"), ("true", "a"), ("decile", "x", 1), ("true", "a", "test")]
    assert default_cohort(keys) == ("true", "a", "test")
    assert default_cohort(keys[:4]) == ("true", "a")
    assert default_cohort(keys[:2]) == ALL_ROWS
    assert rows_note(keys) is None


def test_a_spec_that_cannot_be_right_is_refused_by_argument(inputs):
    data, y, splits = inputs
    with pytest.raises(ValueError, match="scopes must be among"):
        CohortSpec(scopes=("holdout",))
    with pytest.raises(ValueError, match="splits must hold"):
        CohortSpec(splits=np.array(["train", "holdout"]))
    with pytest.raises(ValueError, match="give both or neither"):
        CohortSpec(targets=np.zeros(3))
    model = tiny_model(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="splits must hold one value per row"):
        collect_attention(model, data, cohorts=CohortSpec(splits=splits[:10]), targets=y)
    numbers = np.zeros(ROWS)
    with pytest.raises(ValueError, match="targets and predictions are for the cohorts of a regr"):
        collect_attention(
            model, data, cohorts=CohortSpec(targets=numbers, predictions=numbers), targets=y
        )


# -- an explained run ------------------------------------------------------------------------
TINY = ModelConfig(d_token=8, d_model=8, num_layers=1, num_heads=2)
BRIEF = TrainConfig(time_budget=None, max_epochs=2, threads=1)


def split_masks(run):
    """Per split, which rows of the run's table are in it."""
    masks = {}
    for split in ("train", "validation", "test"):
        mask = np.zeros(len(run.frame), bool)
        mask[list(getattr(run.splits, split))] = True
        masks[split] = mask
    return masks


@pytest.mark.slow
def test_an_explained_binary_run_has_its_splits_and_test_cohorts():
    frame = tiny_frame("binary", rows=120)
    run = train_run(frame, "y", model_config=TINY, train_config=BRIEF)
    atlas = explain(run).atlas
    counts = dict(zip(atlas.cohorts, atlas.counts, strict=True))
    for split in ("train", "validation", "test"):
        assert counts[("split", split)] == len(getattr(run.splits, split))
    targets, probabilities, _ = run.split_predictions("test")
    predicted = probabilities.argmax(axis=1)
    for c, label in enumerate(run.class_labels):
        assert counts.get(("true", label, "test"), 0) == (targets == c).sum()
        assert counts.get(("pred", label, "test"), 0) == (predicted == c).sum()
    assert counts.get(("correct", False, "test"), 0) == (predicted != targets).sum()
    assert not any(split_of(key) == "validation" for key in atlas.cohorts if key[0] != "split")
    assert default_cohort(atlas.cohorts) == ("true", run.class_labels[0], "test")
    assert rows_note(atlas.cohorts) is None
    # a filter over the run's table: its training and test rows too
    mask = frame["x1"].to_numpy() > 0
    filtered = filter_atlas(run, "x1 > 0", mask)
    found = dict(zip(filtered.cohorts, filtered.counts, strict=True))
    splits = split_masks(run)
    assert found[("filter", "x1 > 0")] == mask.sum()
    assert found[("filter", "x1 > 0", "test")] == (mask & splits["test"]).sum()
    assert found[("filter", "x1 > 0", "train")] == (mask & splits["train"]).sum()
    # the same table again, or a sample of it indexed by position in it (as streamed)
    again = explain(run, frame.copy()).atlas
    assert again.cohorts == atlas.cohorts and (again.counts == atlas.counts).all()
    sample = frame.sample(n=50, random_state=0)
    sampled = explain(run, sample, of_run_table=True).atlas
    found = dict(zip(sampled.cohorts, sampled.counts, strict=True))
    for split, mask in splits.items():
        assert found[("split", split)] == mask[sample.index].sum()
    # another table: no split, and the view says so
    other = explain(run, tiny_frame("binary", rows=50, seed=1)).atlas
    assert {split_of(key) for key in other.cohorts} == {None}
    assert "no split" in rows_note(other.cohorts)


@pytest.mark.slow
def test_an_explained_regression_run_has_quintiles_of_its_test_rows():
    run = train_run(tiny_frame("regression", rows=120), "y", model_config=TINY, train_config=BRIEF)
    atlas = explain(run).atlas
    counts = dict(zip(atlas.cohorts, atlas.counts, strict=True))
    rows = analysed_rows(run, run.frame, DEFAULT_MAX_ROWS, 0)
    targets = run.schema.encode_target(rows)
    predictions = run.predict_examples(run.preprocessor.transform(rows))
    test = split_masks(run)["test"][rows.index.to_numpy()]
    assert counts[("split", "test")] == test.sum() == len(run.splits.test)
    values = {"target": targets, "prediction": predictions, "residual": targets - predictions}
    for kind, x in values.items():
        for scope, inside in ((None, np.ones(len(x), bool)), ("test", test)):
            suffix = () if scope is None else (scope,)
            bins = quintile_masks(x, inside)
            assert {q: counts.get((kind, q, *suffix), 0) for q in range(1, 6)} == {
                q: bins[q][0].sum() if q in bins else 0 for q in range(1, 6)
            }
    assert default_cohort(atlas.cohorts) == ("target", 1, "test")


@pytest.mark.slow
def test_a_run_with_a_separate_test_file_has_no_test_cohorts_in_its_table():
    frame = tiny_frame("binary", rows=120)
    run = train_run(
        frame.iloc[:90], "y", model_config=TINY, train_config=BRIEF, test_frame=frame.iloc[90:]
    )
    atlas = explain(run).atlas
    counts = dict(zip(atlas.cohorts, atlas.counts, strict=True))
    assert counts[("split", "train")] == len(run.splits.train)
    assert counts[("split", "validation")] == len(run.splits.validation)
    assert "test" not in {split_of(key) for key in atlas.cohorts}
    assert "test split" in rows_note(atlas.cohorts)
    assert len(set(atlas.cohorts)) == len(atlas.cohorts)
