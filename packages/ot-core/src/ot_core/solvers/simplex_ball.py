"""Exact solution of ARPM's source-reweighting problem without a conic solver:

    (P)  min_w <d, w>  s.t.  w >= 0,  sum_i w_i = n,  ||w - 1||^2 <= rho n.

KKT (lambda > 0 on the ball): w_i = max(0, c - d_i / (2 lambda)); the support is the k smallest d. With m_k, V_k
the mean and scatter of those k values, ||w - 1||^2 = n (n - k) / k + V_k / (4 lambda^2), so each support size k
has a closed-form lambda_k, and prefix sums over the sorted d give every k in O(n) after one sort. If the ball is
inactive (rho n >= n (n - t) / t, t = #argmin d) the vertex w = n / t on the argmin set is optimal.
"""

from __future__ import annotations

import math

import torch

__all__ = ["reweight_simplex_ball"]


def reweight_simplex_ball(d, rho: float = 5.0, chunk_size: int | None = None) -> torch.Tensor:
    """Weights w (n,) minimising <d, w> on {w >= 0, sum w = n, ||w - 1||^2 <= rho n}; d are critic values (n,).

    At least n / (1 + rho) samples keep a positive weight. ``chunk_size`` reproduces the original code, which
    solves interleaved chunks of that size separately when n >= chunk_size (indices past the last full chunk
    keep weight 0); the default solves the whole set at once. Computed in float64; returned in d's dtype.
    """
    d = torch.as_tensor(d)
    if d.dim() != 1 or d.numel() == 0:
        raise ValueError(f"d must be a non-empty vector of critic values, got shape {tuple(d.shape)}")
    if not bool(torch.isfinite(d).all()):
        raise ValueError("d contains NaN or infinite values")
    if not rho > 0:
        raise ValueError(f"rho must be > 0, got {rho}")
    n = d.numel()
    if chunk_size is not None and n >= chunk_size:
        n_chunks = n // chunk_size
        per = n // n_chunks
        w = torch.zeros(n, dtype=torch.float64, device=d.device)
        for c in range(n_chunks):
            idx = torch.arange(c, n_chunks * per, n_chunks, device=d.device)
            w[idx] = _solve(d[idx].double(), rho)
        return w.to(d.dtype if d.is_floating_point() else torch.float64)
    return _solve(d.double(), rho).to(d.dtype if d.is_floating_point() else torch.float64)


def _solve(d: torch.Tensor, rho: float) -> torch.Tensor:
    n = d.numel()
    std = d.std(unbiased=False) if n > 1 else torch.zeros((), dtype=d.dtype)
    if float(std) <= 1e-12 * max(1.0, float(d.abs().max())):
        return torch.ones_like(d)
    z = (d - d.mean()) / std  # the solution is invariant under d -> alpha d + beta, alpha > 0
    t = int((z <= z.min() + 1e-12).sum())
    if n * (n - t) / t <= rho * n:  # the ball does not bind: the best vertex of the simplex is feasible
        return torch.where(z <= z.min() + 1e-12, torch.full_like(z, n / t), torch.zeros_like(z))
    zs, order = torch.sort(z, stable=True)
    k = torch.arange(1, n + 1, dtype=z.dtype, device=z.device)
    s1 = torch.cumsum(zs, 0)
    s2 = torch.cumsum(zs * zs, 0)
    mean = s1 / k
    scatter = (s2 - k * mean * mean).clamp_min(0)
    room = rho * n - n * (n - k) / k  # must be > 0: k > n / (1 + rho)
    lam = scatter.sqrt() / (2 * room.clamp_min(1e-300).sqrt())
    lam = torch.where(scatter <= 1e-12 * k, torch.zeros_like(lam), lam)
    base = n / k
    with torch.no_grad():
        safe = lam.clamp_min(1e-300)
        w_last = base + (mean - zs) / (2 * safe)
        nxt = torch.cat([zs[1:], zs.new_full((1,), math.inf)])
        w_next = base + (mean - nxt) / (2 * safe)
    tol = 1e-9
    ok = (room > 0) & (lam > 0) & (w_last >= -tol) & ((w_next <= tol) | (k == n))
    if not bool(ok.any()):
        raise FloatingPointError("reweight_simplex_ball found no consistent support; please report this input")
    kk = int(torch.nonzero(ok)[-1]) + 1
    lam_k, mean_k = lam[kk - 1], mean[kk - 1]
    w_sorted = torch.zeros_like(zs)
    w_sorted[:kk] = (n / kk + (mean_k - zs[:kk]) / (2 * lam_k)).clamp_min(0)
    w = torch.empty_like(w_sorted)
    w[order] = w_sorted
    return w
