"""Aggregates per cohort against numpy on kept weights; differences; head statistics; ablation;
permutation importance; sanity checks."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from tiny_models import model_for, random_inputs, tiny_model

from mrta import AttentionRecorder
from mrta.analysis.atlas import AttentionAtlas
from mrta.analysis.checks import (
    AblationResult,
    MapAblationResult,
    ablate_heads,
    ablate_maps,
    map_divergence,
    mean_head_outputs,
    removed_heads,
    rollout_agreement,
    sanity_checks,
)
from mrta.analysis.cohorts import ALL_ROWS, CohortSpec
from mrta.analysis.collect import collect_attention
from mrta.analysis.difference import CohortMap, cohort_difference
from mrta.analysis.heads import head_table, map_labels
from mrta.analysis.labels import format_value, token_frame, value_labels
from mrta.analysis.permutation import _shuffle_column, permutation_importance
from mrta.analysis.rollout import rollout_importance
from mrta.analysis.rows import row_attention
from mrta.analysis.scoring import bounded_sample, score_sample
from mrta.analysis.stats import (
    TRIVIAL_MAP,
    UNIFORM_MAP,
    js_divergence,
    map_label,
    normalized_entropy,
)
from mrta.data.preprocessing import Preprocessor
from mrta.data.schema import infer_schema
from mrta.jsonable import json_ready

ROWS = 105
CLASSES = ("Adelie", "Chinstrap", "Gentoo")


def cross_entropy(logits, y):
    return F.cross_entropy(logits, y)


def accuracy(logits, y):
    return (logits.argmax(-1) == y).float().mean()


@pytest.fixture
def model():
    return tiny_model(["bill", "flipper", "mass"], ["island", "sex"], [4, 4])


@pytest.fixture
def data():
    num, ind, cat = random_inputs(ROWS, 3, 2)
    y = torch.randint(0, 3, (ROWS,), generator=torch.Generator().manual_seed(1))
    return num, ind, cat, y


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    values = rng.permutation(100).astype(float)
    bill = np.concatenate([values, [np.nan] * 5])  # deciles of 0..99: value // 10 + 1
    island = ["a"] * 50 + ["b"] * 30 + ["c"] * 15 + ["d"] * 6 + ["e"] * 2 + [None] * 2
    return pd.DataFrame({"bill": bill, "island": rng.permutation(np.array(island, dtype=object))})


def kept_weights(model, num, ind, cat):
    """Every row's maps by (layer, map id), and the logits, from one keep-mode pass."""
    with AttentionRecorder(model, mode="keep") as rec, torch.no_grad():
        logits = model.eval()(num, ind, cat)
    return {key: rec.weights(*key).double().numpy() for key in rec.keys}, logits


def expected_masks(frame, y, logits):
    pred = logits.argmax(-1).numpy()
    bill = frame["bill"].to_numpy()
    masks = {ALL_ROWS: np.ones(ROWS, bool)}
    for c, name in enumerate(CLASSES):
        masks[("true", name)] = y.numpy() == c
        masks[("pred", name)] = pred == c
    masks[("correct", True)] = pred == y.numpy()
    masks[("correct", False)] = pred != y.numpy()
    for d in range(1, 11):
        masks[("decile", "bill", d)] = np.floor(bill / 10) + 1 == d
    masks[("decile", "bill", None)] = np.isnan(bill)
    island = frame["island"].to_numpy()
    masks[("level", "island", "a")] = island == "a"
    masks[("level", "island", "b")] = island == "b"
    masks[("level", "island", "other")] = np.isin(island, ["c", "d", "e"])
    masks[("level", "island", None)] = pd.isna(island)
    masks[("filter", "heavy")] = np.arange(ROWS) % 3 == 0
    return masks


