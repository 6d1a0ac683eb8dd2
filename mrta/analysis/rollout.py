"""Two-stream attention rollout: how much each input column flows into the pooled representation.

Attention rollout (Abnar & Zuidema, 2020) follows information through the layers by multiplying
the attention maps, with each residual connection counted as half of the flow. Our layer has two
streams and two stages, so the flow is a matrix over all tokens, ordered
``[numerical..., categorical...]`` (``T = Tn + Tc``); rows are the tokens a stage writes, columns
the tokens it reads, and every row sums to 1.

Derivation from the layer's equations (LayerNorm and the feed-forward block act on each token
alone, so they move nothing between tokens and drop out of the flow)::

    n1 = LN(n + num_num(q=n, kv=n))          c1 = LN(c + cat_cat(q=c, kv=c))
    n2 = LN(n1 + num_cat(q=n1, kv=c1))       c2 = LN(c1 + cat_num(q=c1, kv=n1))

The self stage mixes tokens within each stream, the cross stage between streams (numerical
tokens read categorical ones through ``num_cat`` and vice versa), each beside its residual::

    S = [[0.5·I + 0.5·Ā_num_num, 0                       ],
         [0,                      0.5·I + 0.5·Ā_cat_cat]]

    C = [[0.5·I,          0.5·Ā_num_cat],
         [0.5·Ā_cat_num,  0.5·I        ]]

    L = C @ S                   (one layer)
    R = L_last @ ... @ L_first  (rollout)
    importance_j = (1/T) · Σ_i R_ij

``Ā`` is a map averaged over its heads. The readout pools both streams with a uniform mean over
all ``T`` tokens, hence the column mean; since every ``L`` is row-stochastic, the importances sum
to 1. A model with one stream only has no cross stage (``C = I``) and no self map for the absent
stream; a missing self map counts as ``I``.

A consequence to keep in mind (measured by ``benchmarks/planted.py``): every row of ``C`` puts
exactly half its mass on each stream and ``S`` keeps each stream's mass, so in a two-stream
model the numerical and the categorical columns always share the importance half and half,
whatever the maps. Rank columns against the others of their own stream; across streams, a
column of the smaller stream gets a larger share by construction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def layer_flow(maps: Mapping[str, np.ndarray], n_num: int, n_cat: int) -> np.ndarray:
    """One layer's flow ``L = C @ S`` (see the module docstring).

    Args:
        maps: head-averaged maps by map id; absent ids (a one-stream model) count as described.
        n_num: numerical tokens ``Tn``; n_cat: categorical tokens ``Tc``.

    Shape:
        - maps: ``(..., Tq, Tk)`` each, with the same leading batch shape
        - output: ``(..., T, T)`` with ``T = Tn + Tc``, rows summing to 1
    """
    batch = next(iter(maps.values())).shape[:-2] if maps else ()
    t = n_num + n_cat
    eye = np.broadcast_to(np.eye(t), (*batch, t, t))
    num, cat = slice(0, n_num), slice(n_num, t)
    self_stage = eye.copy()
    for map_id, block in (("num_num", num), ("cat_cat", cat)):
        if map_id in maps:
            self_stage[..., block, block] = 0.5 * self_stage[..., block, block] + 0.5 * maps[map_id]
    if "num_cat" not in maps or "cat_num" not in maps:
        return self_stage
    cross_stage = 0.5 * eye
    cross_stage[..., num, cat] = 0.5 * maps["num_cat"]
    cross_stage[..., cat, num] = 0.5 * maps["cat_num"]
    return cross_stage @ self_stage


def rollout(layers: Sequence[Mapping[str, np.ndarray]], n_num: int, n_cat: int) -> np.ndarray:
    """The product ``R = L_last @ ... @ L_first`` of the layers' flows, first layer first.

    Shape: each map ``(..., Tq, Tk)`` -> ``(..., T, T)``.
    """
    flow = None
    for maps in layers:
        step = layer_flow(maps, n_num, n_cat)
        flow = step if flow is None else step @ flow
    if flow is None:
        raise ValueError("rollout needs at least one layer of maps")
    return flow


def rollout_importance(
    layers: Sequence[Mapping[str, np.ndarray]], n_num: int, n_cat: int
) -> np.ndarray:
    """How much each input token flows into the uniformly pooled representation; sums to 1.

    Args:
        layers: per layer, maps by map id with their heads, ``(..., H, Tq, Tk)``; heads are
            averaged here.

    Shape: ``(..., T)``, tokens ordered ``[numerical..., categorical...]``.
    """
    averaged = [{map_id: w.mean(axis=-3) for map_id, w in maps.items()} for maps in layers]
    return rollout(averaged, n_num, n_cat).mean(axis=-2)


def maps_dtypes(layers: Sequence[Mapping[str, np.ndarray]]) -> list[np.dtype]:
    """The dtypes of every map of `layers`."""
    return [m.dtype for maps in layers for m in maps.values()]


def pooled_importance(
    layers: Sequence[Mapping[str, np.ndarray]], n_num: int, n_cat: int
) -> np.ndarray:
    """:func:`rollout_importance` of one example's head-averaged maps, by vector products.

    The pooled readout needs only the column mean of ``R``, ``(1/T)·1ᵀ·L_last···L_first``, so
    the vector is carried through each layer's stages instead of multiplying ``T × T`` flows:
    ``O(T²)`` per layer instead of ``O(T³)``, what sets of a thousand rows (``T = 2000``) need.

    Computed in the maps' precision (float32 maps: float32 shares, no float64 copies of them).

    Shape: each map ``(Tq, Tk)`` -> ``(T,)``, summing to 1.
    """
    t = n_num + n_cat
    uniform = np.full(t, 1.0 / t, dtype=np.result_type(np.float32, *maps_dtypes(layers)))
    return readout_importance(layers, uniform, n_num, n_cat)


def readout_importance(
    layers: Sequence[Mapping[str, np.ndarray]], readout: np.ndarray, n_num: int, n_cat: int
) -> np.ndarray:
    """How much each input token flows into a pooled representation that reads its last
    layer's tokens by the weights `readout`: ``readoutᵀ·L_last···L_first``, carried through each
    layer's stages by vector products as in :func:`pooled_importance` (which is this with the
    uniform readout ``1/T``). Every ``L`` is row-stochastic, so the importances sum to what
    `readout` sums to. :mod:`mrta.analysis.sets` derives the readout of the set model's mean
    and max pooling.

    Computed in the precision of `readout` and the maps together, at least float32.

    Shape: readout ``(T,)`` and each map ``(Tq, Tk)`` (head-averaged) -> ``(T,)``.
    """
    t = n_num + n_cat
    if readout.shape != (t,):
        raise ValueError(
            f"readout must hold one weight per token, shape ({t},), got {readout.shape}"
        )
    num, cat = slice(0, n_num), slice(n_num, t)
    # a copy in the working precision: the self stage below updates it in place
    v = readout.astype(np.result_type(np.float32, readout.dtype, *maps_dtypes(layers)))
    for maps in reversed(layers):
        if "num_cat" in maps and "cat_num" in maps:  # v @ C
            v = 0.5 * np.concatenate(
                [v[num] + v[cat] @ maps["cat_num"], v[cat] + v[num] @ maps["num_cat"]]
            )
        for map_id, block in (("num_num", num), ("cat_cat", cat)):  # v @ S
            if map_id in maps:
                v[block] = 0.5 * v[block] + 0.5 * v[block] @ maps[map_id]
    return v
