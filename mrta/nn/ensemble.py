"""A seed ensemble: models of one configuration trained from different initial weights, whose
prediction is the mean of their members' predictions.

The mean is taken where it is a prediction: over class probabilities for classification (its
output is the logit of the mean probability, so that the one conversion of
:func:`mrta.training.inference.to_predictions` applies to it as to a single model), over the
standardised value for regression (the mean in the target's units, or of its log after a log
transform, whose smearing factor is then fitted on the ensemble's residuals).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mrta.task import Task

_EPSILON = 1e-12  # keeps the log of a probability finite


class SeedEnsemble(nn.Module):
    """The mean prediction of `members` (same task and outputs), as one model's logits.

    Args:
        members: the trained models, member 0 first.
        task: the task of every member.

    Shape:
        - inputs: those of a member (``numerical``, ``indicators``, ``categorical``)
        - output: ``(B, n_outputs)``: binary, the logit of the mean positive probability;
          multiclass, the log of the mean class probabilities; regression, the mean output
    """

    def __init__(self, members: Sequence[nn.Module], task: Task | str) -> None:
        super().__init__()
        if not members:
            raise ValueError("members must hold at least one model")
        self.members = nn.ModuleList(members)
        self.task = Task(task)
        self.n_outputs = getattr(members[0], "n_outputs", 1)

    def forward(self, *inputs: Tensor) -> Tensor:
        outputs = torch.stack([member(*inputs).float() for member in self.members])  # (M, B, O)
        if self.task == Task.BINARY:
            positive = torch.sigmoid(outputs).mean(dim=0).clamp(_EPSILON, 1 - _EPSILON)
            return torch.logit(positive)  # (B, 1)
        if self.task == Task.MULTICLASS:
            probabilities = torch.softmax(outputs, dim=-1).mean(dim=0)
            return probabilities.clamp_min(_EPSILON).log()  # (B, C)
        return outputs.mean(dim=0)  # (B, 1)
