"""The layer: shapes, the reference's semantics, masks, validation, the two attention paths."""

import pytest
import torch
from torch import nn

from mrta import AttentionRecorder, MultiResolutionTabularAttention
from mrta.nn.layer import LAYER_NORM_EPS
from mrta.streams import MAP_IDS


def make(num_heads=2, d_model=8, dropout_rate=0.0, **kw) -> MultiResolutionTabularAttention:
    return MultiResolutionTabularAttention(num_heads, d_model, dropout_rate, **kw)


def inputs(b=3, tn=4, tc=5, fn=3, fc=2):
    return torch.randn(b, tn, fn), torch.randn(b, tc, fc)


@pytest.mark.parametrize("tn, tc", [(4, 4), (4, 6), (1, 3)])
@pytest.mark.parametrize("call_as_list", [True, False])
def test_output_shapes(tn, tc, call_as_list):
    layer = make()
    num, cat = inputs(tn=tn, tc=tc)
    out = layer([num, cat]) if call_as_list else layer(num, cat)
    assert out[0].shape == (3, tn, 8)
    assert out[1].shape == (3, tc, 8)


def test_blocks_are_named_modules_owning_their_parameters():
    layer = make(num_features=3, cat_features=2)
    blocks = layer.attention_blocks()
    assert list(blocks) == list(MAP_IDS)
    names = dict(layer.named_children())
    for map_id in MAP_IDS:
        assert names[map_id] is blocks[map_id]
        assert {n for n, _ in blocks[map_id].named_parameters()} == {
            "in_proj_weight",
            "in_proj_bias",
            "out_proj.weight",
            "out_proj.bias",
        }
    ids = [id(p) for b in blocks.values() for p in b.parameters()]
    assert len(ids) == len(set(ids)), "blocks must not share parameters"
    norms = [m for m in layer.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 6 and all(m.eps == LAYER_NORM_EPS == 1e-3 for m in norms)


def reference_forward(layer, num, cat):
    """The DESIGN's formula written out with torch's own multi-head attention."""

    def mha(block, q, kv):
        d = block.d_model
        torch_mha = nn.MultiheadAttention(d, block.num_heads, batch_first=True)
        torch_mha.in_proj_weight.data.copy_(block.in_proj_weight)
        torch_mha.in_proj_bias.data.copy_(block.in_proj_bias)
        torch_mha.out_proj.load_state_dict(block.out_proj.state_dict())
        return torch_mha(q, kv, kv, need_weights=False)[0]

    ffn = lambda x: layer.ffn2(torch.relu(layer.ffn1(x)))  # noqa: E731
    n, c = layer.num_proj(num), layer.cat_proj(cat)
    n1 = layer.norm_n1(n + mha(layer.num_num, n, n))
    c1 = layer.norm_c1(c + mha(layer.cat_cat, c, c))
    c2 = layer.norm_cc(c1 + mha(layer.cat_num, c1, n1))
    n2 = layer.norm_nc(n1 + mha(layer.num_cat, n1, c1))
    return layer.norm_n2(n2 + ffn(n2)), layer.norm_c2(c2 + ffn(c2))


@pytest.mark.parametrize("tc", [4, 7])
def test_matches_the_formula_with_torch_multihead_attention(tc):
    layer = make(num_heads=4, d_model=16).eval()
    num, cat = inputs(tn=4, tc=tc)
    with torch.no_grad():
        for p in layer.parameters():  # non-trivial biases and norms
            p.add_(0.1 * torch.randn_like(p))
        got = layer(num, cat)
        want = reference_forward(layer, num, cat)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)


def test_ffn_is_shared_by_both_streams():
    layer = make(num_features=3, cat_features=2)
    linears = [n for n, m in layer.named_modules() if isinstance(m, nn.Linear) and "ffn" in n]
    assert linears == ["ffn1", "ffn2"]


