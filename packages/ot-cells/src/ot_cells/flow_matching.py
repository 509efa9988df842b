"""Stage 1 of VGFM: velocity-growth flow matching on pairs drawn from the couplings.

For a pair (i, j) of interval [t0, t1] (dt = t1 - t0) and s ~ U[0, 1], the conditional path is
x_s = (1 - s) x_i + s y_j + sigma xi at t = t0 + s dt, with constant targets v = (y_j - x_i) / dt and
g = log(m_i / a_i) / dt (the source cell's log mass factor per unit time).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ot_core.flows import conditional_velocity, interpolant

from .config import VGFMConfig
from .couplings import Coupling
from .ode import WeightedField

__all__ = ["Interval", "Batch", "sample_batch", "matching_loss"]


@dataclass
class Interval:
    """Snapshot ``source`` (cells ``x``) coupled with snapshot ``target`` (cells ``y``) from model time t0 to t1."""

    source: int
    target: int
    t0: float
    t1: float
    x: torch.Tensor
    y: torch.Tensor
    coupling: Coupling

    @property
    def dt(self) -> float:
        return self.t1 - self.t0


@dataclass
class Batch:
    """Points x_t (B, d) at times t (B,), targets v (B, d) and g (B,), per-pair loss weights (B,)."""

    x: torch.Tensor
    t: torch.Tensor
    v: torch.Tensor
    g: torch.Tensor
    weight: torch.Tensor


def sample_batch(intervals: list[Interval], config: VGFMConfig, generator: torch.Generator) -> Batch:
    """One stage-1 batch: ``batch_size`` pairs per interval (fewer when a snapshot is smaller), concatenated."""
    parts = []
    for iv in intervals:
        c = iv.coupling
        i, j = c.sample(config.batch_size, generator)
        x0, x1 = iv.x[i], iv.y[j]
        s = torch.rand(len(i), dtype=x0.dtype, generator=generator)
        start, end = (x0, x1) if config.interpolation == "forward" else (x1, x0)
        xt = interpolant(start, end, s, config.sigma, generator)
        g = c.growth_target[i].to(x0.dtype) if config.growth else torch.zeros_like(s)
        if config.mass_weighting == "path":
            weight = c.mass_factor[i].to(x0.dtype) ** (s - 1)
        else:
            weight = torch.ones_like(s)
        parts.append((xt, iv.t0 + s * iv.dt, conditional_velocity(x0, x1, iv.dt), g, weight))
    x, t, v, g, w = (torch.cat(p) for p in zip(*parts))
    return Batch(x=x, t=t, v=v, g=g, weight=w / w.mean())


def matching_loss(field: WeightedField, batch: Batch, device: torch.device) -> tuple[torch.Tensor, float, float]:
    """mean_b w_b mean_d (v(x_t, t) - v)^2 + mean_b w_b (g(x_t, t) - g)^2; returns (loss, loss_v, loss_g)."""
    x, t, v, g, w = (a.to(device=device, dtype=torch.float32) for a in (batch.x, batch.t, batch.v, batch.g, batch.weight))
    loss_v = (w * ((field.velocity_at(x, t) - v) ** 2).mean(1)).mean()
    loss_g = (w * (field.growth_at(x, t) - g) ** 2).mean() if field.growth is not None else torch.zeros((), device=device)
    return loss_v + loss_g, loss_v.item(), loss_g.item()
