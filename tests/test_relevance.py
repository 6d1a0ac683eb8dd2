"""Gradient-weighted attention relevance (Chefer et al. 2021) against cases worked out by hand."""

import numpy as np
import pytest
import torch
from tiny_models import random_inputs, tiny_config, tiny_model
from torch import nn

import mrta.analysis.relevance as relevance_module
import mrta.nn.attention as attention
from mrta.analysis.block_capture import BlockPass, capture_blocks
from mrta.analysis.relevance import relevance_importance, relevance_matrix
from mrta.data.preprocessing import EncodedTable

ATTENTION_WEIGHTS = attention.attention_weights  # before any test patches it
I2 = np.eye(2)
Z2 = np.zeros((2, 2))


# -- the rules, by hand, in numpy (independent of the module) ---------------------------------
def head_mean(weights: np.ndarray, grad: np.ndarray) -> np.ndarray:
    """Eq. 5 on one example: (H, Tq, Tk) twice -> (Tq, Tk)."""
    return np.maximum(grad * weights, 0.0).mean(axis=0)


def normalised(r: np.ndarray) -> np.ndarray:
    """Eqs. 8, 9 on a 2×2 self-relevance block; a zero row of R − I stays zero."""
    hat = r - I2
    sums = hat.sum(axis=1, keepdims=True)
    return np.divide(hat, sums, out=np.zeros_like(hat), where=sums > 0) + I2


def hand_relevance(layers: list[dict[str, np.ndarray]], sequential: bool = False) -> np.ndarray:
    """R for two numerical and two categorical tokens from each layer's Ā by map id. With
    `sequential`, num_cat's update is applied before cat_num's is computed (the wrong rule)."""
    r_nn, r_cc, r_nc, r_cn = I2, I2, Z2, Z2
    for a in layers:
        r_nn, r_nc = r_nn + a["num_num"] @ r_nn, r_nc + a["num_num"] @ r_nc  # rules 6, 7
        r_cc, r_cn = r_cc + a["cat_cat"] @ r_cc, r_cn + a["cat_cat"] @ r_cn
        d_nc = normalised(r_nn).T @ a["num_cat"] @ normalised(r_cc)  # rule 10
        d_nn = a["num_cat"] @ r_cn  # rule 11
        if sequential:
            r_nc, r_nn = r_nc + d_nc, r_nn + d_nn
        d_cn = normalised(r_cc).T @ a["cat_num"] @ normalised(r_nn)  # rule 10
        d_cc = a["cat_num"] @ r_nc  # rule 11
        if sequential:
            r_cn, r_cc = r_cn + d_cn, r_cc + d_cc
        else:
            r_nc, r_nn, r_cn, r_cc = r_nc + d_nc, r_nn + d_nn, r_cn + d_cn, r_cc + d_cc
    return np.block([[r_nn, r_nc], [r_cn, r_cc]])


# -- written-out matrices ----------------------------------------------------------------------
# Ā per map, chosen by hand; num_num's second row is zero, so R̂_nn's is (the 0/0 guard).
BARS = {
    "num_num": np.array([[0.3, 0.2], [0.0, 0.0]]),
    "cat_cat": np.array([[0.1, 0.0], [0.2, 0.4]]),
    "num_cat": np.array([[0.5, 0.0], [0.1, 0.3]]),
    "cat_num": np.array([[0.0, 0.2], [0.4, 0.1]]),
}
WEIGHTS = np.array([[0.8, 0.2], [0.25, 0.75]])  # every head of every map
# By hand: R_nn = I + Ā_nn = [[1.3, .2], [0, 1]], R_cc = I + Ā_cc = [[1.1, 0], [.2, 1.4]];
# R̄_nn = [[1.6, .4], [0, 1]] (row 2 of R̂ is 0), R̄_cc = [[2, 0], [1/3, 5/3]];
# ΔR_nc = R̄_nnᵀ Ā_nc R̄_cc = [[1.6, 0], [.4, 1]] @ [[1, 0], [.3, .5]] = [[1.6, 0], [.7, .5]];
# ΔR_cn = R̄_ccᵀ Ā_cn R̄_nn = [[2, 1/3], [0, 5/3]] @ [[0, .2], [.64, .26]];
# ΔR_nn = Ā_nc R_cn = 0 and ΔR_cc = Ā_cn R_nc = 0 (the pre-cross R_cn, R_nc are 0).
R_ONE_LAYER = np.array(
    [
        [1.3, 0.2, 1.6, 0.0],
        [0.0, 1.0, 0.7, 0.5],
        [0.64 / 3, 0.4 + 0.26 / 3, 1.1, 0.0],
        [3.2 / 3, 1.3 / 3, 0.2, 1.4],
    ]
)


