"""Periodic embeddings of numerical features with a linear layer and ReLU ("PLR").

From Gorishniy, Rubachev and Babenko, "On Embeddings for Numerical Features in Tabular Deep
Learning" (NeurIPS 2022), section 3.3, as their reference package ``rtdl_num_embeddings``
computes it (``PeriodicEmbeddings(lite=False)``): for a scalar feature ``x_j``,

    v_j = [cos(2 pi c_j x_j), sin(2 pi c_j x_j)]          # c_j: k trainable frequencies
    PLR(x_j) = ReLU(v_j @ W_j + b_j)                      # W_j: (2k, d), one per feature

with ``c_j`` initialised from N(0, sigma^2) truncated at 3 sigma. ``sigma`` sets the scale of the
frequencies against the scale of the (here quantile-normalised) inputs; the paper calls it the
important setting to tune.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PeriodicEmbeddings(nn.Module):
    """One ``d``-wide embedding per numerical feature, ``ReLU(Linear_j(periodic_j(x_j)))``.

    Args:
        n_features: numerical features.
        d_embedding: width of each embedding.
        n_frequencies: trainable frequencies per feature (the paper's ``k``).
        sigma: standard deviation of the frequencies' initialisation.

    Shape:
        - input: ``(B, n_features)`` float
        - output: ``(B, n_features, d_embedding)``
    """

    def __init__(self, n_features: int, d_embedding: int, n_frequencies: int, sigma: float):
        super().__init__()
        if not sigma > 0 or not math.isfinite(sigma):
            raise ValueError(f"sigma must be a positive number, got {sigma!r}")
        self.sigma = sigma
        self.frequencies = nn.Parameter(torch.empty(n_features, n_frequencies))
        self.weight = nn.Parameter(torch.empty(n_features, 2 * n_frequencies, d_embedding))
        self.bias = nn.Parameter(torch.empty(n_features, d_embedding))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Frequencies from N(0, sigma^2) truncated at 3 sigma; each feature's linear layer
        uniform in ``±1/sqrt(2k)``, as ``nn.Linear`` initialises one of ``2k`` inputs."""
        bound = 3 * self.sigma
        nn.init.trunc_normal_(self.frequencies, 0.0, self.sigma, a=-bound, b=bound)
        scale = self.weight.shape[1] ** -0.5
        nn.init.uniform_(self.weight, -scale, scale)
        nn.init.uniform_(self.bias, -scale, scale)

    def forward(self, x: Tensor) -> Tensor:
        angles = 2 * math.pi * self.frequencies * x.unsqueeze(-1)  # (B, F, k)
        periodic = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)  # (B, F, 2k)
        linear = torch.einsum("bfi,fid->bfd", periodic, self.weight) + self.bias  # (B, F, d)
        return torch.relu(linear)
