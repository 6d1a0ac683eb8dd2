"""What the analysis needs to know of a model and its inputs.

The model interface: an ``nn.Module`` whose :class:`~mrta.nn.layer.MultiResolutionTabularAttention`
layers carry ``token_names = {"num": [...], "cat": [...]}``, with ``task`` (a
:class:`~mrta.task.Task`) and ``forward(numerical, indicators, categorical) -> logits``:
``(B, n_num)`` float32 twice and ``(B, n_cat)`` int64 in; ``(B, 1)`` for binary (logit of
class 1) and regression, ``(B, C)`` for multiclass out.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from mrta.data.preprocessing import EncodedTable
from mrta.nn.layer import MultiResolutionTabularAttention
from mrta.task import Task

#: The model's inputs: an encoded table, or ``(numerical, indicators, categorical)`` tensors.
Inputs = EncodedTable | Sequence[Tensor]


# -- inputs ----------------------------------------------------------------------------------
def split_inputs(
    data: Inputs, targets: Tensor | np.ndarray | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """``(numerical, indicators, categorical, targets)`` of ``data``; ``targets`` overrides."""
    if isinstance(data, EncodedTable):
        numerical, indicators, categorical = data.numerical, data.indicators, data.categorical
        target = data.target
    else:
        if len(data) != 3:
            raise ValueError(
                "data must be an EncodedTable or (numerical, indicators, categorical) tensors, "
                f"got {len(data)} items"
            )
        (numerical, indicators, categorical), target = data, None
    if targets is not None:
        target = torch.as_tensor(targets)
    rows = {len(numerical), len(indicators), len(categorical)}
    if target is not None:
        rows.add(len(target))
    if len(rows) != 1:
        raise ValueError(f"inputs and targets must have the same number of rows, got {rows}")
    return numerical, indicators, categorical, target


def model_task(model: nn.Module) -> str:
    """The model's task as a plain string: ``"binary"``, ``"multiclass"`` or ``"regression"``."""
    task = getattr(model, "task", None)
    return str(getattr(task, "value", task))


def predicted_class(logits: Tensor, task: str) -> Tensor:
    """Class index per row: the sign of a binary logit, else the largest logit. Shape: ``(B,)``."""
    if task == Task.BINARY and logits.shape[-1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(dim=-1)


def attention_layers(model: nn.Module) -> list[MultiResolutionTabularAttention]:
    """The model's attention layers, in the recorder's order (layer index = position)."""
    return [m for m in model.modules() if isinstance(m, MultiResolutionTabularAttention)]