def written_out_passes(bars: dict[str, np.ndarray]) -> list[dict[str, BlockPass]]:
    """One layer whose two heads give Ā = `bars`: head 0's ∇A ⊙ A is 2·Ā, head 1's −2·Ā
    (clipped to 0), so the head mean is Ā only if each head is clipped before the mean and the
    gradient is multiplied by the weights."""
    layer = {}
    for map_id, bar in bars.items():
        grad = np.stack([2 * bar / WEIGHTS, -2 * bar / WEIGHTS])[None]  # (1, 2, 2, 2)
        weights = torch.tensor(np.broadcast_to(WEIGHTS, grad.shape).copy(), requires_grad=True)
        weights.grad = torch.tensor(grad)
        layer[map_id] = BlockPass(None, None, None, None, weights)
    return [layer]


def test_one_layer_of_written_out_matrices():
    np.testing.assert_allclose(hand_relevance([BARS]), R_ONE_LAYER, atol=1e-12)
    r = relevance_matrix(written_out_passes(BARS), 2, 2)
    assert r.shape == (1, 4, 4) and r.dtype == torch.float64
    np.testing.assert_allclose(r[0].numpy(), R_ONE_LAYER, atol=1e-12)
    # Sequentially, cat_num would read the updated R_nc: ΔR_cc = Ā_cn ΔR_nc ≠ 0.
    sequential = hand_relevance([BARS], sequential=True)
    np.testing.assert_allclose(
        sequential[2:, 2:] - R_ONE_LAYER[2:, 2:], BARS["cat_num"] @ R_ONE_LAYER[:2, 2:]
    )


# -- the real layer, one example ---------------------------------------------------------------
def one_example(num_layers: int):
    """A float64 model with two numerical and two categorical tokens (d_model 4, 2 heads) and
    one example, binary, with fixed seeded weights: class 0 with one layer, 1 with two."""
    config = tiny_config(d_model=4, num_heads=2, num_layers=num_layers)
    model = tiny_model(["a", "b"], ["x", "y"], task="binary", config=config, seed=6).double()
    numerical, indicators, categorical = random_inputs(1, 2, 2, seed=5)
    return model.eval(), (numerical.double(), indicators.double(), categorical)


def binary_score(logits: torch.Tensor) -> torch.Tensor:
    """The predicted class's score: the logit for class 1, minus it for class 0."""
    return torch.where(logits[:, 0] > 0, logits[:, 0], -logits[:, 0])


def captured(model, inputs, score=binary_score):
    """The passes after one backward of the summed scores, and the logits."""
    with capture_blocks(model, gradients=True) as passes:
        logits = model(*inputs)
        score(logits).sum().backward()
    return passes, logits.detach()


def hand_bars(passes) -> list[dict[str, np.ndarray]]:
    """Ā per layer and map id for example 0, from the captured A and ∇A, in numpy."""
    return [
        {
            map_id: head_mean(p.weights.detach()[0].numpy(), p.grad[0].numpy())
            for map_id, p in layer.items()
        }
        for layer in passes
    ]


def hand_importance(r: np.ndarray) -> np.ndarray:
    column_mean = r.mean(axis=0)
    return column_mean / column_mean.sum()


def bumped_logit(model, inputs, map_id: str, entry: tuple, eps: float, monkeypatch) -> float:
    """The logit with one attention weight of layer 0's `map_id` block moved by `eps`."""
    block = model.layers[0].attention_blocks()[map_id]
    inside = []

    def weights(q, k, mask):
        w = ATTENTION_WEIGHTS(q, k, mask)
        if inside:
            w = w.clone()
            w[entry] += eps
        return w

    monkeypatch.setattr(attention, "attention_weights", weights)
    handles = [
        block.register_forward_pre_hook(lambda *_: inside.append(True)),
        block.register_forward_hook(lambda *_: inside.clear()),
    ]
    try:
        with torch.no_grad():
            return float(model(*inputs)[0, 0])
    finally:
        for handle in handles:
            handle.remove()


