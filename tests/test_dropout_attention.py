"""The hand-written attention-with-dropout: same outputs and gradients as plain autograd."""

import math

import pytest
import torch

import mrta.nn.dropout_attention as da


def explicit(q, k, v, key_mask, drop, p):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask, float("-inf"))
    return scores.softmax(-1).masked_fill(drop, 0.0) @ v / (1 - p)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("keep_weights", [True, False])
@pytest.mark.parametrize("chunk_elements", [1 << 18, 50])
def test_matches_autograd_with_the_same_dropout_mask(
    monkeypatch, masked, keep_weights, chunk_elements
):
    b, h, tq, tk, hd, p = 3, 2, 5, 7, 4, 0.3
    q, k, v = (torch.randn(b, h, t, hd, requires_grad=True) for t in (tq, tk, tk))
    key_mask = None
    if masked:
        key_mask = torch.rand(b, 1, 1, tk) > 0.4
        key_mask[..., 0] = True
    drop = torch.rand(b, h, tq, tk) < p
    flat_drop = drop.reshape(b * h, tq, tk)
    served = []

    def fixed_mask(shape, p_, device):  # hands out the fixed mask chunk by chunk
        start = sum(m.shape[0] for m in served)
        served.append(flat_drop[start : start + shape[0]])
        return ~served[-1]

    monkeypatch.setattr(da, "keep_mask", fixed_mask)
    monkeypatch.setattr(da, "CHUNK_ELEMENTS", chunk_elements)
    monkeypatch.setattr(da, "SAVE_WEIGHTS_LIMIT", 1 << 30 if keep_weights else 0)
    grad = torch.randn(b, h, tq, hd)
    got = da.dropout_attention(q, k, v, key_mask, p)
    got_grads = torch.autograd.grad(got, (q, k, v), grad)
    want = explicit(q, k, v, key_mask, drop, p)
    want_grads = torch.autograd.grad(want, (q, k, v), grad)
    torch.testing.assert_close(got, want)
    for g, w in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(g, w)
    assert len(served) == (1 if chunk_elements > 1000 else b * h)


def test_rate_of_dropped_weights():
    """With p the share of zeroed weights, the output mean stays that of no dropout."""
    q = torch.zeros(64, 4, 50, 2)  # uniform attention: every weight is 1/50
    v = torch.ones(64, 4, 50, 2)
    out = da.dropout_attention(q, q, v, None, 0.2)
    assert abs(out.mean().item() - 1.0) < 0.01
