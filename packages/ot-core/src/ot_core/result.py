"""OTResult and the plans it carries: a lazy entropic plan (never stored) or a stored (exact) plan.

Both plans keep a leading batch axis internally; an unbatched problem returns unbatched tensors.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

from .geometry import Geometry

__all__ = ["OTResult", "LazyPlan", "DensePlan", "MAX_DENSE_PLAN"]

#: ``OTResult.plan`` refuses to materialise more entries than this unless ``plan_dense(force=True)``.
MAX_DENSE_PLAN = 2**28


class _Plan:
    """Shared interface. Subclasses define ``_apply(V)`` (B, m, k) -> (B, n, k), ``transpose``, ``_row_scores``
    and ``_dense``."""

    batched: bool
    batch: int
    n: int
    m: int

    def _apply(self, V: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def transpose(self) -> "_Plan":
        raise NotImplementedError

    def _row_scores(self, b: int, rows: torch.Tensor) -> torch.Tensor:
        """log pi[b, rows, :] up to a per-row constant, shape (len(rows), m)."""
        raise NotImplementedError

    def _dense(self) -> torch.Tensor:
        raise NotImplementedError

    @property
    def T(self) -> "_Plan":
        return self.transpose()

    def view(self, batched: bool) -> "_Plan":
        """The same plan presented with (batched=True) or without its batch axis."""
        out = copy.copy(self)
        out.batched = batched
        return out

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.batch, self.n, self.m) if self.batched else (self.n, self.m)

    def __matmul__(self, V: torch.Tensor) -> torch.Tensor:
        """P @ V for V of shape (m,), (m, k), or (B, m, k) when batched."""
        if not isinstance(V, torch.Tensor):
            raise TypeError(f"plan @ V needs a torch.Tensor, got {type(V).__name__}")
        vec = V.dim() == (2 if self.batched else 1)
        Vb = V.unsqueeze(-1) if vec else V
        if not self.batched:
            Vb = Vb.unsqueeze(0)
        if Vb.dim() != 3 or Vb.shape[1] != self.m:
            raise ValueError(f"plan of shape {self.shape} cannot be applied to V of shape {tuple(V.shape)}")
        out = self._apply(Vb.expand(self.batch, -1, -1))
        if not self.batched:
            out = out[0]
        return out.squeeze(-1) if vec else out

    def row_sums(self) -> torch.Tensor:
        """pi 1, shape (n,) (or (B, n))."""
        ones = torch.ones(self.batch, self.m, 1, dtype=self.dtype, device=self.device)
        out = self._apply(ones)[..., 0]
        return out if self.batched else out[0]

    def col_sums(self) -> torch.Tensor:
        """pi^T 1, shape (m,) (or (B, m))."""
        return self.T.row_sums()

    def dense(self, force: bool = False) -> torch.Tensor:
        """Materialise pi (n, m); refuses more than 2**28 entries unless ``force=True``."""
        if self.batch * self.n * self.m > MAX_DENSE_PLAN and not force:
            raise MemoryError(
                f"the plan has {self.batch * self.n * self.m:,} entries; use the lazy plan (P @ V, row_sums, "
                "sample) or call dense(force=True)"
            )
        out = self._dense()
        return out if self.batched else out[0]

    def barycentric_map(self, y: torch.Tensor | None = None) -> torch.Tensor:
        """T(x_i) = sum_j pi_ij y_j / sum_j pi_ij, shape (n, d); ``y`` defaults to the target points."""
        if y is None:
            y = getattr(self, "target_points", None)
            if y is None:
                raise ValueError("barycentric_map needs the target points y for a plan built from a cost matrix")
        yb = y if self.batched else y.unsqueeze(0)
        ones = torch.ones(*yb.shape[:-1], 1, dtype=yb.dtype, device=yb.device)
        out = self._apply(torch.cat([yb.expand(self.batch, -1, -1), ones.expand(self.batch, -1, -1)], dim=-1))
        mapped = out[..., :-1] / out[..., -1:].clamp_min(torch.finfo(out.dtype).tiny)
        return mapped if self.batched else mapped[0]

    def sample(
        self, k: int, generator: torch.Generator | None = None, replacement: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw k index pairs (i, j) with probability proportional to pi_ij.

        i ~ row sums (with or without replacement), then j ~ pi_i. / r_i by Gumbel-max on the row, computed
        lazily (never a flattened n*m distribution). Returns (k,) tensors, or (B, k) when batched.
        """
        r = self.row_sums()
        rb = r if self.batched else r.unsqueeze(0)
        rows_all, cols_all = [], []
        for bi in range(self.batch):
            p = rb[bi].clamp_min(0).double()
            if not replacement and k > int((p > 0).sum()):
                raise ValueError(f"cannot draw {k} distinct rows: only {int((p > 0).sum())} rows carry mass")
            rows = torch.multinomial(p.cpu(), k, replacement=replacement, generator=_cpu(generator)).to(self.device)
            cols = torch.empty(k, dtype=torch.long, device=self.device)
            chunk = max(1, 2**22 // max(1, self.m))
            for c0 in range(0, k, chunk):
                idx = rows[c0 : c0 + chunk]
                scores = self._row_scores(bi, idx)
                u = torch.rand(scores.shape, dtype=scores.dtype, device=scores.device, generator=_on(generator, scores))
                gumbel = -torch.log(-torch.log(u.clamp_min(torch.finfo(u.dtype).tiny)))
                cols[c0 : c0 + chunk] = (scores + gumbel).argmax(dim=-1)
            rows_all.append(rows)
            cols_all.append(cols)
        if not self.batched:
            return rows_all[0], cols_all[0]
        return torch.stack(rows_all), torch.stack(cols_all)


def _cpu(generator: torch.Generator | None) -> torch.Generator | None:
    if generator is not None and generator.device.type != "cpu":
        raise ValueError("pass a CPU torch.Generator for the row draw")
    return generator


def _on(generator: torch.Generator | None, like: torch.Tensor) -> torch.Generator | None:
    if generator is None or generator.device == like.device:
        return generator
    if like.device.type == "cpu":
        return generator
    # a CPU generator for a CUDA tensor: derive a device generator deterministically from it
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=like.device).manual_seed(seed)


