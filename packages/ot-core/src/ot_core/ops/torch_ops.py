"""Softmin and plan-application passes in plain torch, processed in row blocks.

All functions take a leading batch axis B. Two ways to produce the scores of a row block:

* from cost blocks ``cost_block(i0, i1) -> (B, i1 - i0, m)`` (a dense matrix sliced, or any cost evaluated on
  points): score_ij = v_j - C_ij / eps;
* from coordinates in "dot form" (squared Euclidean after shifting the potentials): score_ij = coef * x_i.y_j +
  bias_j, one fused GEMM per block.

A block holds at most ``block_elems`` scores, so memory is O(B * block_elems) on top of the inputs; the dense
backend is the same code with one block covering the whole matrix.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

CostBlock = Callable[[int, int], torch.Tensor]

#: default number of scores per block: 2**21 keeps a float32 block (8 MiB) near the CPU caches;
#: on CUDA one block of 2**26 (256 MiB) amortises kernel launches.
CPU_BLOCK_ELEMS = 2**21
CUDA_BLOCK_ELEMS = 2**26


def block_rows_for(n: int, m: int, batch: int, device: torch.device, block_rows: int | None = None) -> int:
    """Rows per block so that a (batch, rows, m) temporary stays within the default budget."""
    if block_rows is not None:
        if block_rows < 1:
            raise ValueError(f"block_rows must be >= 1, got {block_rows}")
        return min(block_rows, max(n, 1))
    budget = CUDA_BLOCK_ELEMS if device.type == "cuda" else CPU_BLOCK_ELEMS
    return max(1, min(n, budget // max(1, batch * m)))


def _blocks(n: int, rows: int) -> Iterator[tuple[int, int]]:
    for i0 in range(0, n, rows):
        yield i0, min(n, i0 + rows)


def logsumexp_lastdim(z: torch.Tensor) -> torch.Tensor:
    """log-sum-exp over the last axis; in place (z is destroyed) unless autograd records z.

    An all ``-inf`` row gives ``-inf`` (never NaN).
    """
    if z.requires_grad and torch.is_grad_enabled():
        return torch.logsumexp(z, dim=-1)
    zmax = z.amax(dim=-1, keepdim=True)
    zmax = torch.where(torch.isfinite(zmax), zmax, torch.zeros_like(zmax))
    return z.sub_(zmax).exp_().sum(dim=-1).log_() + zmax.squeeze(-1)


# ----------------------------------------------------------------------------- from cost blocks
def lse_cost(cost_block: CostBlock, n: int, v: torch.Tensor, eps: float, rows: int) -> torch.Tensor:
    """out_i = LSE_j(v_j - C_ij / eps); v (B, m) -> (B, n)."""
    out = [logsumexp_lastdim(torch.add(v.unsqueeze(1), cost_block(i0, i1), alpha=-1.0 / eps)) for i0, i1 in _blocks(n, rows)]
    return torch.cat(out, dim=1)


def apply_cost(
    cost_block: CostBlock, n: int, u: torch.Tensor, v: torch.Tensor, eps: float, V: torch.Tensor, rows: int
) -> torch.Tensor:
    """(P @ V)_i = sum_j exp(u_i + v_j - C_ij / eps) V_j; u (B, n), v (B, m), V (B, m, k) -> (B, n, k)."""
    out = []
    for i0, i1 in _blocks(n, rows):
        z = torch.add(v.unsqueeze(1), cost_block(i0, i1), alpha=-1.0 / eps).add_(u[:, i0:i1, None]).exp_()
        out.append(torch.bmm(z, V))
    return torch.cat(out, dim=1)


def plan_cost(cost_block: CostBlock, n: int, u: torch.Tensor, v: torch.Tensor, eps: float, rows: int) -> torch.Tensor:
    """sum_ij exp(u_i + v_j - C_ij / eps) C_ij -> (B,)."""
    total = torch.zeros(u.shape[0], dtype=u.dtype, device=u.device)
    for i0, i1 in _blocks(n, rows):
        c = cost_block(i0, i1)
        z = torch.add(v.unsqueeze(1), c, alpha=-1.0 / eps).add_(u[:, i0:i1, None]).exp_()
        total = total + (z * c).sum(dim=(1, 2))
    return total


# ----------------------------------------------------------------------------- dot form (sqeuclidean)
def lse_dot(x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor, coef: float, rows: int) -> torch.Tensor:
    """out_i = LSE_j(coef * x_i.y_j + bias_j); x (B, n, d), y (B, m, d), bias (B, m) -> (B, n)."""
    yt = y.transpose(1, 2)
    b = bias.unsqueeze(1)
    out = [logsumexp_lastdim(torch.baddbmm(b, x[:, i0:i1], yt, alpha=coef)) for i0, i1 in _blocks(x.shape[1], rows)]
    return torch.cat(out, dim=1)


def apply_dot(
    x: torch.Tensor,
    y: torch.Tensor,
    row_bias: torch.Tensor,
    col_bias: torch.Tensor,
    coef: float,
    V: torch.Tensor,
    rows: int,
) -> torch.Tensor:
    """out_i = sum_j exp(coef * x_i.y_j + col_bias_j + row_bias_i) V_j; V (B, m, k) -> (B, n, k)."""
    yt = y.transpose(1, 2)
    b = col_bias.unsqueeze(1)
    out = []
    for i0, i1 in _blocks(x.shape[1], rows):
        z = torch.baddbmm(b, x[:, i0:i1], yt, alpha=coef).add_(row_bias[:, i0:i1, None]).exp_()
        out.append(torch.bmm(z, V))
    return torch.cat(out, dim=1)
