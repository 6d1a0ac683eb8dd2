"""What each attention block read and how it weighed it, in one forward pass: the inputs of the
attributions that account for what attention moves (:mod:`mrta.analysis.value_norm`,
:mod:`mrta.analysis.relevance`).

:func:`capture_blocks` runs the model once with forward hooks on every attention block of every
:class:`~mrta.nn.layer.MultiResolutionTabularAttention` layer and keeps, per block, its query
input (which is also the residual its stage adds back), its key/value input, its attention
weights, and the LayerNorm its stage ends with. With ``gradients=True`` the weights stay in the
autograd graph, so that a backward pass from the logits fills :attr:`BlockPass.grad`.

The stages of one layer (see :mod:`mrta.nn.layer`)::

    n1 = norm_n1(n  + num_num(q=n,  kv=n))     c1 = norm_c1(c  + cat_cat(q=c,  kv=c))
    c2 = norm_cc(c1 + cat_num(q=c1, kv=n1))    n2 = norm_nc(n1 + num_cat(q=n1, kv=c1))
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mrta.analysis.inputs import attention_layers
from mrta.nn.attention import AttentionBlock

#: The LayerNorm that closes each block's stage, by map id (attribute names of the layer).
STAGE_NORMS: dict[str, str] = {
    "num_num": "norm_n1",
    "cat_cat": "norm_c1",
    "cat_num": "norm_cc",
    "num_cat": "norm_nc",
}


@dataclass
class BlockPass:
    """One attention block's inputs and weights in one forward pass.

    Attributes:
        block: the block (its projections: ``in_proj_weight``, ``in_proj_bias``,
            ``out_proj``).
        norm: the LayerNorm that closes the block's stage: ``norm(query + block(...))``.
        query: the query tokens, which are also the stage's residual.
        key_value: the key/value tokens (the query tokens for self-attention).
        weights: the attention weights, in the autograd graph when captured with gradients.

    Shape:
        - query: ``(B, Tq, D)``; key_value: ``(B, Tk, D)``
        - weights, grad: ``(B, H, Tq, Tk)``
    """

    block: AttentionBlock
    norm: nn.LayerNorm
    query: Tensor
    key_value: Tensor
    weights: Tensor

    @property
    def grad(self) -> Tensor | None:
        """The gradient of what was backpropagated with respect to :attr:`weights`."""
        return self.weights.grad


#: Per layer (first layer first), the blocks that ran, by map id.
LayerPasses = list[dict[str, BlockPass]]


@contextmanager
def capture_blocks(model: nn.Module, *, gradients: bool = False) -> Iterator[LayerPasses]:
    """Hooks on every attention block of `model` for the block; the passes fill the yielded
    list during the (single) forward pass run inside it. Blocks that do not run (a one-stream
    model's cross blocks) are absent.

    With `gradients`, the captured weights keep their graph and retain their gradient; without,
    everything captured is detached.
    """
    layers = attention_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no MultiResolutionTabularAttention layer")
    passes: LayerPasses = [{} for _ in layers]
    handles = []

    def hook_for(index: int, map_id: str, norm: nn.LayerNorm):
        def hook(block: AttentionBlock, args: tuple, output: tuple[Tensor, Tensor | None]) -> None:
            query = args[0]
            key_value = args[1] if len(args) > 1 and args[1] is not None else query
            weights = output[1]
            assert weights is not None, "a recording block returns its attention weights"
            if gradients:
                weights.retain_grad()
            else:
                query, key_value, weights = query.detach(), key_value.detach(), weights.detach()
            passes[index][map_id] = BlockPass(block, norm, query, key_value, weights)

        return hook

    blocks = []
    for index, layer in enumerate(layers):
        for map_id, block in layer.attention_blocks().items():
            norm = getattr(layer, STAGE_NORMS[map_id])
            handles.append(block.register_forward_hook(hook_for(index, map_id, norm)))
            block.record_weights += 1
            blocks.append(block)
    try:
        with torch.enable_grad() if gradients else torch.no_grad():
            yield passes
    finally:
        for handle in handles:
            handle.remove()
        for block in blocks:
            block.record_weights -= 1
