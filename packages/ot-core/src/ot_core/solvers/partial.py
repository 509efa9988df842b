"""Entropic partial OT by log-domain Dykstra projections, with vectors only.

min <C, pi> + eps sum pi_ij (log pi_ij - 1)  s.t.  pi 1 <= a, pi^T 1 <= b, 1^T pi 1 = m.

POT's multiplicative solver keeps three n x m Dykstra corrections; they are row-, column- and scalar-constant,
so the plan stays pi_ij = exp(alpha_i + beta_j + gamma - C_ij / eps) and the iteration needs two softmin passes:
rows capped at a, columns capped at b, total mass set to m (each projection followed by its Dykstra correction).
``reference="kl"`` uses a b^T instead of 1 as the entropy reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..geometry import Geometry

__all__ = ["PartialOutput", "entropic_partial"]


@dataclass
class PartialOutput:
    u: torch.Tensor  # (B, n) log row scaling: pi = exp(u_i + v_j - C_ij / eps)
    v: torch.Tensor  # (B, m)
    n_iter: int
    errors: list[float] = field(default_factory=list)
    converged: bool = False


def _cap(log_w: torch.Tensor, log_marginal: torch.Tensor) -> torch.Tensor:
    """KL projection step onto {marginal <= w}: min(log w - log marginal, 0); -inf where w = 0."""
    step = torch.clamp(log_w - log_marginal, max=0.0)
    return torch.where(torch.isneginf(log_w), torch.full_like(step, -math.inf), step)


def _finite_or_zero(t: torch.Tensor) -> torch.Tensor:
    return torch.where(torch.isfinite(t), t, torch.zeros_like(t))


def entropic_partial(
    geom: Geometry,
    log_a: torch.Tensor,
    log_b: torch.Tensor,
    mass: torch.Tensor,
    eps: float,
    *,
    reference: str = "entropy",
    max_iter: int = 1000,
    tol: float = 1e-6,
    check_every: int = 10,
) -> PartialOutput:
    """Solve; ``mass`` has shape (B,). Stops when max(|d alpha|, |d beta|, |d gamma|) < tol at a check."""
    ref_a = log_a if reference == "kl" else torch.zeros_like(log_a)
    ref_b = log_b if reference == "kl" else torch.zeros_like(log_b)
    alpha = torch.zeros_like(log_a)
    beta = torch.zeros_like(log_b)
    log_m = torch.log(mass)
    gamma = log_m - torch.logsumexp(ref_a + geom.lse(ref_b, eps), dim=-1)  # (B,)
    q1, q2, q3 = torch.zeros_like(alpha), torch.zeros_like(beta), torch.zeros_like(gamma)

    errors: list[float] = []
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        prev = (alpha, beta, gamma)
        # rows: pi 1 <= a
        alpha = alpha + q1
        log_rows = alpha + ref_a + gamma[:, None] + geom.lse(beta + ref_b, eps)
        s = _cap(log_a, log_rows)
        alpha, q1 = alpha + s, -_finite_or_zero(s)
        # columns: pi^T 1 <= b
        beta = beta + q2
        log_cols = beta + ref_b + gamma[:, None] + geom.T.lse(alpha + ref_a, eps)
        t = _cap(log_b, log_cols)
        beta, q2 = beta + t, -_finite_or_zero(t)
        # total mass = m
        gamma = gamma + q3
        total = torch.logsumexp(log_cols + t, dim=-1) + q3
        step = log_m - total
        gamma, q3 = gamma + step, -step
        if it % check_every == 0 or it == max_iter:
            err = max(_change(alpha, prev[0]), _change(beta, prev[1]), _change(gamma, prev[2]))
            errors.append(err)
            if not math.isfinite(err):
                raise FloatingPointError(f"entropic partial OT diverged at iteration {it}; try float64 or a larger reg")
            if err < tol:
                converged = True
                break
    half = gamma[:, None] / 2
    return PartialOutput(u=alpha + ref_a + half, v=beta + ref_b + half, n_iter=it, errors=errors, converged=converged)


def _change(new: torch.Tensor, old: torch.Tensor) -> float:
    diff = _finite_or_zero(new - old) if new.dim() else new - old
    return float(diff.abs().max()) if diff.numel() else 0.0