class LazyPlan(_Plan):
    """pi_ij = exp(u_i + v_j - C_ij / eps) on a geometry; u, v of shape (B, n), (B, m)."""

    def __init__(self, geom: Geometry, u: torch.Tensor, v: torch.Tensor, eps: float, batched: bool, target_points=None):
        self.geom, self.u, self.v, self.eps, self.batched = geom, u, v, eps, batched
        self.batch, self.n, self.m = geom.batch, geom.n, geom.m
        self.dtype, self.device = geom.dtype, geom.device
        self.target_points = target_points

    def _apply(self, V):
        return self.geom.apply(self.u, self.v, self.eps, V)

    def transpose(self):
        return LazyPlan(self.geom.T, self.v, self.u, self.eps, self.batched)

    def _row_scores(self, b, rows):
        c = self.geom.cost_rows(b, rows)
        return self.v[b] - c / self.eps

    def _dense(self):
        return torch.exp(self.u[:, :, None] + self.v[:, None, :] - self.geom.cost_matrix() / self.eps)

    def cost(self) -> torch.Tensor:
        """<C, pi> per batch item, shape (B,)."""
        return self.geom.plan_cost(self.u, self.v, self.eps)


class DensePlan(_Plan):
    """A stored plan P (B, n, m), e.g. from exact OT."""

    def __init__(self, P: torch.Tensor, batched: bool, target_points=None):
        self.P, self.batched = P, batched
        self.batch, self.n, self.m = P.shape
        self.dtype, self.device = P.dtype, P.device
        self.target_points = target_points

    def _apply(self, V):
        return torch.bmm(self.P.to(V.dtype), V)

    def transpose(self):
        return DensePlan(self.P.transpose(1, 2), self.batched)

    def _row_scores(self, b, rows):
        return self.P[b, rows].log()

    def _dense(self):
        return self.P


