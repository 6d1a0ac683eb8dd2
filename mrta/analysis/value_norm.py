"""Norm-based attribution: how much each input column flows into the pooled representation,
measured by the vectors the attention blocks actually add, not by the attention weights alone.

Kobayashi et al. (EMNLP 2020, "Attention is Not Only a Weight") observe that a block's output is
a sum of one vector per key, and weigh each key by the norm of its vector instead of its
attention weight; Kobayashi et al. (EMNLP 2021, "Incorporating Residual and Normalization
Layers") carry the decomposition through the residual connection and the LayerNorm. This
module applies both to the two streams and two stages of
:class:`~mrta.nn.layer.MultiResolutionTabularAttention` and composes them over the layers as
:mod:`mrta.analysis.rollout` does. Tokens are ordered ``[numerical..., categorical...]``
(``T = Tn + Tc``); in a stage matrix, rows are the tokens a stage writes, columns the tokens it
reads, and every row sums to 1.

One block. With queries ``x_i``, keys/values ``x_j``, the weights ``α^h_ij`` of head ``h``, the
value projection ``W_V^h, b_V^h`` (rows ``h·hd:(h+1)·hd`` of the stacked value rows of
``in_proj``) and the output projection ``W_O^h`` (the columns of ``out_proj`` that read head
``h``), the block's output is a sum of one vector per key plus a bias::

    f^h(x_j) = (x_j W_V^h + b_V^h) W_O^h              (the value bias belongs to the key)
    z_ij     = Σ_h α^h_ij f^h(x_j)                      (the heads' vectors are summed first)
    y_i      = Σ_j z_ij + b_O

One stage. Every stage of the layer is ``LN(x_i + y_i)``: the queries are also the residual.
With ``ℓ(u) = γ ⊙ (u − mean(u))`` (LN's scale, centring over the ``D`` features), linear in
``u``, and ``s_i`` the standard deviation LN divides row ``i`` by (one number per row)::

    LN(x_i + Σ_j z_ij + b_O) = [ℓ(x_i) + Σ_j ℓ(z_ij) + ℓ(b_O)] / s_i + β

so the residual weighs ``r_i = ‖ℓ(x_i)‖`` and key ``j`` weighs ``a_ij = ‖ℓ(z_ij)‖``. ``b_O``
and ``β`` depend on no token and are left out; ``s_i`` scales a whole row and cancels when it
is normalised. The stage's row ``i`` is::

    M_ij = (r_i·[j = i] + a_ij) / (r_i + Σ_k a_ik)

A row whose weights are all zero (every vector zero) keeps its mass on itself (an identity
row), which also guards the ``0/0``. On the self stage's diagonal the residual's norm and the
key's are added (Kobayashi et al.'s 2021 code takes one norm of their sum,
``‖ℓ(x_i + z_ii)‖``, instead; the two differ only when the vectors are not aligned).

The layer's stages (see :mod:`mrta.nn.layer`)::

    n1 = LN(n + num_num(q=n, kv=n))          c1 = LN(c + cat_cat(q=c, kv=c))
    n2 = LN(n1 + num_cat(q=n1, kv=c1))       c2 = LN(c1 + cat_num(q=c1, kv=n1))

The self stage ``S`` is block-diagonal: ``num_num``'s rows over the numerical columns,
``cat_cat``'s over the categorical ones, the residual on the diagonal. The cross stage ``C``
gives a numerical row its residual on its own column and ``num_cat``'s shares on the
categorical columns, a categorical row its residual and ``cat_num``'s shares on the numerical
columns. Both cross blocks read the post-self states ``n1, c1`` in parallel, so ``C`` is one
matrix, built from those states (each block's residual ``x_i`` is its own query, normalised by
its own stage's LN)::

    L = C @ S                   (one layer)
    R = L_last @ ... @ L_first  (the flow from the inputs to the last layer's tokens)
    importance_j = (1/T) · Σ_i R_ij

The feed-forward block and the last LayerNorms act on each token alone: they move nothing
between tokens and drop out of the flow. The readout is the uniform mean over all ``T`` tokens,
hence the column mean; every row of every ``M`` sums to 1, so the importances sum to 1. A model
with one stream has no cross stage (``C = I``) and only its own self map; any block that did
not run leaves its rows as identity rows.

How it differs from :mod:`mrta.analysis.rollout`: the rollout gives the residual and the
attention a fixed half of each row, so in a two-stream model it splits the importance half and
half between the streams whatever the maps. Here those shares are measured from the vectors: a
block whose outputs are small next to its residual moves little, a cross stage that moves
nothing leaves each stream its own mass, and a key with a zero value vector gets nothing
whatever its attention weight.

Row models only: captured blocks are taken to have no key padding (the set models' masks are
out of scope).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from mrta.analysis.block_capture import BlockPass, LayerPasses, capture_blocks
from mrta.analysis.inputs import Inputs, attention_layers, split_inputs
from mrta.errors import positive_int
from mrta.training.inference import batches, evaluating, model_device

DEFAULT_BATCH_SIZE = 256
#: Bytes of float64 ``(example, head, query, key)`` cells that one batch's blocks (every layer's
#: four) may hold: what bounds the batch whatever the number of columns.
MAP_BYTES = 64 * 2**20


def value_norm_flows(passes: LayerPasses, n_num: int, n_cat: int) -> list[Tensor]:
    """Per layer, the flow ``L = C @ S`` of norm-based shares (see the module docstring).

    Args:
        passes: per layer, the blocks that ran, by map id (:func:`capture_blocks`'s list).
        n_num: numerical tokens ``Tn``; n_cat: categorical tokens ``Tc``.

    Shape:
        - each pass: query ``(B, Tq, D)``, key_value ``(B, Tk, D)``, weights ``(B, H, Tq, Tk)``
        - output: per layer ``(B, T, T)`` float64 on the CPU, ``T = Tn + Tc``, rows summing to 1

    Computed in float64 on the CPU, without gradients.
    """
    _check_passes(passes, n_num, n_cat)
    t = n_num + n_cat
    num, cat = slice(0, n_num), slice(n_num, t)
    self_blocks = {"num_num": (num, num), "cat_cat": (cat, cat)}
    cross_blocks = {"num_cat": (num, cat), "cat_num": (cat, num)}
    with torch.no_grad():
        return [_stage(layer, cross_blocks, t) @ _stage(layer, self_blocks, t) for layer in passes]


def value_norm_importance(
    model: nn.Module, data: Inputs, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> np.ndarray:
    """Per example, how much each input token flows into the pooled representation.

    Runs `model` in eval mode without gradients (its mode is restored after). A batch holds at
    most `batch_size` rows, fewer when the attention maps of all its blocks would exceed
    :data:`MAP_BYTES` in float64.

    Args:
        model: a row model (:class:`~mrta.nn.model.TabularAttentionModel`).
        data: an encoded table or ``(numerical, indicators, categorical)`` tensors.
        batch_size: at most this many rows per forward pass (positive).

    Shape: ``(N, T)`` float64, tokens ordered ``model.numerical_tokens`` then
    ``model.categorical_tokens``, each row summing to 1.
    """
    positive_int(batch_size, "batch_size")
    if not hasattr(model, "numerical_tokens") or not hasattr(model, "categorical_tokens"):
        raise ValueError(
            f"model must be a row model with numerical_tokens and categorical_tokens, got "
            f"{type(model).__name__}"
        )
    numerical, indicators, categorical, _ = split_inputs(data)
    n_num, n_cat = len(model.numerical_tokens), len(model.categorical_tokens)
    rows_per_batch = _batch_rows(model, batch_size, n_num + n_cat)
    device = model_device(model)
    importance = [np.empty((0, n_num + n_cat))]
    with evaluating(model):
        for rows in batches(len(numerical), rows_per_batch):
            with capture_blocks(model) as passes:
                model(
                    numerical[rows].to(device),
                    indicators[rows].to(device),
                    categorical[rows].to(device),
                )
            flows = value_norm_flows(passes, n_num, n_cat)
            importance.append(_pooled(flows).numpy())
    return np.concatenate(importance)


def _stage(layer: dict[str, BlockPass], blocks: dict[str, tuple[slice, slice]], t: int) -> Tensor:
    """One stage's matrix: each block's residual norms on its rows' diagonal, its key norms on
    its (rows, columns) block, rows normalised. Shape: ``(B, T, T)``."""
    batch = next(iter(layer.values())).query.shape[0]
    weights = torch.zeros(batch, t, t, dtype=torch.float64)
    for map_id, (rows, cols) in blocks.items():
        if map_id in layer:
            residual, keys = _block_norms(layer[map_id])  # (B, Tq), (B, Tq, Tk)
            weights[:, rows, cols] += keys
            weights[:, rows, rows].diagonal(dim1=-2, dim2=-1).add_(residual)
    return _row_stochastic(weights)


def _block_norms(p: BlockPass) -> tuple[Tensor, Tensor]:
    """``r_i = ‖ℓ(x_i)‖`` and ``a_ij = ‖ℓ(z_ij)‖`` of one block and its stage's LayerNorm.

    ``ℓ`` is linear, so ``ℓ(z_ij) = Σ_h α^h_ij ℓ(f^h(x_j))`` and ``‖ℓ(z_ij)‖²`` is the quadratic
    form of ``α_ij`` in the Gram matrix of the heads' vectors of key ``j``: the ``(B, Tq, Tk, D)``
    vectors are never formed.

    Shape: ``(B, Tq)`` and ``(B, Tq, Tk)``.
    """
    cpu64 = {"device": "cpu", "dtype": torch.float64}
    block, d = p.block, p.block.d_model
    heads, head_dim = block.num_heads, block.head_dim
    gamma = p.norm.weight.to(**cpu64)  # (D,)
    w_v = block.in_proj_weight[2 * d :].to(**cpu64)  # (D, D)
    b_v = block.in_proj_bias[2 * d :].to(**cpu64)  # (D,)
    w_o = block.out_proj.weight.to(**cpu64).view(d, heads, head_dim)  # (D_out, H, hd)
    x, kv, alpha = p.query.to(**cpu64), p.key_value.to(**cpu64), p.weights.to(**cpu64)
    b, tk = kv.shape[:2]

    def ell(u: Tensor) -> Tensor:  # γ ⊙ (u − mean(u)) over the last dimension
        return gamma * (u - u.mean(dim=-1, keepdim=True))

    values = (kv @ w_v.T + b_v).view(b, tk, heads, head_dim)  # (B, Tk, H, hd)
    f = ell(torch.einsum("bkhe,dhe->bkhd", values, w_o))  # (B, Tk, H, D): ℓ(f^h(x_j))
    gram = f @ f.transpose(-2, -1)  # (B, Tk, H, H)
    mixed = torch.einsum("bhqk,bkhg->bgqk", alpha, gram)  # (B, H, Tq, Tk)
    squared = (mixed * alpha).sum(dim=1)  # (B, Tq, Tk): ‖Σ_h α^h_ij ℓ(f^h(x_j))‖²
    return ell(x).norm(dim=-1), squared.clamp_min(0.0).sqrt()


def _row_stochastic(weights: Tensor) -> Tensor:
    """Each row divided by its sum; a row of zeros becomes the identity's row.
    Shape: ``(B, T, T)``."""
    total = weights.sum(dim=-1, keepdim=True)  # (B, T, 1)
    eye = torch.eye(weights.shape[-1], dtype=weights.dtype)
    return torch.where(total > 0, weights / torch.where(total > 0, total, 1.0), eye)


def _pooled(flows: list[Tensor]) -> Tensor:
    """The column mean of ``R = L_last @ ... @ L_first``, carried as a row vector through the
    flows (last layer first). Shape: per layer ``(B, T, T)`` -> ``(B, T)``."""
    batch, t, _ = flows[0].shape
    v = torch.full((batch, 1, t), 1.0 / t, dtype=torch.float64)  # (B, 1, T)
    for flow in reversed(flows):
        v = v @ flow
    return v[:, 0]


def _batch_rows(model: nn.Module, batch_size: int, t: int) -> int:
    """`batch_size`, lowered so that a batch's maps (4 blocks per layer) fit :data:`MAP_BYTES`."""
    heads = sum(4 * layer.num_heads for layer in attention_layers(model))
    return max(1, min(batch_size, MAP_BYTES // (8 * max(heads, 1) * t * t)))


def _check_passes(passes: LayerPasses, n_num: int, n_cat: int) -> None:
    """``ValueError`` naming the argument, for counts or passes that do not fit together."""
    for arg, value in (("n_num", n_num), ("n_cat", n_cat)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{arg} must be a non-negative integer, got {value!r}")
    if n_num + n_cat == 0:
        raise ValueError("n_num and n_cat must not both be 0")
    if not passes or not all(passes):
        raise ValueError("passes must hold at least one layer, each with at least one block")
    counts = {"num": ("n_num", n_num), "cat": ("n_cat", n_cat)}
    for index, layer in enumerate(passes):
        for map_id, p in layer.items():
            if map_id[:3] not in counts or map_id[-3:] not in counts:
                raise ValueError(f"passes[{index}] has an unknown map id {map_id!r}")
            for side, size in (map_id[:3], p.query.shape[1]), (map_id[-3:], p.key_value.shape[1]):
                arg, count = counts[side]
                if size != count:
                    raise ValueError(
                        f"{arg}={count} does not match passes[{index}][{map_id!r}], whose "
                        f"{side} side has {size} tokens"
                    )
