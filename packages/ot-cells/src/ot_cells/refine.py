"""Stage 2 of VGFM: distribution fitting. From all cells of the first snapshot (log w = log(1 / n_0)), roll out
the ODE interval by interval with fixed Euler steps and minimise the exact W1 between the weight-normalised
prediction and the next observed snapshot (gradients reach the positions through the envelope theorem; the plan
is computed on detached weights, so the growth net is trained only when ``refine_mass_weight > 0``, and then by the
mass penalty alone)."""

from __future__ import annotations

import math
from typing import Callable

import torch

import ot_core

from .config import VGFMConfig
from .flow_matching import Interval
from .ode import WeightedField, integrate

__all__ = ["refine_epoch"]


def refine_epoch(
    field: WeightedField,
    x0: torch.Tensor,
    intervals: list[Interval],
    target_mass: list[float],
    config: VGFMConfig,
    optimizer: torch.optim.Optimizer | None,
    generator: torch.Generator,
    extra_loss: Callable[[], torch.Tensor] | None = None,
) -> list[dict]:
    """One epoch; one optimiser step per interval (``optimizer=None``: the same rollout and scores without
    gradients or updates). ``target_mass[k]``: relative mass at the end of interval k. ``extra_loss``: added to
    every interval's loss (the flow-matching loss for ``loss_mode="sum"``).
    Returns one record per interval: w1, mass_pred, mass_obs."""
    with torch.set_grad_enabled(optimizer is not None and torch.is_grad_enabled()):
        return _epoch(field, x0, intervals, target_mass, config, optimizer, generator, extra_loss)


def _epoch(field, x0, intervals, target_mass, config, optimizer, generator, extra_loss) -> list[dict]:
    device = next(field.parameters()).device
    x = x0.to(device=device, dtype=torch.float32)
    log_w = torch.full((len(x),), -math.log(len(x)), dtype=torch.float32, device=device)
    records = []
    for iv, mass in zip(intervals, target_mass):
        xs, lws = integrate(field, x, log_w, [iv.t0, iv.t1], method="euler", step=config.refine_step * iv.dt,
                            adjoint=config.adjoint and optimizer is not None)
        x_hat, lw_hat = xs[-1], lws[-1]
        y = iv.y
        if config.refine_target_fraction < 1:
            keep = max(1, math.ceil(config.refine_target_fraction * len(y)))
            y = y[torch.randperm(len(y), generator=generator)[:keep]]
        y = y.to(device=device, dtype=torch.float32)
        weights = torch.softmax(lw_hat.detach(), 0)
        loss = ot_core.solve_sample(x_hat, y, weights, None, cost="euclidean", reg=None).value
        w1 = loss.item()
        log_mass = torch.logsumexp(lw_hat, 0)
        if optimizer is not None:
            if extra_loss is not None:
                loss = loss + extra_loss()
            optimizer.zero_grad()
            if config.refine_mass_weight > 0 and field.growth is not None:
                _add_mass_gradient(field.growth, config.refine_mass_weight * (log_mass - math.log(mass)) ** 2)
            loss.backward()
            optimizer.step()
        records.append({"w1": w1, "mass_pred": log_mass.exp().item(), "mass_obs": float(mass)})
        x, log_w = x_hat.detach(), lw_hat.detach()
    return records


def _add_mass_gradient(growth: torch.nn.Module, mass_loss: torch.Tensor) -> None:
    """Accumulate the gradient of the mass penalty in the growth net only: the velocity net, trained by W1, is not
    allowed to move cells towards growth that happens to fit the mass."""
    params = list(growth.parameters())
    for p, grad in zip(params, torch.autograd.grad(mass_loss, params, retain_graph=True)):
        p.grad = grad if p.grad is None else p.grad + grad
