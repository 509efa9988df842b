"""Geometries: what a solver needs to know about the cost, without caring whether C is stored.

A geometry has a leading batch axis B and exposes the two passes every solver is made of:

* ``lse(v, eps)``: LSE_j(v_j - C_ij / eps), shape (B, n) (the softmin, in log units);
* ``apply(u, v, eps, V)``: sum_j exp(u_i + v_j - C_ij / eps) V_j, shape (B, n, k) (the plan applied to V);

plus ``plan_cost`` (sum of pi * C), ``cost_matrix`` and ``max_cost``. ``geom.T`` swaps rows and columns.

:class:`DenseGeometry` holds C (B, n, m). :class:`PointCloud` holds x (B, n, d), y (B, m, d) and a cost, and never
materialises C: squared-Euclidean costs use the "dot form" (one GEMM per row block, or the fused Triton kernel),
other costs evaluate C block by block.
"""

from __future__ import annotations

import functools

import torch

from . import ops
from .costs import Cost, SqEuclidean

__all__ = ["Geometry", "DenseGeometry", "PointCloud", "BACKENDS"]

BACKENDS = ("auto", "dense", "chunked", "triton")
#: CPU problems up to this many pairs are solved on a materialised cost matrix by ``backend="auto"``.
DENSE_MAX_PAIRS_CPU = 25_000_000
#: CUDA problems above this many pairs go to the fused Triton kernels by ``backend="auto"``.
TRITON_MIN_PAIRS_CUDA = 2**22


