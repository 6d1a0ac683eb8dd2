"""One multi-head attention block: the unit that owns its parameters and is the hook point.

The block computes Keras' ``MultiHeadAttention(query, value=key_value)`` with
``key_dim = d_model // num_heads``: biased q/k/v/output projections, scores scaled by
``1/sqrt(key_dim)``, softmax over the keys, dropout on the attention weights.

Paths that compute the same function:

- nothing records: :func:`torch.nn.functional.scaled_dot_product_attention` (fused kernels).
  On the CPU two exceptions, both measured faster: maps smaller than :data:`FUSED_MIN_MAP`
  (the fused kernel's per-call cost dominates there; the weights are computed and dropped, never
  kept), and training with dropout (:func:`mrta.nn.dropout_attention.dropout_attention`, because
  SDPA's dropout falls back to a slow unfused path on the CPU);
- a recorder is attached (``block.record_weights > 0``): the weights are computed explicitly and
  returned next to the output, so that forward hooks receive them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mrta.nn.dropout import fast_dropout
from mrta.nn.dropout_attention import dropout_attention

# Queries x keys from which the fused CPU kernel beats explicit weights. Measured on 2 cores
# with 8-dim heads: explicit is 2x faster at 100x100 and 2.7x at 20x20, fused 1.6x faster at
# 300x300 (where it also avoids the (B, H, Tq, Tk) buffer).
FUSED_MIN_MAP = 160 * 160
SHORT_ROWS = 16  # keys per query below which a hand-written softmax is faster on the CPU


class AttentionBlock(nn.Module):
    """Multi-head attention from ``query`` tokens to ``key_value`` tokens.

    Args:
        d_model: width of the tokens (queries, keys and values all have it).
        num_heads: number of heads; ``d_model`` must be divisible by it.
        dropout_rate: dropout on the attention weights, in training mode.

    Shape:
        - query: ``(B, Tq, d_model)``
        - key_value: ``(B, Tk, d_model)``
        - key_mask: ``(B, Tk)`` bool, ``True`` for real tokens (optional)
        - output: ``(B, Tq, d_model)``, and the weights ``(B, H, Tq, Tk)`` when recording,
          else ``None``. Recorded weights are taken before dropout, so each query row sums to 1.
        - head_mask (attribute): ``(H,)`` factors on the heads' outputs, or ``None``
        - head_offset (attribute): broadcastable to ``(B, H, Tq, head_dim)``, added to the
          heads' outputs after ``head_mask``, or ``None``

    The heads' outputs (before the output projection) become ``out * head_mask + head_offset``
    where these are set; interventions (:mod:`mrta.analysis.checks`) use them to zero or
    mean-ablate heads. Both default to ``None``, which leaves every path unchanged.
    """

    def __init__(self, d_model: int, num_heads: int, dropout_rate: float = 0.0) -> None:
        super().__init__()
        self.d_model = d_model
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.dropout_rate = dropout_rate
        # q, k and v projections stacked in one matrix, so self-attention needs one matmul.
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        # How many recorders are attached; > 0 switches to the explicit-weights path.
        self.record_weights = 0
        # Optional per-head factors (H,) on the heads' outputs; zeros ablate heads.
        self.head_mask: Tensor | None = None
        # Optional tensor added to the heads' outputs after head_mask, broadcastable to
        # (B, H, Tq, head_dim): with head_mask 0 at head h and head h's mean output here, the
        # head is mean-ablated. ``None`` (the default) costs nothing.
        self.head_offset: Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform kernels and zero biases, as Keras initialises its attention."""
        for w in self.in_proj_weight.chunk(3):
            nn.init.xavier_uniform_(w)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def project(self, query: Tensor, key_value: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Project to per-head ``q, k, v`` of shape ``(B, H, T, head_dim)``."""
        d = self.d_model
        if key_value is None:  # self-attention: one fused matmul
            q, k, v = F.linear(query, self.in_proj_weight, self.in_proj_bias).split(d, dim=-1)
        else:
            q = F.linear(query, self.in_proj_weight[:d], self.in_proj_bias[:d])
            k, v = F.linear(key_value, self.in_proj_weight[d:], self.in_proj_bias[d:]).split(
                d, dim=-1
            )
        return self._heads(q), self._heads(k), self._heads(v)

    def _heads(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        # contiguous heads: the fused CPU kernel is ~25% faster on them than on strided views
        return (
            x.view(b, t, self.num_heads, self.head_dim).transpose(1, 2).contiguous()
        )  # (B, H, T, hd)

    def forward(
        self, query: Tensor, key_value: Tensor | None = None, key_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Attend from ``query`` to ``key_value`` (``None`` means self-attention)."""
        assert query.dim() == 3 and query.shape[-1] == self.d_model, (
            f"query must be (B, Tq, {self.d_model}), got {tuple(query.shape)}"
        )
        q, k, v = self.project(query, key_value)
        mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, 1, 1, Tk)
        p = self.dropout_rate if self.training else 0.0
        weights = None
        if self.record_weights > 0:
            weights = attention_weights(q, k, mask)  # (B, H, Tq, Tk)
            out = attend(fast_dropout(weights, p, p > 0.0), v)
        elif p > 0.0 and q.device.type == "cpu":
            out = dropout_attention(q, k, v, mask, p)
        elif q.device.type == "cpu" and q.shape[2] * k.shape[2] < FUSED_MIN_MAP:
            out = attend(attention_weights(q, k, mask), v)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        if self.head_mask is not None:
            out = out * self.head_mask.to(out).view(1, -1, 1, 1)
        if self.head_offset is not None:
            out = out + self.head_offset.to(out)
        b, _, tq, _ = out.shape
        out = self.out_proj(out.transpose(1, 2).reshape(b, tq, self.d_model))
        return out, weights


def attention_weights(q: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
    """Softmax of scaled dot products; ``mask`` (bool, ``True`` = attend) broadcasts to scores.

    Shape: q ``(B, H, Tq, hd)``, k ``(B, H, Tk, hd)`` -> ``(B, H, Tq, Tk)``.
    """
    scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)
    if mask is not None:
        scores.masked_fill_(~mask, float("-inf"))
    if scores.requires_grad:
        return scores.softmax(dim=-1)
    # In place when nothing needs the scores for backward: one (B, H, Tq, Tk) buffer, not two.
    if scores.device.type == "cpu" and scores.shape[-1] < SHORT_ROWS:
        # torch's CPU softmax is ~5x slower on rows shorter than a vector register
        scores.sub_(scores.amax(dim=-1, keepdim=True)).exp_()
        return scores.div_(scores.sum(dim=-1, keepdim=True))
    return torch.softmax(scores, dim=-1, out=scores)


def attend(weights: Tensor, v: Tensor) -> Tensor:
    """``weights @ v``, computed as ``(v^T @ weights^T)^T``: for small heads BLAS is up to twice
    as fast producing ``(hd, Tq)`` as ``(Tq, hd)``.

    Shape: weights ``(B, H, Tq, Tk)``, v ``(B, H, Tk, hd)`` -> ``(B, H, Tq, hd)``.
    """
    return (v.transpose(-2, -1) @ weights.transpose(-2, -1)).transpose(-2, -1)
