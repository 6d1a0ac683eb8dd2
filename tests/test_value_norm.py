"""Norm-based attribution against a plain numpy reference, and its properties."""

import numpy as np
import pytest
import torch
from tiny_models import random_inputs, tiny_config, tiny_model

from mrta.analysis.block_capture import capture_blocks
from mrta.analysis.rollout import rollout_importance
from mrta.analysis.value_norm import value_norm_flows, value_norm_importance
from mrta.nn.layer import MultiResolutionTabularAttention
from mrta.training.inference import evaluating

NUM, CAT = ["a", "b"], ["x", "y"]


def randomised(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """`model` with non-zero biases (b_V, b_O, β) and non-unit LayerNorm scales γ, so that the
    reference below has to leave out exactly what belongs to no token."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(0.5 + torch.rand(module.weight.shape, generator=generator))
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator))
        for layer in model.layers:
            for block in layer.attention_blocks().values():
                block.in_proj_bias.copy_(torch.randn(block.in_proj_bias.shape, generator=generator))
                block.out_proj.bias.copy_(torch.randn(block.d_model, generator=generator))
    return model


# -- a reference in plain numpy, one example at a time, with explicit loops ------------------
def arr(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def layer_norm(x: np.ndarray, norm: torch.nn.LayerNorm) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + norm.eps) * arr(norm.weight) + arr(norm.bias)


def attention(block, xq: np.ndarray, xkv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The block's output ``(Tq, D)`` and weights ``(H, Tq, Tk)``."""
    d, hd = block.d_model, block.head_dim
    w, b = arr(block.in_proj_weight), arr(block.in_proj_bias)
    q, k = xq @ w[:d].T + b[:d], xkv @ w[d : 2 * d].T + b[d : 2 * d]
    v = xkv @ w[2 * d :].T + b[2 * d :]
    alpha = np.zeros((block.num_heads, len(xq), len(xkv)))
    heads = np.zeros((len(xq), d))
    for h in range(block.num_heads):
        part = slice(h * hd, (h + 1) * hd)
        scores = q[:, part] @ k[:, part].T / np.sqrt(hd)
        alpha[h] = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
        heads[:, part] = alpha[h] @ v[:, part]
    return heads @ arr(block.out_proj.weight).T + arr(block.out_proj.bias), alpha


def stage_norms(block, norm, xq, xkv, alpha) -> tuple[np.ndarray, np.ndarray]:
    """``r_i = ‖γ⊙(x_i − mean)‖`` and ``a_ij = ‖γ⊙(z_ij − mean)‖``, z_ij summed over heads."""
    d, hd = block.d_model, block.head_dim
    gamma = arr(norm.weight)
    w_v, b_v = arr(block.in_proj_weight)[2 * d :], arr(block.in_proj_bias)[2 * d :]
    w_o = arr(block.out_proj.weight)

    def ell(u):
        return gamma * (u - u.mean())

    r = np.array([np.linalg.norm(ell(xq[i])) for i in range(len(xq))])
    a = np.zeros((len(xq), len(xkv)))
    for i in range(len(xq)):
        for j in range(len(xkv)):
            z = np.zeros(d)
            for h in range(block.num_heads):
                part = slice(h * hd, (h + 1) * hd)
                value = w_v[part] @ xkv[j] + b_v[part]  # head h's value vector, bias included
                z += alpha[h, i, j] * (w_o[:, part] @ value)  # f^h(x_j), no output bias
            a[i, j] = np.linalg.norm(ell(z))
    return r, a


def stage_matrix(parts, t: int) -> np.ndarray:
    """Rows ``(r_i·[j = i] + a_ij) / sum``; parts: (row offset, column offset, r, a)."""
    weights = np.zeros((t, t))
    for row0, col0, r, a in parts:
        for i in range(len(r)):
            weights[row0 + i, row0 + i] += r[i]
            for j in range(a.shape[1]):
                weights[row0 + i, col0 + j] += a[i, j]
    matrix = np.eye(t)
    for i in range(t):
        if weights[i].sum() > 0:
            matrix[i] = weights[i] / weights[i].sum()
    return matrix


def reference_layer(layer, n, c):
    """The layer's outputs and its flow ``C @ S`` for one example."""
    tn = len(n)
    n = n @ arr(layer.num_proj.weight).T + arr(layer.num_proj.bias)
    c = c @ arr(layer.cat_proj.weight).T + arr(layer.cat_proj.bias)
    parts_self, parts_cross = [], []
    out, alpha = attention(layer.num_num, n, n)
    parts_self.append((0, 0, *stage_norms(layer.num_num, layer.norm_n1, n, n, alpha)))
    n1 = layer_norm(n + out, layer.norm_n1)
    out, alpha = attention(layer.cat_cat, c, c)
    parts_self.append((tn, tn, *stage_norms(layer.cat_cat, layer.norm_c1, c, c, alpha)))
    c1 = layer_norm(c + out, layer.norm_c1)
    out, alpha = attention(layer.num_cat, n1, c1)  # both cross blocks read n1 and c1
    parts_cross.append((0, tn, *stage_norms(layer.num_cat, layer.norm_nc, n1, c1, alpha)))
    n2 = layer_norm(n1 + out, layer.norm_nc)
    out, alpha = attention(layer.cat_num, c1, n1)
    parts_cross.append((tn, 0, *stage_norms(layer.cat_num, layer.norm_cc, c1, n1, alpha)))
    c2 = layer_norm(c1 + out, layer.norm_cc)

    def ffn(x):
        hidden = np.maximum(x @ arr(layer.ffn1.weight).T + arr(layer.ffn1.bias), 0.0)
        return hidden @ arr(layer.ffn2.weight).T + arr(layer.ffn2.bias)

    n_out, c_out = layer_norm(n2 + ffn(n2), layer.norm_n2), layer_norm(c2 + ffn(c2), layer.norm_c2)
    t = tn + len(c)
    return n_out, c_out, stage_matrix(parts_cross, t) @ stage_matrix(parts_self, t)


def reference(model, inputs):
    """Per example, the layers' flows ``(L, T, T)`` and the importance ``(T,)``."""
    with torch.no_grad():
        num, cat = model.tokenizer(*inputs)
        num_out, cat_out = num, cat
        for layer in model.layers:
            num_out, cat_out = layer(num_out, cat_out)
    flows, importance = [], []
    for b, (n, c) in enumerate(zip(arr(num), arr(cat), strict=True)):
        example = []
        for layer in model.layers:
            n, c, flow = reference_layer(layer, n, c)
            example.append(flow)
        # the reference's forward is the model's
        np.testing.assert_allclose(n, arr(num_out[b]), atol=1e-5)
        np.testing.assert_allclose(c, arr(cat_out[b]), atol=1e-5)
        product = np.eye(len(example[0]))
        for flow in example:
            product = flow @ product
        flows.append(example)
        importance.append(product.mean(axis=0))  # the readout's uniform mean over the rows
    return np.array(flows), np.array(importance)


def captured_flows(model, inputs, n_num=2, n_cat=2):
    with evaluating(model), capture_blocks(model) as passes:
        model(*inputs)
    return value_norm_flows(passes, n_num, n_cat)


@pytest.mark.parametrize(("num_layers", "num_heads", "d_model"), [(1, 2, 4), (2, 2, 4), (1, 1, 2)])
def test_matches_the_numpy_reference(num_layers, num_heads, d_model):
    config = tiny_config(d_model=d_model, num_heads=num_heads, num_layers=num_layers)
    model = randomised(tiny_model(NUM, CAT, config=config, seed=3))
    inputs = random_inputs(2, len(NUM), len(CAT), seed=4)
    expected_flows, expected_importance = reference(model, inputs)

    flows = captured_flows(model, inputs)
    assert len(flows) == num_layers
    for index, flow in enumerate(flows):
        assert flow.dtype == torch.float64 and flow.shape == (2, 4, 4)
        np.testing.assert_allclose(flow.numpy(), expected_flows[:, index], atol=1e-6)
    importance = value_norm_importance(model, inputs)
    assert importance.dtype == np.float64 and importance.shape == (2, 4)
    np.testing.assert_allclose(importance, expected_importance, atol=1e-6)


# -- properties ------------------------------------------------------------------------------
def three_two_model(**config):
    return randomised(tiny_model(["a", "b", "c"], ["x", "y"], config=tiny_config(**config)))


def test_rows_and_importances_sum_to_one():
    model = three_two_model()
    inputs = random_inputs(16, 3, 2, seed=1)
    for flow in captured_flows(model, inputs, 3, 2):
        assert flow.shape == (16, 5, 5) and bool((flow >= 0).all())
        np.testing.assert_allclose(flow.sum(dim=-1).numpy(), 1.0, atol=1e-12)
    importance = value_norm_importance(model, inputs)
    assert importance.shape == (16, 5) and (importance >= 0).all()
    np.testing.assert_allclose(importance.sum(axis=1), 1.0, atol=1e-12)


def test_blocks_without_a_value_path_give_identity_stages():
    """f(x) = 0 everywhere: the residuals keep all the mass; the output bias b_O, left non-zero,
    belongs to no token."""
    model = three_two_model()
    with torch.no_grad():
        for layer in model.layers:
            for block in layer.attention_blocks().values():
                block.out_proj.weight.zero_()
                block.in_proj_bias[2 * block.d_model :].zero_()
    inputs = random_inputs(4, 3, 2, seed=2)
    for flow in captured_flows(model, inputs, 3, 2):
        np.testing.assert_array_equal(flow.numpy(), np.broadcast_to(np.eye(5), (4, 5, 5)))
    np.testing.assert_allclose(value_norm_importance(model, inputs), 0.2, atol=1e-12)


def test_a_key_with_a_zero_value_vector_gets_no_share():
    """Key 1's value vector is zero (it lies in W_V's null space, b_V = 0) although its token
    and its attention weight are not: only its own residual keeps a share of it."""
    layer = MultiResolutionTabularAttention(2, 4, dropout_rate=0.0, num_features=4)
    with torch.no_grad():
        layer.num_proj.weight.copy_(torch.eye(4))
        layer.num_proj.bias.zero_()
        layer.num_num.in_proj_weight[8:, 0] = 0.0
        layer.num_num.in_proj_bias.zero_()
    tokens = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(5))
    tokens[:, 1] = torch.tensor([2.0, 0.0, 0.0, 0.0])
    with capture_blocks(layer) as passes:
        layer(tokens, None)
    assert bool((passes[0]["num_num"].weights[..., 1] > 0.05).all())
    (flow,) = value_norm_flows(passes, 3, 0)
    np.testing.assert_array_equal(flow[:, [0, 2], 1].numpy(), 0.0)
    assert bool((flow[:, 1, 1] > 0).all())