def test_feature_sizes_are_inferred_then_fixed():
    layer = make()
    assert layer.num_proj is None and layer.num_features is None
    layer(*inputs(fn=3, fc=2))
    assert (layer.num_features, layer.cat_features) == (3, 2)
    assert layer.num_proj.weight.shape == (8, 3)
    with pytest.raises(ValueError, match=r"numerical input must have 3 features .* got 4"):
        layer(*inputs(fn=4, fc=2))
    with pytest.raises(ValueError, match=r"categorical input must have 2 features .* got 5"):
        make(num_features=3, cat_features=2)(*inputs(fn=3, fc=5))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_heads": 0}, r"num_heads must be a positive integer, got 0"),
        ({"num_heads": -2}, r"num_heads must be a positive integer, got -2"),
        ({"num_heads": 2.0}, r"num_heads must be a positive integer, got 2.0"),
        ({"d_model": 0}, r"d_model must be a positive integer, got 0"),
        (
            {"d_model": 10, "num_heads": 4},
            r"d_model must be divisible by num_heads, got d_model=10",
        ),
        ({"dropout_rate": 1.0}, r"dropout_rate must be in \[0, 1\), got 1.0"),
        ({"dropout_rate": -0.1}, r"dropout_rate must be in \[0, 1\), got -0.1"),
        ({"dropout_rate": "0.1"}, r"dropout_rate must be a float in \[0, 1\), got '0.1'"),
        ({"name": 3}, r"name must be a string or None, got 3"),
        ({"num_features": 0}, r"num_features must be a positive integer, got 0"),
    ],
)
def test_invalid_arguments(kwargs, message):
    args = {"num_heads": 2, "d_model": 8, "dropout_rate": 0.1} | kwargs
    with pytest.raises(ValueError, match=message):
        MultiResolutionTabularAttention(**args)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda layer, n, c: layer([n]), r"exactly two tensors \[numerical, categorical\], got 1"),
        (
            lambda layer, n, c: layer([n, c, c]),
            r"exactly two tensors \[numerical, categorical\], got 3",
        ),
        (lambda layer, n, c: layer(n), r"exactly two tensors .* got a single Tensor"),
        (lambda layer, n, c: layer(n[0], c), r"numerical input must be 3-D .* got shape \(4, 3\)"),
        (
            lambda layer, n, c: layer(n, c[None]),
            r"categorical input must be 3-D .* got shape \(1, 3, 5, 2\)",
        ),
        (lambda layer, n, c: layer(n, c[:2]), r"same batch size, got 3 and 2"),
        (
            lambda layer, n, c: layer(n.long(), c),
            r"numerical input must be floating point, got dtype torch.int64",
        ),
        (
            lambda layer, n, c: layer(n.numpy(), c),
            r"numerical input must be a torch.Tensor, got ndarray",
        ),
        (
            lambda layer, n, c: layer(None, None),
            r"at least one of the numerical and categorical inputs",
        ),
    ],
)
def test_invalid_inputs(call, message):
    num, cat = inputs()
    with pytest.raises(ValueError, match=message):
        call(make(), num, cat)


def test_padded_keys_change_nothing():
    """Adding masked tokens to one stream leaves every real token's output unchanged."""
    layer = make(num_heads=2, d_model=8).eval()
    num, cat = inputs(tn=4, tc=5)
    with torch.no_grad():
        ref = layer(num, cat)
        num_pad = torch.cat([num, torch.randn(3, 2, 3) * 50], dim=1)
        cat_pad = torch.cat([cat, torch.randn(3, 3, 2) * 50], dim=1)
        num_mask = torch.arange(6) < 4
        cat_mask = torch.arange(8) < 5
        out = layer(
            num_pad,
            cat_pad,
            num_mask=num_mask.expand(3, 6).clone(),
            cat_mask=cat_mask.expand(3, 8).clone(),
        )
    torch.testing.assert_close(out[0][:, :4], ref[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1][:, :5], ref[1], atol=1e-5, rtol=1e-5)


def test_bad_masks_are_refused():
    layer = make()
    num, cat = inputs()
    with pytest.raises(ValueError, match=r"numerical mask must be a bool tensor of shape \(3, 4\)"):
        layer(num, cat, num_mask=torch.ones(3, 5, dtype=torch.bool))
    empty = torch.ones(3, 5, dtype=torch.bool)
    empty[1] = False
    with pytest.raises(ValueError, match=r"categorical mask has an example with no real token"):
        layer(num, cat, cat_mask=empty)


@pytest.mark.parametrize("missing", ["numerical", "categorical"])
def test_one_stream_only_runs_self_attention(missing):
    layer = make().eval()
    num, cat = inputs()
    args = (None, cat) if missing == "numerical" else (num, None)
    out = layer(*args)
    present = 1 if missing == "numerical" else 0
    assert out[1 - present] is None
    assert out[present].shape == (3, args[present].shape[1], 8)


