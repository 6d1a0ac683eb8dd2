"""``MultiResolutionTabularAttention``: the Keras reference layer, in PyTorch.

The forward pass follows the reference (``kerasfactory`` 0.1.1) operation by operation::

    n  = num_proj(numerical)                           c  = cat_proj(categorical)
    n1 = norm_n1(n  + drop(num_num(q=n,  kv=n)))       c1 = norm_c1(c  + drop(cat_cat(q=c, kv=c)))
    c2 = norm_cc(c1 + drop(cat_num(q=c1, kv=n1)))      # categorical queries, numerical keys
    n2 = norm_nc(n1 + drop(num_cat(q=n1, kv=c1)))      # numerical queries, categorical keys
    n_out = norm_n2(n2 + drop(ffn(n2)))                c_out = norm_c2(c2 + drop(ffn(c2)))

with ``ffn(x) = ffn2(relu(ffn1(x)))`` shared by both streams and every LayerNorm at
``eps=1e-3`` (the Keras default). The four attention blocks are named by the canonical map ids,
query side first: ``num_num``, ``cat_cat``, ``cat_num``, ``num_cat``.

Extensions over the reference: the two streams may have different token counts; optional
key-padding masks; either stream may be ``None`` (then only its self-attention and the
feed-forward block run, and the cross-type maps do not exist).
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real

import torch
from torch import Tensor, nn

from mrta.errors import positive_int
from mrta.nn.attention import AttentionBlock
from mrta.nn.dropout import fast_dropout
from mrta.streams import MAP_IDS

LAYER_NORM_EPS = 1e-3  # Keras' LayerNormalization default, needed for parity
_UNSET = object()


class MultiResolutionTabularAttention(nn.Module):
    """Separate self-attention for numerical and categorical tokens, then cross-attention.

    Args:
        num_heads: attention heads per block (positive).
        d_model: token width after projection; divisible by ``num_heads``.
        dropout_rate: in ``[0, 1)``; on the attention weights and on every residual branch.
        name: optional name, shown in recorded maps and ``repr``.
        num_features: feature size of the numerical input; ``None`` infers it on first call.
        cat_features: feature size of the categorical input; ``None`` infers it on first call.

    Shape:
        - numerical: ``(B, Tn, num_features)``; categorical: ``(B, Tc, cat_features)``
        - num_mask: ``(B, Tn)``, cat_mask: ``(B, Tc)`` bool, ``True`` for real tokens (optional)
        - output: ``(B, Tn, d_model)``, ``(B, Tc, d_model)``

    Call it as ``layer([numerical, categorical])`` (the reference's call) or
    ``layer(numerical, categorical)``.
    """

    def __init__(
        self,
        num_heads: int,
        d_model: int,
        dropout_rate: float = 0.1,
        name: str | None = None,
        num_features: int | None = None,
        cat_features: int | None = None,
    ) -> None:
        super().__init__()
        positive_int(num_heads, "num_heads")
        positive_int(d_model, "d_model")
        if d_model % num_heads != 0:
            raise ValueError(
                f"d_model must be divisible by num_heads, got d_model={d_model} and "
                f"num_heads={num_heads}"
            )
        if isinstance(dropout_rate, bool) or not isinstance(dropout_rate, Real):
            raise ValueError(f"dropout_rate must be a float in [0, 1), got {dropout_rate!r}")
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate!r}")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"name must be a string or None, got {name!r}")
        for arg, value in (("num_features", num_features), ("cat_features", cat_features)):
            if value is not None:
                positive_int(value, arg)

        self.num_heads = num_heads
        self.d_model = d_model
        self.dropout_rate = float(dropout_rate)
        self.name = name
        self.num_features = num_features
        self.cat_features = cat_features
        # Token names of both streams, for labelling recorded maps; set by whoever knows them.
        self.token_names: dict[str, list[str]] = {}

        self.num_proj = None if num_features is None else nn.Linear(num_features, d_model)
        self.cat_proj = None if cat_features is None else nn.Linear(cat_features, d_model)
        self.num_num = AttentionBlock(d_model, num_heads, self.dropout_rate)
        self.cat_cat = AttentionBlock(d_model, num_heads, self.dropout_rate)
        self.cat_num = AttentionBlock(d_model, num_heads, self.dropout_rate)
        self.num_cat = AttentionBlock(d_model, num_heads, self.dropout_rate)
        self.norm_n1 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.norm_c1 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.norm_cc = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.norm_nc = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.norm_n2 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.norm_c2 = nn.LayerNorm(d_model, eps=LAYER_NORM_EPS)
        self.ffn1 = nn.Linear(d_model, d_model)
        self.ffn2 = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform kernels, zero biases, unit LayerNorms: the Keras initialisation."""
        for linear in (self.num_proj, self.cat_proj, self.ffn1, self.ffn2):
            if linear is not None:
                nn.init.xavier_uniform_(linear.weight)
                nn.init.zeros_(linear.bias)
        for block in self.attention_blocks().values():
            block.reset_parameters()
        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                module.reset_parameters()

    def attention_blocks(self) -> dict[str, AttentionBlock]:
        """The four attention blocks by map id (query side first)."""
        return {map_id: getattr(self, map_id) for map_id in MAP_IDS}

    def extra_repr(self) -> str:
        name = f"name={self.name!r}, " if self.name else ""
        return (
            f"{name}num_heads={self.num_heads}, d_model={self.d_model}, "
            f"dropout_rate={self.dropout_rate}"
        )

    def forward(
        self,
        numerical: Tensor | Sequence[Tensor | None] | None,
        categorical: Tensor | None = _UNSET,  # type: ignore[assignment]
        *,
        num_mask: Tensor | None = None,
        cat_mask: Tensor | None = None,
    ) -> tuple[Tensor | None, Tensor | None]:
        num, cat = _two_inputs(numerical, categorical)
        self._check_inputs(num, cat, num_mask, cat_mask)
        p, training = self.dropout_rate, self.training

        def residual(norm: nn.LayerNorm, x: Tensor, branch: Tensor) -> Tensor:
            return norm(x + fast_dropout(branch, p, training))

        n1 = c1 = None
        if num is not None:
            n = self.num_proj(num)  # (B, Tn, D)
            n1 = residual(self.norm_n1, n, self.num_num(n, None, num_mask)[0])
        if cat is not None:
            c = self.cat_proj(cat)  # (B, Tc, D)
            c1 = residual(self.norm_c1, c, self.cat_cat(c, None, cat_mask)[0])
        n2, c2 = n1, c1
        if n1 is not None and c1 is not None:
            c2 = residual(self.norm_cc, c1, self.cat_num(c1, n1, num_mask)[0])
            n2 = residual(self.norm_nc, n1, self.num_cat(n1, c1, cat_mask)[0])
        n_out = None if n2 is None else residual(self.norm_n2, n2, self._ffn(n2))
        c_out = None if c2 is None else residual(self.norm_c2, c2, self._ffn(c2))
        return n_out, c_out

    def _ffn(self, x: Tensor) -> Tensor:
        return self.ffn2(torch.relu(self.ffn1(x)))

    def _check_inputs(
        self,
        num: Tensor | None,
        cat: Tensor | None,
        num_mask: Tensor | None,
        cat_mask: Tensor | None,
    ) -> None:
        batch_sizes = {}
        for arg, x, mask in (("numerical", num, num_mask), ("categorical", cat, cat_mask)):
            if x is None:
                if mask is not None:
                    raise ValueError(f"a mask was given for the {arg} input, which is None")
                continue
            if not isinstance(x, Tensor):
                raise ValueError(f"{arg} input must be a torch.Tensor, got {type(x).__name__}")
            if x.dim() != 3:
                raise ValueError(
                    f"{arg} input must be 3-D (batch, tokens, features), got shape {tuple(x.shape)}"
                )
            if not x.is_floating_point():
                raise ValueError(f"{arg} input must be floating point, got dtype {x.dtype}")
            batch_sizes[arg] = x.shape[0]
            if mask is not None:
                _check_mask(arg, mask, x)
            self._build_projection(arg, x)
        if not batch_sizes:
            raise ValueError("at least one of the numerical and categorical inputs must be given")
        if len(set(batch_sizes.values())) > 1:
            raise ValueError(
                "numerical and categorical inputs must have the same batch size, got "
                f"{batch_sizes['numerical']} and {batch_sizes['categorical']}"
            )

    def _build_projection(self, arg: str, x: Tensor) -> None:
        """Create the input projection on first call, or check the feature size is unchanged."""
        prefix = arg[:3]
        size_attr, proj_attr = f"{prefix}_features", f"{prefix}_proj"
        expected = getattr(self, size_attr)
        if expected is None:
            proj = nn.Linear(x.shape[-1], self.d_model, device=x.device, dtype=x.dtype)
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)
            setattr(self, proj_attr, proj)
            setattr(self, size_attr, x.shape[-1])
        elif x.shape[-1] != expected:
            raise ValueError(
                f"{arg} input must have {expected} features (its size at construction or "
                f"first call), got {x.shape[-1]} (shape {tuple(x.shape)})"
            )


def _two_inputs(
    numerical: Tensor | Sequence[Tensor | None] | None, categorical: object
) -> tuple[Tensor | None, Tensor | None]:
    """Accept ``layer([num, cat])`` and ``layer(num, cat)``."""
    if categorical is _UNSET:
        if isinstance(numerical, Tensor) or not isinstance(numerical, Sequence):
            raise ValueError(
                "inputs must be exactly two tensors [numerical, categorical], got a single "
                f"{type(numerical).__name__}"
            )
        if len(numerical) != 2:
            raise ValueError(
                f"inputs must be exactly two tensors [numerical, categorical], got {len(numerical)}"
            )
        return numerical[0], numerical[1]
    return numerical, categorical  # type: ignore[return-value]


def _check_mask(arg: str, mask: Tensor, x: Tensor) -> None:
    if mask.dtype != torch.bool or tuple(mask.shape) != tuple(x.shape[:2]):
        raise ValueError(
            f"the {arg} mask must be a bool tensor of shape {tuple(x.shape[:2])} (batch, tokens), "
            f"got {mask.dtype} of shape {tuple(mask.shape)}"
        )
    if not bool(mask.any(dim=1).all()):
        raise ValueError(
            f"the {arg} mask has an example with no real token; every example needs at least one"
        )
