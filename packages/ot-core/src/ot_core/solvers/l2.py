"""Quadratically regularised OT (Blondel, Seguy, Rolet 2018), POT ``ot.smooth`` convention:

min_{pi in U(a, b)} <C, pi> + (gamma / 2) ||pi||^2, solved on the dual
max_{alpha, beta} <alpha, a> + <beta, b> - (1 / (2 gamma)) sum_ij [alpha_i + beta_j - C_ij]_+^2
by L-BFGS (strong Wolfe); pi = [alpha + beta - C]_+ / gamma is sparse. One pass over C (in row blocks) gives the
dual value and its gradient (a - pi 1, b - pi^T 1).
"""

from __future__ import annotations

import math

import torch

from ..geometry import Geometry
from ..result import DensePlan, OTResult

__all__ = ["solve_l2_geometry"]


def _dual_and_grad(geom: Geometry, alpha, beta, a, b, gamma):
    """Dual objective (B,) and plan marginals (B, n), (B, m) at (alpha, beta)."""
    rows = torch.empty_like(alpha)
    cols = torch.zeros_like(beta)
    quad = torch.zeros(alpha.shape[0], dtype=alpha.dtype, device=alpha.device)
    for i0 in range(0, geom.n, geom._rows):
        i1 = min(geom.n, i0 + geom._rows)
        s = (alpha[:, i0:i1, None] + beta[:, None, :] - geom._cost_block(i0, i1)).clamp_min_(0)
        quad += s.pow(2).sum((1, 2))
        rows[:, i0:i1] = s.sum(-1) / gamma
        cols += s.sum(-2) / gamma
    dual = (alpha * a).sum(-1) + (beta * b).sum(-1) - quad / (2 * gamma)
    return dual, rows, cols


def solve_l2_geometry(geom: Geometry, a: torch.Tensor, b: torch.Tensor, gamma: float, batched: bool,
                      max_iter: int = 500, tol: float = 1e-9) -> OTResult:
    """Solve on a geometry with weights a (B, n), b (B, m); returns potentials, plan and values."""
    alpha = torch.zeros(geom.batch, geom.n, dtype=geom.dtype, device=geom.device, requires_grad=True)
    beta = torch.zeros(geom.batch, geom.m, dtype=geom.dtype, device=geom.device, requires_grad=True)
    opt = torch.optim.LBFGS([alpha, beta], lr=1.0, max_iter=max_iter, history_size=20, tolerance_grad=tol,
                            tolerance_change=tol * 1e-3, line_search_fn="strong_wolfe")

    def closure():
        with torch.no_grad():
            dual, rows, cols = _dual_and_grad(geom, alpha, beta, a, b, gamma)
        alpha.grad = -(a - rows)
        beta.grad = -(b - cols)
        return -dual.sum()

    with torch.enable_grad():
        opt.step(closure)
    alpha, beta = alpha.detach(), beta.detach()
    with torch.no_grad():
        dual, rows, cols = _dual_and_grad(geom, alpha, beta, a, b, gamma)
        C = geom.cost_matrix()
        P = (alpha[:, :, None] + beta[:, None, :] - C).clamp_min(0) / gamma
        value_linear = (P * C).sum((1, 2))
        value = value_linear + 0.5 * gamma * P.pow(2).sum((1, 2))
    err = float(((rows - a).abs().sum(-1) + (cols - b).abs().sum(-1)).max())
    n_iter = opt.state[opt._params[0]].get("n_iter", 0)
    res = OTResult(f=alpha, g=beta, value=value, lazy_plan=DensePlan(P, batched=True), reg=gamma, n_iter=n_iter,
                   errors=[err], converged=err < math.sqrt(tol), backend="l2", extra={"value_linear": value_linear,
                                                                                    "dual_value": dual})
    res.f, res.g, res.value = (t if batched else t[0] for t in (res.f, res.g, res.value))
    res.lazy_plan = res.lazy_plan.view(batched)
    return res
