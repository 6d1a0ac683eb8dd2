"""The 16-bit-mask dropout: its rate, its scaling, its gradient."""

import pytest
import torch

from mrta.nn.dropout import fast_dropout, keep_mask


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_drop_rate_matches_p(p):
    mask = keep_mask((1000, 1000), p, torch.device("cpu"))
    # 1e6 draws: the standard error of the rate is below 5e-4
    assert abs((~mask).float().mean().item() - p) < 2e-3


def test_masks_of_odd_sizes_and_fresh_draws():
    a, b = (
        keep_mask((3, 5, 7), 0.5, torch.device("cpu")),
        keep_mask((3, 5, 7), 0.5, torch.device("cpu")),
    )
    assert a.shape == (3, 5, 7) and a.dtype == torch.bool
    assert not torch.equal(a, b)


def test_inverted_scaling_and_gradient():
    x = torch.ones(200, 500, requires_grad=True)
    y = fast_dropout(x, 0.2, training=True)
    kept = y != 0
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.8))
    assert abs(y.mean().item() - 1.0) < 0.01
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.8)
    unscaled = fast_dropout(torch.ones(10, 10), 0.2, training=True, scale=False)
    assert set(unscaled.unique().tolist()) <= {0.0, 1.0}


def test_identity_when_not_training_or_p_zero():
    x = torch.randn(4, 4)
    assert fast_dropout(x, 0.5, training=False) is x
    assert fast_dropout(x, 0.0, training=True) is x
