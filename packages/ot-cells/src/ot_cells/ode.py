"""The ODE of weighted cells, dx/dt = v(x, t), d log w/dt = g(x, t), integrated with torchdiffeq (adaptive
"dopri5" for inference, fixed-step "euler"/"rk4" with a step size for training, optional adjoint gradients)."""

from __future__ import annotations

import numpy as np
import torch
import torchdiffeq
from torch import nn

from .nets import GrowthNet, VelocityNet

__all__ = ["WeightedField", "integrate"]

FIXED_STEP = ("euler", "midpoint", "rk4")


class WeightedField(nn.Module):
    """(t, (x, log w)) -> (v(x, t), g(x, t) + c(t)) with the networks' time input t_in = (t - t0) / (t1 - t0).

    ``growth=None`` gives g = 0 (the growth-free model). c(t) is the mass calibration (:meth:`set_growth_offset`),
    absent (0) unless set."""

    def __init__(self, velocity: VelocityNet, growth: GrowthNet | None, t0: float, t1: float):
        super().__init__()
        self.velocity, self.growth = velocity, growth
        self.t0, self.span = float(t0), float(t1 - t0)
        self.register_buffer("offset_knots", None, persistent=False)
        self.register_buffer("offset_rates", None, persistent=False)

    def set_growth_offset(self, knots, rates) -> None:
        """c(t) = rates[k] on [knots[k], knots[k+1]) (model times (K,), increasing; rates (K-1,) per time unit),
        rates[0] before knots[0] and rates[-1] from knots[-1] on. ``rates=None`` removes c."""
        if rates is None:
            self.offset_knots = self.offset_rates = None
            return
        like = next(self.parameters())
        knots, rates = (torch.as_tensor(np.asarray(v, dtype=float), dtype=like.dtype, device=like.device)
                        for v in (knots, rates))
        if knots.ndim != 1 or rates.shape != (len(knots) - 1,) or not bool((knots.diff() > 0).all()):
            raise ValueError(f"need increasing knots (K,) and rates (K-1,), got {tuple(knots.shape)} and "
                             f"{tuple(rates.shape)}")
        self.offset_knots, self.offset_rates = knots, rates

    @property
    def jumps(self) -> torch.Tensor | None:
        """Model times where c(t) jumps (the interior knots), or None."""
        return None if self.offset_rates is None else self.offset_knots[1:-1]

    def time_input(self, t: torch.Tensor | float, n: int, like: torch.Tensor) -> torch.Tensor:
        """Normalised time (n, 1) for a scalar t or per-cell times t (n,)."""
        t = torch.as_tensor(t, dtype=like.dtype, device=like.device)
        return ((t - self.t0) / self.span).reshape(-1, 1).expand(n, 1)

    def velocity_at(self, x: torch.Tensor, t) -> torch.Tensor:
        return self.velocity(x, self.time_input(t, len(x), x))

    def growth_at(self, x: torch.Tensor, t) -> torch.Tensor:
        if self.growth is None:
            g = torch.zeros(len(x), dtype=x.dtype, device=x.device)
        else:
            g = self.growth(x, self.time_input(t, len(x), x))
        if self.offset_rates is None:
            return g
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1)
        return g + self.offset_rates[torch.bucketize(t, self.jumps, right=True)]

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

    Returns x (T, N, d) and log w (T, N). Fixed-step methods need ``step`` (in time units, > 0). Adaptive
    methods restart at the jumps of the field's mass calibration c(t)."""
    times = torch.as_tensor(times, dtype=x.dtype, device=x.device)
    options = None
    if method in FIXED_STEP:
        if step is None or not step > 0:
            raise ValueError(f"method={method!r} needs a positive step size, got {step!r}")
        options = {"step_size": float(step)}
    elif field.jumps is not None and len(field.jumps):
        options = {"jump_t": field.jumps}
    solver = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
    kwargs = {"adjoint_params": tuple(field.parameters())} if adjoint else {}
    xs, lws = solver(field, (x, log_w), times, method=method, rtol=rtol, atol=atol, options=options, **kwargs)
    return xs, lws