def test_a_cross_stage_that_moves_nothing_leaves_each_stream_its_mass():
    """Where the rollout always splits half and half between the streams, the norms see that
    nothing crosses: the numerical stream keeps Tn/T."""
    model = three_two_model()
    with torch.no_grad():
        for layer in model.layers:
            layer.num_cat.out_proj.weight.zero_()
            layer.cat_num.out_proj.weight.zero_()
    inputs = random_inputs(6, 3, 2, seed=3)
    importance = value_norm_importance(model, inputs)
    np.testing.assert_allclose(importance[:, :3].sum(axis=1), 3 / 5, atol=1e-12)
    with evaluating(model), capture_blocks(model) as passes:
        model(*inputs)
    maps = [{map_id: p.weights.numpy() for map_id, p in layer.items()} for layer in passes]
    np.testing.assert_allclose(rollout_importance(maps, 3, 2)[:, :3].sum(axis=1), 0.5, atol=1e-6)


def test_does_not_depend_on_the_batch_size():
    model = three_two_model()
    inputs = random_inputs(7, 3, 2, seed=6)
    whole = value_norm_importance(model, inputs)
    for batch_size in (1, 3):
        np.testing.assert_allclose(
            value_norm_importance(model, inputs, batch_size=batch_size), whole, atol=1e-6
        )