def test_every_cohort_matches_numpy_on_kept_weights(model, data, frame):
    num, ind, cat, y = data
    spec = CohortSpec(
        class_labels=CLASSES,
        deciles=("bill",),
        levels=("island",),
        top_levels=2,
        filters={"heavy": np.arange(ROWS) % 3 == 0},
    )
    atlas = collect_attention(model, (num, ind, cat), frame, spec, batch_size=16, targets=y)
    weights, logits = kept_weights(model, num, ind, cat)
    masks = expected_masks(frame, y, logits)
    assert atlas.cohorts[0] == ALL_ROWS
    assert set(atlas.cohorts) == {key for key, mask in masks.items() if mask.any()}
    layers = [{k[1]: w for k, w in weights.items() if k[0] == i} for i in range(2)]
    per_row_importance = rollout_importance(layers, 3, 2)  # (N, T)
    for key, mask in masks.items():
        if not mask.any():
            continue
        i = atlas.index(key)
        assert atlas.counts[i] == mask.sum(), key
        for map_key, w in weights.items():
            np.testing.assert_allclose(atlas.means[map_key][i], w[mask].mean(0), atol=1e-6)
            np.testing.assert_allclose(atlas.stds[map_key][i], w[mask].std(0), atol=1e-5)
            entropy = normalized_entropy(w[mask]).mean(-1).mean(0)  # (H,)
            np.testing.assert_allclose(atlas.entropy[map_key][i], entropy, atol=1e-5)
        np.testing.assert_allclose(
            atlas.rollout_mean[i], per_row_importance[mask].mean(0), atol=1e-6
        )
        np.testing.assert_allclose(atlas.rollout_std[i], per_row_importance[mask].std(0), atol=1e-5)
    labels = dict(zip(atlas.cohorts, atlas.cohort_labels, strict=True))
    assert labels[("decile", "bill", 3)] == "bill: decile 3 (20 to 29), whole table"
    assert labels[("level", "island", "other")] == "island: 3 other levels, whole table"
    assert atlas.token_names[0] == {"num": ("bill", "flipper", "mass"), "cat": ("island", "sex")}
    assert atlas.layer_names == ("layers.0", "layers.1")


def test_collect_restores_the_model_and_leaves_no_hooks(model, data):
    num, ind, cat, _ = data
    model.train()
    collect_attention(model, (num, ind, cat))
    assert model.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(
        b.record_weights == 0 for layer in model.layers for b in layer.attention_blocks().values()
    )


def test_importances_sum_to_one_and_mean_map_rollout_differs_slightly(model, data):
    num, ind, cat, y = data
    atlas = collect_attention(model, (num, ind, cat), targets=y)
    per_row, mean_map = atlas.importance(), atlas.mean_map_importance()
    assert list(per_row) == ["bill", "flipper", "mass", "island", "sex"]
    assert math.isclose(sum(per_row.values()), 1.0, rel_tol=1e-5)
    assert math.isclose(sum(mean_map.values()), 1.0, rel_tol=1e-6)
    assert max(abs(per_row[k] - mean_map[k]) for k in per_row) < 0.05


def test_binary_regression_and_one_stream_models():
    num, ind, cat = random_inputs(20, 2, 1)
    binary = tiny_model(["a", "b"], ["c"], task="binary")
    y = torch.randint(0, 2, (20,))
    atlas = collect_attention(binary, (num, ind, cat), targets=y, batch_size=8)
    with torch.no_grad():
        pred = (binary(num, ind, cat)[:, 0] > 0).numpy()
    assert atlas.counts[atlas.index(("pred", "1"))] == pred.sum()
    regression = tiny_model(["a", "b"], ["c"], task="regression")
    atlas = collect_attention(regression, (num, ind, cat), targets=torch.randn(20))
    assert atlas.cohorts == (ALL_ROWS,)
    numeric_only = tiny_model(["a", "b"], [], task="binary")
    atlas = collect_attention(numeric_only, (num, ind, cat[:, :0]), targets=y)
    assert atlas.map_keys == [(0, "num_num"), (1, "num_num")]
    assert atlas.token_names[0] == {"num": ("a", "b"), "cat": ()}
    assert math.isclose(sum(atlas.importance().values()), 1.0, rel_tol=1e-5)


def test_cohort_errors_are_explained(model, data, frame):
    num, ind, cat, _ = data
    with pytest.raises(ValueError, match="need the raw rows"):
        collect_attention(model, (num, ind, cat), cohorts=CohortSpec(deciles=("bill",)))
    with pytest.raises(ValueError, match="lacks the cohort column"):
        collect_attention(model, (num, ind, cat), frame, CohortSpec(levels=("nope",)))
    with pytest.raises(ValueError, match="bool row mask"):
        collect_attention(model, (num, ind, cat), cohorts=CohortSpec(filters={"f": np.ones(3)}))
    with pytest.raises(KeyError, match="no cohort"):
        collect_attention(model, (num, ind, cat)).index(("true", "Adelie"))


def test_for_frame_picks_deciles_for_numbers_and_levels_for_the_rest(frame):
    spec = CohortSpec.for_frame(frame.assign(flag=True), class_labels=CLASSES, top_levels=3)
    assert spec.deciles == ("bill",)
    assert spec.levels == ("island", "flag")
    assert spec.top_levels == 3 and spec.class_labels == CLASSES


