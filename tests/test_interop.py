"""Parity with the Keras reference layer (kerasfactory 0.1.1, Keras 3 on the torch backend)."""

import os

import numpy as np
import pytest
import torch

from mrta import (
    AttentionRecorder,
    MultiResolutionTabularAttention,
    copy_keras_weights,
    layer_from_keras,
)

os.environ.setdefault("KERAS_BACKEND", "torch")
if os.environ.get("CI") == "true":  # in CI the reference must be there: never skip silently
    import keras
    from kerasfactory.layers import MultiResolutionTabularAttention as KerasMRTA
else:
    keras = pytest.importorskip("keras")
    KerasMRTA = pytest.importorskip("kerasfactory.layers").MultiResolutionTabularAttention

from loguru import logger

logger.remove()

CONFIGS = [  # (heads, d_model, tokens, numerical features, categorical features)
    (8, 64, 100, 10, 5),  # the seed's quick start
    (4, 32, 17, 3, 7),
    (2, 12, 9, 1, 4),
]


def keras_layer(heads, d_model, tokens, fn, fc, seed=0):
    """A built reference layer whose every weight (biases and norms too) is random."""
    layer = KerasMRTA(num_heads=heads, d_model=d_model, dropout_rate=0.1)
    layer([keras.ops.zeros((1, tokens, fn)), keras.ops.zeros((1, tokens, fc))])
    rng = np.random.default_rng(seed)
    for v in layer.weights:
        base = 1.0 if v.path.endswith("gamma") else 0.0
        v.assign(base + rng.normal(scale=0.3, size=v.shape).astype("float32"))
    return layer


def data(tokens, fn, fc, batch=4, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, tokens, fn)).astype("float32"), rng.normal(
        size=(batch, tokens, fc)
    ).astype("float32")


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "h{}-d{}-t{}-f{}x{}".format(*c))
def test_outputs_match_the_reference(config):
    _, _, tokens, fn, fc = config
    reference = keras_layer(*config)
    num, cat = data(tokens, fn, fc)
    want = reference(
        [keras.ops.convert_to_tensor(num), keras.ops.convert_to_tensor(cat)], training=False
    )
    ours = layer_from_keras(reference).eval()
    with torch.no_grad():
        got = ours([torch.from_numpy(num), torch.from_numpy(cat)])
        with AttentionRecorder(ours):
            got_recording = ours(torch.from_numpy(num), torch.from_numpy(cat))
    for g, r, w in zip(got, got_recording, want, strict=True):
        w = torch.from_numpy(keras.ops.convert_to_numpy(w))
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(r, w, atol=1e-5, rtol=1e-5)


def test_recorded_maps_are_the_reference_blocks_scores():
    """Each map id holds the weights of the reference block the mapping table names."""
    reference = keras_layer(4, 32, 6, 3, 2)
    num, cat = (keras.ops.convert_to_tensor(x) for x in data(6, 3, 2))
    n = reference.num_projection(num)
    c = reference.cat_projection(cat)
    n1 = reference.num_layernorm1(n + reference.num_attention(n, n, n))
    c1 = reference.cat_layernorm1(c + reference.cat_attention(c, c, c))
    scores = {
        "num_num": reference.num_attention(n, n, n, return_attention_scores=True)[1],
        "cat_cat": reference.cat_attention(c, c, c, return_attention_scores=True)[1],
        "cat_num": reference.num_cat_attention(c1, n1, n1, return_attention_scores=True)[1],
        "num_cat": reference.cat_num_attention(n1, c1, c1, return_attention_scores=True)[1],
    }
    ours = layer_from_keras(reference).eval()
    with AttentionRecorder(ours) as rec, torch.no_grad():
        ours(
            torch.from_numpy(keras.ops.convert_to_numpy(num)),
            torch.from_numpy(keras.ops.convert_to_numpy(cat)),
        )
    for map_id, want in scores.items():
        want = torch.from_numpy(keras.ops.convert_to_numpy(want))
        torch.testing.assert_close(rec.weights(0, map_id), want, atol=1e-5, rtol=1e-5)


def test_copy_refuses_mismatched_or_unbuilt_layers():
    reference = keras_layer(4, 32, 5, 3, 2)
    with pytest.raises(ValueError, match="d_model differs: the Keras layer has 32, ours has 16"):
        copy_keras_weights(
            reference, MultiResolutionTabularAttention(4, 16, 0.1, num_features=3, cat_features=2)
        )
    with pytest.raises(
        ValueError, match="num_features differs: the Keras layer has 3, ours has None"
    ):
        copy_keras_weights(reference, MultiResolutionTabularAttention(4, 32, 0.1))
    with pytest.raises(ValueError, match="the Keras layer is not built yet"):
        layer_from_keras(KerasMRTA(num_heads=2, d_model=8, dropout_rate=0.1))