def spy_on_fused(monkeypatch) -> list[int]:
    import mrta.nn.attention as attention_module

    calls = []
    real = attention_module.F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(attention_module.F, "scaled_dot_product_attention", spy)
    return calls


def test_fused_attention_is_the_path_when_nothing_records(monkeypatch):
    calls = spy_on_fused(monkeypatch)
    layer = make(dropout_rate=0.1).eval()
    num, cat = inputs(b=1, tn=170, tc=165)  # maps above FUSED_MIN_MAP
    with torch.no_grad():
        layer(num, cat)
    assert len(calls) == 4, "each of the four blocks must use the fused kernel in eval mode"
    with AttentionRecorder(layer), torch.no_grad():
        layer(num, cat)
    assert len(calls) == 4, "a recording layer must compute its weights explicitly"


def test_small_maps_skip_the_fused_kernel_with_the_same_outputs(monkeypatch):
    import mrta.nn.attention as attention_module

    calls = spy_on_fused(monkeypatch)
    layer = make().eval()
    num, cat = inputs()
    with torch.no_grad():
        explicit = layer(num, cat)
        assert calls == []
        monkeypatch.setattr(attention_module, "FUSED_MIN_MAP", 0)
        fused = layer(num, cat)
    assert len(calls) == 4
    for a, b in zip(explicit, fused, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_dropout_is_active_only_in_training():
    layer = make(dropout_rate=0.5)
    num, cat = inputs()
    a, b = layer(num, cat)[0], layer(num, cat)[0]
    assert not torch.allclose(a, b), "train mode must draw fresh dropout masks"
    layer.eval()
    torch.testing.assert_close(layer(num, cat)[0], layer(num, cat)[0], rtol=0, atol=0)


def test_repr_shows_configuration():
    text = repr(make(name="mrta_0"))
    assert "name='mrta_0', num_heads=2, d_model=8, dropout_rate=0.0" in text


def test_head_mask_removes_exactly_that_heads_contribution():
    """Zeroing head h changes the block output by out_proj applied to head h's output alone."""
    layer = make(num_heads=2, d_model=8).eval()
    num, cat = inputs()
    layer(num, cat)
    block = layer.cat_num
    q, kv = torch.randn(3, 5, 8), torch.randn(3, 4, 8)
    with torch.no_grad():
        full, _ = block(q, kv)
        block.head_mask = torch.tensor([1.0, 0.0])
        ablated, _ = block(q, kv)
        block.head_mask = None
        qh, kh, vh = block.project(q, kv)
        head1 = (
            torch.softmax(qh[:, 1] @ kh[:, 1].transpose(-1, -2) / 2.0, -1) @ vh[:, 1]
        )  # (B, Tq, 4)
        contribution = head1 @ block.out_proj.weight[:, 4:].T
    torch.testing.assert_close(full - ablated, contribution, atol=1e-5, rtol=1e-5)


def test_head_offset_replaces_a_masked_heads_output():
    """``out * head_mask + head_offset`` on the heads' outputs, before the output projection:
    mask 0 and an offset at head 1 put that offset where head 1's output was, on every path."""
    layer = make(num_heads=2, d_model=8).eval()
    num, cat = inputs()
    layer(num, cat)
    block = layer.num_cat
    q, kv = torch.randn(3, 5, 8), torch.randn(3, 4, 8)
    replacement = torch.randn(5, 4)  # (Tq, head_dim)
    offset = torch.zeros(2, 5, 4)
    offset[1] = replacement
    with torch.no_grad():
        qh, kh, vh = block.project(q, kv)
        head0 = torch.softmax(qh[:, 0] @ kh[:, 0].transpose(-1, -2) / 2.0, -1) @ vh[:, 0]
        by_hand = block.out_proj(torch.cat([head0, replacement.expand(3, 5, 4)], dim=-1))
        block.head_mask, block.head_offset = torch.tensor([1.0, 0.0]), offset
        explicit, _ = block(q, kv)
        block.record_weights = 1
        recorded, weights = block(q, kv)
        block.record_weights = 0
        block.head_mask = block.head_offset = None
        plain, _ = block(q, kv)
    torch.testing.assert_close(explicit, by_hand, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(recorded, by_hand, atol=1e-5, rtol=1e-5)
    assert weights.shape == (3, 2, 5, 4)
    assert not torch.allclose(plain, by_hand, atol=1e-3), "without them the block is as before"


def test_head_offset_is_off_by_default():
    block = make().eval().num_num
    assert block.head_mask is None and block.head_offset is None