def test_an_encoded_table_with_its_raw_frame():
    raw = pd.read_csv("sample_data/penguins.csv")
    schema = infer_schema(raw, "species")
    preprocessor = Preprocessor.fit(raw, schema)
    table = preprocessor.transform(raw)
    model = model_for(preprocessor)
    frame = token_frame(schema, raw)
    assert list(frame.columns) == [*table.numerical_tokens, *table.categorical_tokens]
    spec = CohortSpec.for_frame(frame, class_labels=schema.class_labels)
    atlas = collect_attention(model, table, frame, spec, batch_size=64)
    counts = dict(zip(atlas.cohorts, atlas.counts, strict=True))
    assert counts[("true", "Adelie")] == (raw["species"] == "Adelie").sum()
    assert counts[("level", "island", "Biscoe")] == (raw["island"] == "Biscoe").sum()
    assert counts[("decile", "bill_length_mm", None)] == raw["bill_length_mm"].isna().sum()
    assert counts[("level", "sex", None)] == raw["sex"].isna().sum()
    assert (
        sum(counts[("decile", "body_mass_g", d)] for d in range(1, 11))
        == raw["body_mass_g"].notna().sum()
    )


def test_a_real_level_called_other_keeps_its_name(model):
    num, ind, cat = random_inputs(12, 3, 2)
    frame = pd.DataFrame({"island": ["other"] * 6 + ["x"] * 4 + ["y", "z"]})
    atlas = collect_attention(
        model, (num, ind, cat), frame, CohortSpec(classes=False, levels=("island",), top_levels=2)
    )
    assert atlas.counts[atlas.index(("level", "island", "other"))] == 6
    assert atlas.counts[atlas.index(("level", "island", "(other)"))] == 2


def test_row_attention_labels_tokens_with_values(model, data):
    num, ind, cat, _ = data
    frame = pd.DataFrame(
        {"bill": [52000.0] * ROWS, "flipper": [np.nan] * ROWS, "island": ["north"] * ROWS}
    )
    row = row_attention(model, (num, ind, cat), 4, frame)
    assert row.labels == {
        "num": ["bill=52,000", "flipper=missing", "mass"],
        "cat": ["island=north", "sex"],
    }
    weights, _ = kept_weights(model, num, ind, cat)
    for key, w in weights.items():
        np.testing.assert_allclose(row.atlas.means[key][0], w[4], atol=1e-6)
        assert not row.atlas.stds[key].any()
    assert row.atlas.counts.tolist() == [1]


@pytest.mark.parametrize(
    "value, text",
    [
        (52000, "52,000"),
        (52000.0, "52,000"),
        (0.123456, "0.1235"),
        (1234.5678, "1,235"),
        (-2.5, "-2.5"),
        (1e-7, "1e-07"),
        (float("nan"), "missing"),
        (np.float32("nan"), "missing"),
        (None, "missing"),
        ("north", "north"),
        (True, "True"),
    ],
)
def test_format_value(value, text):
    assert format_value(value) == text


def test_value_labels_keep_bare_names_absent_from_the_row():
    row = pd.Series({"income": 52000.0, "region": "north"})
    assert value_labels(row, ["income", "region", "age"]) == [
        "income=52,000",
        "region=north",
        "age",
    ]


# -- differences -----------------------------------------------------------------------------
def test_difference_and_its_standard_error_match_numpy():
    rng = np.random.default_rng(0)
    shift = np.array([[0.5, 0.0, 0.5], [0.0, 0.5, 0.0]])  # cells without a shift are noise
    xa, xb = rng.random((30, 2, 3)), rng.random((12, 2, 3)) + shift
    a = CohortMap(xa.mean(0), xa.std(0), 30)
    b = CohortMap(xb.mean(0), xb.std(0), 12)
    result = cohort_difference(a, b, q=0.05)
    se = np.sqrt(xa.var(0, ddof=1) / 30 + xb.var(0, ddof=1) / 12)
    np.testing.assert_allclose(result.diff, xa.mean(0) - xb.mean(0))
    np.testing.assert_allclose(result.se, se)
    np.testing.assert_array_equal(result.muted, ~result.significant)
    np.testing.assert_array_equal(result.muted, shift == 0)


def test_a_cohort_of_one_row_is_not_tested_and_mutes_nothing():
    one = CohortMap(np.ones((2, 2)), np.zeros((2, 2)), 1)
    many = CohortMap(np.zeros((2, 2)), np.full((2, 2), 0.1), 50)
    result = cohort_difference(one, many)
    assert not result.tested and "at least 2" in result.note
    assert np.isinf(result.se).all() and not result.muted.any() and result.passing == 0


