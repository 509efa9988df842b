"""Minibatch OT couplings for flow matching and training losses (Fatras et al. 2020; Tong et al. 2024)."""

from __future__ import annotations

import torch

from .api import solve_sample
from .result import OTResult

__all__ = ["PlanSampler"]

METHODS = ("exact", "sinkhorn", "unbalanced", "partial")


class PlanSampler:
    """Couple two minibatches by an OT plan and draw index pairs from it.

    ``method``: "exact" (network simplex), "sinkhorn" (entropic, ``reg``), "unbalanced" (KL-relaxed with
    ``unbalanced=rho or (rho_a, rho_b)``, entropic) or "partial" (``mass``; exact when ``reg`` is None).
    ``normalize_cost=True`` divides the cost by its (detached) maximum so that ``reg`` is relative.
    """

    def __init__(self, method: str = "exact", reg: float | None = 0.05, unbalanced=None, mass: float | None = None,
                 cost="sqeuclidean", normalize_cost: bool = False, **solve_kw):
        if method not in METHODS:
            raise ValueError(f"method={method!r}; use one of {METHODS}")
        if method in ("sinkhorn", "unbalanced") and not reg:
            raise ValueError(f"method={method!r} needs reg > 0")
        if method == "unbalanced" and unbalanced is None:
            raise ValueError("method='unbalanced' needs unbalanced=rho or (rho_a, rho_b)")
        if method == "partial" and mass is None:
            raise ValueError("method='partial' needs mass=")
        self.method, self.cost, self.normalize_cost = method, cost, normalize_cost
        self.kw = dict(solve_kw)
        self.kw["reg"] = None if method == "exact" else reg
        if method == "unbalanced":
            self.kw["unbalanced"] = unbalanced
        if method == "partial":
            self.kw["mass"] = mass

    def plan(self, x0: torch.Tensor, x1: torch.Tensor, a=None, b=None) -> OTResult:
        """The coupling between x0 (n, d) and x1 (m, d) (flattened beyond the first axis)."""
        kw = dict(self.kw)
        if self.normalize_cost:
            kw["scale_cost"] = "max"
        return solve_sample(x0.flatten(1).detach(), x1.flatten(1).detach(), a, b, cost=self.cost, grad="detach", **kw)

    def sample_pairs(self, x0: torch.Tensor, x1: torch.Tensor, k: int | None = None,
                     generator: torch.Generator | None = None, replacement: bool = True):
        """Draw k pairs (x0[i], x1[j]) with (i, j) ~ pi (k defaults to len(x0)); returns (x0[i], x1[j], i, j)."""
        res = self.plan(x0, x1)
        i, j = res.lazy_plan.sample(k or x0.shape[0], generator=generator, replacement=replacement)
        return x0[i], x1[j], i, j