def test_the_gradient_is_the_score_derivative(monkeypatch):
    model, inputs = one_example(1)
    passes, logits = captured(model, inputs)
    sign = 1.0 if logits[0, 0] > 0 else -1.0  # the predicted class, kept while perturbing
    entry, eps = (0, 1, 0, 1), 1e-6  # example 0, head 1, numerical query 0, categorical key 1
    plus = bumped_logit(model, inputs, "num_cat", entry, eps, monkeypatch)
    minus = bumped_logit(model, inputs, "num_cat", entry, -eps, monkeypatch)
    gradient = float(passes[0]["num_cat"].grad[entry])
    assert abs(gradient) > 1e-3
    assert sign * (plus - minus) / (2 * eps) == pytest.approx(gradient, rel=1e-6)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_the_model_matches_the_hand_computation(num_layers):
    model, inputs = one_example(num_layers)
    passes, logits = captured(model, inputs)
    assert (logits[0, 0] > 0) == (num_layers == 2)  # both binary classes are scored
    bars = hand_bars(passes)
    for layer in bars:  # every map takes part, or the comparison would miss a rule
        assert all(bar.max() > 1e-4 for bar in layer.values())
    expected = hand_relevance(bars)
    r = relevance_matrix(passes, 2, 2)[0].numpy()
    np.testing.assert_allclose(r, expected, atol=1e-8)
    assert (r - np.eye(4) >= 0).all()  # R ≥ I: every added term is ≥ 0
    np.testing.assert_allclose(
        relevance_importance(model, inputs)[0], hand_importance(expected), atol=1e-8
    )


@pytest.mark.parametrize("num_layers", [1, 2])
def test_the_cross_blocks_update_in_parallel(num_layers):
    model, inputs = one_example(num_layers)
    passes, _ = captured(model, inputs)
    bars = hand_bars(passes)
    r = relevance_matrix(passes, 2, 2)[0].numpy()
    np.testing.assert_allclose(r, hand_relevance(bars), atol=1e-8)
    assert np.abs(r - hand_relevance(bars, sequential=True)).max() > 1e-3


# -- properties ----------------------------------------------------------------------------------
NUM, CAT = ["a", "b", "c"], ["x", "y"]


def importance_from(model, inputs, score) -> np.ndarray:
    """relevance_matrix's column means, normalised, for the given score function."""
    passes, _ = captured(model, inputs, score)
    column_mean = relevance_matrix(passes, inputs[0].shape[1], inputs[2].shape[1]).mean(dim=1)
    return (column_mean / column_mean.sum(dim=1, keepdim=True)).numpy()


def test_importances_are_shares():
    model = tiny_model(NUM, CAT, task="binary")
    importance = relevance_importance(model, random_inputs(20, 3, 2))
    assert importance.shape == (20, 5) and importance.dtype == np.float64
    assert (importance >= 0).all()
    np.testing.assert_allclose(importance.sum(axis=1), 1.0)


def test_binary_scores_the_predicted_class():
    model = tiny_model(NUM, CAT, task="binary", seed=1).eval()
    inputs = random_inputs(40, 3, 2, seed=2)
    with torch.no_grad():
        class_one = (model(*inputs)[:, 0] > 0).numpy()
    assert class_one.any() and not class_one.all()
    importance = relevance_importance(model, inputs)
    np.testing.assert_allclose(importance, importance_from(model, inputs, binary_score))
    logit = importance_from(model, inputs, lambda logits: logits[:, 0])
    np.testing.assert_allclose(importance[class_one], logit[class_one])
    # Class 0 scores minus the logit: ∇A flips sign, and other weights count.
    assert (np.abs(importance - logit).max(axis=1)[~class_one] > 1e-4).all()


def test_multiclass_scores_the_arg_max_class():
    model = tiny_model(NUM, CAT, task="multiclass", n_classes=3).eval()
    inputs = random_inputs(20, 3, 2, seed=3)
    importance = relevance_importance(model, inputs)

    def logit_of(pick):
        return lambda logits: logits.gather(1, pick(logits)[:, None])[:, 0]

    top = importance_from(model, inputs, logit_of(lambda logits: logits.argmax(dim=1)))
    bottom = importance_from(model, inputs, logit_of(lambda logits: logits.argmin(dim=1)))
    np.testing.assert_allclose(importance, top)
    assert (np.abs(importance - bottom).max(axis=1) > 1e-4).all()


def test_regression_scores_the_output():
    model = tiny_model(NUM, CAT, task="regression").eval()
    inputs = random_inputs(10, 3, 2, seed=4)
    importance = relevance_importance(model, inputs)
    np.testing.assert_allclose(importance, importance_from(model, inputs, lambda y: y[:, 0]))
    np.testing.assert_allclose(importance.sum(axis=1), 1.0)