def test_atlas_differences_by_head_and_head_mean(model, data):
    num, ind, cat, y = data
    atlas = collect_attention(
        model, (num, ind, cat), targets=y, cohorts=CohortSpec(class_labels=CLASSES)
    )
    a, b = ("correct", True), ("correct", False)
    full = atlas.difference(0, "cat_num", a, b)
    assert full.diff.shape == (2, 2, 3)
    head = atlas.difference(0, "cat_num", a, b, head=1)
    np.testing.assert_allclose(head.diff, full.diff[1])
    mean = atlas.cohort_map(0, "cat_num", a, head="mean")
    assert mean.mean.shape == mean.std.shape == (2, 3)
    np.testing.assert_allclose(mean.mean.sum(-1), 1.0, rtol=1e-5)
    # the spread of an average is at most the average spread (heads co-vary across rows)
    heads = atlas.cohort_map(0, "cat_num", a)
    assert (mean.std <= heads.std.mean(axis=0) + 1e-6).all()


# -- head statistics -------------------------------------------------------------------------
def test_entropy_of_uniform_one_hot_and_single_key_rows():
    np.testing.assert_allclose(normalized_entropy(np.full((2, 4), 0.25)), [1.0, 1.0])
    np.testing.assert_allclose(normalized_entropy(np.eye(3)), [0.0, 0.0, 0.0])
    assert np.isnan(normalized_entropy(np.ones((2, 1)))).all()
    weights = torch.rand(3, 2, 5).softmax(-1)
    np.testing.assert_allclose(
        normalized_entropy(weights).numpy(), normalized_entropy(weights.numpy()), atol=1e-6
    )
    assert torch.isnan(normalized_entropy(torch.ones(2, 1))).all()


def test_js_divergence_bounds():
    p = np.array([[0.2, 0.8], [1.0, 0.0]])
    np.testing.assert_allclose(js_divergence(p, p), [0.0, 0.0], atol=1e-12)
    assert js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)
    q = np.array([[0.5, 0.5], [0.3, 0.7]])
    np.testing.assert_allclose(js_divergence(p, q), js_divergence(q, p))
    assert ((js_divergence(p, q) > 0) & (js_divergence(p, q) < 1)).all()


def hand_atlas(second_head):
    mean = np.array([[[0.5, 0.5], [0.5, 0.5]], second_head])[None].astype(np.float32)
    return AttentionAtlas(
        layer_names=("first",),
        token_names=({"num": ("a", "b"), "cat": ()},),
        cohorts=(ALL_ROWS,),
        cohort_labels=("all rows",),
        counts=np.array([10]),
        means={(0, "num_num"): mean},
        stds={(0, "num_num"): np.zeros_like(mean)},
        head_mean_stds={(0, "num_num"): np.zeros_like(mean[:, 0])},
        entropy={(0, "num_num"): np.array([[0.9, 0.1]], dtype=np.float32)},
        rollout_mean=np.array([[0.5, 0.5]], dtype=np.float32),
        rollout_std=np.zeros((1, 2), dtype=np.float32),
    )


def test_head_table_from_hand_built_maps():
    atlas = hand_atlas([[0.0, 1.0], [0.0, 1.0]])
    reference = hand_atlas([[0.5, 0.5], [0.5, 0.5]])
    rows = head_table(atlas, reference=reference)
    assert [(r.layer_name, r.map_id, r.head) for r in rows] == [
        ("first", "num_num", 0),
        ("first", "num_num", 1),
    ]
    uniform, focused = rows
    assert uniform.mean_map_entropy == pytest.approx(1.0)
    assert focused.mean_map_entropy == pytest.approx(0.0)
    assert (uniform.entropy, focused.entropy) == pytest.approx((0.9, 0.1))
    assert (focused.max_weight, focused.max_query, focused.max_key) == (1.0, "a", "b")
    assert uniform.divergence == pytest.approx(0.0)
    assert focused.divergence == pytest.approx(
        js_divergence(np.array([0.0, 1.0]), np.array([0.5, 0.5]))
    )
    assert uniform.loss_delta is None


def test_map_labels_uniform_and_trivial_maps():
    assert map_label(np.full((3, 4), 0.25)) == UNIFORM_MAP
    assert map_label(np.ones((2, 3, 1))) == TRIVIAL_MAP, "a single key: trivial whatever it shows"
    # within 0.01 of the uniform entropy on every row, however the colour scale shows it
    near = np.array([[0.27, 0.25, 0.24, 0.24], [0.25, 0.25, 0.25, 0.25]])
    assert 1 - normalized_entropy(near).min() < 0.01 and map_label(near) == UNIFORM_MAP
    one_row_off = np.array([[0.25] * 4, [0.4, 0.2, 0.2, 0.2]])
    assert 1 - normalized_entropy(one_row_off)[1] > 0.01 and map_label(one_row_off) is None
    heads = np.stack([np.full((2, 2), 0.5), [[0.9, 0.1], [0.5, 0.5]]])
    assert map_label(heads) is None, "one head that chooses makes the map not uniform"
    assert map_label(heads[:1]) == UNIFORM_MAP
    assert map_labels(hand_atlas([[0.5, 0.5], [0.5, 0.5]])) == {(0, "num_num"): UNIFORM_MAP}
    assert map_labels(hand_atlas([[0.0, 1.0], [0.5, 0.5]])) == {(0, "num_num"): None}


