"""Move weights from the Keras reference layer (``kerasfactory`` 0.1.1) into ours.

Keras is not a dependency of ``mrta``: these functions only read the reference layer's
variables (anything with ``.numpy()``), so they work with any Keras backend.

The mapping (reference attribute -> our module):

=========================  ===========  =========================================
reference                  ours         role
=========================  ===========  =========================================
``num_projection``         ``num_proj`` numerical input projection
``cat_projection``         ``cat_proj`` categorical input projection
``num_attention``          ``num_num``  numerical queries, numerical keys
``cat_attention``          ``cat_cat``  categorical queries, categorical keys
``num_cat_attention``      ``cat_num``  categorical queries, numerical keys
``cat_num_attention``      ``num_cat``  numerical queries, categorical keys
``num_layernorm1``         ``norm_n1``
``cat_layernorm1``         ``norm_c1``
``cross_cat_layernorm``    ``norm_cc``
``cross_num_layernorm``    ``norm_nc``
``num_layernorm2``         ``norm_n2``
``cat_layernorm2``         ``norm_c2``
``ffn_dense1/2``           ``ffn1/2``   the feed-forward block shared by both streams
=========================  ===========  =========================================

Keras kernels are ``(in, out)`` where PyTorch weights are ``(out, in)``; attention kernels are
``(d_model, heads, key_dim)`` for q/k/v and ``(heads, key_dim, d_model)`` for the output.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from mrta.nn.attention import AttentionBlock
from mrta.nn.layer import MultiResolutionTabularAttention

ATTENTION_MAP = {
    "num_attention": "num_num",
    "cat_attention": "cat_cat",
    "num_cat_attention": "cat_num",
    "cat_num_attention": "num_cat",
}
LAYER_NORM_MAP = {
    "num_layernorm1": "norm_n1",
    "cat_layernorm1": "norm_c1",
    "cross_cat_layernorm": "norm_cc",
    "cross_num_layernorm": "norm_nc",
    "num_layernorm2": "norm_n2",
    "cat_layernorm2": "norm_c2",
}
DENSE_MAP = {
    "num_projection": "num_proj",
    "cat_projection": "cat_proj",
    "ffn_dense1": "ffn1",
    "ffn_dense2": "ffn2",
}


def layer_from_keras(keras_layer: Any) -> MultiResolutionTabularAttention:
    """A new PyTorch layer with the configuration and weights of a built Keras layer."""
    _check_built(keras_layer)
    layer = MultiResolutionTabularAttention(
        num_heads=keras_layer.num_heads,
        d_model=keras_layer.d_model,
        dropout_rate=float(keras_layer.dropout_rate),
        name=keras_layer.name,
        num_features=int(keras_layer.num_features),
        cat_features=int(keras_layer.cat_features),
    )
    copy_keras_weights(keras_layer, layer)
    return layer


@torch.no_grad()
def copy_keras_weights(keras_layer: Any, layer: MultiResolutionTabularAttention) -> None:
    """Copy every weight of a built Keras ``MultiResolutionTabularAttention`` into ``layer``.

    ``layer`` must have the same ``num_heads`` and ``d_model`` and known feature sizes equal to
    the Keras layer's (pass ``num_features``/``cat_features`` at construction).
    """
    _check_built(keras_layer)
    for arg in ("num_heads", "d_model", "num_features", "cat_features"):
        ours, theirs = getattr(layer, arg), int(getattr(keras_layer, arg))
        if ours != theirs:
            raise ValueError(f"{arg} differs: the Keras layer has {theirs}, ours has {ours}")
    for keras_name, ours in DENSE_MAP.items():
        _copy_dense(getattr(keras_layer, keras_name), getattr(layer, ours))
    for keras_name, ours in LAYER_NORM_MAP.items():
        norm, target = getattr(keras_layer, keras_name), getattr(layer, ours)
        target.weight.copy_(_tensor(norm.gamma))
        target.bias.copy_(_tensor(norm.beta))
    for keras_name, ours in ATTENTION_MAP.items():
        _copy_attention(getattr(keras_layer, keras_name), getattr(layer, ours))


def _copy_dense(dense: Any, linear: nn.Linear) -> None:
    linear.weight.copy_(_tensor(dense.kernel).T)
    linear.bias.copy_(_tensor(dense.bias))


def _copy_attention(mha: Any, block: AttentionBlock) -> None:
    d = block.d_model
    for i, dense in enumerate((mha._query_dense, mha._key_dense, mha._value_dense)):
        block.in_proj_weight[i * d : (i + 1) * d].copy_(_tensor(dense.kernel).reshape(d, d).T)
        block.in_proj_bias[i * d : (i + 1) * d].copy_(_tensor(dense.bias).reshape(d))
    block.out_proj.weight.copy_(_tensor(mha._output_dense.kernel).reshape(d, d).T)
    block.out_proj.bias.copy_(_tensor(mha._output_dense.bias))


def _tensor(variable: Any) -> torch.Tensor:
    return torch.from_numpy(np.array(variable.numpy(), dtype=np.float32))


def _check_built(keras_layer: Any) -> None:
    if not getattr(keras_layer, "built", False) or keras_layer.num_projection is None:
        raise ValueError(
            "the Keras layer is not built yet: call it once on inputs of the right shape first"
        )