def test_the_batch_size_does_not_matter():
    model = tiny_model(NUM, CAT)
    inputs = random_inputs(13, 3, 2, seed=6)
    whole = relevance_importance(model, inputs)
    table = EncodedTable(
        *inputs, target=None, numerical_tokens=tuple(NUM), categorical_tokens=tuple(CAT)
    )
    for batch_size in (1, 4):
        np.testing.assert_allclose(
            relevance_importance(model, table, batch_size=batch_size), whole, rtol=1e-5, atol=1e-7
        )


def test_batches_are_bounded_by_the_map_size(monkeypatch):
    model = tiny_model(NUM, CAT)  # 2 heads, T = 5
    monkeypatch.setattr(relevance_module, "RELEVANCE_ENTRIES", 2 * 2 * 5 * 5)
    sizes = []
    model.register_forward_pre_hook(lambda _, args: sizes.append(len(args[0])))
    relevance_importance(model, random_inputs(5, 3, 2))
    assert sizes == [2, 2, 1]


def test_one_stream_models_take_the_self_rules_only():
    model = tiny_model(NUM, [], task="binary", seed=2).eval()
    numerical, indicators, _ = random_inputs(6, 3, 0, seed=7)
    inputs = (numerical, indicators, torch.zeros(6, 0, dtype=torch.int64))
    passes, _ = captured(model, inputs)
    assert all(set(layer) == {"num_num"} for layer in passes)
    expected = []
    for example in range(6):
        r = np.eye(3)
        for layer in passes:
            block = layer["num_num"]
            bar = head_mean(block.weights.detach()[example].numpy(), block.grad[example].numpy())
            r = r + bar @ r  # rules 6, 7; no cross stage
        expected.append(hand_importance(r))
    np.testing.assert_allclose(relevance_importance(model, inputs), expected, atol=1e-6)

    model = tiny_model([], CAT, task="multiclass")
    inputs = (torch.zeros(4, 0), torch.zeros(4, 0), random_inputs(4, 0, 2)[2])
    importance = relevance_importance(model, inputs)
    assert importance.shape == (4, 2)
    np.testing.assert_allclose(importance.sum(axis=1), 1.0)


def test_the_model_is_left_as_it_was():
    model = tiny_model(NUM, CAT, config=tiny_config(dropout=0.5))
    inputs = random_inputs(8, 3, 2)
    model.train()
    importance = relevance_importance(model, inputs)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    # Eval mode inside: dropout would make two calls differ.
    np.testing.assert_array_equal(relevance_importance(model.eval(), inputs), importance)
    assert not model.training
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    relevance_importance(model, inputs)
    assert all(bool((p.grad == 1).all()) for p in model.parameters())


def test_no_rows_give_an_empty_array():
    importance = relevance_importance(tiny_model(NUM, CAT), random_inputs(0, 3, 2))
    assert importance.shape == (0, 5)


def test_bad_arguments_name_the_argument():
    model = tiny_model(NUM, CAT)
    inputs = random_inputs(3, 3, 2)
    for batch_size in (0, True, 2.5):
        with pytest.raises(ValueError, match="batch_size"):
            relevance_importance(model, inputs, batch_size=batch_size)
    with pytest.raises(ValueError, match="model"):
        relevance_importance(nn.Linear(3, 1), inputs)
    taskless = tiny_model(NUM, CAT)
    taskless.task = None
    with pytest.raises(ValueError, match="model"):
        relevance_importance(taskless, inputs)
    with pytest.raises(ValueError, match="data"):
        relevance_importance(model, inputs[:2])
    with pytest.raises(ValueError, match="data"):
        relevance_importance(model, [x[:, None] for x in inputs])  # a set model's inputs
    passes, _ = captured(model, inputs, lambda logits: logits[:, 0])
    for n_num, n_cat, name in ((-1, 2, "n_num"), (3, "2", "n_cat"), (2, 3, "n_num")):
        with pytest.raises(ValueError, match=name):
            relevance_matrix(passes, n_num, n_cat)
    with pytest.raises(ValueError, match="passes"):
        relevance_matrix([], 3, 2)
    with capture_blocks(model, gradients=True) as no_backward:
        model(*inputs)
    with pytest.raises(ValueError, match="passes"):
        relevance_matrix(no_backward, 3, 2)