@pytest.mark.parametrize(
    ("mean", "message"),
    [
        (np.ones(3), "shape"),
        (np.ones((2, 0)), "shape"),
        (np.array([[0.5, np.nan]]), "finite, non-negative"),
        (np.array([[1.5, -0.5]]), "finite, non-negative"),
    ],
)
def test_map_label_names_bad_maps(mean, message):
    with pytest.raises(ValueError, match=message):
        map_label(mean)
    with pytest.raises(ValueError, match="tolerance"):
        map_label(np.full((1, 2), 0.5), tolerance=1.0)


# -- interventions ---------------------------------------------------------------------------
def zero_head_columns(model, layer, map_id, head):
    block = model.layers[layer].attention_blocks()[map_id]
    with torch.no_grad():
        block.out_proj.weight[:, head * block.head_dim : (head + 1) * block.head_dim] = 0.0


def test_ablation_equals_zeroing_the_heads_output_columns(model, data):
    num, ind, cat, y = data
    result = ablate_heads(model, (num, ind, cat), y, loss_fn=cross_entropy, metric_fn=accuracy)
    assert len(result.heads) == 2 * 4 * 2 and result.rows == ROWS
    assert all(
        b.head_mask is None for layer in model.layers for b in layer.attention_blocks().values()
    )
    sample = bounded_sample((num, ind, cat), y)
    for layer, map_id, head in [(0, "num_num", 1), (1, "cat_num", 0)]:
        manual = tiny_model(["bill", "flipper", "mass"], ["island", "sex"], [4, 4])
        manual.load_state_dict(model.state_dict())
        zero_head_columns(manual, layer, map_id, head)
        loss, metric = score_sample(manual, sample, cross_entropy, accuracy)
        effect = result.effect(layer, map_id, head)
        assert effect.loss == pytest.approx(loss, abs=1e-6)
        assert effect.loss_delta == pytest.approx(loss - result.baseline_loss, abs=1e-6)
        assert effect.metric == pytest.approx(metric)


def test_ablating_a_head_with_zero_output_columns_changes_nothing(model, data):
    num, ind, cat, y = data
    zero_head_columns(model, 0, "cat_cat", 1)
    calls = []
    result = ablate_heads(
        model, (num, ind, cat), y, loss_fn=cross_entropy, progress=lambda *a: calls.append(a)
    )
    assert result.effect(0, "cat_cat", 1).loss_delta == 0.0
    assert result.effect(0, "cat_cat", 0).loss_delta != 0.0
    assert result.effect(0, "cat_cat", 0).metric_delta is None
    assert calls[-1][:2] == (16, 16) and len(calls) == 16


def test_an_existing_head_mask_is_kept_and_restored(model, data):
    num, ind, cat, y = data
    block = model.layers[0].num_num
    block.head_mask = torch.tensor([0.0, 1.0])
    result = ablate_heads(model, (num, ind, cat), y, loss_fn=cross_entropy)
    assert torch.equal(block.head_mask, torch.tensor([0.0, 1.0]))
    assert result.effect(0, "num_num", 0).loss_delta == 0.0  # already off


def small_data(rows=24):
    num, ind, cat = random_inputs(rows, 3, 2, seed=2)
    y = torch.randint(0, 3, (rows,), generator=torch.Generator().manual_seed(3))
    return (num, ind, cat), y


def out_proj_inputs(model, layer, map_id, sample):
    """The heads' outputs of one block on every row, by a forward hook: ``(n, Tq, d_model)``."""
    seen = []
    block = model.layers[layer].attention_blocks()[map_id]
    handle = block.out_proj.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    try:
        score_sample(model, sample, cross_entropy)
    finally:
        handle.remove()
    return torch.cat(seen).double()


def replacing_heads(model, layer, map_id, heads, value):
    """A pre-hook that writes `value` over `heads`' columns of the block's output projection's
    input: the hand-made intervention that :func:`ablate_maps` and mean-ablation must equal."""
    block = model.layers[layer].attention_blocks()[map_id]
    d = block.head_dim

    def replace(_module, args):
        x = args[0].clone()
        for head in heads:
            x[..., head * d : (head + 1) * d] = value[..., head * d : (head + 1) * d].to(x)
        return (x,)

    return block.out_proj.register_forward_pre_hook(replace)


