"""Wasserstein barycenters.

* Fixed support (Benamou et al. 2015, iterated Bregman projections in the log domain): histograms p_k on one
  support with cost C, weights lambda; b = argmin sum_k lambda_k OT_eps(p_k, b).
* Free support (Cuturi & Doucet 2014): N locations X with weights w, fixed-point X <- sum_k lambda_k diag(1/w) P_k Y_k
  with P_k the exact (or entropic) plan from (X, w) to (Y_k, p_k).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .. import _checks as chk
from ..geometry import DenseGeometry

__all__ = ["barycenter_fixed", "barycenter_free", "BarycenterResult"]


@dataclass
class BarycenterResult:
    barycenter: torch.Tensor  # histogram (n,) for fixed support, locations (N, d) for free support
    n_iter: int
    errors: list[float] = field(default_factory=list)
    converged: bool = False
    weights: torch.Tensor | None = None  # free support: the barycenter's weights w


def _lambdas(weights, K: int, like: torch.Tensor) -> torch.Tensor:
    if weights is None:
        return torch.full((K,), 1.0 / K, dtype=like.dtype, device=like.device)
    lam = chk.as_tensor(weights, "weights", like=like).reshape(-1)
    if lam.numel() != K or bool((lam < 0).any()) or abs(float(lam.sum()) - 1) > 1e-6:
        raise ValueError(f"weights must be {K} non-negative numbers summing to 1, got {lam.tolist()}")
    return lam


def barycenter_fixed(A, C, reg: float, weights=None, *, max_iter: int = 1000, tol: float = 1e-9,
                     check_every: int = 1) -> BarycenterResult:
    """Entropic barycenter of the K histograms ``A`` (n, K) (POT's layout) on a support with cost C (n, n).

    Stops when sum_k std over k of the k-th coupling's column marginal (POT's criterion) < tol.
    """
    A = chk.as_tensor(A, "A")
    C = chk.as_tensor(C, "C", like=A)
    eps = chk.check_reg(reg)
    if A.dim() != 2 or C.shape != (A.shape[0], A.shape[0]):
        raise ValueError(f"A must be (n, K) and C (n, n); got {tuple(A.shape)} and {tuple(C.shape)}")
    n, K = A.shape
    if bool((A < 0).any()) or not torch.allclose(A.sum(0), torch.ones(K, dtype=A.dtype), atol=1e-6):
        raise ValueError("each column of A must be a histogram: non-negative, summing to 1")
    lam = _lambdas(weights, K, A)
    geom = DenseGeometry(C.unsqueeze(0).expand(K, n, n))
    log_p = torch.log(A.T)  # (K, n)
    log_v = torch.zeros(K, n, dtype=A.dtype, device=A.device)
    errors: list[float] = []
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        log_u = log_p - geom.lse(log_v, eps)  # row scalings: pi_k 1 = p_k
        s = geom.T.lse(log_u, eps)  # (K, n): log K^T u_k
        log_b = lam @ s
        if it % check_every == 0:
            err = float(torch.exp(log_v + s).std(dim=0).sum())
            errors.append(err)
            if err < tol:
                converged = True
                break
        log_v = log_b[None] - s
    return BarycenterResult(barycenter=torch.exp(log_b), n_iter=it, errors=errors, converged=converged)


def barycenter_free(locs, weights_list=None, x_init=None, lam=None, *, bary_weights=None, reg: float | None = None,
                    max_iter: int = 100, tol: float = 1e-7) -> BarycenterResult:
    """Free-support barycenter of K point clouds ``locs`` [(n_k, d)] with weights ``weights_list`` [(n_k,)]
    (uniform by default), starting from ``x_init`` (N, d) with weights ``bary_weights`` (uniform). ``reg=None``
    uses exact plans (POT ``free_support_barycenter``), ``reg > 0`` entropic ones. Stops when
    ||X_new - X||^2 <= tol."""
    from ..api import solve_sample

    if x_init is None:
        raise ValueError("x_init (N, d) is required: the barycenter's initial locations")
    X = chk.as_tensor(x_init, "x_init")
    K = len(locs)
    Y = [chk.as_tensor(y, f"locs[{k}]", like=X) for k, y in enumerate(locs)]
    P = [None] * K if weights_list is None else [chk.as_tensor(p, f"weights_list[{k}]", like=X)
                                                 for k, p in enumerate(weights_list)]
    lam = _lambdas(lam, K, X)
    w = (torch.full((X.shape[0],), 1.0 / X.shape[0], dtype=X.dtype, device=X.device) if bary_weights is None
         else chk.as_tensor(bary_weights, "bary_weights", like=X))
    errors: list[float] = []
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        X_new = torch.zeros_like(X)
        for k in range(K):
            res = solve_sample(X, Y[k], w, P[k], reg=reg, grad="detach", center=False, max_iter=10_000)
            X_new += lam[k] * (res.lazy_plan @ Y[k]) / w[:, None]
        err = float(((X_new - X) ** 2).sum())
        errors.append(err)
        X = X_new
        if err <= tol:
            converged = True
            break
    return BarycenterResult(barycenter=X, n_iter=it, errors=errors, converged=converged, weights=w)
