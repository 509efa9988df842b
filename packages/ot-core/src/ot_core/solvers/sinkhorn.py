"""Log-domain Sinkhorn for balanced, KL-unbalanced and semi-relaxed entropic OT (one core for all three).

Problem (per batch item): min_pi <C, pi> + eps KL(pi | a b^T) + rho_a KL(pi 1 | a G_a) + rho_b KL(pi^T 1 | b G_b),
rho = inf meaning a hard marginal, G the optional prior factors (default 1). Potentials f (B, n), g (B, m) are in
cost units: pi_ij = a_i b_j exp((f_i + g_j - C_ij) / eps). Updates with damping kappa = rho / (rho + eps):

    f <- kappa_a (smin_eps(C - g; log b) + eps log G_a),   smin_eps(z; h)_i = -eps LSE_j(h_j - z_ij / eps)
    g <- kappa_b (smin_eps(C^T - f; log a) + eps log G_b)

Convergence is checked every ``check_every`` iterations (the only host sync) on the optimality residual of the
side updated first, sum_i |r_i - a_i G_i exp(-f_i / rho_a)| / sum_i a_i (the L1 marginal error when balanced; the
other side is exact after its own update). It comes from the next f-pass, so checking costs nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..geometry import Geometry

__all__ = ["SinkhornOutput", "sinkhorn", "eps_stages", "kappa"]


def kappa(rho: float, eps: float) -> float:
    """Damping rho / (rho + eps) (OTT's tau); 1 for a hard marginal."""
    return 1.0 if math.isinf(rho) else rho / (rho + eps)


def eps_stages(eps: float, schedule: str | None, scaling: float, start: float) -> list[float]:
    """The epsilon values visited: ``[eps]`` without a schedule, else GeomLoss's geometric sequence
    start, start, start * scaling^2, ... (the blur halves for scaling = 0.5) down to eps, eps included once at the
    end (``start`` appears twice, as in GeomLoss's ``epsilon_schedule``)."""
    if schedule is None or start <= eps:
        return [eps]
    if not 0 < scaling < 1:
        raise ValueError(f"scaling must be in (0, 1), got {scaling}")
    stages, e = [start], start
    while e > eps:
        stages.append(e)
        e *= scaling**2
    return stages + [eps]


@dataclass
class SinkhornOutput:
    f: torch.Tensor  # (B, n) cost units
    g: torch.Tensor  # (B, m)
    mass: torch.Tensor  # (B,) total mass of the plan
    n_iter: int
    errors: list[float] = field(default_factory=list)
    converged: bool = False


@dataclass
class _Side:
    """One marginal: log weights h = log a (-inf on zero weights), penalty rho, optional log prior."""

    log_w: torch.Tensor
    rho: float
    log_prior: torch.Tensor | None

    def update(self, lse: torch.Tensor, eps: float) -> torch.Tensor:
        """Potential from the log-sum-exp of the other side's pass: kappa (-eps lse + eps log G)."""
        s = -eps * lse
        if self.log_prior is not None:
            s = s + eps * self.log_prior
        return kappa(self.rho, eps) * s

    def residual(self, pot: torch.Tensor, lse: torch.Tensor, eps: float) -> torch.Tensor:
        """sum_i |r_i - a_i G_i e^{-f_i / rho}| / sum a for the pair that produced ``lse`` (B,)."""
        marginal = torch.exp(self.log_w + pot / eps + lse)
        target_log = self.log_w.clone()
        if self.log_prior is not None:
            target_log = target_log + self.log_prior
        if not math.isinf(self.rho):
            target_log = target_log - pot / self.rho
        weights = self.log_w.exp()
        return (marginal - target_log.exp()).abs().sum(-1) / weights.sum(-1)


def sinkhorn(
    geom: Geometry,
    log_a: torch.Tensor,
    log_b: torch.Tensor,
    eps: float,
    rho: tuple[float, float] = (math.inf, math.inf),
    *,
    log_prior: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None),
    max_iter: int = 1000,
    tol: float = 1e-6,
    check_every: int = 10,
    updates: str = "alternating",
    stages: list[float] | None = None,
    init: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None),
) -> SinkhornOutput:
    """Run the iterations; ``stages`` (from :func:`eps_stages`) warm-starts through larger epsilons, one
    iteration each. With ``stages`` ending in a fixed GeomLoss schedule, pass ``max_iter=0`` to skip the
    convergence phase (the final extrapolation step still runs for symmetric updates)."""
    if math.isinf(rho[0]) and not math.isinf(rho[1]):
        # make the hard side the columns, so that the last update (on g) leaves it exact
        out = sinkhorn(
            geom.T, log_b, log_a, eps, (rho[1], rho[0]), log_prior=log_prior[::-1], max_iter=max_iter,
            tol=tol, check_every=check_every, updates=updates, stages=stages, init=init[::-1],
        )
        out.f, out.g = out.g, out.f
        return out

    side_a, side_b = _Side(log_a, rho[0], log_prior[0]), _Side(log_b, rho[1], log_prior[1])
    B = geom.batch
    f = init[0] if init[0] is not None else torch.zeros(B, geom.n, dtype=geom.dtype, device=geom.device)
    g = init[1] if init[1] is not None else torch.zeros(B, geom.m, dtype=geom.dtype, device=geom.device)
    symmetric = updates == "symmetric"
    stages = stages or [eps]

    def f_pass(g, e):
        lse = geom.lse(g / e + log_b, e)
        return side_a.update(lse, e), lse

    def g_pass(f, e):
        lse = geom.T.lse(f / e + log_a, e)
        return side_b.update(lse, e), lse

    def step(f, g, e):
        ft, lse_f = f_pass(g, e)
        if symmetric:
            gt, lse_g = g_pass(f, e)
            return 0.5 * (f + ft), 0.5 * (g + gt), lse_f, lse_g
        gt, lse_g = g_pass(ft, e)
        return ft, gt, lse_f, lse_g

    if init[0] is None and init[1] is None and len(stages) > 1:
        # GeomLoss's start: both potentials from zero at the largest epsilon, no averaging
        f, _ = f_pass(g, stages[0])
        g, _ = g_pass(torch.zeros_like(f) if symmetric else f, stages[0])
    for e in stages[:-1]:
        f, g, _, _ = step(f, g, e)

    errors: list[float] = []
    converged = False
    n_iter = 0
    lse_g = None
    for it in range(1, max_iter + 1):
        ft, lse_f = f_pass(g, eps)
        if symmetric:
            gt, lse_g_new = g_pass(f, eps)
        if it % check_every == 0 or it == max_iter:
            err = side_a.residual(f, lse_f, eps)
            if symmetric:
                err = err + side_b.residual(g, lse_g_new, eps)
            err_max = float(err.max().detach())  # host sync
            errors.append(err_max)
            if not math.isfinite(err_max):
                raise FloatingPointError(
                    f"Sinkhorn diverged (marginal error {err_max}) at iteration {it}; the inputs may contain "
                    "extreme values; try float64 or a larger reg"
                )
            if err_max < tol and (symmetric or lse_g is not None):
                converged = True
                break
        if symmetric:
            f, g, lse_g = 0.5 * (f + ft), 0.5 * (g + gt), None
        else:
            f = ft
            g, lse_g = g_pass(f, eps)
        n_iter = it

    if symmetric:
        # GeomLoss's final extrapolation: both potentials from the last pair at the target epsilon
        (f, _), (g, lse_g) = f_pass(g, eps), g_pass(f, eps)
    elif lse_g is None:  # no iteration ran at eps (schedule only): finish with one update at eps
        f, _ = f_pass(g, eps)
        g, lse_g = g_pass(f, eps)
    mass = torch.exp(log_b + g / eps + lse_g).sum(-1) if not symmetric else _mass(geom, f, g, log_a, log_b, eps)
    return SinkhornOutput(f=f, g=g, mass=mass, n_iter=n_iter, errors=errors, converged=converged)


def _mass(geom: Geometry, f, g, log_a, log_b, eps) -> torch.Tensor:
    return torch.exp(log_a + f / eps + geom.lse(g / eps + log_b, eps)).sum(-1)


def dual_value(
    f: torch.Tensor,
    g: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    mass: torch.Tensor,
    eps: float,
    rho: tuple[float, float],
    prior: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None),
) -> torch.Tensor:
    """D(f, g) = sum over sides of <a, f> (hard) or -rho <a G, e^{-f/rho} - 1> (relaxed), minus
    eps (sum pi - |a| |b|). Equals the primal objective at the optimum. Shape (B,)."""

    def side(w, pot, r, p):
        if math.isinf(r):
            return (w * pot).sum(-1)
        target = w if p is None else w * p
        return -r * (target * torch.expm1(-pot / r)).sum(-1)

    return side(a, f, rho[0], prior[0]) + side(b, g, rho[1], prior[1]) - eps * (mass - a.sum(-1) * b.sum(-1))