@dataclass
class OTResult:
    """Result of an OT solve.

    ``f``, ``g``: potentials in cost units, shapes (n,), (m,) (or (B, n), (B, m)); ``value``: the regularised OT
    value (carries gradients according to ``grad=``); ``value_linear``: <C, pi>; ``lazy_plan``: plan operations
    without storing pi; ``plan``: the materialised plan; ``n_iter``, ``errors`` (one per check), ``converged``.
    """

    f: torch.Tensor
    g: torch.Tensor
    value: torch.Tensor
    lazy_plan: _Plan
    reg: float | None
    n_iter: int = 0
    errors: list[float] = field(default_factory=list)
    converged: bool = True
    backend: str = "dense"
    log_a: torch.Tensor | None = None  # (B, n) log weights, for to_pot()
    log_b: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    _value_linear: torch.Tensor | None = None

    @property
    def potentials(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.f, self.g

    @property
    def plan(self) -> torch.Tensor:
        return self.lazy_plan.dense()

    @property
    def value_linear(self) -> torch.Tensor:
        """<C, pi> (one plan pass, cached)."""
        if self._value_linear is None:
            cost = self.lazy_plan.cost() if isinstance(self.lazy_plan, LazyPlan) else self.extra["value_linear"]
            self._value_linear = cost if self.lazy_plan.batched else cost[0]
        return self._value_linear

    @property
    def marginals(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(pi 1, pi^T 1)."""
        return self.lazy_plan.row_sums(), self.lazy_plan.col_sums()

    def to_pot(self) -> tuple[torch.Tensor, torch.Tensor]:
        """POT's dimensionless log-scalings (log_u, log_v) with pi = exp(log_u + log_v - C / reg)."""
        plan = self.lazy_plan
        if self.reg is None or not isinstance(plan, LazyPlan):
            raise ValueError("to_pot() is defined for entropic (KL) results")
        log_u, log_v = plan.u, plan.v  # type: ignore[attr-defined]
        return (log_u, log_v) if plan.batched else (log_u[0], log_v[0])

    def transport(self, x_new: torch.Tensor) -> torch.Tensor:
        """Entropic map of new source points (n_new, d): sum_j pi(x, y_j) y_j / sum_j pi(x, y_j), with f extended
        by its c-transform (OTT's ``to_dual_potentials``). Available for entropic ``solve_sample`` results."""
        if "target" not in self.extra or self.reg is None:
            raise ValueError("transport() needs an entropic result of solve_sample (reg > 0)")
        y, log_b, cost = self.extra["target"]
        eps, k = self.extra["eps"], self.extra["cost_scale"]
        g = self.g if self.lazy_plan.batched else self.g.unsqueeze(0)
        xb = x_new if self.lazy_plan.batched else x_new.unsqueeze(0)
        if xb.shape[-1] != y.shape[-1]:
            raise ValueError(f"x_new has dimension {xb.shape[-1]} but the target points have {y.shape[-1]}")
        scores = (g[:, None, :] - cost.matrix(xb.to(y.dtype), y) / k) / eps + log_b[:, None, :]
        mapped = torch.softmax(scores, dim=-1) @ y
        return mapped if self.lazy_plan.batched else mapped[0]

    def warn_if_not_converged(self) -> None:
        if not self.converged:
            last = self.errors[-1] if self.errors else math.nan
            warnings.warn(
                f"OT solver stopped after {self.n_iter} iterations without reaching tol (last error {last:.3g}); "
                "raise max_iter, loosen tol, or use eps_schedule='scaling'",
                RuntimeWarning,
                stacklevel=4,
            )
