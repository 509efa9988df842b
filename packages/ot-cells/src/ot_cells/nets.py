"""The two networks of VGFM: a velocity field v(x, t) and a log-growth rate g(x, t), both MLPs on
concat(t_in, x) with t_in the normalised time (0 at the first and 1 at the last observed time)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ACTIVATIONS", "mlp", "VelocityNet", "GrowthNet"]

ACTIVATIONS = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leakyrelu": nn.LeakyReLU,  # negative slope 0.01, as in all original runs
}

#: the growth network always has three hidden layers (original VGFM)
GROWTH_HIDDEN_LAYERS = 3


def mlp(d_in: int, d_out: int, hidden: int, n_hidden: int, activation: str) -> nn.Sequential:
    """``n_hidden`` x [Linear(., hidden) + activation] then Linear(hidden, d_out)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r}; use one of {sorted(ACTIVATIONS)}")
    if n_hidden < 1 or hidden < 1:
        raise ValueError(f"hidden and n_hidden must be >= 1, got {hidden} and {n_hidden}")
    layers: list[nn.Module] = []
    width = d_in
    for _ in range(n_hidden):
        layers += [nn.Linear(width, hidden), ACTIVATIONS[activation]()]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, d_out))


class VelocityNet(nn.Module):
    """v(x, t): (N, d), (N, 1) -> (N, d), in data units per time unit."""

    def __init__(self, dim: int, hidden: int = 128, n_hidden: int = 3, activation: str = "leakyrelu"):
        super().__init__()
        self.net = mlp(dim + 1, dim, hidden, n_hidden, activation)

    def forward(self, x: torch.Tensor, t_in: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([t_in, x], dim=1))


class GrowthNet(nn.Module):
    """g(x, t): (N, d), (N, 1) -> (N,), d log(mass) / dt per time unit."""

    def __init__(self, dim: int, hidden: int = 128, activation: str = "leakyrelu"):
        super().__init__()
        self.net = mlp(dim + 1, 1, hidden, GROWTH_HIDDEN_LAYERS, activation)

    def forward(self, x: torch.Tensor, t_in: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([t_in, x], dim=1))[:, 0]
