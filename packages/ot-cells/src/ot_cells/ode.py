"""The ODE of weighted cells, dx/dt = v(x, t), d log w/dt = g(x, t), integrated with torchdiffeq (adaptive
"dopri5" for inference, fixed-step "euler"/"rk4" with a step size for training, optional adjoint gradients)."""

from __future__ import annotations

import torch
import torchdiffeq
from torch import nn

from .nets import GrowthNet, VelocityNet

__all__ = ["WeightedField", "integrate"]

FIXED_STEP = ("euler", "midpoint", "rk4")


class WeightedField(nn.Module):
    """(t, (x, log w)) -> (v(x, t), g(x, t)) with the networks' time input t_in = (t - t0) / (t1 - t0).

    ``growth=None`` gives g = 0 (the growth-free model)."""

    def __init__(self, velocity: VelocityNet, growth: GrowthNet | None, t0: float, t1: float):
        super().__init__()
        self.velocity, self.growth = velocity, growth
        self.t0, self.span = float(t0), float(t1 - t0)

    def time_input(self, t: torch.Tensor | float, n: int, like: torch.Tensor) -> torch.Tensor:
        """Normalised time (n, 1) for a scalar t or per-cell times t (n,)."""
        t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
        return ((t - self.t0) / self.span).reshape(-1, 1).expand(n, 1)

    def velocity_at(self, x: torch.Tensor, t) -> torch.Tensor:
        return self.velocity(x, self.time_input(t, len(x), x))

    def growth_at(self, x: torch.Tensor, t) -> torch.Tensor:
        if self.growth is None:
            return torch.zeros(len(x), dtype=x.dtype, device=x.device)
        return self.growth(x, self.time_input(t, len(x), x))

    def forward(self, t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        x, _ = state
        return self.velocity_at(x, t), self.growth_at(x, t)


def integrate(
    field: WeightedField,
    x: torch.Tensor,
    log_w: torch.Tensor,
    times,
    method: str = "dopri5",
    step: float | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    adjoint: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """States at ``times`` (T,) starting from (x (N, d), log w (N,)) at times[0]; times may decrease (backward).

    Returns x (T, N, d) and log w (T, N). Fixed-step methods need ``step`` (in time units, > 0)."""
    times = torch.as_tensor(times, dtype=x.dtype, device=x.device)
    options = None
    if method in FIXED_STEP:
        if step is None or not step > 0:
            raise ValueError(f"method={method!r} needs a positive step size, got {step!r}")
        options = {"step_size": float(step)}
    solver = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
    kwargs = {"adjoint_params": tuple(field.parameters())} if adjoint else {}
    xs, lws = solver(field, (x, log_w), times, method=method, rtol=rtol, atol=atol, options=options, **kwargs)
    return xs, lws