def test_zeroing_a_whole_map_equals_masking_all_its_heads(model):
    inputs, y = small_data()
    calls = []
    result = ablate_maps(
        model,
        inputs,
        y,
        loss_fn=cross_entropy,
        metric_fn=accuracy,
        progress=lambda *a: calls.append(a),
    )
    assert result.method == "zero" and result.rows == 24 and len(result.maps) == 2 * 4
    assert calls[-1][:2] == (8, 8) and "zeroing layer 1 num_cat" in calls[-1][2]
    sample = bounded_sample(inputs, y)
    assert result.baseline_loss == pytest.approx(score_sample(model, sample, cross_entropy)[0])
    for layer, map_id in [(0, "num_num"), (1, "cat_num")]:
        block = model.layers[layer].attention_blocks()[map_id]
        block.head_mask = torch.zeros(block.num_heads)
        masked = score_sample(model, sample, cross_entropy, accuracy)
        block.head_mask = None
        handle = replacing_heads(model, layer, map_id, [0, 1], torch.zeros(8))
        by_hand = score_sample(model, sample, cross_entropy, accuracy)
        handle.remove()
        effect = result.effect(layer, map_id)
        assert (effect.loss, effect.metric) == pytest.approx(masked, abs=1e-6)
        assert (effect.loss, effect.metric) == pytest.approx(by_hand, abs=1e-6)
        assert effect.loss_delta == pytest.approx(effect.loss - result.baseline_loss)
    assert result.effect(5, "num_num") is None
    assert all(
        b.head_mask is None and b.head_offset is None
        for layer in model.layers
        for b in layer.attention_blocks().values()
    )


def test_mean_head_outputs_average_each_head_over_the_rows(model):
    inputs, y = small_data()
    sample = bounded_sample(inputs, y)
    means = mean_head_outputs(model, sample, batch_size=10)  # three batches
    assert len(means) == 8 and means[(0, "cat_num")].shape == (2, 2, 4)  # (H, Tq = 2 cat, hd)
    for key in [(0, "num_num"), (1, "num_cat")]:
        by_hand = out_proj_inputs(model, *key, sample).mean(dim=0)  # (Tq, d_model)
        expected = by_hand.view(-1, 2, 4).transpose(0, 1).float()
        torch.testing.assert_close(means[key], expected, atol=1e-6, rtol=1e-6)


def test_mean_ablation_replaces_the_head_by_its_precomputed_mean(model):
    inputs, y = small_data()
    result = ablate_heads(
        model, inputs, y, loss_fn=cross_entropy, metric_fn=accuracy, method="mean"
    )
    assert result.method == "mean" and len(result.heads) == 16
    sample = bounded_sample(inputs, y)
    zeroed = ablate_heads(model, inputs, y, loss_fn=cross_entropy)
    for layer, map_id, head in [(0, "num_num", 1), (1, "cat_cat", 0)]:
        mean = out_proj_inputs(model, layer, map_id, sample).mean(dim=0)  # (Tq, d_model)
        handle = replacing_heads(model, layer, map_id, [head], mean)
        loss, metric = score_sample(model, sample, cross_entropy, accuracy)
        handle.remove()
        effect = result.effect(layer, map_id, head)
        assert effect.loss == pytest.approx(loss, abs=1e-5)
        assert effect.metric == pytest.approx(metric)
        zero = zeroed.effect(layer, map_id, head).loss
        assert effect.loss != pytest.approx(zero, abs=1e-6), "the mean is not zero"


def test_mean_ablating_a_whole_map_makes_its_output_the_same_for_every_row(model):
    inputs, y = small_data()
    result = ablate_maps(model, inputs, y, loss_fn=cross_entropy, method="mean")
    sample = bounded_sample(inputs, y)
    mean = out_proj_inputs(model, 1, "num_num", sample).mean(dim=0)
    handle = replacing_heads(model, 1, "num_num", [0, 1], mean)
    loss, _ = score_sample(model, sample, cross_entropy)
    outputs = []
    block = model.layers[1].num_num
    seen = block.register_forward_hook(lambda _m, _a, out: outputs.append(out[0]))
    score_sample(model, sample, cross_entropy)
    handle.remove(), seen.remove()
    assert result.effect(1, "num_num").loss == pytest.approx(loss, abs=1e-5)
    rows = torch.cat(outputs)
    torch.testing.assert_close(rows, rows[:1].expand_as(rows), atol=1e-5, rtol=1e-5)