class Geometry:
    batch: int
    n: int
    m: int
    backend: str
    _rows: int  # rows per block of the torch passes

    @property
    def dtype(self) -> torch.dtype:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        raise NotImplementedError

    # subclasses implement lse, apply, cost_matrix, transpose and _cost_block
    def lse(self, v: torch.Tensor, eps: float) -> torch.Tensor:
        raise NotImplementedError

    def apply(self, u: torch.Tensor, v: torch.Tensor, eps: float, V: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def plan_cost(self, u: torch.Tensor, v: torch.Tensor, eps: float) -> torch.Tensor:
        """sum_ij exp(u_i + v_j - C_ij / eps) C_ij, shape (B,)."""
        return ops.plan_cost(self._cost_block, self.n, u, v, eps, self._rows)

    def cost_matrix(self) -> torch.Tensor:
        raise NotImplementedError

    def transpose(self) -> "Geometry":
        raise NotImplementedError

    @functools.cached_property
    def T(self) -> "Geometry":
        return self.transpose()

    def max_cost(self) -> torch.Tensor:
        """max_ij C_ij per batch item, shape (B,), computed block by block."""
        rows = self._rows
        out = torch.full((self.batch,), -torch.inf, dtype=self.dtype, device=self.device)
        for i0 in range(0, self.n, rows):
            out = torch.maximum(out, self._cost_block(i0, min(self.n, i0 + rows)).amax(dim=(1, 2)))
        return out

    def mean_cost(self) -> torch.Tensor:
        rows = self._rows
        total = torch.zeros(self.batch, dtype=self.dtype, device=self.device)
        for i0 in range(0, self.n, rows):
            total = total + self._cost_block(i0, min(self.n, i0 + rows)).sum(dim=(1, 2))
        return total / (self.n * self.m)

    def _cost_block(self, i0: int, i1: int) -> torch.Tensor:
        raise NotImplementedError

    def cost_rows(self, b: int, rows: torch.Tensor) -> torch.Tensor:
        """C[b, rows, :], shape (len(rows), m)."""
        raise NotImplementedError


class DenseGeometry(Geometry):
    """A stored cost matrix C of shape (B, n, m)."""

    backend = "dense"

    def __init__(self, C: torch.Tensor, block_rows: int | None = None):
        if C.dim() != 3:
            raise ValueError(f"C must have shape (B, n, m), got {tuple(C.shape)}")
        self.C = C
        self.batch, self.n, self.m = C.shape
        self.block_rows = block_rows
        self._rows = ops.block_rows_for(self.n, self.m, self.batch, C.device, block_rows)

    @property
    def dtype(self):
        return self.C.dtype

    @property
    def device(self):
        return self.C.device

    def _cost_block(self, i0, i1):
        return self.C[:, i0:i1]

    def cost_rows(self, b, rows):
        return self.C[b, rows]

    def lse(self, v, eps):
        return ops.lse_cost(self._cost_block, self.n, v, eps, self._rows)

    def apply(self, u, v, eps, V):
        return ops.apply_cost(self._cost_block, self.n, u, v, eps, V, self._rows)

    def cost_matrix(self):
        return self.C

    def transpose(self):
        t = DenseGeometry(self.C.transpose(1, 2).contiguous(), self.block_rows)
        t.__dict__["T"] = self
        return t

    def max_cost(self):
        return self.C.amax(dim=(1, 2))

    def mean_cost(self):
        return self.C.mean(dim=(1, 2))


class PointCloud(Geometry):
    """Points x (B, n, d) and y (B, m, d) with a cost; C is never stored.

    ``backend``: ``"chunked"`` (torch, row blocks of ``block_rows``) or ``"triton"`` (fused CUDA kernels,
    squared-Euclidean only; ``precision`` "ieee" | "tf32" | "tf32x3").
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        cost: Cost,
        backend: str = "chunked",
        block_rows: int | None = None,
        precision: str = "ieee",
    ):
        if x.dim() != 3 or y.dim() != 3 or x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
            raise ValueError(
                f"x and y must have shapes (B, n, d) and (B, m, d) with the same B and d; "
                f"got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        if backend == "triton" and not isinstance(cost, SqEuclidean):
            raise ValueError(f"backend='triton' supports cost='sqeuclidean' only, got {cost!r}; use backend='chunked'")
        self.x, self.y, self.cost = x, y, cost
        self.batch, self.n, self.m = x.shape[0], x.shape[1], y.shape[1]
        self.backend, self.block_rows, self.precision = backend, block_rows, precision
        self._rows = ops.block_rows_for(self.n, self.m, self.batch, x.device, block_rows)
        self._dot = isinstance(cost, SqEuclidean)
        if self._dot:
            self._x2 = cost.scale * (x * x).sum(-1)
            self._y2 = cost.scale * (y * y).sum(-1)

    @property
    def dtype(self):
        return self.x.dtype

    @property
    def device(self):
        return self.x.device

    def _cost_block(self, i0, i1):
        return self.cost.matrix(self.x[:, i0:i1], self.y)

    def cost_rows(self, b, rows):
        return self.cost.matrix(self.x[b, rows], self.y[b])

    def _kernels(self):
        if self.backend == "triton":
            from .ops import triton_sqeuclid

            return (
                functools.partial(triton_sqeuclid.lse_dot, precision=self.precision),
                functools.partial(triton_sqeuclid.apply_dot, precision=self.precision),
            )
        return (
            functools.partial(ops.lse_dot, rows=self._rows),
            functools.partial(ops.apply_dot, rows=self._rows),
        )

    def lse(self, v, eps):
        if not self._dot:
            return ops.lse_cost(self._cost_block, self.n, v, eps, self._rows)
        lse_dot, _ = self._kernels()
        coef = 2.0 * self.cost.scale / eps
        return lse_dot(self.x, self.y, v - self._y2 / eps, coef) - self._x2 / eps

    def apply(self, u, v, eps, V):
        if not self._dot:
            return ops.apply_cost(self._cost_block, self.n, u, v, eps, V, self._rows)
        _, apply_dot = self._kernels()
        coef = 2.0 * self.cost.scale / eps
        return apply_dot(self.x, self.y, u - self._x2 / eps, v - self._y2 / eps, coef, V)

    def cost_matrix(self):
        return self.cost.matrix(self.x, self.y)

    def transpose(self):
        t = PointCloud(self.y, self.x, _transposed_cost(self.cost), self.backend, self.block_rows, self.precision)
        t.__dict__["T"] = self
        return t


def _transposed_cost(cost: Cost) -> Cost:
    """Cost with arguments swapped; every built-in cost is symmetric, callables are wrapped."""
    from .costs import CallableCost

    if isinstance(cost, CallableCost):
        fn = cost.fn
        return CallableCost(lambda a, b: fn(b, a).transpose(-1, -2))
    return cost
