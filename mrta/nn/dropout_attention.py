"""Softmax attention with dropout on the weights, fast on the CPU (training only).

``out = dropout(softmax(q k^T / sqrt(hd) + mask)) v``, the function Keras computes in training.

Why not ``scaled_dot_product_attention(dropout_p=p)``: on the CPU it falls back to the unfused
path and draws a float Bernoulli mask, the most expensive step of the whole layer. Here:

- the dropout mask is 16 random bits per weight (:func:`mrta.nn.dropout.keep_mask`), applied as a
  float product rather than ``masked_fill``;
- the work runs in chunks of ``(batch * heads)`` rows small enough for their score matrices to
  stay in the CPU cache between the matmul, the softmax and the mask;
- backward is written by hand, so the masked weights are never kept: only the softmax output
  (or, for large maps, nothing: it is recomputed) and the bool mask;
- matmuls whose result has ``head_dim`` columns run transposed, as ``(head_dim, T)`` results,
  which BLAS computes up to twice as fast for small heads.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mrta.nn.dropout import as_float, keep_mask

CHUNK_ELEMENTS = 1 << 18  # score elements per chunk: 1 MiB of float32, fits a core's L2 cache
SAVE_WEIGHTS_LIMIT = 1 << 26  # keep softmax outputs for backward up to 256 MiB, else recompute


def dropout_attention(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None, p: float) -> Tensor:
    """Attention with dropout ``p`` on the weights.

    Shape:
        - q: ``(B, H, Tq, hd)``; k, v: ``(B, H, Tk, hd)``
        - key_mask: ``(B, 1, 1, Tk)`` bool, ``True`` = attend (optional)
        - output: ``(B, H, Tq, hd)``
    """
    b, h, tq, hd = q.shape
    tk = k.shape[2]
    mask = None
    if key_mask is not None:
        mask = key_mask.expand(b, h, 1, tk).reshape(b * h, 1, tk)  # (N, 1, Tk)
    out = _DropoutAttention.apply(
        q.reshape(b * h, tq, hd), k.reshape(b * h, tk, hd), v.reshape(b * h, tk, hd), mask, p
    )
    return out.view(b, h, tq, hd)


def _chunks(n: int, tq: int, tk: int) -> list[slice]:
    size = max(1, CHUNK_ELEMENTS // (tq * tk))
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


def _softmax_weights(q: Tensor, k: Tensor, mask: Tensor | None, scale: float) -> Tensor:
    """Softmax of scaled scores for one chunk. Shape: ``(n, Tq, Tk)``."""
    scores = torch.baddbmm(
        q.new_empty(()), q, k.transpose(1, 2), beta=0.0, alpha=scale
    )  # (n, Tq, Tk)
    if mask is not None:
        scores.masked_fill_(~mask, float("-inf"))
    return scores.softmax(dim=-1)


class _DropoutAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, p: float) -> Tensor:
        n, tq, hd = q.shape
        tk = k.shape[1]
        scale = 1.0 / math.sqrt(hd)
        keep_weights = n * tq * tk * q.element_size() <= SAVE_WEIGHTS_LIMIT
        out_t = q.new_empty(n, v.shape[-1], tq)  # (N, hd, Tq)
        weights, keeps = [], []
        for rows in _chunks(n, tq, tk):
            w = _softmax_weights(q[rows], k[rows], None if mask is None else mask[rows], scale)
            keep = keep_mask(w.shape, p, w.device)
            torch.bmm(
                v[rows].transpose(1, 2), (w * as_float(keep)).transpose(1, 2), out=out_t[rows]
            )
            keeps.append(keep)
            if keep_weights:
                weights.append(w)
        out_t.mul_(1.0 / (1.0 - p))
        ctx.save_for_backward(q, k, v, *([] if mask is None else [mask]), *keeps, *weights)
        ctx.meta = (p, scale, mask is not None, len(keeps), keep_weights)
        return out_t.transpose(1, 2)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        p, scale, has_mask, n_chunks, keep_weights = ctx.meta
        q, k, v, *rest = ctx.saved_tensors
        mask = rest.pop(0) if has_mask else None
        keeps, weights = rest[:n_chunks], rest[n_chunks:]
        n, tq, hd = q.shape
        tk = k.shape[1]
        grad_t = grad_out.transpose(1, 2) * (1.0 / (1.0 - p))  # (N, hd, Tq), contiguous
        dq_t, dk_t, dv_t = q.new_empty(n, hd, tq), q.new_empty(n, hd, tk), q.new_empty(n, hd, tk)
        for i, rows in enumerate(_chunks(n, tq, tk)):
            if keep_weights:
                w = weights[i]
            else:
                w = _softmax_weights(q[rows], k[rows], None if mask is None else mask[rows], scale)
            keep = as_float(keeps[i])
            g_t = grad_t[rows]  # (n, hd, Tq)
            torch.bmm(g_t, w * keep, out=dv_t[rows])
            dw = torch.bmm(g_t.transpose(1, 2), v[rows].transpose(1, 2)).mul_(keep)  # (n, Tq, Tk)
            ds = torch._softmax_backward_data(dw, w, -1, w.dtype)
            torch.bmm(k[rows].transpose(1, 2), ds.transpose(1, 2), out=dq_t[rows])
            torch.bmm(q[rows].transpose(1, 2), ds, out=dk_t[rows])
        dq_t.mul_(scale)
        dk_t.mul_(scale)
        return dq_t.transpose(1, 2), dk_t.transpose(1, 2), dv_t.transpose(1, 2), None, None
