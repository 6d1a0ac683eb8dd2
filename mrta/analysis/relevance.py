"""Gradient-weighted attention relevance: which input columns the predicted class's score rests on.

The method of Chefer, Gur & Wolf, ICCV 2021, "Generic Attention-model Explainability for
Interpreting Bi-Modal and Encoder-Decoder Transformers", with its co-attention rules, in its
gradient × attention variant: ``GeneratorOurs.generate_ours(..., use_lrp=False)`` of the
reference implementation (``lxmert/lxmert/src/ExplanationGenerator.py`` in
``hila-chefer/Transformer-MM-Explainability``). Where the rollout (:mod:`mrta.analysis.rollout`)
counts every attention weight, this keeps the weights whose gradient says they raise the score.

Relevance matrices, tokens ordered ``[numerical..., categorical...]`` (``T = Tn + Tc``): row ``i``
is a token as the layers have contextualised it so far, column ``j`` an input token, and
``R_xy`` the block of rows in stream ``x`` and columns in stream ``y``. Before the first layer
every token holds only itself::

    R_nn = I (Tn×Tn)    R_cc = I (Tc×Tc)    R_nc = 0 (Tn×Tc)    R_cn = 0 (Tc×Tn)

The score ``s`` is the predicted class's: for binary the logit when class 1 is predicted (logit
> 0) and minus the logit when class 0 is; for multiclass the arg-max class's logit; for regression
the output. Each map ``A`` (heads ``h``) of the pass becomes (eq. 5)::

    Ā = mean_h (∇A ⊙ A)⁺        ∇A = ∂s/∂A, (·)⁺ = max(·, 0)

with ``A`` the weights as the forward pass used them: the model runs in eval mode, without
dropout. Examples do not interact in this model (attention stays within an example, LayerNorm
and the feed-forward block act per token, the readout per example), so one backward pass of the
batch's summed scores gives every example its own ``∇A``.

Derivation from the layer's equations (LayerNorm and the feed-forward block act on each token
alone, so they move no relevance between tokens and drop out, as in the rollout)::

    n1 = LN(n + num_num(q=n, kv=n))          c1 = LN(c + cat_cat(q=c, kv=c))
    n2 = LN(n1 + num_cat(q=n1, kv=c1))       c2 = LN(c1 + cat_num(q=c1, kv=n1))

Per layer, first layer first. The self stage mixes tokens within a stream beside the residual
(rules 6, 7)::

    R_nn += Ā_num_num R_nn    R_nc += Ā_num_num R_nc
    R_cc += Ā_cat_cat R_cc    R_cn += Ā_cat_cat R_cn

The cross stage lets each stream read the other (rules 10, 11), with the self relevance
normalised for its residual (eqs. 8, 9: ``R̂ = R − I``, each row of ``R̂`` scaled to sum 1,
``R̄ = R̂ + I``; a row of ``R̂`` that sums to 0, a token whose rows of ``Ā`` were all 0 so far,
stays 0 where the reference divides 0 by 0 and gets NaN)::

    num_cat (queries n1, keys c1):  ΔR_nc = R̄_nnᵀ Ā_num_cat R̄_cc    ΔR_nn = Ā_num_cat R_cn
    cat_num (queries c1, keys n1):  ΔR_cn = R̄_ccᵀ Ā_cat_num R̄_nn    ΔR_cc = Ā_cat_num R_nc

Both cross blocks read the post-self states ``n1, c1``, in parallel, so all four additions are
computed from the matrices as they were before the cross stage and only then added (as
``generate_ours`` does for LXMERT's co-attention); applying one block's update before computing
the other's would treat them as sequential. A model with one stream has no cross stage and only
the self rules of its stream.

Readout: where the paper reads the ``[CLS]`` row of ``R``, this model pools the uniform mean
over all ``T`` tokens of both streams, so the relevance of input token ``j`` is::

    importance_j = (1/T) Σ_i R_ij        R = [[R_nn, R_nc], [R_cn, R_cc]]

Every ``Ā`` is ≥ 0, so every entry of ``R`` is, and ``R ≥ I`` entrywise, so the importances sum
to at least 1; each example's vector is normalised to sum 1 for display, which leaves its ranking
unchanged. ``R``'s rows do not sum to 1, so unlike the rollout the two streams need not share
the importance half and half.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from mrta.analysis.block_capture import BlockPass, LayerPasses, capture_blocks
from mrta.analysis.inputs import (
    Inputs,
    attention_layers,
    model_task,
    predicted_class,
    split_inputs,
)
from mrta.errors import positive_int
from mrta.task import Task
from mrta.training.inference import batches, evaluating, model_device

RELEVANCE_BATCH = 256  # examples per forward and backward pass, at most
#: Entries of one ``(B, H, T, T)`` attention map per pass, at most: wide rows get smaller batches.
RELEVANCE_ENTRIES = 2**20


def relevance_matrix(passes: LayerPasses, n_num: int, n_cat: int) -> Tensor:
    """The relevance matrix ``R`` of every example (see the module docstring).

    Args:
        passes: one captured forward pass
            (:func:`~mrta.analysis.block_capture.capture_blocks` with ``gradients=True``) after
            a backward pass from the score, which filled every block's ``.grad``.
        n_num: numerical tokens ``Tn``; n_cat: categorical tokens ``Tc``.

    Shape:
        - each block's weights and grad: ``(B, H, Tq, Tk)``
        - output: ``(B, T, T)`` float64 on the CPU, ``T = Tn + Tc``; rows are contextualised
          tokens, columns input tokens, both ordered ``[numerical..., categorical...]``
    """
    for arg, value in (("n_num", n_num), ("n_cat", n_cat)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{arg} must be a non-negative integer, got {value!r}")
    if not passes or not all(passes):
        raise ValueError("passes must hold at least one layer of captured attention blocks")
    t = n_num + n_cat
    tokens = {"num": slice(0, n_num), "cat": slice(n_num, t)}
    batch = next(iter(passes[0].values())).weights.shape[0]
    relevance = torch.eye(t, dtype=torch.float64).repeat(batch, 1, 1)  # (B, T, T)
    for index, layer in enumerate(passes):
        maps = _layer_relevance(layer, index, tokens)
        for map_id, stream in (("num_num", "num"), ("cat_cat", "cat")):
            if map_id in maps:
                _self_rules(relevance, maps[map_id], tokens[stream])
        if "num_cat" in maps and "cat_num" in maps:
            relevance = _co_attention_rules(
                relevance, maps["num_cat"], maps["cat_num"], tokens["num"], tokens["cat"]
            )
    return relevance


def _layer_relevance(
    layer: dict[str, BlockPass], index: int, tokens: dict[str, slice]
) -> dict[str, Tensor]:
    """``Ā`` of each block of layer `index`, checked against the token counts.

    Shape: each block ``(B, H, Tq, Tk)`` -> ``(B, Tq, Tk)``.
    """
    maps = {}
    for map_id, block in layer.items():
        if block.grad is None:
            raise ValueError(
                f"passes[{index}][{map_id!r}] has no gradient: run the backward pass inside "
                "capture_blocks(model, gradients=True)"
            )
        query, key = (tokens[stream] for stream in map_id.split("_"))  # map ids: query first
        expected = (query.stop - query.start, key.stop - key.start)
        if tuple(block.weights.shape[-2:]) != expected:
            raise ValueError(
                f"n_num and n_cat give passes[{index}][{map_id!r}] the shape {expected}, but its "
                f"weights are {tuple(block.weights.shape[-2:])}"
            )
        maps[map_id] = _head_relevance(block.weights, block.grad)
    return maps


def _head_relevance(weights: Tensor, grad: Tensor) -> Tensor:
    """Eq. 5: ``Ā = mean_h (∇A ⊙ A)⁺``, in float64 on the CPU.

    Shape: ``(B, H, Tq, Tk)`` twice -> ``(B, Tq, Tk)``.
    """
    product = weights.detach().to("cpu", torch.float64) * grad.to("cpu", torch.float64)
    return product.clamp(min=0).mean(dim=1)


def _self_rules(relevance: Tensor, a: Tensor, rows: slice) -> None:
    """Rules 6, 7 for one stream's self-attention, in place: ``R_xx += Ā R_xx`` and
    ``R_xy += Ā R_xy`` are the stream's rows of ``R += Ā R``.

    Shape: relevance ``(B, T, T)``; a ``(B, Tx, Tx)`` for the ``Tx`` tokens at `rows`.
    """
    relevance[:, rows] += a @ relevance[:, rows]  # (B, Tx, T)


def _co_attention_rules(
    relevance: Tensor, a_num_cat: Tensor, a_cat_num: Tensor, num: slice, cat: slice
) -> Tensor:
    """Rules 10, 11 for both cross blocks, every addition computed from `relevance` as it was
    before the cross stage (the blocks run in parallel); a new matrix.

    Shape: relevance ``(B, T, T)``; a_num_cat ``(B, Tn, Tc)``; a_cat_num ``(B, Tc, Tn)``.
    """
    bar_nn = _residual_normalised(relevance[:, num, num])  # (B, Tn, Tn)
    bar_cc = _residual_normalised(relevance[:, cat, cat])  # (B, Tc, Tc)
    delta = torch.zeros_like(relevance)  # (B, T, T)
    delta[:, num, cat] = bar_nn.mT @ a_num_cat @ bar_cc  # rule 10, num_cat: (B, Tn, Tc)
    delta[:, num, num] = a_num_cat @ relevance[:, cat, num]  # rule 11, num_cat: (B, Tn, Tn)
    delta[:, cat, num] = bar_cc.mT @ a_cat_num @ bar_nn  # rule 10, cat_num: (B, Tc, Tn)
    delta[:, cat, cat] = a_cat_num @ relevance[:, num, cat]  # rule 11, cat_num: (B, Tc, Tc)
    return relevance + delta


def _residual_normalised(self_relevance: Tensor) -> Tensor:
    """Eqs. 8, 9: ``R̄ = R̂ / rowsum(R̂) + I`` with ``R̂ = R − I``; a row of ``R̂`` summing to 0
    stays 0 (its entries are ≥ 0, so all are 0) instead of becoming 0/0.

    Shape: ``(B, Tx, Tx)`` -> ``(B, Tx, Tx)``.
    """
    eye = torch.eye(self_relevance.shape[-1], dtype=self_relevance.dtype)
    hat = self_relevance - eye  # eq. 8
    sums = hat.sum(dim=-1, keepdim=True)  # (B, Tx, 1)
    return hat / torch.where(sums > 0, sums, 1.0) + eye  # eq. 9


def _predicted_score(logits: Tensor, task: str) -> Tensor:
    """The predicted class's score per example: ``±`` the binary logit (``+`` for class 1), the
    arg-max logit (multiclass), the output (regression).

    Shape: ``(B, n_outputs)`` -> ``(B,)``.
    """
    if task == Task.REGRESSION:
        return logits[:, 0]
    classes = predicted_class(logits, task)  # (B,)
    if task == Task.BINARY:
        return torch.where(classes == 1, logits[:, 0], -logits[:, 0])
    return logits.gather(1, classes[:, None])[:, 0]


def relevance_importance(
    model: nn.Module, data: Inputs, *, batch_size: int = RELEVANCE_BATCH
) -> np.ndarray:
    """Per example, each input token's relevance to the predicted class's score, summing to 1.

    The model runs in eval mode on its device and is left in the mode it was in; gradients go to
    the captured attention weights only, so its parameters' ``.grad`` stay as they were. A batch
    holds at most `batch_size` examples and at most :data:`RELEVANCE_ENTRIES` entries per
    ``(B, H, T, T)`` map.

    Args:
        model: a row model (:class:`~mrta.nn.model.TabularAttentionModel` or one with its
            interface, see :mod:`mrta.analysis.inputs`).
        data: an encoded table, or ``(numerical, indicators, categorical)`` tensors.
        batch_size: examples per forward and backward pass, at most (positive).

    Shape: ``(N, T)`` float64, tokens ordered ``[numerical..., categorical...]``.
    """
    positive_int(batch_size, "batch_size")
    layers = attention_layers(model)
    if not layers:
        raise ValueError(
            f"model must have MultiResolutionTabularAttention layers, got a {type(model).__name__}"
        )
    task = model_task(model)
    if task not in tuple(Task):
        raise ValueError(f"model must have a task in {[t.value for t in Task]}, got {task!r}")
    numerical, indicators, categorical, _ = split_inputs(data)
    if numerical.dim() != 2 or categorical.dim() != 2:
        raise ValueError(
            "data must be rows, (N, n_num) and (N, n_cat), got numerical of shape "
            f"{tuple(numerical.shape)} and categorical of shape {tuple(categorical.shape)}"
        )
    n_num, n_cat = numerical.shape[1], categorical.shape[1]
    t = n_num + n_cat
    rows = max(1, min(batch_size, RELEVANCE_ENTRIES // (layers[0].num_heads * t * t)))
    device = model_device(model)
    importances = [np.zeros((0, t))]
    with evaluating(model):
        for batch in batches(len(numerical), rows):
            inputs = [x[batch].to(device) for x in (numerical, indicators, categorical)]
            with capture_blocks(model, gradients=True) as passes:
                logits = model(*inputs)  # (B, n_outputs)
                weights = [block.weights for layer in passes for block in layer.values()]
                # One backward for the batch: examples do not interact, so each gets its own ∇A.
                _predicted_score(logits, task).sum().backward(inputs=weights)
            importance = relevance_matrix(passes, n_num, n_cat).mean(dim=1)  # (B, T)
            importances.append((importance / importance.sum(dim=1, keepdim=True)).numpy())
    return np.concatenate(importances)
