"""Train / validation / test splits: seeded, stratified, JSON-serialisable, separate test files."""

import json

import numpy as np
import pandas as pd
import pytest

from mrta.data.schema import infer_schema
from mrta.data.splits import SplitOptions, Splits, make_splits
from mrta.errors import TableError

RNG = np.random.default_rng(0)


def classes_frame(n: int = 200) -> pd.DataFrame:
    y = np.array(["common"] * 140 + ["middle"] * 50 + ["tiny"] * 10, dtype=object)[:n]
    return pd.DataFrame({"x": RNG.normal(size=n), "y": RNG.permutation(y)})


def test_splits_are_seeded_disjoint_and_cover_the_rows_with_a_target():
    frame = classes_frame()
    frame.loc[[3, 17], "y"] = None
    schema = infer_schema(frame, target="y")
    splits = make_splits(frame, schema)
    parts = [set(splits.train), set(splits.validation), set(splits.test)]
    assert parts[0].isdisjoint(parts[1]) and parts[0].isdisjoint(parts[2])
    assert parts[1].isdisjoint(parts[2])
    assert set().union(*parts) == set(range(200)) - {3, 17}
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (138, 30, 30)
    assert list(splits.train) == sorted(splits.train)
    assert make_splits(frame, schema) == splits
    assert make_splits(frame, schema, SplitOptions(seed=1)) != splits


def test_classification_splits_are_stratified():
    frame = classes_frame()
    splits = make_splits(frame, infer_schema(frame, target="y"))
    assert splits.stratified
    sizes = {"common": 140, "middle": 50, "tiny": 10}
    for part in (splits.validation, splits.test):
        assert len(part) == 30
        counts = frame["y"].iloc[list(part)].value_counts()
        for label, size in sizes.items():
            assert abs(counts[label] - size * 0.15) < 1, (label, counts[label])


def test_a_class_too_small_for_every_split_stays_in_training():
    frame = pd.DataFrame({"x": np.arange(30.0) / 7, "y": ["a"] * 15 + ["b"] * 14 + ["solo"]})
    splits = make_splits(frame, infer_schema(frame, target="y"))
    assert 29 in splits.train
    assert len(splits.validation) == len(splits.test) == 4


def test_regression_splits_are_not_stratified():
    frame = pd.DataFrame({"x": RNG.normal(size=50), "y": RNG.normal(size=50)})
    splits = make_splits(frame, infer_schema(frame, target="y"))
    assert not splits.stratified
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (34, 8, 8)


def test_json_round_trip():
    frame = classes_frame()
    splits = make_splits(frame, infer_schema(frame, target="y"))
    text = json.dumps(splits.to_dict())
    assert Splits.from_dict(json.loads(text)) == splits


def test_a_separate_test_file():
    frame, test_file = classes_frame(), classes_frame(40)
    test_file.loc[[0, 5], "y"] = None
    schema = infer_schema(frame, target="y")
    splits = make_splits(frame, schema, test_frame=test_file)
    assert splits.separate_test_file
    assert splits.test == tuple(i for i in range(40) if i not in (0, 5))
    assert (len(splits.train), len(splits.validation)) == (170, 30)
    assert splits.notes == ("2 row(s) of the test file have no target value and are left out.",)
    with pytest.raises(TableError, match=r"lacks the column\(s\) 'x' that the model was built"):
        make_splits(frame, schema, test_frame=test_file.drop(columns="x"))
    unknown = test_file.assign(y="unheard of")
    with pytest.raises(TableError, match=r"holds label\(s\) the model does not know"):
        make_splits(frame, schema, test_frame=unknown)


def test_too_few_rows_and_bad_fractions_are_refused():
    frame = pd.DataFrame({"x": np.arange(12.0) / 7, "y": ["a", "b"] * 4 + [None] * 4})
    schema = infer_schema(frame, target="y")
    with pytest.raises(TableError, match="Only 8 row"):
        make_splits(frame, schema)
    with pytest.raises(ValueError, match="validation_fraction must be in"):
        make_splits(frame, schema, SplitOptions(validation_fraction=0.6, test_fraction=0.5))