def test_ablation_keeps_and_restores_an_existing_offset(model):
    inputs, y = small_data()
    block = model.layers[0].cat_cat
    offset = torch.full((2, 2, 4), 0.1)
    block.head_mask, block.head_offset = torch.tensor([1.0, 0.0]), offset
    result = ablate_heads(model, inputs, y, loss_fn=cross_entropy, method="mean")
    assert block.head_offset is offset and torch.equal(block.head_mask, torch.tensor([1.0, 0.0]))
    assert result.effect(0, "cat_cat", 1).loss_delta == pytest.approx(0.0, abs=1e-6), (
        "head 1 already outputs a constant, which is its mean"
    )
    zeroed = ablate_heads(model, inputs, y, loss_fn=cross_entropy).effect(0, "cat_cat", 1)
    block.head_offset = offset.clone()  # head 1 zeroed by hand, head 0 keeps its offset
    block.head_offset[1] = 0.0
    assert zeroed.loss == pytest.approx(
        score_sample(model, bounded_sample(inputs, y), cross_entropy)[0]
    )
    block.head_mask = None


def test_removed_heads_combines_with_an_existing_offset_of_any_broadcast_shape():
    block = tiny_model(["a"], ["b"]).layers[0].num_num
    previous = torch.full((1, 2, 1, 4), 0.5)
    block.head_offset = previous
    mean = torch.arange(24.0).view(2, 3, 4)
    with removed_heads(block, [0], mean):
        assert torch.equal(block.head_mask, torch.tensor([0.0, 1.0]))
        assert block.head_offset.shape == (1, 2, 3, 4)
        assert torch.equal(block.head_offset[0, 0], mean[0])
        assert (block.head_offset[0, 1] == 0.5).all()
    with removed_heads(block, [1]):
        assert torch.equal(
            block.head_offset, torch.tensor([0.5, 0.0]).view(1, 2, 1, 1).expand(1, 2, 1, 4)
        )
    assert block.head_offset is previous and block.head_mask is None


def test_ablation_results_survive_json(model):
    inputs, y = small_data(rows=6)
    maps = ablate_maps(model, inputs, y, loss_fn=cross_entropy, method="mean")
    assert MapAblationResult.from_dict(json_ready(maps)) == maps
    heads = ablate_heads(model, inputs, y, loss_fn=cross_entropy, method="mean")
    assert AblationResult.from_dict(json_ready(heads)) == heads
    old = {k: v for k, v in json_ready(heads).items() if k != "method"}
    assert AblationResult.from_dict(old).method == "zero", "results cached before methods"
    with pytest.raises(ValueError, match="method must be one of"):
        ablate_maps(model, inputs, y, loss_fn=cross_entropy, method="noise")


def test_bounded_sample_is_seeded_and_sorted(data):
    num, ind, cat, y = data
    a = bounded_sample((num, ind, cat), y, max_rows=10, seed=3)
    b = bounded_sample((num, ind, cat), y, max_rows=10, seed=3)
    assert len(a.targets) == 10 and torch.equal(a.numerical, b.numerical)
    with pytest.raises(ValueError, match="needs targets"):
        bounded_sample((num, ind, cat))


def test_permutation_of_an_unused_column_costs_nothing(model, data):
    num, ind, cat, y = data
    with torch.no_grad():
        model.tokenizer.weight[1] = 0.0  # flipper's token is its bias alone, whatever its value
        model.tokenizer.missing[1] = 0.0
    calls = []
    result = permutation_importance(
        model,
        (num, ind, cat),
        y,
        loss_fn=cross_entropy,
        metric_fn=accuracy,
        repeats=2,
        progress=lambda *a: calls.append(a),
    )
    by_name = {c.column: c for c in result.columns}
    assert list(by_name) == ["bill", "flipper", "mass", "island", "sex"]
    assert by_name["flipper"].loss_increase == 0.0 and by_name["flipper"].metric_delta == 0.0
    assert by_name["bill"].loss_increase != 0.0 and by_name["island"].stream == "cat"
    again = permutation_importance(model, (num, ind, cat), y, loss_fn=cross_entropy, repeats=2)
    assert again.loss_increases() == result.loss_increases()
    assert calls[-1][:2] == (5, 5)


def test_shuffling_moves_a_value_with_its_indicator(data):
    num, ind, cat, y = data
    sample = bounded_sample((num, ind, cat), y)
    order = torch.randperm(ROWS)
    shuffled = _shuffle_column(sample, "num", 0, order)
    assert torch.equal(shuffled.numerical[:, 0], num[order, 0])
    assert torch.equal(shuffled.indicators[:, 0], ind[order, 0])
    assert torch.equal(shuffled.numerical[:, 1:], num[:, 1:]) and torch.equal(
        shuffled.categorical, cat
    )
    assert torch.equal(_shuffle_column(sample, "cat", 1, order).categorical[:, 1], cat[order, 1])


