"""Column gates: a stochastic gate per column token that training can close (Yamada et al.,
"Feature Selection using Stochastic Gates", ICML 2020).

Column ``j``'s token is multiplied by ``z_j = clamp(mu_j + 0.5 + eps_j, 0, 1)``, with
``eps_j ~ N(0, SIGMA^2)`` drawn per row while training and ``eps_j = 0`` in evaluation, as the
paper's reference implementation shifts and clips its gates. The training loss adds
``penalty * sum_j Phi((mu_j + 0.5) / SIGMA)``, the expected number of open gates (Phi: the
standard normal CDF), so that, roughly, a column stays open where it lowers the training loss
by more than it costs. A closed gate (``z_j = 0`` in evaluation) leaves its column an empty
token: the layers still attend to it, but it carries nothing of the row's value.

``mu`` is stored divided by :data:`SPEED` so that the optimiser moves it :data:`SPEED` times
faster than the other weights: an Adam step moves a weight by about the learning rate (1e-3
by default), so an unscaled mean could move by at most about 0.7 in 700 steps, and an open gate
(``mu_j = 0.5``) needs a move of 1 to close. Every gate starts fully open, a constant, so the
other weights' initial values do not change.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

#: The gates' noise scale, the reference implementation's default.
SIGMA = 0.5
#: How many times faster than the other weights the optimiser moves a gate's mean.
SPEED = 20.0
#: A gate's mean at initialisation: open (z = 1 in evaluation).
OPEN = 0.5


class ColumnGates(nn.Module):
    """One stochastic gate per token.

    Args:
        n_tokens: the tokens (columns) to gate.

    Shape:
        - tokens: ``(B, T, d)``
        - output: ``(B, T, d)``, each token times its gate
    """

    def __init__(self, n_tokens: int) -> None:
        super().__init__()
        self.scaled_mean = nn.Parameter(torch.empty(n_tokens))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every gate open."""
        nn.init.constant_(self.scaled_mean, OPEN / SPEED)

    @property
    def mean(self) -> Tensor:
        """``mu``, one per token: ``(T,)``."""
        return self.scaled_mean * SPEED

    def values(self) -> Tensor:
        """The gates in evaluation, in [0, 1]: ``(T,)``."""
        return _hard_sigmoid(self.mean)

    def expected_open(self) -> Tensor:
        """The expected number of open gates while training, ``sum_j Phi((mu_j + 0.5) / SIGMA)``:
        the penalty's sum (a scalar)."""
        return 0.5 * (1.0 + torch.erf((self.mean + 0.5) / (SIGMA * math.sqrt(2.0)))).sum()

    def forward(self, tokens: Tensor) -> Tensor:
        z = self.mean.expand(tokens.shape[0], -1)  # (B, T)
        if self.training:
            z = z + SIGMA * torch.randn(z.shape, dtype=z.dtype, device=z.device)
        return tokens * _hard_sigmoid(z).unsqueeze(-1)  # (B, T, d)


def _hard_sigmoid(z: Tensor) -> Tensor:
    """The reference implementation's gate of ``z``: ``clamp(z + 0.5, 0, 1)``."""
    return torch.clamp(z + 0.5, 0.0, 1.0)
