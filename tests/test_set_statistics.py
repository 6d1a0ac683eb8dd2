"""The statistics of set mode against direct numpy/scipy computations: the rollout's readout
of the model's mean and max pooling (max-pool credit, readout vector, rollout shares) and the
standard errors of summaries clustered by set."""

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch

from mrta.analysis.inputs import attention_layers
from mrta.analysis.recorder import AttentionRecorder
from mrta.analysis.rollout import pooled_importance, readout_importance, rollout
from mrta.analysis.sets import (
    ROLLOUT,
    SE_CLUSTERED,
    SetExplanation,
    clustered_se,
    max_credit,
    pooled_readout,
    row_measures,
)
from mrta.config import ModelConfig
from mrta.data.sets import SetBatch
from mrta.nn.set_model import SetAttentionModel, masked_mean_max
from mrta.report.set_exports import write_set_exports

TINY = ModelConfig(d_token=2, d_model=8, num_layers=2, num_heads=2, dropout=0.0)


def tiny_sets() -> tuple[SetAttentionModel, SetBatch]:
    """An untrained two-stream set model and two sets: 4 rows, and 2 rows padded to 4."""
    model = SetAttentionModel(
        TINY,
        task="binary",
        numerical_tokens=["a", "b"],
        categorical_tokens=["k"],
        vocabulary_sizes=[4],
    ).eval()
    g = torch.Generator().manual_seed(1)
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    sets = SetBatch(
        numerical=torch.randn(2, 4, 2, generator=g),
        indicators=torch.zeros(2, 4, 2),
        categorical=torch.randint(1, 4, (2, 4, 1), generator=g),
        mask=mask,
        row_index=torch.tensor([[0, 1, 2, 3], [4, 5, -1, -1]]),
        target=None,
        keys=("s0", "s1"),
        group_by="g",
        order_by=None,
        numerical_tokens=("a", "b"),
        categorical_tokens=("k",),
    )
    return model, sets


def record(model: SetAttentionModel, sets: SetBatch):
    """The model's head-kept maps by key and its last layer's (num, cat) outputs."""
    caught = []
    hook = model.layers[-1].register_forward_hook(lambda _m, _i, out: caught.append(out))
    keys = sorted(
        (i, m) for i, layer in enumerate(attention_layers(model)) for m in layer.attention_blocks()
    )
    try:
        with torch.no_grad(), AttentionRecorder(model, mode="keep") as recorder:
            model(*sets.model_inputs())
            weights = {key: recorder.weights(*key) for key in keys}
    finally:
        hook.remove()
    return weights, caught[0], keys