def test_permutation_standard_errors_cover_the_shuffles_and_columns_group_tokens(model, data):
    num, ind, cat, y = data
    common = {"loss_fn": cross_entropy, "seed": 3}
    result = permutation_importance(model, (num, ind, cat), y, repeats=4, **common)
    for column in result.columns:
        assert column.loss_increase_se == pytest.approx(column.loss_increase_std / 2.0)
    assert result.standard_errors() == {c.column: c.loss_increase_se for c in result.columns}
    single = permutation_importance(model, (num, ind, cat), y, repeats=1, **common)
    assert single.standard_errors() is None and single.columns[0].loss_increase_std is None
    # two tokens of one column move with one order: as if a single token were shuffled twice
    grouped = permutation_importance(
        model,
        (num, ind, cat),
        y,
        repeats=2,
        columns={"bill+flipper": ["bill", "flipper"], "island": ["island"]},
        **common,
    )
    assert [c.column for c in grouped.columns] == ["bill+flipper", "island"]
    assert grouped.columns[0].stream == "num" and grouped.columns[1].stream == "cat"
    with pytest.raises(ValueError, match="tokens the model does not have: \\['beak'\\]"):
        permutation_importance(model, (num, ind, cat), y, columns={"b": ["beak"]}, **common)
    with pytest.raises(ValueError, match="repeats must be"):
        permutation_importance(model, (num, ind, cat), y, repeats=0, **common)


# -- sanity checks ---------------------------------------------------------------------------
def test_rollout_agreement():
    rollout = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}
    perfect = rollout_agreement(rollout, {"a": 1, "b": 2, "c": 3, "d": 9})
    assert perfect["spearman"] == pytest.approx(1.0)
    # exact: 2 of the 24 orders of 4 columns agree this well (scipy's large-sample p says 0)
    assert perfect["p_value"] == pytest.approx(2 / 24) and perfect["p_value_method"] == "exact"
    many = {f"c{i}": float(i) for i in range(10)}
    assert rollout_agreement(many, many)["p_value_method"] == "permutation"
    assert rollout_agreement(rollout, {"a": 4, "b": 3, "c": 2, "d": 1})[
        "spearman"
    ] == pytest.approx(-1.0)
    flat = rollout_agreement(rollout, dict.fromkeys(rollout, 0.0))
    assert flat == {"spearman": None, "p_value": None, "p_value_method": None, "columns": 4}
    assert rollout_agreement(rollout, {"a": 1.0, "zzz": 2.0})["columns"] == 1


def test_map_divergence_and_sanity_checks(model, data):
    num, ind, cat, y = data
    atlas = collect_attention(model, (num, ind, cat), targets=y)
    assert all(
        row["divergence"] == pytest.approx(0.0, abs=1e-6) for row in map_divergence(atlas, atlas)
    )
    untrained = tiny_model(["bill", "flipper", "mass"], ["island", "sex"], [4, 4], seed=1)
    rows = map_divergence(atlas, collect_attention(untrained, (num, ind, cat), targets=y))
    assert len(rows) == 8 and all(
        0 < row["divergence"] <= row["max_head_divergence"] <= 1 for row in rows
    )
    permutation = permutation_importance(
        model, (num, ind, cat), y, loss_fn=cross_entropy, repeats=1
    )
    checks = sanity_checks(atlas, permutation)
    assert checks["map_divergence"] is None
    assert checks["rollout_vs_permutation"]["columns"] == 5
    by_stream = checks["rollout_vs_permutation_by_stream"]
    assert {k: v["columns"] for k, v in by_stream.items()} == {"num": 3, "cat": 2}
    assert by_stream["cat"]["spearman"] is None, "two columns cannot be ranked against each other"
    increases = permutation.loss_increases()
    rollout = atlas.importance()
    expected = rollout_agreement({n: rollout[n] for n in ("bill", "flipper", "mass")}, increases)
    assert by_stream["num"] == expected


def test_a_map_is_learned_only_beyond_twice_its_control_and_never_when_uniform(model, data):
    num, ind, cat, y = data
    names = (["bill", "flipper", "mass"], ["island", "sex"], [4, 4])
    atlas = collect_attention(model, (num, ind, cat), targets=y)
    untrained = collect_attention(tiny_model(*names, seed=1), (num, ind, cat), targets=y)
    # the trained model as its own control: no map moved more than twice the control's
    rows = map_divergence(atlas, untrained, control=atlas)
    assert all(row["control_divergence"] == pytest.approx(row["divergence"]) for row in rows)
    assert not any(row["learned"] for row in rows)
    # the untrained model as the control: every map that is not uniform moved beyond it
    rows = map_divergence(atlas, untrained, control=untrained)
    assert all(row["control_divergence"] == pytest.approx(0.0, abs=1e-9) for row in rows)
    assert all(row["learned"] is (row["label"] is None) for row in rows)
    assert all(row["learned"] is None for row in map_divergence(atlas, untrained))