@pytest.mark.parametrize(("num", "cat"), [(["a", "b", "c"], []), ([], ["x", "y"])])
def test_one_stream_models(num, cat):
    model = randomised(tiny_model(num, cat))
    inputs = random_inputs(5, len(num), len(cat), seed=7)
    importance = value_norm_importance(model, inputs)
    assert importance.shape == (5, len(num) + len(cat))
    np.testing.assert_allclose(importance.sum(axis=1), 1.0, atol=1e-12)
    assert not np.allclose(importance, 1 / importance.shape[1])  # the self maps move mass


def test_runs_in_eval_mode_and_restores_the_mode():
    model = three_two_model(dropout=0.5)
    inputs = random_inputs(4, 3, 2, seed=8)
    model.train()
    first = value_norm_importance(model, inputs)
    assert model.training
    np.testing.assert_array_equal(value_norm_importance(model, inputs), first)  # no dropout
    model.eval()
    np.testing.assert_array_equal(value_norm_importance(model, inputs), first)


def test_bad_arguments_name_the_argument():
    model = three_two_model()
    inputs = random_inputs(2, 3, 2)
    for batch_size in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            value_norm_importance(model, inputs, batch_size=batch_size)
    with pytest.raises(ValueError, match="model"):
        value_norm_importance(torch.nn.Linear(2, 2), inputs)
    with pytest.raises(ValueError, match="data"):
        value_norm_importance(model, inputs[:2])
    with evaluating(model), capture_blocks(model) as passes:
        model(*inputs)
    with pytest.raises(ValueError, match="passes"):
        value_norm_flows([], 3, 2)
    for n_num, n_cat, arg in [(-1, 2, "n_num"), (2, 2, "n_num"), (3, 1, "n_cat"), (0, 0, "n_")]:
        with pytest.raises(ValueError, match=arg):
            value_norm_flows(passes, n_num, n_cat)