def direct_credit(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The max-pool credit by counting: per set and feature, 1/ties to each real row at the max."""
    credit = np.zeros(mask.shape)
    for b in range(x.shape[0]):
        real = np.flatnonzero(mask[b])
        for d in range(x.shape[2]):
            column = x[b, real, d]
            holders = real[column == column.max()]
            credit[b, holders] += 1 / len(holders) / x.shape[2]
    return credit


def test_max_credit_counts_the_features_each_real_row_holds_the_maximum_of_ties_split():
    model, sets = tiny_sets()
    _, (num, cat), _ = record(model, sets)
    x = num.clone()  # (2, 4, 8): the last layer's numerical outputs
    x[1, 2:] = 100.0  # padding: whatever it holds, it is never the maximum
    j = int(x[0, :, 0].argmax())
    x[0, (j + 1) % 4, 0] = x[0, j, 0]  # a tie at the maximum of feature 0
    credit = max_credit(x, sets.mask)
    expected = direct_credit(x.numpy(), sets.mask.numpy())
    assert expected[0, j] > 0 and expected[0, (j + 1) % 4] > 0
    np.testing.assert_allclose(credit.numpy(), expected, atol=1e-7)
    np.testing.assert_allclose(credit.sum(dim=1).numpy(), 1.0, atol=1e-6)
    assert credit[1, 2:].eq(0).all()
    # the credit is the max part's gradient: torch's amax splits a tie's gradient evenly too
    x.requires_grad_(True)
    d = x.shape[-1]
    masked_mean_max(x, sets.mask)[:, d:].mean(dim=1).sum().backward()
    np.testing.assert_allclose(x.grad.sum(dim=-1).numpy(), expected, atol=1e-7)
    np.testing.assert_allclose(
        max_credit(cat, sets.mask).numpy(), direct_credit(cat.numpy(), sets.mask.numpy()), atol=1e-7
    )
    with pytest.raises(ValueError, match="mask needs a real row"):
        max_credit(x.detach(), torch.tensor([[True] * 4, [False] * 4]))
    with pytest.raises(ValueError, match="outputs must be"):
        max_credit(x.detach()[0], sets.mask)


def test_the_pooled_readout_is_half_the_mean_and_half_the_max_credit_per_stream():
    mask = torch.tensor([[True, True, True, False]])
    num = torch.tensor([[[1.0, 0.0], [0.0, 5.0], [1.0, -1.0], [9.0, 9.0]]])  # feature 0: a tie
    cat = torch.tensor([[[3.0, 3.0], [2.0, 4.0], [0.0, 0.0], [9.0, 9.0]]])
    readout = pooled_readout([num, cat], mask)
    third = 1 / 3
    by_hand = 0.5 * np.array(  # w = ½ per stream; ½·(1/n) + ½·credit per row; padding 0
        [
            [0.5 * third + 0.5 * 0.25, 0.5 * third + 0.5 * 0.5, 0.5 * third + 0.5 * 0.25, 0],
            [0.5 * third + 0.5 * 0.5, 0.5 * third + 0.5 * 0.5, 0.5 * third, 0],
        ]
    )
    np.testing.assert_allclose(readout[0].numpy(), by_hand, atol=1e-7)
    assert readout.sum().item() == pytest.approx(1.0)
    alone = pooled_readout([num], mask)[0, 0].numpy()  # one stream: all of the features
    np.testing.assert_allclose(alone, 2 * by_hand[0], atol=1e-7)
    wide = pooled_readout([num, torch.cat([cat, cat, cat], dim=-1)], mask)[0]  # 2 + 6 features
    np.testing.assert_allclose(wide.sum(dim=1).numpy(), [0.25, 0.75], atol=1e-7)
    with pytest.raises(ValueError, match="at least one stream"):
        pooled_readout([], mask)


def stochastic(rng, *shape):
    a = rng.random(shape)
    return a / a.sum(-1, keepdims=True)


def random_layers(rng, n: int, layers: int = 2) -> list[dict[str, np.ndarray]]:
    """Head-averaged row × row maps of a two-stream model over a set of `n` rows."""
    ids = ("num_num", "cat_cat", "num_cat", "cat_num")
    return [{m: stochastic(rng, n, n) for m in ids} for _ in range(layers)]


def test_readout_importance_is_the_readout_times_the_matrix_rollout():
    rng = np.random.default_rng(3)
    layers = random_layers(rng, 5, layers=3)
    readout = rng.random(10)
    readout /= readout.sum()
    expected = readout @ rollout(layers, 5, 5)
    np.testing.assert_allclose(readout_importance(layers, readout, 5, 5), expected, atol=1e-12)
    uniform = np.full(10, 0.1)
    np.testing.assert_allclose(
        pooled_importance(layers, 5, 5), readout_importance(layers, uniform, 5, 5), atol=1e-15
    )
    kept = readout.copy()
    readout_importance(layers, readout, 5, 5)
    np.testing.assert_array_equal(readout, kept)  # the readout is not changed in place
    with pytest.raises(ValueError, match=r"readout must hold one weight per token, shape \(10,\)"):
        readout_importance(layers, readout[:9], 5, 5)


def test_rows_that_hold_the_maximum_of_as_many_features_give_the_uniform_rollout_back():
    n, d = 4, 8
    x = torch.rand(1, n, d)
    x[0, torch.arange(d) % n, torch.arange(d)] = 2.0  # row i holds the maxima of 2 features
    mask = torch.ones(1, n, dtype=torch.bool)
    readout = pooled_readout([x, x.roll(1, dims=1)], mask)[0].reshape(-1).numpy()
    np.testing.assert_allclose(readout, 1 / (2 * n), atol=1e-7)
    layers = random_layers(np.random.default_rng(5), n)
    np.testing.assert_allclose(
        readout_importance(layers, readout, n, n), pooled_importance(layers, n, n), atol=1e-6
    )


def test_set_rollout_shares_sum_to_one_per_set_and_match_the_direct_computation():
    model, sets = tiny_sets()
    weights, outputs, keys = record(model, sets)
    out = np.empty((int(sets.mask.sum()), 1 + len(keys)), dtype=np.float32)
    assert row_measures(sets, weights, outputs, keys, TINY.num_layers, out, 0) == 6
    for rows, n, b in ((slice(0, 4), 4, 0), (slice(4, 6), 2, 1)):
        assert out[rows, 0].sum() == pytest.approx(n, abs=1e-5)  # shares sum to 1, × n
        layers = [{} for _ in range(TINY.num_layers)]
        for (layer, map_id), w in weights.items():
            layers[layer][map_id] = w[b, :, :n, :n].mean(dim=0).double().numpy()
        real = sets.mask.numpy()[b : b + 1, :n]
        credits = [direct_credit(x[b : b + 1, :n].double().numpy(), real)[0] for x in outputs]
        readout = np.concatenate([0.5 * (0.5 / n + 0.5 * c) for c in credits])  # (2n,)
        shares = readout @ rollout(layers, n, n)  # the flow as a matrix, in float64
        np.testing.assert_allclose(out[rows, 0], (shares[:n] + shares[n:]) * n, atol=1e-5)
    alone = sets.select([1])  # the padded set without its padding gives the same shares
    weights, outputs, keys = record(model, alone)
    single = np.empty((2, 1 + len(keys)), dtype=np.float32)
    row_measures(alone, weights, outputs, keys, TINY.num_layers, single, 0)
    np.testing.assert_allclose(single, out[4:6], atol=1e-5)


def sandwich_se(y: np.ndarray, clusters: np.ndarray) -> float:
    """The CR1 standard error of the intercept of y on a constant, as a regression's sandwich."""
    x = np.ones((len(y), 1))
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    u = y - x @ beta
    bread = np.linalg.inv(x.T @ x)
    labels = np.unique(clusters)
    scores = [x[clusters == c].T @ u[clusters == c] for c in labels]  # (k,) per cluster
    meat = sum(np.outer(score, score) for score in scores)
    g, n, k = len(labels), len(y), x.shape[1]
    factor = g / (g - 1) * (n - 1) / (n - k)
    return float(np.sqrt(factor * (bread @ meat @ bread)[0, 0]))


def test_clustered_se_is_the_cr1_sandwich_and_the_ordinary_se_for_one_row_per_set():
    rng = np.random.default_rng(0)
    y = rng.normal(size=30)
    clusters = rng.choice(np.array(["a", "b", "c", "d", "e", "f", "g"]), size=30)
    assert clustered_se(y, clusters) == pytest.approx(sandwich_se(y, clusters), rel=1e-12)
    assert clustered_se(y, np.arange(30)) == pytest.approx(scipy.stats.sem(y), rel=1e-12)
    assert np.isnan(clustered_se(y, np.full(30, "a")))  # one set: no standard error
    assert np.isnan(clustered_se(y[:1], clusters[:1]))
    with pytest.raises(ValueError, match="values and clusters must be 1-D and of the same"):
        clustered_se(y, clusters[:-1])


def test_clustered_se_exceeds_the_naive_one_when_a_sets_rows_move_together():
    rng = np.random.default_rng(1)
    sets = np.repeat(np.arange(20), 10)
    y = rng.normal(size=20)[sets] + rng.normal(scale=0.3, size=200)  # a shared effect per set
    clustered, naive = clustered_se(y, sets), scipy.stats.sem(y)
    assert clustered == pytest.approx(sandwich_se(y, sets), rel=1e-12)
    assert clustered > 2 * naive  # about √(1 + 9ρ) with ρ ≈ 0.9 within a set


def explanation_of(rng) -> SetExplanation:
    """Eight sets of 3 to 7 rows with rollout shares that sum to each set's size."""
    sizes = rng.integers(3, 8, size=8)
    keys = np.repeat([f"S{i}" for i in range(8)], sizes)
    shares = np.concatenate([rng.dirichlet(np.ones(n)) * n for n in sizes])
    kind = rng.choice(np.array(["x", "y", "z"], dtype=object), size=len(keys))
    kind[keys == "S0"] = "only S0"  # a level whose rows come from one set
    rows = pd.DataFrame({"g": keys, "position": 0, "row": np.arange(len(keys)), ROLLOUT: shares})
    return SetExplanation(
        group_by="g",
        order_by=None,
        map_keys=(),
        sets=pd.DataFrame({"g": [f"S{i}" for i in range(8)], "n_rows": sizes}),
        rows=rows,
        values=pd.DataFrame({"g": keys, "kind": kind, "amount": rng.normal(size=len(keys))}),
        sampled_from=None,
        seconds=0.0,
    )


def test_summaries_give_standard_errors_clustered_by_set_per_level(tmp_path):
    explanation = explanation_of(np.random.default_rng(2))
    table = explanation.summary("kind")
    assert list(table.columns) == ["group", "rows", "sets", "mean", SE_CLUSTERED]
    joined = explanation.rows.join(explanation.values[["kind"]])
    for _, level in table.iterrows():
        part = joined[joined["kind"] == level["group"]]
        assert level["rows"] == len(part) and level["sets"] == part["g"].nunique()
        if level["sets"] < 2:
            assert level["group"] == "only S0" and np.isnan(level[SE_CLUSTERED])
        else:
            expected = sandwich_se(part[ROLLOUT].to_numpy(), part["g"].to_numpy())
            assert level[SE_CLUSTERED] == pytest.approx(expected, rel=1e-10)
    one_bin = explanation.summary("amount", bins=1).iloc[0]  # every row of every set
    assert one_bin["mean"] == pytest.approx(1.0)  # each set's shares sum to its size ...
    assert one_bin[SE_CLUSTERED] == pytest.approx(0.0, abs=1e-12)  # ... so by set: no spread
    assert scipy.stats.sem(explanation.rows[ROLLOUT]) > 0.05  # rows as independent: some
    write_set_exports(explanation, tmp_path)
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary.columns) == ["column", "group", "rows", "sets", "mean", SE_CLUSTERED]
