"""Set resolution: grouping, ordering, subsampling, refusals, masking invariance, a short fit,
and the per-group aggregate baseline."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from mrta.config import ModelConfig, TrainConfig
from mrta.data.preprocessing import PreprocessingOptions, Preprocessor
from mrta.data.schema import infer_schema
from mrta.data.sets import SetBatch, make_sets, set_baseline_features
from mrta.nn.set_model import SetAttentionModel, masked_mean_max
from mrta.training.inference import predict_logits
from mrta.training.loop import fit

TINY = ModelConfig(d_token=4, d_model=16, num_layers=2, num_heads=2, dropout=0.1)
KEEP_LEVELS = PreprocessingOptions(min_category_count=1)


def hand_table() -> pd.DataFrame:
    """Three groups, interleaved rows, one row without a key."""
    return pd.DataFrame(
        {
            "g": ["b", "a", "b", "c", "a", "b", None],
            "day": [3.5, 2.5, 1.5, 9.5, np.nan, 2.5, 0.5],
            "amount": [1.5, 2.0, 3.0, 4.0, 5.0, np.nan, 7.0],
            "kind": ["x", "y", "y", "x", "x", "z", "y"],
            "label": ["no", "yes", "no", "yes", "yes", "no", "no"],
        }
    )


def prepared(frame, target="label", roles=None, options=KEEP_LEVELS):
    schema = infer_schema(frame, target, roles=roles or {"g": "ignored"})
    return schema, Preprocessor.fit(frame, schema, options)


def sets_of(frame, **kwargs) -> SetBatch:
    schema, preprocessor = prepared(frame)
    return make_sets(frame, schema, preprocessor, "g", **kwargs)


def planted_table(n_groups: int, seed: int) -> pd.DataFrame:
    """Sets of 3–12 rows; the label: some row has kind "x" with an amount above 0.5."""
    rng = np.random.default_rng(seed)
    parts = []
    for group in range(n_groups):
        size = int(rng.integers(3, 13))
        kind = rng.choice(["w", "x", "y", "z"], size=size, p=[0.3, 0.2, 0.25, 0.25])
        amount = rng.normal(size=size)
        label = int(np.any((kind == "x") & (amount > 0.5)))
        parts.append(
            pd.DataFrame(
                {
                    "g": f"G{group:04d}",
                    "kind": kind,
                    "amount": amount,
                    "noise": rng.normal(size=size),
                    "label": label,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


# --- grouping -------------------------------------------------------------------------------


def test_groups_become_padded_sets_in_order_of_first_appearance():
    sets = sets_of(hand_table())
    assert sets.keys == ("b", "a", "c")
    assert sets.numerical.shape == (3, 3, 2) and sets.numerical.dtype == torch.float32
    assert sets.indicators.shape == (3, 3, 2)
    assert sets.categorical.shape == (3, 3, 1) and sets.categorical.dtype == torch.int64
    assert sets.mask.tolist() == [[True] * 3, [True, True, False], [True, False, False]]
    assert sets.row_index.tolist() == [[0, 2, 5], [1, 4, -1], [3, -1, -1]]
    assert sets.target.tolist() == [0, 1, 1]  # class indices of "no", "yes"
    assert sets.set_sizes.tolist() == [3, 2, 1]
    padding = ~sets.mask
    assert (sets.numerical[padding] == 0).all() and (sets.categorical[padding] == 0).all()
    assert sets.indicators[0, 2, 1] == 1  # row 5's missing amount
    assert any("1 row(s) have no value in 'g'" in note for note in sets.notes)


def test_rows_follow_order_by_with_missing_values_last():
    assert sets_of(hand_table(), order_by="day").row_index.tolist() == [
        [2, 5, 0],
        [1, 4, -1],
        [3, -1, -1],
    ]


def test_large_groups_are_subsampled_reproducibly_in_their_order():
    frame = pd.DataFrame(
        {
            "g": ["a"] * 30 + ["b"] * 4 + ["c"] * 12,
            "t": np.arange(46.0) + 0.5,
            "label": [0.5] * 30 + [1.5] * 4 + [2.5] * 12,
        }
    )
    schema, preprocessor = prepared(frame)

    def rows(seed):
        sets = make_sets(frame, schema, preprocessor, "g", max_set_size=10, seed=seed)
        return sets.row_index.tolist(), sets.notes

    first, notes = rows(0)
    assert first == rows(0)[0] and first != rows(1)[0]
    assert notes == ("2 group(s) have more than 10 rows; each keeps a random 10 of them (seed 0).",)
    a, b, c = (np.array(r) for r in first)
    assert len(a) == 10 and set(a) <= set(range(30)) and np.all(np.diff(a) > 0)
    assert b.tolist() == [30, 31, 32, 33] + [-1] * 6
    assert set(c) <= set(range(34, 46)) and np.all(np.diff(c) > 0)
    # a group keeps the same rows whichever other groups the table holds
    alone = make_sets(frame[frame["g"] == "c"], schema, preprocessor, "g", max_set_size=10)
    assert (alone.row_index[0] + 34).tolist() == c.tolist()


def test_groups_whose_target_differs_are_refused_with_examples():
    frame = hand_table()
    frame.loc[2, "label"] = "yes"  # group "b": no, yes, no
    frame.loc[3, "g"] = "a"  # group "a": yes, yes, yes
    frame.loc[6, "g"] = "c"
    frame.loc[6, "label"] = "no"  # group "c": no only; fine
    frame.loc[1, "label"] = "no"  # group "a": no, yes, yes
    with pytest.raises(ValueError, match=r"2 of the 3 groups of 'g' have several values") as err:
        sets_of(frame)
    assert "'b' ('no', 'yes')" in str(err.value) and "'a' ('no', 'yes')" in str(err.value)


def test_groups_without_any_target_are_left_out_and_rows_without_one_are_kept():
    frame = hand_table()
    frame.loc[3, "label"] = None  # "c" has no target at all
    frame.loc[0, "label"] = None  # "b" still has two rows saying "no"
    sets = sets_of(frame)
    assert sets.keys == ("b", "a") and sets.target.tolist() == [0, 1]
    assert sets.row_index[0].tolist() == [0, 2, 5]
    assert any("1 group(s) have no value in the target" in note for note in sets.notes)


def test_without_a_target_every_group_is_a_set():
    frame = hand_table()
    schema, preprocessor = prepared(frame)
    sets = make_sets(frame.drop(columns="label"), schema, preprocessor, "g")
    assert sets.target is None and sets.keys == ("b", "a", "c")


def test_the_group_key_must_be_an_ignored_column():
    frame = hand_table()
    schema, preprocessor = prepared(frame, roles={"g": "categorical"})
    with pytest.raises(ValueError, match=r"'g' is a categorical feature.*set its role to ignored"):
        make_sets(frame, schema, preprocessor, "g")
    with pytest.raises(ValueError, match="'label' is the target"):
        make_sets(frame, schema, preprocessor, "label")
    with pytest.raises(ValueError, match="no column named 'nope' to group"):
        make_sets(frame, schema, preprocessor, "nope")
    with pytest.raises(ValueError, match="max_set_size must be a positive integer"):
        sets_of(frame, max_set_size=0)


def test_select_pads_a_minibatch_to_its_longest_set():
    batch = sets_of(hand_table()).select([2, 1])
    assert batch.keys == ("c", "a") and batch.mask.shape == (2, 2)
    assert batch.row_index.tolist() == [[3, -1], [1, 4]] and batch.target.tolist() == [1, 1]


# --- model ----------------------------------------------------------------------------------


def set_inputs(sets=4, rows=6, n_num=3, n_cat=2, vocabulary=5):
    mask = torch.arange(rows) < torch.randint(1, rows + 1, (sets, 1))  # (sets, rows)
    return (
        torch.randn(sets, rows, n_num),
        (torch.rand(sets, rows, n_num) < 0.2).float(),
        torch.randint(0, vocabulary, (sets, rows, n_cat)),
        mask,
    )


def set_model(task="binary", n_num=3, n_cat=2, n_classes=None, config=TINY, bind_rows=False):
    return SetAttentionModel(
        dataclasses.replace(config, bind_rows=bind_rows),
        task=task,
        numerical_tokens=[f"n{j}" for j in range(n_num)],
        categorical_tokens=[f"c{j}" for j in range(n_cat)],
        vocabulary_sizes=[5] * n_cat,
        n_classes=n_classes,
    )


@pytest.mark.parametrize(
    ("task", "n_classes", "width"),
    [("binary", None, 1), ("multiclass", 4, 4), ("regression", None, 1)],
)
def test_logits_per_set_for_every_task(task, n_classes, width):
    model = set_model(task, n_classes=n_classes)
    assert model(*set_inputs()).shape == (4, width)
    num, cat = model.row_features(*set_inputs())
    assert num.shape == (4, 6, 6) and cat.shape == (4, 6, 2 * TINY.d_token)  # the seed's shapes


def test_bind_rows_gives_the_numerical_stream_each_rows_categories():
    model = set_model(bind_rows=True)
    inputs = set_inputs()
    num, cat = model.row_features(*inputs)
    assert num.shape == (4, 6, 6 + 2 * TINY.d_token)
    torch.testing.assert_close(num[..., 6:], cat)
    assert model(*inputs).shape == (4, 1)
    assert SetAttentionModel.from_dict(model.to_dict()).config.bind_rows
    assert set_model(bind_rows=False).row_features(*inputs)[0].shape == (4, 6, 6)


@pytest.mark.parametrize("bind_rows", [False, True])
@pytest.mark.parametrize(("n_num", "n_cat", "maps"), [(3, 0, ["num_num"]), (0, 2, ["cat_cat"])])
def test_one_stream_tables_work(n_num, n_cat, maps, bind_rows):
    model = set_model(n_num=n_num, n_cat=n_cat, bind_rows=bind_rows)
    assert model.map_ids == maps
    logits = model(*set_inputs(n_num=n_num, n_cat=n_cat))
    assert logits.shape == (4, 1)
    logits.sum().backward()


@pytest.mark.parametrize("bind_rows", [False, True])
def test_padding_neither_gives_nor_receives_attention(bind_rows):
    model = set_model(bind_rows=bind_rows).eval()
    numerical, indicators, categorical, mask = set_inputs(sets=5, rows=7)
    before = model(numerical, indicators, categorical, mask)
    extra = 4  # padded rows with arbitrary values: huge numbers, NaN, codes past the vocabulary
    padded = (
        torch.cat([numerical, torch.randn(5, extra, 3) * 1e6], dim=1),
        torch.cat([indicators, torch.full((5, extra, 3), float("nan"))], dim=1),
        torch.cat([categorical, torch.randint(100, 1000, (5, extra, 2))], dim=1),
        torch.cat([mask, torch.zeros(5, extra, dtype=torch.bool)], dim=1),
    )
    # Also scramble the padding already inside the sets.
    padded[0][~padded[3]] = torch.randn(int((~padded[3]).sum()), 3) * 1e3
    after = model(*padded)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=0)
    size = int(mask[0].sum())  # the first set without any padding
    alone = model(
        numerical[:1, :size], indicators[:1, :size], categorical[:1, :size], mask[:1, :size]
    )
    torch.testing.assert_close(alone, before[:1], atol=1e-5, rtol=0)


def test_masked_pooling_ignores_padding():
    x = torch.tensor([[[1.0, -2.0], [3.0, 4.0], [100.0, 100.0]]])  # (1, 3, 2)
    mask = torch.tensor([[True, True, False]])
    assert masked_mean_max(x, mask).tolist() == [[2.0, 1.0, 3.0, 4.0]]


def test_bad_inputs_are_refused_with_the_expected_shape():
    model = set_model()
    numerical, indicators, categorical, mask = set_inputs()
    with pytest.raises(ValueError, match=r"categorical must have shape \(sets, rows, 2\)"):
        model(numerical, indicators, categorical[..., :1], mask)
    empty = mask.clone()
    empty[0] = False
    with pytest.raises(ValueError, match="at least one real row"):
        model(numerical, indicators, categorical, empty)


def test_round_trips_through_the_row_models_spec():
    frame = planted_table(20, seed=0)
    _, preprocessor = prepared(frame)
    model = SetAttentionModel.from_dict(preprocessor.model_spec(TINY))
    assert SetAttentionModel.from_dict(model.to_dict()).to_dict() == model.to_dict()
    assert model.categorical_tokens == ["kind"] and model.numerical_tokens == ["amount", "noise"]


@pytest.mark.parametrize("bind_rows", [False, True])
@pytest.mark.slow
def test_a_short_fit_learns_a_rule_across_rows(bind_rows):
    torch.set_num_threads(1)
    frame = planted_table(400, seed=1)
    train_keys = {f"G{group:04d}" for group in range(300)}
    train = frame[frame["g"].isin(train_keys)]
    schema, preprocessor = prepared(train, options=PreprocessingOptions())
    train_sets = make_sets(train, schema, preprocessor, "g")
    test_sets = make_sets(frame[~frame["g"].isin(train_keys)], schema, preprocessor, "g")
    config = ModelConfig(8, 32, 1, 4, 0.0, bind_rows=bind_rows)
    torch.manual_seed(0)
    model = SetAttentionModel.from_dict(preprocessor.model_spec(config))
    result = fit(
        model,
        train_sets.select(range(250)),
        train_sets.select(range(250, 300)),
        TrainConfig(time_budget=None, max_epochs=20, batch_size=64, learning_rate=3e-3),
    )
    assert result.batch_size == 63  # 250 sets in at least four steps an epoch
    logits = predict_logits(model, test_sets)[:, 0]
    loss_fn = torch.nn.BCEWithLogitsLoss()
    y = test_sets.target.float()
    prior = train_sets.target.float().mean()
    trivial = loss_fn(torch.logit(prior).expand_as(y), y)
    assert loss_fn(logits, y) < 0.8 * trivial


# --- baseline -------------------------------------------------------------------------------


def test_baseline_features_aggregate_each_group():
    frame = hand_table()
    schema, _ = prepared(frame)
    features = set_baseline_features(frame, schema, "g")
    assert list(features.index) == ["b", "a", "c"] and features.index.name == "g"
    assert features.shape == (3, 1 + 4 * 2 + 4)  # count, 4 stats × 2 numbers, 3 levels + other
    b = features.loc["b"]  # rows 0, 2, 5: day 3.5, 1.5, 2.5; amount 1.5, 3.0, NaN; x, y, z
    assert b["count"] == 3
    assert b["day mean"] == pytest.approx(2.5) and b["day std"] == pytest.approx(np.sqrt(2 / 3))
    assert (b["amount min"], b["amount max"], b["amount mean"]) == (1.5, 3.0, 2.25)
    assert b["amount std"] == pytest.approx(0.75)
    assert b[["kind=x", "kind=y", "kind=z", "kind=(other)"]].tolist() == pytest.approx(
        [1 / 3] * 3 + [0]
    )
    assert features.loc["c", "day std"] == 0  # one row


def test_baseline_features_use_given_levels_on_every_split():
    frame = hand_table()
    schema, preprocessor = prepared(frame)
    features = set_baseline_features(frame.iloc[:2], schema, "g", levels=preprocessor.vocabularies)
    assert [name for name in features.columns if name.startswith("kind=")] == [
        *(f"kind={level}" for level in preprocessor.vocabularies[0]),
        "kind=(other)",
    ]
    with pytest.raises(ValueError, match="one sequence of levels per categorical column"):
        set_baseline_features(frame, schema, "g", levels=[])
