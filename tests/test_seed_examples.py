"""The seed page's code examples, moved to PyTorch, at the page's token and feature counts.

Each builds the page's model with the page's layer arguments (Keras layers replaced by their
PyTorch counterparts), runs forward and backward at batch 2, checks the shapes the page states
and that every parameter receives a finite gradient that is not zero everywhere.
"""

import pytest
import torch
from torch import nn

from mrta import MultiResolutionTabularAttention

B = 2


def gap(x):  # keras.layers.GlobalAveragePooling1D
    return x.mean(dim=1)


def gmp(x):  # keras.layers.GlobalMaxPooling1D
    return x.amax(dim=1)


class SequentialExample(nn.Module):
    """'In a Sequential Model': per-token concat -> Dense(64, relu) -> Dense(1, sigmoid)."""

    def __init__(self):
        super().__init__()
        self.attention = MultiResolutionTabularAttention(num_heads=4, d_model=32, dropout_rate=0.1)
        self.dense = nn.LazyLinear(64)
        self.out = nn.LazyLinear(1)

    def forward(self, num, cat):
        num_out, cat_out = self.attention([num, cat])
        combined = torch.relu(self.dense(torch.cat([num_out, cat_out], dim=-1)))
        return torch.sigmoid(self.out(combined))


class FunctionalExample(nn.Module):
    """'In a Functional Model': Dense(64, relu) per stream, Dropout(0.2), Dense(3, softmax)."""

    def __init__(self):
        super().__init__()
        self.attention = MultiResolutionTabularAttention(
            num_heads=8, d_model=128, dropout_rate=0.15
        )
        self.num_dense, self.cat_dense = nn.LazyLinear(64), nn.LazyLinear(64)
        self.dropout = nn.Dropout(0.2)
        self.out = nn.LazyLinear(3)

    def forward(self, num, cat):
        num_att, cat_att = self.attention([num, cat])
        combined = torch.cat(
            [torch.relu(self.num_dense(num_att)), torch.relu(self.cat_dense(cat_att))], -1
        )
        return torch.softmax(self.out(self.dropout(combined)), dim=-1)


class AdvancedExample(nn.Module):
    """'Advanced Configuration': pooled streams into a classification and a regression head."""

    def __init__(self):
        super().__init__()
        self.attention = MultiResolutionTabularAttention(
            num_heads=16, d_model=256, dropout_rate=0.2, name="advanced_multi_resolution"
        )
        self.classification = nn.Sequential(
            nn.LazyLinear(64), nn.ReLU(), nn.Dropout(0.3), nn.LazyLinear(5), nn.Softmax(-1)
        )
        self.regression = nn.Sequential(nn.LazyLinear(32), nn.ReLU(), nn.LazyLinear(1))

    def forward(self, num, cat):
        num_out, cat_out = self.attention([num, cat])
        combined = torch.cat([gap(num_out), gap(cat_out)], dim=-1)
        return self.classification(combined), self.regression(combined)


class PooledExample(nn.Module):
    """Examples 1-3: pool both streams, concat, then a dense head."""

    def __init__(self, heads, d_model, dropout, pool, head):
        super().__init__()
        self.attention = MultiResolutionTabularAttention(
            num_heads=heads, d_model=d_model, dropout_rate=dropout
        )
        self.pool = pool
        self.head = head

    def forward(self, num, cat):
        num_out, cat_out = self.attention([num, cat])
        return self.head(torch.cat([self.pool(num_out), self.pool(cat_out)], dim=-1))


def example_1():  # E-commerce recommendation
    head = nn.Sequential(
        nn.LazyLinear(128), nn.ReLU(), nn.Dropout(0.2), nn.LazyLinear(1), nn.Sigmoid()
    )
    return PooledExample(8, 64, 0.1, gap, head)


def example_2():  # Medical diagnosis
    head = nn.Sequential(
        nn.LazyLinear(64), nn.ReLU(), nn.Dropout(0.3), nn.LazyLinear(10), nn.Softmax(-1)
    )
    return PooledExample(6, 96, 0.15, gmp, head)


def example_3():  # Financial risk assessment
    head = nn.Sequential(
        nn.LazyLinear(128),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.LazyLinear(64),
        nn.ReLU(),
        nn.LazyLinear(1),
        nn.Sigmoid(),
    )
    return PooledExample(12, 144, 0.2, gap, head)


def check_gradients(model: nn.Module) -> None:
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} received no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{name} has a gradient that is zero everywhere"


def test_basic_usage():
    numerical_features = torch.randn(B, 100, 10)
    categorical_features = torch.randn(B, 100, 5)
    attention = MultiResolutionTabularAttention(num_heads=8, d_model=64, dropout_rate=0.1)
    num_output, cat_output = attention([numerical_features, categorical_features])
    assert num_output.shape == (B, 100, 64)
    assert cat_output.shape == (B, 100, 64)
    (num_output.square().mean() + cat_output.square().mean()).backward()
    check_gradients(attention)


@pytest.mark.parametrize(
    "build, tokens, fn, fc, out_shapes",
    [
        (SequentialExample, 100, 10, 5, [(B, 100, 1)]),
        (FunctionalExample, 50, 15, 8, [(B, 50, 3)]),
        (AdvancedExample, 100, 20, 10, [(B, 5), (B, 1)]),
        (example_1, 1000, 8, 6, [(B, 1)]),
        (example_2, 200, 12, 8, [(B, 10)]),
        (example_3, 500, 15, 7, [(B, 1)]),
    ],
    ids=["sequential", "functional", "advanced", "ecommerce", "medical", "financial"],
)
def test_page_examples(build, tokens, fn, fc, out_shapes):
    model = build()
    num, cat = torch.randn(B, tokens, fn), torch.randn(B, tokens, fc)
    outputs = model(num, cat)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    assert [tuple(o.shape) for o in outputs] == out_shapes
    # a loss that reaches every parameter: a target per output, as the page's compile() implies
    loss = sum(((o - torch.rand_like(o)) ** 2).mean() for o in outputs)
    loss.backward()
    check_gradients(model)
