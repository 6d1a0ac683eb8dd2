"""The preprocessor: transforms, missing values, vocabularies, tensors, exact JSON round trips."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.preprocessing import QuantileTransformer

from mrta.data.preprocessing import RESERVED_INDEX, PreprocessingOptions, Preprocessor
from mrta.data.schema import infer_schema
from mrta.errors import TableError

RNG = np.random.default_rng(0)


def mixed_frame(n: int = 200) -> pd.DataFrame:
    income = RNG.lognormal(10, 1, n)
    income[RNG.random(n) < 0.2] = np.nan
    return pd.DataFrame(
        {
            "age": RNG.normal(40, 10, n),
            "income": income,
            "city": RNG.choice(["Paris", "Oslo", "Rome", None], n, p=[0.5, 0.3, 0.15, 0.05]),
            "plan": RNG.choice(["basic", "pro"], n),
            "y": RNG.choice(["no", "yes"], n),
        }
    )


def round_trip(preprocessor: Preprocessor) -> Preprocessor:
    return Preprocessor.from_dict(json.loads(json.dumps(preprocessor.to_dict(), allow_nan=False)))


def assert_same(a, b) -> None:
    for name in ("numerical", "indicators", "categorical"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert (a.target is None and b.target is None) or torch.equal(a.target, b.target)


def test_quantile_transform_matches_scikit_learn_exactly():
    frame = mixed_frame()
    train, new = frame.iloc[:150], frame.iloc[150:]
    preprocessor = Preprocessor.fit(train, infer_schema(frame, target="y"))
    reference = QuantileTransformer(
        n_quantiles=150, output_distribution="normal", subsample=100_000, random_state=0
    ).fit(train[["age", "income"]].to_numpy())
    expected = np.nan_to_num(reference.transform(new[["age", "income"]].to_numpy()), nan=0.0)
    encoded = preprocessor.transform(new)
    np.testing.assert_array_equal(encoded.numerical.numpy(), expected.astype(np.float32))


def test_tensors_shapes_dtypes_and_token_names():
    frame = mixed_frame()
    preprocessor = Preprocessor.fit(frame, infer_schema(frame, target="y"))
    encoded = preprocessor.transform(frame)
    assert len(encoded) == 200
    assert encoded.numerical.shape == encoded.indicators.shape == (200, 2)
    assert encoded.categorical.shape == (200, 2)
    assert (encoded.numerical.dtype, encoded.indicators.dtype) == (torch.float32, torch.float32)
    assert encoded.categorical.dtype == torch.int64
    assert encoded.numerical_tokens == preprocessor.numerical_tokens == ("age", "income")
    assert encoded.categorical_tokens == preprocessor.categorical_tokens == ("city", "plan")
    assert preprocessor.vocabulary_sizes == (4, 3)  # Paris, Oslo, Rome / basic, pro, + reserved
    assert preprocessor.vocabularies == (("Paris", "Oslo", "Rome"), ("basic", "pro"))


def test_missing_values_get_an_indicator_attached_to_their_column():
    frame = mixed_frame()
    preprocessor = Preprocessor.fit(frame, infer_schema(frame, target="y"))
    assert preprocessor.has_indicator == (False, True)
    new = frame.iloc[:4].copy()
    new["age"] = [np.nan, 30.0, np.inf, -np.inf]  # age had no missing value in training
    new["income"] = [np.nan, 1e4, np.nan, 2e4]
    encoded = preprocessor.transform(new)
    assert encoded.indicators.tolist() == [[0, 1], [0, 0], [0, 1], [0, 0]]
    numbers = encoded.numerical.numpy()
    assert numbers[0, 0] == 0.0 and numbers[0, 1] == 0.0 and numbers[2, 1] == 0.0
    assert numbers[2, 0] == pytest.approx(5.199, abs=1e-3)  # +inf: the top of the range
    assert numbers[3, 0] == pytest.approx(-5.199, abs=1e-3)
    assert np.isfinite(numbers).all()


def test_standardization_clips_to_the_training_range():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, np.nan, np.inf], "c": list("ababab")})
    options = PreprocessingOptions(numerical_transform="standard")
    schema = infer_schema(frame, roles={"x": "numerical"})
    preprocessor = Preprocessor.fit(frame.iloc[:5], schema, options)
    numbers = preprocessor.transform(frame).numerical[:, 0].numpy()
    scale = np.std([1.0, 2.0, 3.0, 4.0])
    expected = (np.array([1, 2, 3, 4, 2.5, 4]) - 2.5) / scale  # NaN -> mean, inf -> the max
    np.testing.assert_allclose(numbers, expected, rtol=1e-6)


def test_vocabulary_reserves_index_0_for_missing_unseen_and_rare():
    cells = ["a"] * 6 + ["b"] * 5 + ["rare"] * 4 + [None] * 3
    frame = pd.DataFrame({"c": cells, "x": np.arange(18.0)})
    preprocessor = Preprocessor.fit(frame, infer_schema(frame))
    assert preprocessor.vocabularies == (("a", "b"),)
    assert preprocessor.notes == (
        "'c': 1 of its 3 levels (seen fewer than 5 times; 27% of training rows) share the "
        "reserved index with missing and unseen values.",
    )
    new = pd.DataFrame({"c": ["b", "a", "rare", None, "never seen", " a "], "x": np.zeros(6)})
    codes = preprocessor.transform(new).categorical[:, 0].tolist()
    assert codes == [2, 1, RESERVED_INDEX, RESERVED_INDEX, RESERVED_INDEX, 1]


def test_vocabulary_is_capped_for_a_5000_level_column():
    levels = [f"L{i:04d}" for i in range(5000)]
    cells = ["L0000"] * 50 + levels + levels[:1500] * 5  # 1,500 levels seen 6 times or more
    frame = pd.DataFrame({"code": cells, "x": RNG.normal(size=len(cells))})
    preprocessor = Preprocessor.fit(frame, infer_schema(frame), PreprocessingOptions())
    assert preprocessor.vocabulary_sizes == (1001,)
    assert preprocessor.vocabularies[0][0] == "L0000"  # the most frequent first
    note = preprocessor.notes[0]
    assert note.startswith("'code': ")
    assert "(seen fewer than 5 times or beyond the 1,000 most frequent;" in note
    codes = preprocessor.transform(frame).categorical
    assert codes.max().item() == 1000


@pytest.mark.parametrize("transform", ["quantile", "standard"])
def test_json_round_trip_is_bit_identical(transform):
    frame = mixed_frame()
    frame.loc[3, "age"] = np.inf
    options = PreprocessingOptions(numerical_transform=transform, min_category_count=1)
    preprocessor = Preprocessor.fit(frame.iloc[:120], infer_schema(frame, target="y"), options)
    loaded = round_trip(preprocessor)
    assert loaded.to_dict() == preprocessor.to_dict()
    assert_same(preprocessor.transform(frame), loaded.transform(frame))


def test_target_encoding():
    frame = mixed_frame()
    frame.loc[7, "y"] = None
    schema = infer_schema(frame, target="y")
    preprocessor = Preprocessor.fit(frame, schema)
    rows = frame.drop(index=7)
    target = preprocessor.transform(rows).target
    assert target.dtype == torch.int64
    assert [schema.class_labels[i] for i in target[:5]] == rows["y"].iloc[:5].tolist()
    with pytest.raises(TableError, match=r"1 row\(s\) have no value in the target 'y': leave"):
        preprocessor.transform(frame)
    assert preprocessor.transform(frame, with_target=False).target is None
    assert preprocessor.transform(frame.drop(columns="y")).target is None


def test_regression_target_and_its_scale():
    frame = mixed_frame().assign(y=RNG.normal(3.0, 2.0, 200))
    preprocessor = Preprocessor.fit(frame.iloc[:100], infer_schema(frame, target="y"))
    assert preprocessor.target_mean == pytest.approx(frame["y"].iloc[:100].mean())
    assert preprocessor.target_std == pytest.approx(frame["y"].iloc[:100].std(ddof=0))
    target = preprocessor.transform(frame).target
    assert target.dtype == torch.float32
    np.testing.assert_array_equal(target.numpy(), frame["y"].to_numpy(np.float32))


@pytest.mark.parametrize("keep", [["age", "income"], ["city", "plan"]])
def test_a_single_stream(keep):
    frame = mixed_frame()[[*keep, "y"]]
    preprocessor = Preprocessor.fit(frame, infer_schema(frame, target="y"))
    encoded = round_trip(preprocessor).transform(frame)
    numerical = 2 if "age" in keep else 0
    assert encoded.numerical.shape == encoded.indicators.shape == (200, numerical)
    assert encoded.categorical.shape == (200, 2 - numerical)


def test_a_column_all_missing_in_training_encodes_as_zero_with_its_indicator():
    frame = pd.DataFrame({"x": [np.nan] * 10 + list(np.arange(10.0) / 3), "c": list("ab") * 10})
    schema = infer_schema(frame)
    preprocessor = Preprocessor.fit(frame.iloc[:10], schema)
    encoded = preprocessor.transform(frame)
    assert encoded.numerical[:, 0].abs().sum().item() == 0.0
    assert encoded.indicators[:, 0].tolist() == [1.0] * 10 + [0.0] * 10
    assert_same(encoded, round_trip(preprocessor).transform(frame))


def test_missing_feature_columns_are_named():
    frame = mixed_frame()
    preprocessor = Preprocessor.fit(frame, infer_schema(frame, target="y"))
    with pytest.raises(TableError, match=r"lacks the column\(s\) 'income', 'plan' that the model"):
        preprocessor.transform(frame.drop(columns=["income", "plan"]))


def test_refusals():
    frame = mixed_frame()
    schema = infer_schema(frame, target="y")
    with pytest.raises(TableError, match="The training split has no rows"):
        Preprocessor.fit(frame.iloc[:0], schema)
    saved = Preprocessor.fit(frame, schema).to_dict() | {"format_version": 99}
    with pytest.raises(TableError, match="has format 99, but this version reads format 1"):
        Preprocessor.from_dict(saved)
    with pytest.raises(ValueError, match="numerical_transform must be"):
        Preprocessor.fit(frame, schema, PreprocessingOptions(numerical_transform="minmax"))


LABELS = st.sampled_from(["a", "b", "c", "d", None])
NUMBERS = st.one_of(
    st.floats(min_value=-1e12, max_value=1e12),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0]),
)


@st.composite
def mixed_frames(draw) -> tuple[pd.DataFrame, dict[str, str]]:
    rows = draw(st.integers(4, 40))
    n_numerical = draw(st.integers(0, 3))
    n_categorical = draw(st.integers(0 if n_numerical else 1, 3))
    columns: dict[str, list] = {}
    roles = {}
    for j in range(n_numerical):
        columns[f"n{j}"] = draw(st.lists(NUMBERS, min_size=rows, max_size=rows))
        roles[f"n{j}"] = "numerical"
    for j in range(n_categorical):
        columns[f"c{j}"] = draw(st.lists(LABELS, min_size=rows, max_size=rows))
        roles[f"c{j}"] = "categorical"
    frame = pd.DataFrame(
        {
            name: pd.Series(cells, dtype="float64" if name[0] == "n" else object)
            for name, cells in columns.items()
        }
    )
    return frame, roles


@settings(max_examples=30, deadline=None)
@given(
    data=mixed_frames(),
    transform=st.sampled_from(["quantile", "standard"]),
    min_count=st.integers(1, 3),
)
def test_any_mixed_frame_encodes_cleanly_and_round_trips(data, transform, min_count):
    frame, roles = data
    schema = infer_schema(frame, roles=roles)
    options = PreprocessingOptions(numerical_transform=transform, min_category_count=min_count)
    train = frame.iloc[: len(frame) // 2]
    preprocessor = Preprocessor.fit(train, schema, options)
    new = pd.concat([frame, frame.iloc[:1].assign(**{c: "UNSEEN" for c in frame if c[0] == "c"})])
    encoded = preprocessor.transform(new)
    n_numerical = sum(role == "numerical" for role in roles.values())
    assert encoded.numerical.shape == encoded.indicators.shape == (len(new), n_numerical)
    assert encoded.categorical.shape == (len(new), len(roles) - n_numerical)
    assert torch.isfinite(encoded.numerical).all()
    assert set(encoded.indicators.unique().tolist()) <= {0.0, 1.0}
    sizes = torch.tensor(preprocessor.vocabulary_sizes)
    assert (encoded.categorical >= 0).all() and (encoded.categorical < sizes).all()
    assert (encoded.categorical[-1] == RESERVED_INDEX).all()  # the unseen row
    assert_same(encoded, round_trip(preprocessor).transform(new))
