"""Couplings between consecutive snapshots and the pair sampler of flow matching.

* :func:`srot_coupling`: VGFM's semi-relaxed OT (SROT), solved by ot-core in the log domain,
  pi = argmin <C, pi> + eps KL(pi | a b^T) + lam KL(pi 1 | a G)  subject to  pi^T 1 = b,
  with C_ij = |x_i - y_j|^2 (optionally C / max C). The row sums m_i = [pi 1]_i give each source cell's mass
  factor m_i / a_i (its expected number of descendants) and the growth target log(m_i / a_i) / dt.
* :func:`exact_coupling`: balanced exact OT (network simplex), the coupling of the growth-free OT-CFM baseline;
  every cell then gets the population's mean factor N_{k+1} / N_k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

import ot_core
from ot_core.costs import SqEuclidean

__all__ = ["Coupling", "srot_coupling", "exact_coupling", "select_reg_m", "SROT_SOLVERS"]

#: public solver names -> ot-core method names
SROT_SOLVERS = {"semidual": "semidual", "scaling": "sinkhorn"}


@dataclass
class Coupling:
    """A coupling pi (n, m) of snapshot k (n cells, masses ``a``) with snapshot k+1 (m cells), ``dt`` apart.

    ``b`` (m,) = pi^T 1; ``row_mass`` (n,) = pi 1; ``result``: the ot-core :class:`~ot_core.OTResult` (``result.lazy_plan @ V`` and
    ``result.lazy_plan.T @ U`` apply pi batch-wise without storing it); ``stats``: solver diagnostics.
    """

    dt: float
    a: torch.Tensor
    b: torch.Tensor
    row_mass: torch.Tensor
    result: ot_core.OTResult
    log_rows: Callable[[torch.Tensor], torch.Tensor] = field(repr=False)
    stats: dict = field(default_factory=dict)

    @property
    def mass_factor(self) -> torch.Tensor:
        """m_i / a_i (n,): expected descendants per unit of source mass."""
        return self.row_mass / self.a

    @property
    def growth_target(self) -> torch.Tensor:
        """log(m_i / a_i) / dt (n,): the constant log-growth rate along each source cell's paths."""
        return torch.log(self.mass_factor) / self.dt

    def sample(self, batch: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """min(batch, n) distinct sources i drawn with probability proportional to m_i (successive weighted draws),
        then one target j ~ pi_i. / m_i for each. Returns index tensors (B,), (B,)."""
        k = min(int(batch), int((self.row_mass > 0).sum()))
        gumbel = -torch.log(-torch.log(torch.rand(self.row_mass.shape, dtype=torch.float64, generator=generator)))
        rows = torch.topk(torch.log(self.row_mass) + gumbel, k).indices  # Gumbel-top-k = successive draws
        cdf = torch.cumsum(torch.softmax(self.log_rows(rows), dim=1), dim=1)
        u = torch.rand(k, 1, dtype=cdf.dtype, generator=generator) * cdf[:, -1:]
        cols = torch.searchsorted(cdf, u)[:, 0].clamp_max(cdf.shape[1] - 1)
        return rows, cols


def _masses(n: int, relative_mass: float, n0: int) -> torch.Tensor:
    """Per-cell mass N_k / n_k in units where a cell of the first snapshot weighs 1 (n0 / n_k M_k)."""
    return torch.full((n,), relative_mass * n0 / n, dtype=torch.float64)


def srot_coupling(
    x: torch.Tensor,
    y: torch.Tensor,
    dt: float,
    masses: tuple[float, float] = (1.0, 1.0),
    n0: int | None = None,
    *,
    epsilon: float = 0.01,
    reg_m: float = 5.0,
    scale_cost: str | None = "max",
    prior: torch.Tensor | None = None,
    solver: str = "semidual",
    max_iter: int = 10000,
    tol: float = 1e-6,
    init: torch.Tensor | None = None,
) -> Coupling:
    """SROT between x (n, d) and y (m, d) with relative masses ``masses = (M_k, M_{k+1})``.

    Per-cell masses are a_i = M_k n0 / n and b_j = M_{k+1} n0 / m (1 when the counts are the population sizes),
    so sum(pi) = M_{k+1} n0 exactly. ``prior`` (n,): prior growth factors G_i of the relaxed side. ``solver``:
    "semidual" (L-BFGS on the semi-dual; reaches the optimum where the scaling iteration plateaus) or "scaling"
    (generalised Sinkhorn, stopped on the same optimality residual). ``init``: warm-start potential f (n,).
    """
    if solver not in SROT_SOLVERS:
        raise ValueError(f"solver={solver!r}; use one of {sorted(SROT_SOLVERS)}")
    x, y = x.double(), y.double()
    n0 = len(x) if n0 is None else n0
    a, b = _masses(len(x), masses[0], n0), _masses(len(y), masses[1], n0)
    if prior is not None:
        prior = torch.as_tensor(prior, dtype=torch.float64)
        if prior.shape != a.shape or not bool((prior > 0).all()) or not bool(torch.isfinite(prior).all()):
            raise ValueError(f"the growth prior must hold one positive finite factor per source cell ({len(a)})")
    result = ot_core.solve_sample(
        x, y, a, b, reg=epsilon, unbalanced=(reg_m, math.inf), prior=(prior, None), scale_cost=scale_cost,
        max_iter=max_iter, tol=tol, method=SROT_SOLVERS[solver], init=None if init is None else (init, None),
    )
    k = float(result.extra.get("cost_scale", 1.0))
    row_mass = result.lazy_plan.row_sums()
    target = a if prior is None else a * prior
    residual = float(((row_mass - target * torch.exp(-result.f / reg_m)).abs() / target).max())
    log_b_g = torch.log(b) + result.g / epsilon

    def log_rows(rows: torch.Tensor) -> torch.Tensor:
        return log_b_g - SqEuclidean().matrix(x[rows], y) / (k * epsilon)

    factor = row_mass / a
    stats = {
        "epsilon": epsilon, "reg_m": reg_m, "cost_scale": k, "solver": solver, "n_iter": int(result.n_iter),
        "converged": bool(result.converged), "residual": residual, "objective": float(result.value),
        "mass_ratio": masses[1] / masses[0], "mean_factor": float(factor.mean()),
        "min_factor": float(factor.min()), "max_factor": float(factor.max()),
    }
    return Coupling(dt=dt, a=a, b=b, row_mass=row_mass, result=result, log_rows=log_rows, stats=stats)


def exact_coupling(x: torch.Tensor, y: torch.Tensor, dt: float, masses: tuple[float, float] = (1.0, 1.0),
                   n0: int | None = None) -> Coupling:
    """Balanced exact OT between the uniform snapshots x (n, d) and y (m, d) (squared Euclidean cost; the plan
    carries the source's mass, b_j = sum(a) / m). Every source cell gets the population's mean factor
    M_{k+1} / M_k (no spatial growth attribution)."""
    x, y = x.double(), y.double()
    n0 = len(x) if n0 is None else n0
    a = _masses(len(x), masses[0], n0)
    b = torch.full((len(y),), float(a.sum()) / len(y), dtype=torch.float64)
    result = ot_core.solve_sample(x, y, a, b, reg=None)
    plan = result.plan
    ratio = masses[1] / masses[0]

    def log_rows(rows: torch.Tensor) -> torch.Tensor:
        return torch.log(plan[rows])

    stats = {"solver": "exact", "objective": float(result.value), "mass_ratio": ratio, "mean_factor": ratio,
             "min_factor": ratio, "max_factor": ratio, "converged": True}
    return Coupling(dt=dt, a=a, b=b, row_mass=a * ratio, result=result, log_rows=log_rows, stats=stats)


def select_reg_m(
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: float,
    masses: tuple[float, float] = (1.0, 1.0),
    grid: np.ndarray | None = None,
    scale_cost: str | None = "max",
    max_cells: int = 1000,
    seed: int = 0,
) -> tuple[float, dict]:
    """Automatic lam: the elbow of the transport cost <C, pi_lam> over a log-spaced grid (default
    logspace(-2, 1.2, 40)): the grid point farthest from the chord through the curve's end points, both axes
    (log lam, cost) min-max normalised. Cells are subsampled to ``max_cells`` per side (the elbow is stable under
    subsampling). Returns (lam, {"grid": ..., "cost": ...})."""
    grid = np.logspace(-2, 1.2, 40) if grid is None else np.asarray(grid, dtype=float)
    gen = torch.Generator().manual_seed(seed)
    xs = x if len(x) <= max_cells else x[torch.randperm(len(x), generator=gen)[:max_cells]]
    ys = y if len(y) <= max_cells else y[torch.randperm(len(y), generator=gen)[:max_cells]]
    costs, init = [], None
    for lam in grid:
        c = srot_coupling(xs, ys, 1.0, masses, n0=len(xs), epsilon=epsilon, reg_m=float(lam),
                          scale_cost=scale_cost, init=init)
        init = c.result.f
        costs.append(float(c.result.value_linear))
    u = (np.log(grid) - np.log(grid[0])) / (np.log(grid[-1]) - np.log(grid[0]))
    cost = np.asarray(costs)
    v = (cost - cost.min()) / max(cost.max() - cost.min(), 1e-300)
    chord = np.array([u[-1] - u[0], v[-1] - v[0]])
    dist = np.abs(chord[0] * (v - v[0]) - chord[1] * (u - u[0])) / np.linalg.norm(chord)
    return float(grid[int(np.argmax(dist))]), {"grid": grid, "cost": cost}
